"""Unit-of-work functions over runs, their status history (events) and their artifacts.

Each function is one short session (writes: one BEGIN IMMEDIATE transaction) and returns frozen views, so
callers never hold ORM objects, sessions or locks. Every function takes the runs home first. Anything a
caller can get wrong (unknown id, refused transition, bad value) raises `StoreError` with a one-line message.
Status changes follow `store.lifecycle`; values are checked by `store.checks`; visualization jobs live in
`store.viz_jobs`, settings in `store.settings`.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from store import lifecycle
from store.checks import (
    BACKENDS,
    check_choice,
    check_int,
    check_note,
    check_rel_path,
    check_run_name,
    check_text,
    find_by_ref,
    normalize_tags,
    to_json,
)
from store.db import get_row, read_session, write_session
from store.errors import StoreError
from store.lifecycle import ACTIVE_STATUSES, TERMINAL_STATUSES, check_statuses
from store.queue import queue_order, queue_sql_order, realize_order, take_next
from store.read_view import RUN_ORDERS_SQL, run_filter_sql
from store.tables import Artifact, Run, RunEvent, VizJob
from store.views import ArtifactView, RunEventView, RunView, join_tags, split_tags

__all__ = [
    "HELD",
    "PROGRESS_FIELDS",
    "add_artifact",
    "add_event",
    "add_tags",
    "claim_next",
    "claim_next_slurm",
    "create_run",
    "delete_run",
    "find_run",
    "get_run",
    "list_artifacts",
    "list_events",
    "list_runs",
    "mark_started",
    "move_in_queue",
    "queued_in_order",
    "record_submission",
    "release_sweep",
    "remove_tags",
    "request_cancel",
    "requeue",
    "set_notes",
    "set_tags",
    "set_priority",
    "set_status",
    "set_wait_reason",
    "update_cluster_state",
    "update_progress",
]

MANAGERS = ("supervisor", "headless", "slurm")
HELD = "HELD"  # cluster_state of a queued sweep row not yet released to supervisors (create_run(held=True))
PARENT_RELATIONS = ("resume", "fork")
# Columns update_progress may touch: the supervisor's 1-20 Hz fold of metrics.jsonl into the row.
PROGRESS_FIELDS = frozenset(
    {
        "epoch",
        "epochs",
        "step",
        "progress",
        "last_test_acc",
        "best_test_acc",
        "last_train_acc",
        "images_per_s",
        "last_metrics",  # dict, stored as last_metrics_json
        "last_metrics_json",
        "metrics_offset",
        "health",  # a health rule's message (engine/control/health_rules.py)
        "stalled_since",  # the supervisor's stall flag (engine/daemon/stall.py)
    }
)
# Columns set_status may set beside the status (identity, config and queue fields have their own functions).
_STATUS_FIELDS = frozenset(
    {
        "started_at",
        "ended_at",
        "pid",
        "pid_start",
        "host",
        "gpu",
        "error",
        "exit_code",
        "signal",
        "cancel_requested",
        "cluster_state",
        "cluster_reason",
    }
    | PROGRESS_FIELDS
)
# Columns of the last attempt, cleared when a finished run is queued again (`requeue`).
_REQUEUE_CLEARS = (
    "started_at", "ended_at", "pid", "pid_start", "host", "gpu", "error", "exit_code", "signal",
    "cluster_job_id", "cluster_raw_id", "cluster_state", "cluster_reason", "segment_started_at",
    "health", "stalled_since",
)
# The orders of `list_runs`: the queue's from store.queue, the others the SQL the read view uses too.
_ORDERS: dict[str, tuple[Any, ...]] = {
    "queue": queue_sql_order(Run),
    **{name: (sql_text(sql),) for name, sql in RUN_ORDERS_SQL.items()},
}


# ---------------------------------------------------------------------------------------------- runs


def create_run(
    home: Path,
    *,
    name: str,
    recipe: str,
    dataset: str,
    config: dict[str, Any],
    epochs: int,
    priority: int = 0,
    tags: Iterable[str] | str = (),
    notes: str = "",
    parent_id: int | None = None,
    parent_relation: str | None = None,
    parent_epoch: int | None = None,
    git_commit: str | None = None,
    managed_by: str = "supervisor",
    status: str = "queued",
    kind: str = "train",
    prepare: Callable[[RunView], str] | None = None,
    backend: str = "local",
    backend_options: dict[str, Any] | None = None,
    max_segments: int | None = None,
    sweep: str | None = None,
    held: bool = False,
) -> RunView:
    """Insert a run; `prepare(view)` runs inside the same write transaction and returns the run directory.

    `held` (a Slurm sweep's rows while `ganmgr sweep` is still writing them): the row is queued but no
    supervisor claims it until `release_sweep`, so a supervisor already running submits the whole sweep
    as one job array instead of claiming its first rows early.

    If `prepare` (or anything else) raises, the transaction rolls back and no row remains, so a bad input
    leaves neither a row nor, if `prepare` cleans up after itself, a directory. `prepare` holds the write
    lock while it runs: make the directory and write config.json, nothing slow.
    """
    check_run_name(name)
    check_text(recipe, "recipe", 200)
    check_text(dataset, "dataset", 4096)
    check_text(kind, "kind", 64)
    check_int(epochs, "epochs", lo=0)
    check_int(priority, "priority")
    if status not in ACTIVE_STATUSES:
        raise StoreError(f"a new run must be queued or running, not {status!r}")
    check_choice(managed_by, "managed_by", MANAGERS)
    if parent_relation is not None and parent_relation not in PARENT_RELATIONS:
        raise StoreError(f"parent_relation must be resume or fork, not {parent_relation!r}")
    if parent_epoch is not None:
        check_int(parent_epoch, "parent_epoch", lo=0)
    notes = check_note(notes)
    check_choice(backend, "backend", BACKENDS)
    if (backend == "slurm") != (managed_by == "slurm"):
        raise StoreError("a run on the slurm backend is managed_by 'slurm', and only such a run")
    if max_segments is not None:
        check_int(max_segments, "max_segments", lo=1)
    if sweep is not None:
        check_text(sweep, "sweep", 64)
    options_json = None if backend_options is None else to_json(backend_options, "backend options", dict)
    config_json = to_json(config, "config", dict)
    stored_tags = join_tags(normalize_tags(tags))
    now = time.time()
    with write_session(home) as s:
        if parent_id is not None and s.get(Run, parent_id) is None:
            raise StoreError(f"no run {parent_id} (parent)")
        row = Run(
            name=name,
            kind=kind,
            recipe=recipe,
            dataset=dataset,
            config_json=config_json,
            status=status,
            priority=priority,
            created_at=now,
            updated_at=now,
            epochs=epochs,
            notes=notes,
            tags=stored_tags,
            parent_id=parent_id,
            parent_relation=parent_relation,
            parent_epoch=parent_epoch,
            git_commit=git_commit,
            managed_by=managed_by,
            backend=backend,
            backend_options_json=options_json,
            max_segments=max_segments,
            sweep=sweep,
            cluster_state=HELD if held else None,
        )
        if status == "running":
            row.started_at = now
            row.host = socket.gethostname()
        s.add(row)
        s.flush()  # assigns the id that prepare() names the directory after
        assert row.id is not None
        _event(s, row.id, status, "created" if status == "queued" else f"created ({managed_by})", now)
        if prepare is not None:
            run_dir = prepare(RunView.from_row(row))
            row.run_dir = str(run_dir)
        return RunView.from_row(row)


def get_run(home: Path, run_id: int) -> RunView | None:
    with read_session(home) as s:
        row = s.get(Run, run_id)
        return None if row is None else RunView.from_row(row)


def find_run(home: Path, ref: str | int) -> RunView:
    """A run by numeric id or exact name (an id wins when both could match)."""
    with read_session(home) as s:
        def by_id(run_id: int) -> RunView | None:
            row = s.get(Run, run_id)
            return None if row is None else RunView.from_row(row)

        def by_name(name: str) -> list[RunView]:
            return [RunView.from_row(r) for r in s.exec(select(Run).where(Run.name == name).order_by(col(Run.id)))]

        return find_by_ref(ref, by_id, by_name)


def list_runs(
    home: Path,
    *,
    status: str | Iterable[str] | None = None,
    recipe: str | None = None,
    tag: str | None = None,
    sweep: str | None = None,
    backend: str | None = None,
    text: str | None = None,
    limit: int | None = None,
    order: str = "id",
) -> list[RunView]:
    """Runs filtered by status(es), recipe, exact tag and case-insensitive text (name, recipe, dataset,
    notes, tags). `order`: id, -id, queue, name, created_at, -created_at, updated_at, -updated_at."""
    if order not in _ORDERS:
        raise StoreError(f"unknown order {order!r}; one of {', '.join(_ORDERS)}")
    where, params = run_filter_sql(status=status, recipe=recipe, tag=tag, sweep=sweep, backend=backend, text=text)
    q = select(Run).where(sql_text(where).bindparams(**params)).order_by(*_ORDERS[order])
    if limit is not None:
        check_int(limit, "limit", lo=0)
        q = q.limit(limit)
    with read_session(home) as s:
        return [RunView.from_row(r) for r in s.exec(q).all()]


def queued_in_order(home: Path) -> list[RunView]:
    return queue_order(list_runs(home, status="queued"))


def claim_next(home: Path, *, host: str, slots: int, only: int | None = None) -> RunView | None:
    """Atomically take the next queued run if fewer than `slots` supervisor runs are running.

    The count and the pick happen in one BEGIN IMMEDIATE transaction, so two supervisors (or a supervisor
    racing a `cancel`) never start the same run or exceed the slots. `only`: take the next run only if it is
    that one (the supervisor decided where it goes before claiming it: packing by GPU memory).
    """
    check_int(slots, "slots", lo=0)
    with write_session(home) as s:
        row = take_next(s, Run, Run.managed_by == "supervisor", slots=slots)
        if row is None or (only is not None and row.id != only):
            return None
        now = time.time()
        lifecycle.claim(row, host=host, now=now)
        row.cluster_reason = None  # a local run's wait reason (set_wait_reason) ends with the wait
        assert row.id is not None
        _event(s, row.id, "running", f"claimed by the supervisor on {host}", now)
        return RunView.from_row(row)


def set_wait_reason(home: Path, run_id: int, reason: str | None) -> None:
    """Why a queued local run is not started yet ("waiting: GPU 0 has 3.1 GB free, run needs 6 GB"), shown by
    `ls`, `show` and the TUI; kept in `cluster_reason` (a local run has no cluster). Only a queued row changes."""
    if reason is not None:
        check_text(reason, "wait reason", 300)
    with write_session(home) as s:
        s.execute(update(Run).where(col(Run.id) == run_id, col(Run.status) == "queued",
                                    col(Run.managed_by) == "supervisor").values(cluster_reason=reason))


def claim_next_slurm(home: Path, *, host: str, sweep: str | None = None) -> RunView | None:
    """Atomically take the next queued Slurm run that has no cluster job yet (the cluster schedules it,
    so no slot limit applies here); with `sweep`, the next of that sweep only (one job array). It becomes
    `running` with cluster state SUBMITTING until sbatch answers; a second supervisor can never submit it
    twice."""
    with write_session(home) as s:
        where = [Run.managed_by == "slurm", col(Run.cluster_job_id).is_(None),
                 or_(col(Run.cluster_state).is_(None), col(Run.cluster_state) != HELD)]
        if sweep is not None:
            where.append(Run.sweep == sweep)
        row = take_next(s, Run, *where)
        if row is None:
            return None
        now = time.time()
        lifecycle.claim(row, host=host, now=now, keep_started=True)
        row.cluster_state = "SUBMITTING"
        assert row.id is not None
        _event(s, row.id, "running", f"claimed for submission to Slurm by the supervisor on {host}", now)
        return RunView.from_row(row)


def release_sweep(home: Path, sweep: str) -> int:
    """Let supervisors claim a sweep's held rows (all of them at once: one job array); returns how many."""
    with write_session(home) as s:
        result = s.execute(update(Run).where(col(Run.sweep) == sweep, col(Run.cluster_state) == HELD)
                           .values(cluster_state=None, updated_at=time.time()))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def record_submission(
    home: Path, run_id: int, job_id: str, *, message: str, raw_id: str | None = None
) -> RunView:
    """A new cluster job for the run (its next segment): job id, segment count, PENDING; a history line."""
    check_text(job_id, "job id", 64)
    now = time.time()
    with write_session(home) as s:
        row = _get_run(s, run_id)
        lifecycle.refuse_terminal(row, f"run {run_id}")
        row.cluster_job_id = job_id
        row.cluster_raw_id = raw_id
        row.cluster_state = "PENDING"
        row.cluster_reason = None
        row.segments = (row.segments or 0) + 1
        row.segment_started_at = now
        row.pid = None
        row.pid_start = None
        row.updated_at = now
        _event(s, run_id, "running", message, now)
        return RunView.from_row(row)


def update_cluster_state(home: Path, run_id: int, *, state: str, reason: str | None = None,
                         raw_id: str | None = None, host: str | None = None) -> None:
    """The cluster's live word for the run's current job (one UPDATE; a raw id is kept once known)."""
    values: dict[str, Any] = {"cluster_state": state, "cluster_reason": reason, "updated_at": time.time()}
    if raw_id:
        values["cluster_raw_id"] = raw_id
    if host:
        values["host"] = host
    with write_session(home) as s:
        result = s.execute(update(Run).where(col(Run.id) == run_id).values(**values))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise StoreError(f"no run {run_id}")


def add_event(home: Path, run_id: int, status: str, message: str) -> None:
    """A history line without a status change (a segment that ended, a cancel sent to the cluster)."""
    with write_session(home) as s:
        _get_run(s, run_id)
        _event(s, run_id, status, message, time.time())


def mark_started(
    home: Path,
    run_id: int,
    *,
    pid: int,
    pid_start: str,
    gpu: str | None = None,
    host: str | None = None,
) -> RunView:
    """Record the worker process (pid + start-time token, so a reused pid is never trusted)."""
    check_int(pid, "pid", lo=1)
    now = time.time()
    with write_session(home) as s:
        row = _get_run(s, run_id)
        host = host or row.host or socket.gethostname()
        values: dict[str, Any] = {"pid": pid, "pid_start": pid_start, "host": host}
        if gpu is not None:
            values["gpu"] = gpu
        lifecycle.move(row, "running", values, now, f"run {run_id}")  # from queued, or already running
        where = f" on GPU {gpu}" if gpu else ""
        _event(s, run_id, "running", f"worker pid {pid} started{where}", now)
        return RunView.from_row(row)


def update_progress(home: Path, run_id: int, **fields: Any) -> None:
    """Fold progress into the row (whitelisted columns only; bumps updated_at). One UPDATE, no read.

    Given `last_test_acc` without `best_test_acc`, the best is kept as the running maximum in SQL.
    """
    values = _progress_values(fields)
    if "last_test_acc" in fields and "best_test_acc" not in fields and fields["last_test_acc"] is not None:
        x = float(fields["last_test_acc"])
        values["best_test_acc"] = func.max(func.coalesce(Run.best_test_acc, x), x)
    values["updated_at"] = time.time()
    with write_session(home) as s:
        result = s.execute(update(Run).where(col(Run.id) == run_id).values(**values))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise StoreError(f"no run {run_id}")


def set_status(home: Path, run_id: int, status: str, *, message: str | None = None, **fields: Any) -> RunView:
    """Change a run's status and record it in the history; terminal statuses stamp ended_at.

    A terminal run stays terminal: only `requeue` takes it back to queued.
    """
    check_statuses(status)
    values = _status_values(fields)
    now = time.time()
    with write_session(home) as s:
        row = _get_run(s, run_id)
        lifecycle.move(row, status, values, now, f"run {run_id}")
        _event(s, run_id, status, message, now)
        return RunView.from_row(row)


def requeue(home: Path, run_id: int, *, message: str) -> RunView:
    """Terminal -> queued (for `resume`): same row, same directory; the process fields are cleared."""
    now = time.time()
    with write_session(home) as s:
        row = _get_run(s, run_id)
        if row.status not in TERMINAL_STATUSES:
            raise StoreError(f"run {run_id} is {row.status}; only a finished run can be requeued")
        row.status = "queued"
        row.managed_by = "slurm" if row.backend == "slurm" else "supervisor"
        row.cancel_requested = False
        row.segments = 0
        for name in _REQUEUE_CLEARS:
            setattr(row, name, None)
        row.updated_at = now
        _event(s, run_id, "queued", message, now)
        return RunView.from_row(row)


def request_cancel(home: Path, run_id: int) -> RunView:
    """Queued -> cancelled at once; running -> cancel_requested (the supervisor signals the worker)."""
    now = time.time()
    with write_session(home) as s:
        row = _get_run(s, run_id)
        outcome = lifecycle.cancel(row, now, f"run {run_id}")
        if outcome == "cancelled":
            _event(s, run_id, "cancelled", "cancelled while queued", now)
        elif outcome == "requested":
            _event(s, run_id, row.status, "cancel requested", now)
        return RunView.from_row(row)


def set_priority(home: Path, run_id: int, priority: int) -> RunView:
    check_int(priority, "priority")
    with write_session(home) as s:
        row = _get_run(s, run_id)
        row.priority = priority
        row.updated_at = time.time()
        return RunView.from_row(row)


def move_in_queue(home: Path, run_id: int, delta: int) -> RunView:
    """Move a queued run `delta` places (negative: toward the front) by adjusting priorities.

    Only the moved run's priority changes when a value fits between its new neighbours; otherwise the
    priorities of the runs ahead of it are raised just enough. The other runs keep their relative order.
    """
    check_int(delta, "delta")
    with write_session(home) as s:
        queue = list(
            s.exec(
                select(Run)
                .where(Run.status == "queued")
                .order_by(*queue_sql_order(Run))
            ).all()
        )
        index = next((i for i, r in enumerate(queue) if r.id == run_id), None)
        if index is None:
            row = _get_run(s, run_id)
            raise StoreError(f"run {run_id} is {row.status}; only a queued run can be moved")
        target = min(max(index + delta, 0), len(queue) - 1)
        row = queue.pop(index)
        queue.insert(target, row)
        if target != index:
            realize_order(queue, target)
            row.updated_at = time.time()
        return RunView.from_row(row)


def add_tags(home: Path, run_id: int, tags: Iterable[str] | str) -> RunView:
    new = normalize_tags(tags)
    with write_session(home) as s:
        row = _get_run(s, run_id)
        current = split_tags(row.tags)
        row.tags = join_tags(current + tuple(t for t in new if t not in current))
        row.updated_at = time.time()
        return RunView.from_row(row)


def remove_tags(home: Path, run_id: int, tags: Iterable[str] | str) -> RunView:
    gone = set(normalize_tags(tags))
    with write_session(home) as s:
        row = _get_run(s, run_id)
        row.tags = join_tags(tuple(t for t in split_tags(row.tags) if t not in gone))
        row.updated_at = time.time()
        return RunView.from_row(row)


def set_tags(home: Path, run_id: int, tags: Iterable[str] | str) -> RunView:
    """Replace a run's tags (the TUI's tags and note editor); the same rule as add_tags."""
    new = normalize_tags(tags)
    with write_session(home) as s:
        row = _get_run(s, run_id)
        row.tags = join_tags(new)
        row.updated_at = time.time()
        return RunView.from_row(row)


def set_notes(home: Path, run_id: int, text: str) -> RunView:
    notes = check_note(text)
    with write_session(home) as s:
        row = _get_run(s, run_id)
        row.notes = notes
        row.updated_at = time.time()
        return RunView.from_row(row)


def delete_run(home: Path, run_id: int) -> RunView:
    """Delete a run's rows (events, artifacts and viz jobs cascade; children keep living, parent_id NULL).

    Returns the deleted run so the caller can remove its directory; refuses a running run.
    """
    with write_session(home) as s:
        row = _get_run(s, run_id)
        if row.status == "running":
            raise StoreError(f"run {run_id} is running; cancel it first")
        busy = s.exec(
            select(func.count())
            .select_from(VizJob)
            .where(VizJob.run_id == run_id, VizJob.status == "running")
        ).one()
        if busy:
            raise StoreError(f"run {run_id} has a running visualization job; cancel it first")
        view = RunView.from_row(row)
        s.delete(row)
        return view


def list_events(home: Path, run_id: int) -> list[RunEventView]:
    with read_session(home) as s:
        rows = s.exec(select(RunEvent).where(RunEvent.run_id == run_id).order_by(col(RunEvent.id))).all()
        return [RunEventView.from_row(r) for r in rows]


# ----------------------------------------------------------------------------------------- artifacts


def add_artifact(home: Path, run_id: int, kind: str, path: str, epoch: int | None = None) -> ArtifactView:
    """Record a file of the run (path relative to the run dir). Idempotent on (run_id, path): a second call
    updates kind and epoch (checkpoints/last.pt is rewritten every epoch) and keeps one row."""
    check_text(kind, "artifact kind", 64)
    rel = check_rel_path(path)
    if epoch is not None:
        check_int(epoch, "epoch", lo=0)
    with write_session(home) as s:
        _get_run(s, run_id)
        stmt = sqlite_insert(Artifact).values(
            run_id=run_id, kind=kind, epoch=epoch, path=rel, created_at=time.time()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "path"], set_={"kind": stmt.excluded.kind, "epoch": stmt.excluded.epoch}
        )
        s.execute(stmt)
        row = s.exec(select(Artifact).where(Artifact.run_id == run_id, Artifact.path == rel)).one()
        return ArtifactView.from_row(row)


