"""A read-only view of the store through the standard library's `sqlite3`, for the commands that only read.

Why: importing SQLAlchemy and SQLModel is about a third of a second of CPU, most of what `ganmgr ls` or
`ganmgr show` costs (issue 16). These reads need none of it: a few SELECTs in one deferred transaction, which
WAL serves from a snapshot beside any writer (reading never waits), built into the same frozen views
(`store.views`) the full store returns. The run filter and the orders are SQL text defined here and used by
`store.runs.list_runs` too, so both paths filter by one rule.

The view opens only a store at the schema version this code knows (`SCHEMA_VERSION`, which `store.db`
checks against its migrations); any other store (none yet, an older one that must migrate first) gives
None, and the caller uses the full store, which migrates it. Nothing here writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from store.checks import find_by_ref, normalize_tags, quote
from store.errors import StoreError
from store.lifecycle import ACTIVE_STATUSES, check_statuses
from store.location import db_path
from store.views import ArtifactView, RunEventView, RunView, VizJobView

SCHEMA_VERSION = 4  # == len(store.db.MIGRATIONS), checked there at import
BUSY_TIMEOUT_S = 30.0  # only a WAL recovery makes a reader wait; the full store uses the same timeout

# `store.runs.list_runs`'s orders as SQL (the queue order lives in store.queue and is not offered here).
RUN_ORDERS_SQL: dict[str, str] = {
    "id": "id ASC",
    "-id": "id DESC",
    "name": "name ASC, id ASC",
    "created_at": "created_at ASC, id ASC",
    "-created_at": "created_at DESC, id DESC",
    "updated_at": "updated_at ASC, id ASC",
    "-updated_at": "updated_at DESC, id DESC",
}
# Columns `text` is searched in (case-insensitive substring; SQLite's lower() folds ASCII only).
TEXT_COLUMNS = ("name", "recipe", "dataset", "notes", "tags")


def run_filter_sql(*, status: str | Iterable[str] | None = None, recipe: str | None = None,
                   tag: str | None = None, sweep: str | None = None, backend: str | None = None,
                   text: str | None = None) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (with named parameters) of a run listing: status(es), recipe, sweep, backend, one
    exact tag, and case-insensitive text in the name, recipe, dataset, notes or tags. "1" for no filter."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    if status is not None:
        names = []
        for i, st in enumerate(check_statuses(status)):
            params[f"status_{i}"] = st
            names.append(f":status_{i}")
        parts.append(f"status IN ({', '.join(names)})" if names else "0")
    for column, value in (("recipe", recipe), ("sweep", sweep), ("backend", backend)):
        if value is not None:
            parts.append(f"{column} = :{column}")
            params[column] = value
    if tag is not None:
        wanted = normalize_tags([tag])
        if len(wanted) != 1:
            raise StoreError(f"filter by one tag, not {quote(tag)}")
        parts.append("instr(tags, :tag) > 0")
        params["tag"] = f",{wanted[0]},"
    if text:
        parts.append("(" + " OR ".join(f"instr(lower({c}), lower(:text)) > 0" for c in TEXT_COLUMNS) + ")")
        params["text"] = text
    return (" AND ".join(parts) or "1"), params


class _Row:
    """A sqlite3 row read by attribute, as the views' `from_row` reads an ORM row."""

    __slots__ = ("_row",)

    def __init__(self, row: sqlite3.Row) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        try:
            return self._row[name]
        except IndexError:
            raise AttributeError(name) from None


class ReadView:
    """One deferred read transaction over the store: a consistent snapshot for one command."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _rows(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> list[_Row]:
        return [_Row(r) for r in self._conn.execute(sql, params).fetchall()]

    def quiet(self) -> bool:
        """Nothing for a command's reconcile or a supervisor to do: no queued or running run or
        visualization job, and no notify URLs (whose pending news the full store judges)."""
        active = tuple(sorted(ACTIVE_STATUSES))
        marks = ", ".join("?" * len(active))
        for table in ("runs", "viz_jobs"):
            if self._conn.execute(f"SELECT 1 FROM {table} WHERE status IN ({marks}) LIMIT 1", active).fetchone():
                return False
        row = self._conn.execute("SELECT value_json FROM settings WHERE key = 'notify_urls'").fetchone()
        return row is None or not _loads(row[0])

    def list_runs(self, *, order: str = "id", limit: int | None = None, **filters: Any) -> list[RunView]:
        """`store.runs.list_runs` (every order but `queue`)."""
        if order not in RUN_ORDERS_SQL:
            raise StoreError(f"unknown order {order!r}; one of {', '.join(RUN_ORDERS_SQL)}")
        where, params = run_filter_sql(**filters)
        sql = f"SELECT * FROM runs WHERE {where} ORDER BY {RUN_ORDERS_SQL[order]}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [RunView.from_row(r) for r in self._rows(sql, params)]

    def find_run(self, ref: str | int) -> RunView:
        """`store.runs.find_run`: a run by numeric id or exact name (an id wins when both could match)."""
        def by_id(run_id: int) -> RunView | None:
            rows = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))
            return RunView.from_row(rows[0]) if rows else None

        def by_name(name: str) -> list[RunView]:
            return [RunView.from_row(r) for r in self._rows("SELECT * FROM runs WHERE name = ? ORDER BY id", (name,))]

        return find_by_ref(ref, by_id, by_name)

    def list_events(self, run_id: int) -> list[RunEventView]:
        return [RunEventView.from_row(r)
                for r in self._rows("SELECT * FROM run_events WHERE run_id = ? ORDER BY id", (run_id,))]

    def list_artifacts(self, run_id: int) -> list[ArtifactView]:
        return [ArtifactView.from_row(r)
                for r in self._rows("SELECT * FROM artifacts WHERE run_id = ? ORDER BY id", (run_id,))]

    def list_viz_jobs(self, run_id: int) -> list[VizJobView]:
        return [VizJobView.from_row(r)
                for r in self._rows("SELECT * FROM viz_jobs WHERE run_id = ? ORDER BY id", (run_id,))]

    def setting(self, key: str, default: Any = None) -> Any:
        """One store setting as `store.settings.get_settings` reads it (a value it cannot parse: default)."""
        row = self._conn.execute("SELECT value_json FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else _loads(row[0], default)


def _loads(text: str | None, default: Any = None) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


@contextmanager
def read_view(home: Path) -> Iterator[ReadView | None]:
    """A snapshot of the store at `home`, or None where the full store must answer (no store, another
    schema version). The store's refusal of a network filesystem holds here too."""
    path = db_path(Path(home))
    if not path.is_file():
        yield None
        return
    from store.netfs import network_fs_problem

    why = network_fs_problem(path)
    if why:
        raise StoreError(why)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("BEGIN")  # deferred: a read snapshot, never the write lock
        if _schema_version(conn) != SCHEMA_VERSION:
            yield None
            return
        yield ReadView(conn)
    finally:
        conn.close()


def _schema_version(conn: sqlite3.Connection) -> int:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone() is None:
        return 0
    row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
    return 0 if row is None else int(row[0])

