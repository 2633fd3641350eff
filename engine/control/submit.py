"""Creating runs: the row and its folder come into being together, or not at all.

Used by `ganmgr run` (queued or headless), the TUI's new-run form, `fork` and sweeps, so every path
validates the same way and writes the same `config.json`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from engine.control.config import default_run_name, validate_config
from engine.control.datasets import check_dataset_available
from engine.control.gitinfo import source_commit
from engine.control.paths import create_run_dir, ensure_home, run_dir_for, write_json_atomic
from store import runs as store_runs
from store.views import RunView


def folder_maker(home: Path, cfg: dict[str, Any]):
    """The `prepare` hook of create_run: the run folder and its frozen config, inside the row's transaction."""
    def prepare(view: RunView) -> str:
        path = run_dir_for(home, view.id, view.name)
        create_run_dir(path)
        try:
            write_json_atomic(path / "config.json", cfg)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return str(path)

    return prepare


def create_run(home: Path, cfg: dict[str, Any], *, tags: list[str] | tuple[str, ...] = (), notes: str = "",
               priority: int = 0, status: str = "queued", managed_by: str = "supervisor",
               parent_id: int | None = None, parent_relation: str | None = None,
               parent_epoch: int | None = None) -> RunView:
    """Validate `cfg` (and that its data exists), then insert the row and create its folder atomically."""
    cfg = validate_config(cfg)
    check_dataset_available(cfg)  # before any row or folder exists
    ensure_home(home)
    name = cfg["name"] or default_run_name(cfg)
    return store_runs.create_run(
        home, name=name, recipe=cfg["recipe"], dataset=cfg["dataset"], config=cfg, epochs=cfg["epochs"],
        priority=priority, tags=list(tags), notes=notes, git_commit=source_commit(), managed_by=managed_by,
        status=status, parent_id=parent_id, parent_relation=parent_relation, parent_epoch=parent_epoch,
        prepare=folder_maker(home, cfg))


def enqueue(home: Path, cfg: dict[str, Any], *, tags: list[str] | tuple[str, ...] = (), notes: str = "",
            priority: int = 0) -> RunView:
    """Create a queued run and make sure a supervisor is running to start it."""
    from engine.control.launcher import ensure_supervisor

    view = create_run(home, cfg, tags=tags, notes=notes, priority=priority, status="queued")
    ensure_supervisor(home)
    return view
