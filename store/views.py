"""Frozen, plain views of store rows: what crosses threads and processes instead of live ORM objects.

A view is a snapshot taken inside one short session; it never lazy-loads, never refreshes and cannot be
assigned to, so a TUI worker thread can hand it to the UI thread safely. JSON columns arrive parsed.
This module imports nothing from SQLAlchemy, so a view can be built and pickled anywhere.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from dataclasses import dataclass
from typing import Any, TypeVar

from store.lifecycle import ACTIVE_STATUSES, TERMINAL_STATUSES, health_flag


def _loads(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


_V = TypeVar("_V")


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]


def _from_row(cls: type[_V], row: Any, **parsed: Any) -> _V:
    """A view of `row`: each field is the row's column of the same name, unless `parsed` gives it (the JSON
    columns parsed, defaults for NULLs)."""
    plain = {name: getattr(row, name) for name in _field_names(cls) if name not in parsed}
    return cls(**plain, **parsed)


class _ViewMixin:
    @classmethod
    def from_row(cls: type[_V], row: Any) -> _V:
        """A snapshot of an ORM row (views with parsed columns override this)."""
        return _from_row(cls, row)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists), e.g. for `ganmgr ls --json`."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]


class _LifecycleMixin(_ViewMixin):
    """Where a run or a visualization job stands in `store.lifecycle`, read off its view."""

    status: str
    started_at: float | None
    ended_at: float | None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end (or to now while running); None if it never started."""
        if self.started_at is None:
            return None
        end = self.ended_at if self.ended_at is not None else time.time()
        return max(0.0, end - self.started_at)


@dataclass(frozen=True)
class RunView(_LifecycleMixin):
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
    health: str | None = None  # a health rule's warn or stop message (schema 4)
    stalled_since: float | None = None  # when the supervisor saw the live run stop writing

    @property
    def health_flag(self) -> str | None:
        """`stalled`, `warn` or None: the one rule, store.lifecycle.health_flag."""
        return health_flag(self.health, self.stalled_since, self.status)

    @classmethod
    def from_row(cls, row: Any) -> RunView:
        return _from_row(
            cls,
            row,
            config=_loads(row.config_json, {}),
            last_metrics=_loads(row.last_metrics_json, {}),
            tags=split_tags(row.tags),
            cancel_requested=bool(row.cancel_requested),
            backend=row.backend or "local",
            backend_options=_loads(row.backend_options_json, {}),
            segments=row.segments or 0,
        )


@dataclass(frozen=True)
class RunEventView(_ViewMixin):
    """One entry of a run's status history."""

    id: int
    run_id: int
    at: float
    status: str
    message: str | None


@dataclass(frozen=True)
class ArtifactView(_ViewMixin):
    """A file a run produced; `path` is relative to the run directory."""

    id: int
    run_id: int
    kind: str
    epoch: int | None
    path: str
    created_at: float


@dataclass(frozen=True)
class VizJobView(_LifecycleMixin):
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

    @classmethod
    def from_row(cls, row: Any) -> VizJobView:
        outputs = _loads(row.outputs_json, [])
        return _from_row(
            cls,
            row,
            params=_loads(row.params_json, {}),
            outputs=tuple(outputs) if isinstance(outputs, list) else (),
            cancel_requested=bool(row.cancel_requested),
        )


def split_tags(stored: str | None) -> tuple[str, ...]:
    """The stored `,a,b,` form as ("a", "b")."""
    return tuple(t for t in (stored or "").split(",") if t)


def join_tags(tags: tuple[str, ...] | list[str]) -> str:
    """("a", "b") as the stored `,a,b,` form (empty string for no tags), so ',tag,' matches exactly."""
    return f",{','.join(tags)}," if tags else ""
