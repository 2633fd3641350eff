"""Unit-of-work functions over runs, their events and artifacts, visualization jobs and settings.

Each function is one short session (writes: one BEGIN IMMEDIATE transaction) and returns frozen views, so
callers never hold ORM objects, sessions or locks. Every function takes the runs home first. Anything a
caller can get wrong (unknown id, refused transition, bad value) raises `StoreError` with a one-line message.
"""

from __future__ import annotations

import json
import math
import re
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from sqlalchemy import func, or_, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from store.db import read_session, write_session
from store.errors import StoreError
from store.tables import Artifact, Run, RunEvent, Setting, VizJob
from store.views import (
    ACTIVE_STATUSES,
    STATUSES,
    TERMINAL_STATUSES,
    ArtifactView,
    RunEventView,
    RunView,
    VizJobView,
    join_tags,
    split_tags,
)

__all__ = [
    "DEFAULT_SETTINGS",
    "PROGRESS_FIELDS",
    "StoreError",
    "add_artifact",
    "add_tags",
    "claim_next",
    "claim_next_slurm",
    "release_sweep",
    "claim_next_viz",
    "add_event",
    "record_submission",
    "update_cluster_state",
    "create_run",
    "create_viz_job",
    "delete_run",
    "find_run",
    "get_run",
    "get_settings",
    "get_viz_job",
    "list_artifacts",
    "list_events",
    "list_runs",
    "list_viz_jobs",
    "mark_started",
    "move_in_queue",
    "normalize_tags",
    "queue_order",
    "queued_in_order",
    "remove_tags",
    "request_cancel",
    "request_cancel_viz",
    "requeue",
    "set_notes",
    "set_priority",
    "set_setting",
    "set_status",
    "set_viz_status",
    "update_progress",
]

MANAGERS = ("supervisor", "headless", "slurm")
BACKENDS = ("local", "slurm")
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
_VIZ_FIELDS = frozenset(
    {
        "started_at",
        "ended_at",
        "pid",
        "pid_start",
        "host",
        "job_dir",
        "outputs",  # list, stored as outputs_json
        "outputs_json",
        "error",
        "exit_code",
        "checkpoint",
        "cancel_requested",
        "progress",
        "message",
    }
)
DEFAULT_SETTINGS: dict[str, Any] = {"max_concurrent": 1, "gpus": []}

