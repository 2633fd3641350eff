"""Unit-of-work functions over visualization jobs: queued on a run's checkpoint, claimed by the supervisor
in their own slots, run by `python -m engine.compute.viz JOB_DIR`.

Like `store.runs`: one short session per function, frozen views out, `StoreError` for what a caller can get
wrong. A job follows the same lifecycle as a run (`store.lifecycle`) but keeps no history of events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from store import lifecycle
from store.checks import check_int, check_text, to_json
from store.db import get_row, read_session, write_session
from store.errors import StoreError
from store.lifecycle import check_statuses
from store.queue import take_next
from store.tables import Run, VizJob
from store.views import VizJobView

__all__ = [
    "claim_next_viz",
    "create_viz_job",
    "get_viz_job",
    "list_viz_jobs",
    "request_cancel_viz",
    "set_viz_status",
]

# Columns set_viz_status may set beside the status.
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
    check_text(kind, "visualization kind", 64)
    check_int(priority, "priority")
    params_json = to_json(params, "params", dict)
    now = time.time()
    with write_session(home) as s:
        get_row(s, Run, run_id, "run")
        if baseline_run_id is not None:
            get_row(s, Run, baseline_run_id, "run")
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
        q = q.where(col(VizJob.status).in_(check_statuses(status)))
    with read_session(home) as s:
        return [VizJobView.from_row(r) for r in s.exec(q.order_by(col(VizJob.id))).all()]


def claim_next_viz(home: Path, *, host: str, slots: int) -> VizJobView | None:
    """Like `store.runs.claim_next`, for visualization jobs (their own slot count)."""
    check_int(slots, "slots", lo=0)
    with write_session(home) as s:
        row = take_next(s, VizJob, slots=slots)
        if row is None:
            return None
        lifecycle.claim(row, host=host, now=time.time())
        return VizJobView.from_row(row)


def set_viz_status(home: Path, job_id: int, status: str, **fields: Any) -> VizJobView:
    """Same rules as `store.runs.set_status` (`store.lifecycle.move`): known statuses only, terminal stays
    terminal, ended_at stamped."""
    check_statuses(status)
    values: dict[str, Any] = {}
    for k, v in fields.items():
        if k not in _VIZ_FIELDS:
            raise StoreError(f"set_viz_status cannot set {k!r}")
        if k == "outputs":
            values["outputs_json"] = to_json(list(v), "outputs", list)
        else:
            values[k] = v
    now = time.time()
    with write_session(home) as s:
        row = _get_viz(s, job_id)
        lifecycle.move(row, status, values, now, f"visualization job {job_id}")
        return VizJobView.from_row(row)


def request_cancel_viz(home: Path, job_id: int) -> VizJobView:
    """Queued -> cancelled at once; running -> cancel_requested (the supervisor signals it)."""
    with write_session(home) as s:
        row = _get_viz(s, job_id)
        lifecycle.cancel(row, time.time(), f"visualization job {job_id}")
        return VizJobView.from_row(row)


def _get_viz(s: Session, job_id: int) -> VizJob:
    return get_row(s, VizJob, job_id, "visualization job")
