"""The reads of `ganmgr ls` and `show`: the read view (`store.read_view`, no SQLAlchemy) where it opens the
store, else the same reads through the full store, which creates or migrates it first. One interface
either way. Kept apart from `store.read_view`, which `store.runs` and `store.db` import: the full store's
modules are imported here (lazily, and only on that path) without an import cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from store.read_view import ReadView, read_view
from store.views import ArtifactView, RunEventView, RunView, VizJobView


class FullStoreReads:
    """The same reads through the full store (SQLAlchemy), for a store the read view does not open: the
    full store creates or migrates it first, exactly as any other command would."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def quiet(self) -> bool:
        return False

    def list_runs(self, **kw: Any) -> list[RunView]:
        from store import runs

        return runs.list_runs(self.home, **kw)

    def find_run(self, ref: str | int) -> RunView:
        from store import runs

        return runs.find_run(self.home, ref)

    def list_events(self, run_id: int) -> list[RunEventView]:
        from store import runs

        return runs.list_events(self.home, run_id)

    def list_artifacts(self, run_id: int) -> list[ArtifactView]:
        from store import runs

        return runs.list_artifacts(self.home, run_id)

    def list_viz_jobs(self, run_id: int) -> list[VizJobView]:
        from store import viz_jobs

        return viz_jobs.list_viz_jobs(self.home, run_id=run_id)

    def setting(self, key: str, default: Any = None) -> Any:
        from store import settings

        return settings.get_settings(self.home).get(key, default)


@contextmanager
def reads(home: Path) -> Iterator[ReadView | FullStoreReads]:
    """The read view where it opens the store, else the full store's reads: one interface either way."""
    with read_view(home) as view:
        yield view if view is not None else FullStoreReads(Path(home))
