"""Liveness: no row says `running` after its process is gone.

Every `ganmgr` command, the TUI at start and the supervisor at start and on every tick call `reconcile`.
A running row whose worker is not alive — pid gone, or the pid now belongs to another process (its start
time differs) — gets its terminal status: the one in the worker's `end` record if the attempt wrote one,
else `lost`. Nothing here ever signals a process.

Who settles what: while a supervisor holds the store's lock it settles its own workers (it knows their exit
codes), so other callers leave supervisor rows alone; once the lock is free, anybody settles them. Rows
of another host are left alone (their processes cannot be checked from here).

Reading comes first and costs no lock: a write transaction is begun only for a row found dead. A read-only
command (`ls`, `show`, `logs`) reconciles with `wait=False`: a settle that finds the write lock taken is
skipped (StoreBusy) and left to the supervisor's next tick or the next command, so reading never queues
behind writers (issue 17).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Container
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from engine.control.eval_summary import run_quality
from engine.control.follow import ProgressFold, outcome
from engine.control.launcher import ensure_supervisor, worker_argv
from engine.control.paths import LOG_FILE, METRICS_FILE
from engine.control.procs import find_processes, is_alive
from engine.control.records import MetricsTail, attempt_end
from engine.control.supervisor_lock import lock_is_held
from engine.control.viz_jobs import settle_viz
from store import runs as store_runs
from store import viz_jobs as store_viz
from store.db import db_path, no_wait
from store.errors import StoreError
from store.lifecycle import ACTIVE_STATUSES
from store.notices import notices_pending
from store.views import RunView, VizJobView

# A headless run's row says `running` a moment before its worker's pid is recorded: give it this long.
HEADLESS_START_GRACE_S = 120.0


def reconcile(home: Path, *, owned: Container[int] = (), supervisor_alive: bool | None = None,
              owned_viz: Container[int] = (), wait: bool = True) -> list[RunView]:
    """Settle every `running` row whose process is not alive; returns the rows whose status changed.

    `owned`: run ids the caller (a supervisor) tracks itself. `supervisor_alive`: whether a supervisor
    holds the lock (looked up when None; a supervisor passes False, meaning "every row I don't own is
    orphaned"). `wait=False` (read-only commands): a row whose settle finds the write lock taken is
    skipped, not waited for. Does nothing, and creates nothing, when the store does not exist yet.
    """
    if not db_path(home).exists():
        return []
    with nullcontext() if wait else no_wait():
        return _reconcile(home, owned, supervisor_alive, owned_viz)


def _reconcile(home: Path, owned: Container[int], supervisor_alive: bool | None,
               owned_viz: Container[int]) -> list[RunView]:
    if supervisor_alive is None:
        supervisor_alive = lock_is_held(home)
    host = socket.gethostname()
    changed: list[RunView] = []
    for run in store_runs.list_runs(home, status="running"):
        if run.managed_by == "slurm":
            continue  # no local pid to judge: the supervisor's SlurmJobs asks the cluster instead
        if run.id in owned or (run.host and run.host != host):
            continue
        if run.managed_by == "supervisor" and supervisor_alive:
            continue
        try:
            view = settle_run(home, run)
        except StoreError:  # changed under us (finished, deleted): the other writer's word stands;
            continue  # or StoreBusy under wait=False: the lock is taken, the next reconcile settles it
        if view is not None:
            changed.append(view)
    if not supervisor_alive:
        _reconcile_viz(home, host, owned_viz)
    return changed


def settle_run(home: Path, run: RunView) -> RunView | None:
    """One running row: None while its process lives, else the row after its terminal status is written."""
    if run.pid is None:
        return _settle_unstarted(home, run)
    if is_alive(run.pid, run.pid_start):
        return None
    run_dir = Path(run.run_dir) if run.run_dir else None
    fold = final_fold(home, run)
    end = fold.end
    if end is None and run_dir is not None:
        end = attempt_end(run_dir / METRICS_FILE, run.started_at)
    oc = outcome(end, returncode=None, cancel_requested=run.cancel_requested, killed_by_us=False,
                 log_path=run_dir / LOG_FILE if run_dir else None)
    return store_runs.set_status(home, run.id, oc.status, message=oc.message, **oc.fields(),
                                 **progress_fields(fold))


def final_fold(home: Path, run: RunView) -> ProgressFold:
    """Fold whatever the worker wrote after the row's `metrics_offset` (progress, artifacts, end)."""
    fold = ProgressFold(since=run.started_at, quality=run_quality(run.last_metrics))  # best evals kept
    if not run.run_dir:
        return fold
    tail = MetricsTail(Path(run.run_dir) / METRICS_FILE, offset=run.metrics_offset)
    for rec in tail.read_backlog():
        fold.fold(rec)
    fold.fields["metrics_offset"] = tail.offset
    record_artifacts(home, run.id, fold)
    return fold


def record_artifacts(home: Path, run_id: int, fold: ProgressFold) -> None:
    """The fold's new artifacts, and its run events (a health rule's warn), into the store."""
    record_artifact_records(home, run_id, fold.take_artifacts())
    for status, message in fold.take_events():
        try:
            store_runs.add_event(home, run_id, status, message)
        except StoreError:
            continue


def record_artifact_records(home: Path, run_id: int, records: list[dict[str, Any]]) -> None:
    """`artifact` records of metrics.jsonl into the store (the run screen's file list, `show`)."""
    for rec in records:
        epoch = rec.get("epoch")
        try:
            store_runs.add_artifact(home, run_id, str(rec.get("what") or "file"), str(rec.get("path")),
                                    epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None)
        except StoreError:
            continue  # a path the store refuses (outside the run folder) is not recorded


def progress_fields(fold: ProgressFold) -> dict[str, Any]:
    return dict(fold.fields)


def _settle_unstarted(home: Path, run: RunView) -> RunView | None:
    """A row claimed but without a recorded worker: find the worker, else queue it again / mark it lost."""
    if run.run_dir:
        for st in find_processes(worker_argv(Path(run.run_dir))):
            store_runs.mark_started(home, run.id, pid=st.pid, pid_start=st.start)
            return None
    if run.managed_by == "supervisor":
        if run.cancel_requested:
            return store_runs.set_status(home, run.id, "cancelled", message="cancelled before its worker started")
        return store_runs.set_status(home, run.id, "queued", message="queued again: the supervisor stopped "
                                     "before it started the worker")
    if time.time() - (run.started_at or run.created_at) < HEADLESS_START_GRACE_S:
        return None
    return store_runs.set_status(home, run.id, "lost", message="lost: the headless command stopped before "
                                 "its worker started", error="no worker process was ever recorded")


def _reconcile_viz(home: Path, host: str, owned: Container[int]) -> None:
    """Visualization jobs whose recorded process is gone get the status their files tell (their own end
    record, else `lost`). A job without a pid yet is left to whoever claimed it (its launcher records the
    pid right after starting the process)."""
    for job in store_viz.list_viz_jobs(home, status="running"):
        if job.id in owned or job.pid is None or (job.host and job.host != host):
            continue
        if is_alive(job.pid, job.pid_start):
            continue
        settle_viz(home, job)


def supervisor_work_pending(home: Path, host: str | None = None) -> bool:
    """Queued runs, or running runs on this host that a supervisor should be watching, or notifications
    to send (a run a headless command or a reconcile settled: `store.notices`)."""
    if not db_path(home).exists():
        return False
    host = host or socket.gethostname()
    if any(is_supervisor_work(r, host) for r in store_runs.list_runs(home, status=ACTIVE_STATUSES)):
        return True
    if notices_pending(home):
        return True
    return any(viz_is_supervisor_work(j, host) for j in store_viz.list_viz_jobs(home, status=ACTIVE_STATUSES))


def viz_is_supervisor_work(job: VizJobView, host: str) -> bool:
    """A queued visualization job, or a running one on `host` (to watch, or adopt)."""
    return job.status == "queued" or job.host in (None, host)


def is_supervisor_work(run: RunView, host: str) -> bool:
    """A queued run, or a running one a supervisor on `host` starts, watches or adopts. A Slurm run is
    always the work of the supervisor beside the store (it submits, polls and settles it; the job itself
    runs on whatever node Slurm picks)."""
    if run.managed_by == "slurm":
        return True
    if run.managed_by != "supervisor":
        return False
    return run.status == "queued" or run.host in (None, host)


def reconcile_and_ensure_supervisor(home: Path, *, wait: bool = True) -> list[RunView]:
    """What every command does first: settle dead rows, then start a supervisor if work waits for one.
    `wait=False` for read-only commands: never wait for the write lock (`reconcile`)."""
    changed = reconcile(home, wait=wait)
    if supervisor_work_pending(home) and not lock_is_held(home):
        ensure_supervisor(home)
    return changed