def list_artifacts(home: Path, run_id: int, kind: str | None = None) -> list[ArtifactView]:
    q = select(Artifact).where(Artifact.run_id == run_id)
    if kind is not None:
        q = q.where(Artifact.kind == kind)
    with read_session(home) as s:
        return [ArtifactView.from_row(r) for r in s.exec(q.order_by(col(Artifact.id))).all()]


# --------------------------------------------------------------------------------------- helpers


def _event(s: Session, run_id: int, status: str, message: str | None, at: float) -> None:
    s.add(RunEvent(run_id=run_id, at=at, status=status, message=message))


def _get_run(s: Session, run_id: int) -> Run:
    return get_row(s, Run, run_id, "run")


def _progress_values(fields: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for k, v in fields.items():
        if k not in PROGRESS_FIELDS:
            raise StoreError(f"update_progress cannot set {k!r}")
        if k == "last_metrics":
            values["last_metrics_json"] = None if v is None else to_json(v, "last_metrics", dict, nan_ok=True)
        elif k == "progress":
            p = float(v)
            if not math.isfinite(p):
                raise StoreError(f"progress must be a finite number, not {v!r}")
            values[k] = min(max(p, 0.0), 1.0)
        else:
            values[k] = v
    return values


def _status_values(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - _STATUS_FIELDS
    if unknown:
        raise StoreError(f"set_status cannot set {', '.join(sorted(unknown))}")
    progress = {k: v for k, v in fields.items() if k in PROGRESS_FIELDS}
    values = {k: v for k, v in fields.items() if k not in PROGRESS_FIELDS}
    values.update(_progress_values(progress))
    return values
