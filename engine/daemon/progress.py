"""A training run's metrics.jsonl into its row, the same way for a local worker and a Slurm job.

The supervisor folds what the worker appended since the last look (`follow_metrics`), writes the folded
progress and the byte offset at most every FLUSH_S (`flush_progress`: a restarted supervisor resumes from
that offset), and reads the whole backlog once the process is gone (`drain_metrics`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.control.follow import ProgressFold
from engine.control.reconcile import record_artifacts
from engine.control.records import MetricsTail
from engine.daemon.log import log
from store import runs as store_runs
from store.errors import StoreError
from store.views import RunView

FLUSH_S = 0.5  # a run's row gets its progress at most this often (2 Hz)
DRAIN_READS = 101  # slices of 1 MiB read from a finished process's metrics.jsonl at the most


def follow_metrics(home: Path, run_id: int, tail: MetricsTail, fold: ProgressFold) -> None:
    """Fold the records a worker appended to metrics.jsonl since the last look (artifacts recorded)."""
    for rec in tail.read_new():
        fold.fold(rec)
    if fold.artifacts or fold.events:
        record_artifacts(home, run_id, fold)


def drain_metrics(home: Path, run_id: int, tail: MetricsTail, fold: ProgressFold) -> None:
    """Everything left in metrics.jsonl (a long backlog is read in 1 MiB slices)."""
    for rec in tail.read_backlog(DRAIN_READS):
        fold.fold(rec)
    if fold.artifacts or fold.events:
        record_artifacts(home, run_id, fold)


def flush_progress(home: Path, run_id: int, tail: MetricsTail, fold: ProgressFold) -> None:
    """The folded progress and the byte offset into the row (a restarted supervisor resumes from it)."""
    fields = dict(fold.fields)
    fields["metrics_offset"] = tail.offset
    try:
        store_runs.update_progress(home, run_id, **fields)
    except StoreError as e:
        log(f"run {run_id}: progress not recorded: {e}")
    fold.dirty = False


def fail_unstarted(home: Path, run_id: int, why: str) -> None:
    """Mark a run failed before its worker ever ran (no folder, no process, sbatch refused it)."""
    log(f"run {run_id}: {why}")
    try:
        store_runs.set_status(home, run_id, "failed", message=f"failed: {why}", error=why)
    except StoreError:
        pass


def record_end(home: Path, run_id: int, status: str, message: str, note: str, **fields: Any) -> None:
    """The run's terminal status into its row, and a log line with `note` (the exit, the Slurm state)."""
    try:
        store_runs.set_status(home, run_id, status, message=message, **fields)
    except StoreError as e:
        log(f"run {run_id}: status not recorded: {e}")
        return
    log(f"run {run_id}: {message.splitlines()[0]} ({note})")


def row_to_settle(home: Path, run_id: int, ended: str) -> RunView | None:
    """The run's row when it still says `running` (its process just ended); None, logged, when it was
    deleted or settled meanwhile (a cancel of a queued segment, `ganmgr rm`)."""
    row = store_runs.get_run(home, run_id)
    if row is None or row.status != "running":
        log(f"run {run_id}: {ended}; row already {'deleted' if row is None else row.status}")
        return None
    return row
