"""Finding the run a command names, without creating a store by asking.
"""

from __future__ import annotations

from pathlib import Path

from store.location import db_path
from store.views import RunView
from tui.cli.args import CliError, shown


def require_store(home: Path, ref: str) -> None:
    """An empty or missing store is 'no run', and is not created by asking."""
    if not db_path(home).exists():
        raise CliError(f"no run {shown(ref)}: there is no store at {home}")


def find(home: Path, ref: str) -> RunView:
    """The run `ref` names (through the full store)."""
    require_store(home, ref)
    from store import runs as store_runs

    return store_runs.find_run(home, ref)