_TAG_RE = re.compile(r"^[^\s,\x00-\x1f\x7f]{1,64}$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # control characters other than \t and \n
_ORDERS: dict[str, tuple[Any, ...]] = {
    "id": (col(Run.id).asc(),),
    "-id": (col(Run.id).desc(),),
    "queue": (col(Run.priority).desc(), col(Run.id).asc()),
    "name": (col(Run.name).asc(), col(Run.id).asc()),
    "created_at": (col(Run.created_at).asc(), col(Run.id).asc()),
    "-created_at": (col(Run.created_at).desc(), col(Run.id).desc()),
    "updated_at": (col(Run.updated_at).asc(), col(Run.id).asc()),
    "-updated_at": (col(Run.updated_at).desc(), col(Run.id).desc()),
}

_T = TypeVar("_T")


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
    _check_text(name, "name", 200)
    _check_text(recipe, "recipe", 200)
    _check_text(dataset, "dataset", 4096)
    _check_text(kind, "kind", 64)
    _check_int(epochs, "epochs", lo=0)
    _check_int(priority, "priority")
    if status not in ACTIVE_STATUSES:
        raise StoreError(f"a new run must be queued or running, not {status!r}")
    if managed_by not in MANAGERS:
        raise StoreError(f"managed_by must be one of {', '.join(MANAGERS)}, not {managed_by!r}")
    if parent_relation is not None and parent_relation not in PARENT_RELATIONS:
        raise StoreError(f"parent_relation must be resume or fork, not {parent_relation!r}")
    if parent_epoch is not None:
        _check_int(parent_epoch, "parent_epoch", lo=0)
    notes = _check_notes(notes)
    if backend not in BACKENDS:
        raise StoreError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if (backend == "slurm") != (managed_by == "slurm"):
        raise StoreError("a run on the slurm backend is managed_by 'slurm', and only such a run")
    if max_segments is not None:
        _check_int(max_segments, "max_segments", lo=1)
    if sweep is not None:
        _check_text(sweep, "sweep", 64)
    options_json = None if backend_options is None else _dumps(backend_options, "backend options", dict)
    config_json = _dumps(config, "config", dict)
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
    text = str(ref).strip()
    with read_session(home) as s:
        if text.isascii() and text.isdigit() and len(text) <= 18:
            row = s.get(Run, int(text))
            if row is not None:
                return RunView.from_row(row)
        rows = s.exec(select(Run).where(Run.name == text).order_by(col(Run.id))).all()
        if not rows:
            raise StoreError(f"no run {_quote(text)}")
        if len(rows) > 1:
            ids = ", ".join(str(r.id) for r in rows)
            raise StoreError(f"run name {_quote(text)} is ambiguous: ids {ids}; use an id")
        return RunView.from_row(rows[0])


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
    q = select(Run)
    if status is not None:
        statuses = _statuses(status)
        q = q.where(col(Run.status).in_(statuses))
    if recipe is not None:
        q = q.where(Run.recipe == recipe)
    if sweep is not None:
        q = q.where(Run.sweep == sweep)
    if backend is not None:
        q = q.where(Run.backend == backend)
    if tag is not None:
        wanted = normalize_tags([tag])
        if len(wanted) != 1:
            raise StoreError(f"filter by one tag, not {_quote(tag)}")
        q = q.where(func.instr(Run.tags, f",{wanted[0]},") > 0)
    if text:
        q = q.where(
            or_(
                *(
                    c.icontains(text, autoescape=True)
                    for c in (col(Run.name), col(Run.recipe), col(Run.dataset), col(Run.notes), col(Run.tags))
                )
            )
        )
    q = q.order_by(*_ORDERS[order])
    if limit is not None:
        _check_int(limit, "limit", lo=0)
        q = q.limit(limit)
    with read_session(home) as s:
        return [RunView.from_row(r) for r in s.exec(q).all()]


def queue_order(runs: Iterable[_T]) -> list[_T]:
    """The order in which queued runs start: higher priority first, then older (lower id) first."""
    return sorted(runs, key=lambda r: (-r.priority, r.id))  # type: ignore[attr-defined]


def queued_in_order(home: Path) -> list[RunView]:
    return queue_order(list_runs(home, status="queued"))


def claim_next(home: Path, *, host: str, slots: int) -> RunView | None:
    """Atomically take the next queued run if fewer than `slots` supervisor runs are running.

    The count and the pick happen in one BEGIN IMMEDIATE transaction, so two supervisors (or a supervisor
    racing a `cancel`) never start the same run or exceed the slots.
    """
    _check_int(slots, "slots", lo=0)
    with write_session(home) as s:
        running = s.exec(
            select(func.count())
            .select_from(Run)
            .where(Run.status == "running", Run.managed_by == "supervisor")
        ).one()
        if running >= slots:
            return None
        row = s.exec(
            select(Run)
            .where(Run.status == "queued", Run.managed_by == "supervisor")
            .order_by(col(Run.priority).desc(), col(Run.id).asc())
            .limit(1)
        ).first()
        if row is None:
            return None
        now = time.time()
        row.status = "running"
        row.started_at = now
        row.updated_at = now
        row.host = host
        assert row.id is not None
        _event(s, row.id, "running", f"claimed by the supervisor on {host}", now)
        return RunView.from_row(row)


def claim_next_slurm(home: Path, *, host: str, sweep: str | None = None) -> RunView | None:
    """Atomically take the next queued Slurm run that has no cluster job yet (the cluster schedules it,
    so no slot limit applies here); with `sweep`, the next of that sweep only (one job array). It becomes
    `running` with cluster state SUBMITTING until sbatch answers; a second supervisor can never submit it
    twice."""
    with write_session(home) as s:
        q = select(Run).where(Run.status == "queued", Run.managed_by == "slurm", col(Run.cluster_job_id).is_(None),
                              or_(col(Run.cluster_state).is_(None), col(Run.cluster_state) != HELD))
        if sweep is not None:
            q = q.where(Run.sweep == sweep)
        row = s.exec(q.order_by(col(Run.priority).desc(), col(Run.id).asc()).limit(1)).first()
        if row is None:
            return None
        now = time.time()
        row.status = "running"
        row.started_at = row.started_at or now
        row.updated_at = now
        row.host = host
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


def record_submission(home: Path, run_id: int, job_id: str, *, message: str, raw_id: str | None = None) -> RunView:
    """A new cluster job for the run (its next segment): job id, segment count, PENDING; a history line."""
    _check_text(job_id, "job id", 64)
    now = time.time()
    with write_session(home) as s:
        row = _get_run(s, run_id)
        if row.status in TERMINAL_STATUSES:
            raise StoreError(f"run {run_id} is already {row.status}")
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
    _check_int(pid, "pid", lo=1)
    now = time.time()
    with write_session(home) as s:
        row = _get_run(s, run_id)
        if row.status in TERMINAL_STATUSES:
            raise StoreError(f"run {run_id} is already {row.status}")
        if row.status == "queued":
            row.status = "running"
        if row.started_at is None:
            row.started_at = now
        row.pid = pid
        row.pid_start = pid_start
        row.host = host or row.host or socket.gethostname()
        if gpu is not None:
            row.gpu = gpu
        row.updated_at = now
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
    _statuses(status)
    values = _status_values(fields)
    now = time.time()
    with write_session(home) as s:
        row = _get_run(s, run_id)
        if row.status in TERMINAL_STATUSES:
            raise StoreError(f"run {run_id} is already {row.status}")
        for k, v in values.items():
            setattr(row, k, v)
        row.status = status
        if status == "running" and row.started_at is None:
            row.started_at = now
        if status in TERMINAL_STATUSES and "ended_at" not in values:
            row.ended_at = now
        row.updated_at = now
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
        for name in ("cluster_job_id", "cluster_raw_id", "cluster_state", "cluster_reason", "segment_started_at"):
            setattr(row, name, None)
        for name in (
            "started_at",
            "ended_at",
            "pid",
            "pid_start",
            "host",
            "gpu",
            "error",
            "exit_code",
            "signal",
        ):
            setattr(row, name, None)
        row.updated_at = now
        _event(s, run_id, "queued", message, now)
        return RunView.from_row(row)


def request_cancel(home: Path, run_id: int) -> RunView:
    """Queued -> cancelled at once; running -> cancel_requested (the supervisor signals the worker)."""
    now = time.time()
    with write_session(home) as s:
        row = _get_run(s, run_id)
        if row.status in TERMINAL_STATUSES:
            raise StoreError(f"run {run_id} is already {row.status}")
        if row.status == "queued":
            row.status = "cancelled"
            row.ended_at = now
            _event(s, run_id, "cancelled", "cancelled while queued", now)
        elif not row.cancel_requested:
            row.cancel_requested = True
            _event(s, run_id, row.status, "cancel requested", now)
        row.updated_at = now
        return RunView.from_row(row)


def set_priority(home: Path, run_id: int, priority: int) -> RunView:
    _check_int(priority, "priority")
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
    _check_int(delta, "delta")
    with write_session(home) as s:
        queue = list(
            s.exec(
                select(Run)
                .where(Run.status == "queued")
                .order_by(col(Run.priority).desc(), col(Run.id).asc())
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
            _realize_order(queue, target)
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


def set_notes(home: Path, run_id: int, text: str) -> RunView:
    notes = _check_notes(text)
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
    _check_text(kind, "artifact kind", 64)
    rel = _check_rel_path(path)
    if epoch is not None:
        _check_int(epoch, "epoch", lo=0)
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


# -------------------------------------------------------------------------------------- viz jobs


def create_viz_job(
    home: Path,
    *,
    run_id: int,
    kind: str,
    params: dict[str, Any],
    checkpoint: str | None = None,
    priority: int = 0,
    baseline_run_id: int | None = None,
    prepare: Callable[[VizJobView], str] | None = None,
) -> VizJobView:
    """Queue a visualization job; `prepare(view)` creates its directory inside the same transaction."""
    _check_text(kind, "visualization kind", 64)
    _check_int(priority, "priority")
    params_json = _dumps(params, "params", dict)
    now = time.time()
    with write_session(home) as s:
        _get_run(s, run_id)
        if baseline_run_id is not None:
            _get_run(s, baseline_run_id)
        row = VizJob(
            baseline_run_id=baseline_run_id,
            run_id=run_id,
            kind=kind,
            params_json=params_json,
            checkpoint=checkpoint,
            status="queued",
            priority=priority,
            created_at=now,
            updated_at=now,
        )
        s.add(row)
        s.flush()
        if prepare is not None:
            row.job_dir = str(prepare(VizJobView.from_row(row)))
        return VizJobView.from_row(row)


def get_viz_job(home: Path, job_id: int) -> VizJobView | None:
    with read_session(home) as s:
        row = s.get(VizJob, job_id)
        return None if row is None else VizJobView.from_row(row)


def list_viz_jobs(
    home: Path, run_id: int | None = None, status: str | Iterable[str] | None = None
) -> list[VizJobView]:
    q = select(VizJob)
    if run_id is not None:
        q = q.where(VizJob.run_id == run_id)
    if status is not None:
        q = q.where(col(VizJob.status).in_(_statuses(status)))
    with read_session(home) as s:
        return [VizJobView.from_row(r) for r in s.exec(q.order_by(col(VizJob.id))).all()]


def claim_next_viz(home: Path, *, host: str, slots: int) -> VizJobView | None:
    """Like `claim_next`, for visualization jobs (their own slot count)."""
    _check_int(slots, "slots", lo=0)
    with write_session(home) as s:
        running = s.exec(select(func.count()).select_from(VizJob).where(VizJob.status == "running")).one()
        if running >= slots:
            return None
        row = s.exec(
            select(VizJob)
            .where(VizJob.status == "queued")
            .order_by(col(VizJob.priority).desc(), col(VizJob.id).asc())
            .limit(1)
        ).first()
        if row is None:
            return None
        now = time.time()
        row.status = "running"
        row.started_at = now
        row.updated_at = now
        row.host = host
        return VizJobView.from_row(row)


def set_viz_status(home: Path, job_id: int, status: str, **fields: Any) -> VizJobView:
    """Same rules as `set_status`: known statuses only, terminal stays terminal, ended_at stamped."""
    _statuses(status)
    values: dict[str, Any] = {}
    for k, v in fields.items():
        if k not in _VIZ_FIELDS:
            raise StoreError(f"set_viz_status cannot set {k!r}")
        if k == "outputs":
            values["outputs_json"] = _dumps(list(v), "outputs", list)
        else:
            values[k] = v
    now = time.time()
    with write_session(home) as s:
        row = _get_viz(s, job_id)
        if row.status in TERMINAL_STATUSES:
            raise StoreError(f"visualization job {job_id} is already {row.status}")
        for k, v in values.items():
            setattr(row, k, v)
        row.status = status
        if status == "running" and row.started_at is None:
            row.started_at = now
        if status in TERMINAL_STATUSES and "ended_at" not in values:
            row.ended_at = now
        row.updated_at = now
        return VizJobView.from_row(row)


def request_cancel_viz(home: Path, job_id: int) -> VizJobView:
    """Queued -> cancelled at once; running -> cancel_requested (the supervisor signals it)."""
    now = time.time()
    with write_session(home) as s:
        row = _get_viz(s, job_id)
        if row.status in TERMINAL_STATUSES:
            raise StoreError(f"visualization job {job_id} is already {row.status}")
        if row.status == "queued":
            row.status = "cancelled"
            row.ended_at = now
        else:
            row.cancel_requested = True
        row.updated_at = now
        return VizJobView.from_row(row)


# -------------------------------------------------------------------------------------- settings


def get_settings(home: Path) -> dict[str, Any]:
    """Store-wide settings: the defaults overlaid with what was set."""
    settings = json.loads(json.dumps(DEFAULT_SETTINGS))  # a deep copy
    with read_session(home) as s:
        for row in s.exec(select(Setting)).all():
            try:
                settings[row.key] = json.loads(row.value_json)
            except ValueError:
                continue
    return settings


def set_setting(home: Path, key: str, value: Any) -> dict[str, Any]:
    """Validate and store one setting; returns all settings afterwards."""
    if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", key):
        raise StoreError(f"bad setting name {key!r}")
    validator = _SETTING_CHECKS.get(key)
    if validator is not None:
        validator(value)
    value_json = _dumps(value, f"setting {key}", object)
    with write_session(home) as s:
        s.execute(
            sqlite_insert(Setting)
            .values(key=key, value_json=value_json)
            .on_conflict_do_update(index_elements=["key"], set_={"value_json": value_json})
        )
    return get_settings(home)


def _check_max_concurrent(value: Any, key: str = "max_concurrent") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
        raise StoreError(f"{key} must be an integer from 1 to 64, not {value!r}")


def _check_gpus(value: Any) -> None:
    if not isinstance(value, list | tuple) or not all(
        isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in value
    ):
        raise StoreError(f"gpus must be a list of GPU indices (integers >= 0), not {value!r}")
    if len(set(value)) != len(value):
        raise StoreError(f"gpus lists a GPU twice: {list(value)!r}")


def _check_cancel_grace(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise StoreError(f"cancel_grace_s must be a number of seconds above 0 and at most 3600, not {value!r}")


# Settings without a default here (cancel_grace_s, viz_max_concurrent) are read with their default by their user
# (engine.control.submit.cancel_grace_s), so older stores need no migration.
_SETTING_CHECKS: dict[str, Callable[[Any], None]] = {
    "max_concurrent": _check_max_concurrent,
    "gpus": _check_gpus,
    "cancel_grace_s": _check_cancel_grace,
    "viz_max_concurrent": lambda v: _check_max_concurrent(v, "viz_max_concurrent"),
    "backend": lambda v: _check_choice(v, "backend", BACKENDS),
    "slurm_options": lambda v: _check_mapping(v, "slurm_options"),
    "max_segments": lambda v: _check_int_range(v, "max_segments", 1, 1000),
    "slurm_poll_s": lambda v: _check_number(v, "slurm_poll_s", 0.1, 600),
    "runs_root": lambda v: _check_root(v, "runs_root"),
    "runs_roots_used": lambda v: _check_roots(v, "runs_roots_used"),
}


def _check_root(value: Any, key: str) -> None:
    if value is not None and (not isinstance(value, str) or not PurePosixPath(value).is_absolute()
                              or "\x00" in value or len(value) > 4000):
        raise StoreError(f"{key} must be an absolute folder path or null, not {value!r}")


def _check_roots(value: Any, key: str) -> None:
    if not isinstance(value, list):
        raise StoreError(f"{key} must be a list of absolute folder paths, not {value!r}")
    for root in value:
        _check_root(root, key)


def _check_choice(value: Any, key: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise StoreError(f"{key} must be one of {', '.join(choices)}, not {value!r}")


def _check_mapping(value: Any, key: str) -> None:
    if not isinstance(value, dict):
        raise StoreError(f"{key} must be a JSON object, not {value!r}")


def _check_int_range(value: Any, key: str, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise StoreError(f"{key} must be an integer from {lo} to {hi}, not {value!r}")


def _check_number(value: Any, key: str, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise StoreError(f"{key} must be a number of seconds from {lo:g} to {hi:g}, not {value!r}")


# --------------------------------------------------------------------------------------- helpers


def normalize_tags(tags: Iterable[str] | str) -> tuple[str, ...]:
    """Tags from a comma-separated string or an iterable: stripped, de-duplicated, order kept.

    A tag is 1-64 characters without commas, whitespace or control characters.
    """
    items: Iterable[str] = tags.split(",") if isinstance(tags, str) else tags
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise StoreError(f"a tag must be text, not {item!r}")
        for t in item.split(","):
            t = t.strip()
            if not t:
                continue
            if not _TAG_RE.match(t):
                raise StoreError(f"bad tag {_quote(t)}: use 1-64 characters without spaces or commas")
            if t not in out:
                out.append(t)
    return tuple(out)


def _event(s: Session, run_id: int, status: str, message: str | None, at: float) -> None:
    s.add(RunEvent(run_id=run_id, at=at, status=status, message=message))


def _get_run(s: Session, run_id: int) -> Run:
    row = s.get(Run, run_id) if isinstance(run_id, int) and not isinstance(run_id, bool) else None
    if row is None:
        raise StoreError(f"no run {run_id}")
    return row


def _get_viz(s: Session, job_id: int) -> VizJob:
    row = s.get(VizJob, job_id) if isinstance(job_id, int) and not isinstance(job_id, bool) else None
    if row is None:
        raise StoreError(f"no visualization job {job_id}")
    return row


def _realize_order(queue: Sequence[Run], moved: int) -> None:
    """Give `queue` (the wanted order) priorities under which (priority desc, id asc) yields that order."""

    def before(p_a: int, a: Run, p_b: int, b: Run) -> bool:
        assert a.id is not None and b.id is not None
        return p_a > p_b or (p_a == p_b and a.id < b.id)

    row = queue[moved]
    prev = queue[moved - 1] if moved > 0 else None
    nxt = queue[moved + 1] if moved + 1 < len(queue) else None
    if nxt is None:
        candidates = [
            row.priority,
            prev.priority if prev else row.priority,
            (prev.priority - 1) if prev else 0,
        ]
    else:
        candidates = [row.priority, nxt.priority, nxt.priority + 1]
    for p in candidates:
        if (prev is None or before(prev.priority, prev, p, row)) and (
            nxt is None or before(p, row, nxt.priority, nxt)
        ):
            row.priority = p
            return
    # No single value fits (equal neighbours): raise priorities from the back so each run precedes the next.
    for i in range(len(queue) - 2, -1, -1):
        a, b = queue[i], queue[i + 1]
        if not before(a.priority, a, b.priority, b):
            assert a.id is not None and b.id is not None
            a.priority = b.priority if a.id < b.id else b.priority + 1


def _progress_values(fields: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for k, v in fields.items():
        if k not in PROGRESS_FIELDS:
            raise StoreError(f"update_progress cannot set {k!r}")
        if k == "last_metrics":
            values["last_metrics_json"] = None if v is None else _dumps(v, "last_metrics", dict, nan_ok=True)
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


def _statuses(status: str | Iterable[str]) -> list[str]:
    items = [status] if isinstance(status, str) else list(status)
    for st in items:
        if st not in STATUSES:
            raise StoreError(f"unknown status {st!r}; one of {', '.join(STATUSES)}")
    return items


def _dumps(value: Any, what: str, kind: type, *, nan_ok: bool = False) -> str:
    if kind is not object and not isinstance(value, kind):
        raise StoreError(f"{what} must be a JSON {'object' if kind is dict else 'array'}")
    try:
        return json.dumps(value, sort_keys=kind is dict, allow_nan=nan_ok)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON-serialisable: {exc}") from None


def _check_text(value: Any, what: str, max_len: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise StoreError(f"{what} must be non-empty text")
    if len(value) > max_len:
        raise StoreError(f"{what} is longer than {max_len} characters")
    if _CONTROL_RE.search(value) or "\n" in value or "\t" in value:
        raise StoreError(f"{what} contains control characters")


def _check_notes(value: Any) -> str:
    if not isinstance(value, str):
        raise StoreError("notes must be text")
    if len(value) > 65536:
        raise StoreError("notes are longer than 65536 characters")
    if _CONTROL_RE.search(value):
        raise StoreError("notes contain control characters")
    return value


def _check_int(value: Any, what: str, *, lo: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreError(f"{what} must be an integer, not {value!r}")
    if lo is not None and value < lo:
        raise StoreError(f"{what} must be >= {lo}, not {value}")


def _check_rel_path(path: Any) -> str:
    """An artifact path: relative, inside the run directory, POSIX form."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise StoreError(f"bad artifact path {path!r}")
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or str(p) in ("", "."):
        raise StoreError(f"artifact path {path!r} must be relative to the run directory")
    return str(p)


def _quote(text: str) -> str:
    """A ref for an error message: quoted, control characters escaped, long input cut."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    return "'" + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", shown) + "'"
