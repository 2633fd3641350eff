"""Finding the run a command names, without creating a store by asking.
"""

from __future__ import annotations

from pathlib import Path

from store import runs as store_runs
from store.db import db_path
from store.views import RunView
from tui.cli.args import CliError, shown


def find(home: Path, ref: str) -> RunView:
    """The run `ref` names; an empty or missing store is 'no run', and is not created by asking."""
    if not db_path(home).exists():
        raise CliError(f"no run {shown(ref)}: there is no store at {home}")
    return store_runs.find_run(home, ref)
