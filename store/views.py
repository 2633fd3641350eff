"""Frozen, plain views of store rows: what crosses threads and processes instead of live ORM objects.

A view is a snapshot taken inside one short session; it never lazy-loads, never refreshes and cannot be
assigned to, so a TUI worker thread can hand it to the UI thread safely. JSON columns arrive parsed.
This module imports nothing from SQLAlchemy, so a view can be built and pickled anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

STATUSES: tuple[str, ...] = (
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
    "killed",
    "diverged",
    "lost",
)
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"completed", "failed", "cancelled", "killed", "diverged", "lost"}
)
ACTIVE_STATUSES: frozenset[str] = frozenset({"queued", "running"})


def _loads(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _duration(started_at: float | None, ended_at: float | None) -> float | None:
    if started_at is None:
        return None
    end = ended_at if ended_at is not None else time.time()
    return max(0.0, end - started_at)


class _ViewMixin:
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists), e.g. for `ganmgr ls --json`."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]


@dataclass(frozen=True)
class RunView(_ViewMixin):
    """Every column of a run; `config`, `last_metrics` and `tags` parsed."""

    id: int
    name: str
    kind: str
    recipe: str
    dataset: str
    config: dict[str, Any]
    status: str
    priority: int
    created_at: float
    started_at: float | None
    ended_at: float | None
    updated_at: float
    pid: int | None
    pid_start: str | None
    host: str | None
    run_dir: str | None
    epoch: int
    epochs: int
    step: int
    progress: float
    last_test_acc: float | None
    best_test_acc: float | None
    last_train_acc: float | None
    images_per_s: float | None
    last_metrics: dict[str, Any]
    error: str | None
    exit_code: int | None
    signal: int | None
    parent_id: int | None
    parent_relation: str | None
    parent_epoch: int | None
    git_commit: str | None
    notes: str
    tags: tuple[str, ...]
    managed_by: str
    gpu: str | None
    metrics_offset: int
    cancel_requested: bool
    backend: str = "local"
    backend_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    cluster_job_id: str | None = None
    cluster_raw_id: str | None = None
    cluster_state: str | None = None
    cluster_reason: str | None = None
    segments: int = 0
    max_segments: int | None = None
    segment_started_at: float | None = None
    sweep: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end (or to now while running); None if it never started."""
        return _duration(self.started_at, self.ended_at)

    @classmethod
    def from_row(cls, row: Any) -> RunView:
        return cls(
            id=row.id,
            name=row.name,
            kind=row.kind,
            recipe=row.recipe,
            dataset=row.dataset,
            config=_loads(row.config_json, {}),
            status=row.status,
            priority=row.priority,
            created_at=row.created_at,
            started_at=row.started_at,
            ended_at=row.ended_at,
            updated_at=row.updated_at,
            pid=row.pid,
            pid_start=row.pid_start,
            host=row.host,
            run_dir=row.run_dir,
            epoch=row.epoch,
            epochs=row.epochs,
            step=row.step,
            progress=row.progress,
            last_test_acc=row.last_test_acc,
            best_test_acc=row.best_test_acc,
            last_train_acc=row.last_train_acc,
            images_per_s=row.images_per_s,
            last_metrics=_loads(row.last_metrics_json, {}),
            error=row.error,
            exit_code=row.exit_code,
            signal=row.signal,
            parent_id=row.parent_id,
            parent_relation=row.parent_relation,
            parent_epoch=row.parent_epoch,
            git_commit=row.git_commit,
            notes=row.notes,
            tags=split_tags(row.tags),
            managed_by=row.managed_by,
            gpu=row.gpu,
            metrics_offset=row.metrics_offset,
            cancel_requested=bool(row.cancel_requested),
            backend=row.backend or "local",
            backend_options=_loads(row.backend_options_json, {}),
            cluster_job_id=row.cluster_job_id,
            cluster_raw_id=row.cluster_raw_id,
            cluster_state=row.cluster_state,
            cluster_reason=row.cluster_reason,
            segments=row.segments or 0,
            max_segments=row.max_segments,
            segment_started_at=row.segment_started_at,
            sweep=row.sweep,
        )


@dataclass(frozen=True)
class RunEventView(_ViewMixin):
    """One entry of a run's status history."""

    id: int
    run_id: int
    at: float
    status: str
    message: str | None

    @classmethod
    def from_row(cls, row: Any) -> RunEventView:
        return cls(id=row.id, run_id=row.run_id, at=row.at, status=row.status, message=row.message)


@dataclass(frozen=True)
class ArtifactView(_ViewMixin):
    """A file a run produced; `path` is relative to the run directory."""

    id: int
    run_id: int
    kind: str
    epoch: int | None
    path: str
    created_at: float

    @classmethod
    def from_row(cls, row: Any) -> ArtifactView:
        return cls(
            id=row.id,
            run_id=row.run_id,
            kind=row.kind,
            epoch=row.epoch,
            path=row.path,
            created_at=row.created_at,
        )


@dataclass(frozen=True)
class VizJobView(_ViewMixin):
    """A visualization job; `params` and `outputs` parsed."""

    id: int
    run_id: int
    kind: str
    params: dict[str, Any]
    checkpoint: str | None
    status: str
    priority: int
    created_at: float
    started_at: float | None
    ended_at: float | None
    updated_at: float
    pid: int | None
    pid_start: str | None
    host: str | None
    job_dir: str | None
    outputs: tuple[Any, ...]
    error: str | None
    exit_code: int | None
    cancel_requested: bool
    baseline_run_id: int | None
    progress: float | None
    message: str | None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def duration_s(self) -> float | None:
        return _duration(self.started_at, self.ended_at)

    @classmethod
    def from_row(cls, row: Any) -> VizJobView:
        outputs = _loads(row.outputs_json, [])
        return cls(
            id=row.id,
            run_id=row.run_id,
            kind=row.kind,
            params=_loads(row.params_json, {}),
            checkpoint=row.checkpoint,
            status=row.status,
            priority=row.priority,
            created_at=row.created_at,
            started_at=row.started_at,
            ended_at=row.ended_at,
            updated_at=row.updated_at,
            pid=row.pid,
            pid_start=row.pid_start,
            host=row.host,
            job_dir=row.job_dir,
            outputs=tuple(outputs) if isinstance(outputs, list) else (),
            error=row.error,
            exit_code=row.exit_code,
            cancel_requested=bool(row.cancel_requested),
            baseline_run_id=row.baseline_run_id,
            progress=row.progress,
            message=row.message,
        )


def split_tags(stored: str | None) -> tuple[str, ...]:
    """The stored `,a,b,` form as ("a", "b")."""
    return tuple(t for t in (stored or "").split(",") if t)


def join_tags(tags: tuple[str, ...] | list[str]) -> str:
    """("a", "b") as the stored `,a,b,` form (empty string for no tags), so ',tag,' matches exactly."""
    return f",{','.join(tags)}," if tags else ""
