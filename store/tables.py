"""SQLModel tables: the on-disk schema. Only `store` touches these; callers get `store.views` instead.

The schema of a fresh database is built by the frozen migrations in `store.db` (version 1 is
`store/_schema_v1.py`), not by `metadata.create_all`, so an old database and a new one end in the same
shape. Change a table here only together with a new migration; tests/test_store_db.py compares the two.
Timestamps are float epoch seconds (time.time()); JSON payloads are TEXT columns with a `_json` suffix.
"""

from __future__ import annotations

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel


class Run(SQLModel, table=True):
    """One training run, queued or finished. Ids are AUTOINCREMENT so a deleted run's id (and its
    `runs/<id>-<slug>/` directory name) is never handed out again."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_queue", "status", "priority", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str
    kind: str = "train"
    recipe: str
    dataset: str
    config_json: str
    status: str  # a word of store.lifecycle.STATUSES
    priority: int = 0
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    updated_at: float
    pid: int | None = None
    pid_start: str | None = None
    host: str | None = None
    run_dir: str | None = None
    epoch: int = 0
    epochs: int
    step: int = 0
    progress: float = 0.0
    last_test_acc: float | None = None
    best_test_acc: float | None = None
    last_train_acc: float | None = None
    images_per_s: float | None = None
    last_metrics_json: str | None = None
    error: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    parent_id: int | None = Field(default=None, foreign_key="runs.id", ondelete="SET NULL")
    parent_relation: str | None = None
    parent_epoch: int | None = None
    git_commit: str | None = None
    notes: str = ""
    tags: str = ""
    managed_by: str = "supervisor"
    gpu: str | None = None
    metrics_offset: int = 0
    cancel_requested: bool = False
    # schema 3: a run on a cluster backend (managed_by 'slurm'); see engine/backends
    backend: str = "local"
    backend_options_json: str | None = None
    cluster_job_id: str | None = None  # the current segment's job (`123`, or `123_4` for an array task)
    cluster_raw_id: str | None = None  # an array task's own job id (sacct -c knows it only by that)
    cluster_state: str | None = None  # the scheduler's word (PENDING, RUNNING, TIMEOUT...)
    cluster_reason: str | None = None
    segments: int = 0  # cluster jobs submitted so far for this run
    max_segments: int | None = None
    segment_started_at: float | None = None  # when the current segment was submitted
    sweep: str | None = None
    # schema 4: the health flags (store.lifecycle.health_flag): a rule's warn message, a stall's start
    health: str | None = None
    stalled_since: float | None = None


class RunEvent(SQLModel, table=True):
    """One line of a run's status history (`ganmgr show`): every status change, cancel request, requeue."""

    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_run", "run_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE")
    at: float
    status: str
    message: str | None = None


class Artifact(SQLModel, table=True):
    """A file a run produced; `path` is relative to the run directory so a moved runs root still works."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "path", name="uq_artifacts_run_path"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE")
    kind: str
    epoch: int | None = None
    path: str
    created_at: float


class VizJob(SQLModel, table=True):
    """A visualization job on a run's checkpoint, scheduled by the same supervisor as runs."""

    __tablename__ = "viz_jobs"
    __table_args__ = (
        Index("ix_viz_jobs_queue", "status", "priority", "id"),
        Index("ix_viz_jobs_run", "run_id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", ondelete="CASCADE")
    kind: str
    params_json: str
    checkpoint: str | None = None
    status: str  # a word of store.lifecycle.STATUSES (the same lifecycle as a run)
    priority: int = 0
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    updated_at: float
    pid: int | None = None
    pid_start: str | None = None
    host: str | None = None
    job_dir: str | None = None
    outputs_json: str = "[]"
    error: str | None = None
    exit_code: int | None = None
    cancel_requested: bool = False
    baseline_run_id: int | None = Field(default=None, foreign_key="runs.id", ondelete="SET NULL")
    progress: float | None = None  # 0..1 while running
    message: str | None = None  # what it is doing now, or how it ended


class Setting(SQLModel, table=True):
    """A store-wide setting (max_concurrent, gpus...), value as JSON."""

    __tablename__ = "settings"

    key: str = Field(primary_key=True)
    value_json: str
