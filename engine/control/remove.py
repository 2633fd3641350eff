"""Deleting a run: its rows and its folder. One rule for `ganmgr rm` and the TUI's delete key.

Refused for a running run (cancel it first) and for a folder outside the store and its runs roots (a
hand-edited `run_dir` must never make us delete someone else's files). The store's own delete refuses a run
that started meanwhile, so checking first and deleting later cannot remove a live run's row.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.control.errors import SubmitError
from engine.control.paths import PathError
from engine.control.runs_root import ensure_run_folder
from store import runs as store_runs
from store.views import RunView


def removable_folder(home: Path, run: RunView) -> Path | None:
    """The folder `remove_run` will delete (None for a run without one); SubmitError when the run must stay."""
    if run.status == "running":
        raise SubmitError(f"run {run.id} is running; cancel it first (ganmgr cancel {run.id})",
                          form_message=f"run {run.id} is running; cancel it first (x)")
    if not run.run_dir:
        return None
    try:
        return ensure_run_folder(home, Path(run.run_dir))
    except PathError:
        raise SubmitError(f"run {run.id}'s folder {run.run_dir} is outside the store {home} and its runs roots; "
                          f"not deleting it") from None


def remove_run(home: Path, run: RunView, folder: Path | None) -> RunView:
    """Delete the row (refused if it started since it was checked), then the folder `removable_folder` gave."""
    view = store_runs.delete_run(home, run.id)
    if folder is not None and folder.exists():
        shutil.rmtree(folder)
    return view
