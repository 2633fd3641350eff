"""The database: one SQLAlchemy engine per process and db path, SQLite in WAL mode, forward migrations.

Why it is built this way:
- Several processes (TUI, CLI, supervisor) write the same file. WAL lets readers run beside the one writer;
  `busy_timeout` makes a writer wait for the lock instead of failing with "database is locked".
- A write transaction must take the write lock when it *begins* (`BEGIN IMMEDIATE`). A deferred transaction
  that reads and then writes can hit SQLITE_BUSY on its upgrade, which the busy handler does not retry
  under WAL (the snapshot is stale), and two such transactions could both read the old row and lose an
  update. So the pysqlite driver's own transaction handling is switched off (`isolation_level = None`) and
  the engine's `begin` event emits `BEGIN IMMEDIATE` for write sessions and a plain (deferred) `BEGIN` for
  read sessions, which keeps reads from ever queueing behind writers.
- Engines are created by `get_engine`, never at import time, and dropped in a forked child, whose
  inherited SQLite connections must not be used.
- Read-only commands never wait on writers (issue 17). Their reads are deferred transactions, which WAL
  serves from a snapshot beside the writer; the only write they may do is the reconcile that settles a dead
  row, and inside `no_wait()` a write transaction that finds the lock taken fails at once with `StoreBusy`
  (busy_timeout 0 for that BEGIN IMMEDIATE) instead of queueing behind every writer for up to 30 s: the
  row is settled by the supervisor or the next command. Closing needs no lock either: the last connection's
  checkpoint on close is passive (SQLite gives it no busy handler), so it never waits on a writer.
"""

from __future__ import annotations

import contextvars
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from store._schema_v1 import V1_DDL
from store.errors import StoreBusy, StoreError
from store.location import DB_NAME, db_path
from store.read_view import SCHEMA_VERSION as READ_VIEW_SCHEMA

__all__ = ["DB_NAME", "db_path"]  # re-exported: store.location holds them (importable without SQLAlchemy)
BUSY_TIMEOUT_MS = 30_000
# Execution option read by the `begin` listener: how a transaction on that engine begins.
_BEGIN_OPTION = "ganmgr_begin"
_Row = TypeVar("_Row")
# Inside `no_wait()`: a write transaction that cannot take the lock at once raises StoreBusy.
_NO_WAIT: contextvars.ContextVar[bool] = contextvars.ContextVar("ganmgr_no_wait", default=False)

PRAGMAS: tuple[tuple[str, str], ...] = (
    # busy_timeout first: switching to WAL needs a lock, and the wait must already be armed.
    ("busy_timeout", str(BUSY_TIMEOUT_MS)),
    ("journal_mode", "WAL"),
    ("foreign_keys", "ON"),
    # In WAL mode NORMAL is durable against application crashes; only a power loss may drop the last commits.
    ("synchronous", "NORMAL"),
)


def _migration_v1(conn: Connection) -> None:
    """Version 1: create every table from the frozen DDL in `store._schema_v1`."""
    for ddl in V1_DDL:
        conn.exec_driver_sql(ddl)


def _migration_v2(conn: Connection) -> None:
    """Version 2: a visualization job names the baseline run that scores it (quality, report) and carries
    its live progress (fraction done and a one-line message) for the TUI and `ganmgr viz --wait`."""
    for ddl in (
        "ALTER TABLE viz_jobs ADD COLUMN baseline_run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL",
        "ALTER TABLE viz_jobs ADD COLUMN progress FLOAT",
        "ALTER TABLE viz_jobs ADD COLUMN message VARCHAR",
    ):
        conn.exec_driver_sql(ddl)


def _migration_v3(conn: Connection) -> None:
    """Version 3: runs on a cluster backend (Slurm). A run records its backend and options, the cluster job
    of its current segment (and an array task's own raw id, which `sacct -c` needs after a supervisor
    restart), the cluster's state and reason for the table, its segment count and limit, when the current
    segment was submitted (the `end` record of an older segment must not settle it) and its sweep."""
    for ddl in (
        "ALTER TABLE runs ADD COLUMN backend VARCHAR NOT NULL DEFAULT 'local'",
        "ALTER TABLE runs ADD COLUMN backend_options_json VARCHAR",
        "ALTER TABLE runs ADD COLUMN cluster_job_id VARCHAR",
        "ALTER TABLE runs ADD COLUMN cluster_raw_id VARCHAR",
        "ALTER TABLE runs ADD COLUMN cluster_state VARCHAR",
        "ALTER TABLE runs ADD COLUMN cluster_reason VARCHAR",
        "ALTER TABLE runs ADD COLUMN segments INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN max_segments INTEGER",
        "ALTER TABLE runs ADD COLUMN segment_started_at FLOAT",
        "ALTER TABLE runs ADD COLUMN sweep VARCHAR",
    ):
        conn.exec_driver_sql(ddl)


def _migration_v4(conn: Connection) -> None:
    """Version 4: the health flags of a run (engine/control/health_rules.py, engine/daemon/stall.py): the
    message of a health rule that warned or stopped it, and since when a live run has written nothing."""
    for ddl in (
        "ALTER TABLE runs ADD COLUMN health VARCHAR",
        "ALTER TABLE runs ADD COLUMN stalled_since FLOAT",
    ):
        conn.exec_driver_sql(ddl)


# Applied forward in order; MIGRATIONS[i] takes the schema from version i to version i + 1.
# Append only: a released migration is never edited, and `store.tables` changes come with a new entry.
MIGRATIONS: list[Callable[[Connection], None]] = [_migration_v1, _migration_v2, _migration_v3, _migration_v4]
if len(MIGRATIONS) != READ_VIEW_SCHEMA:  # the SQLAlchemy-free read view must know the tables it reads
    raise RuntimeError("a new migration: check store/read_view.py's queries and set its SCHEMA_VERSION")


@dataclass(frozen=True)
class _Engines:
    engine: Engine  # reads: BEGIN (deferred)
    writer: Engine  # same pool, BEGIN IMMEDIATE


_LOCK = threading.Lock()
_CACHE: dict[Path, _Engines] = {}
_CACHE_PID = os.getpid()


def get_engine(home: Path) -> Engine:
    """The process's engine for `home`'s database, created (and the schema migrated) on first use."""
    return _engines(home).engine


def dispose_engines() -> None:
    """Close every engine of this process (tests, or a long-lived process that is about to exit)."""
    with _LOCK:
        engines = list(_CACHE.values())
        _CACHE.clear()
    for e in engines:
        e.engine.dispose()


@contextmanager
def no_wait() -> Iterator[None]:
    """Write sessions begun inside fail at once with StoreBusy when another connection holds the write
    lock, instead of waiting up to BUSY_TIMEOUT_MS: for work a read-only command may skip (settling a
    dead row), so the command never queues behind writers. Reads are unaffected."""
    token = _NO_WAIT.set(True)
    try:
        yield
    finally:
        _NO_WAIT.reset(token)


@contextmanager
def write_session(home: Path) -> Iterator[Session]:
    """One unit of work that writes: BEGIN IMMEDIATE on first use, commit at the end, rollback on error.

    Keep it short: it holds the database's single write lock from its first statement to its commit.
    Inside `no_wait()`, StoreBusy when the lock is taken.
    """
    session = Session(_engines(home).writer, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except OperationalError as exc:
        session.rollback()
        if _NO_WAIT.get() and _is_busy(exc):
            raise StoreBusy("the store is busy with another writer; try again") from None
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _is_busy(exc: OperationalError) -> bool:
    """SQLITE_BUSY ("database is locked") from the driver."""
    return isinstance(exc.orig, sqlite3.OperationalError) and "locked" in str(exc.orig)


@contextmanager
def read_session(home: Path) -> Iterator[Session]:
    """One short read: a deferred transaction (a consistent snapshot) that is rolled back at the end.

    Never write in it: a deferred transaction that upgrades to a write can fail with SQLITE_BUSY.
    """
    session = Session(_engines(home).engine, expire_on_commit=False)
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def get_row(s: Session, table: type[_Row], row_id: int, what: str) -> _Row:
    """The row with this id, or StoreError "no {what} {id}" (a bool or a non-integer id finds nothing)."""
    row = s.get(table, row_id) if isinstance(row_id, int) and not isinstance(row_id, bool) else None
    if row is None:
        raise StoreError(f"no {what} {row_id}")
    return row


def _engines(home: Path) -> _Engines:
    global _CACHE_PID
    path = db_path(Path(home)).absolute()
    with _LOCK:
        if _CACHE_PID != os.getpid():
            # A forked child: the parent's pooled connections are not ours to use (nor to close).
            for e in _CACHE.values():
                e.engine.dispose(close=False)
            _CACHE.clear()
            _CACHE_PID = os.getpid()
        cached = _CACHE.get(path)
        if cached is None:
            cached = _create(path)
            _CACHE[path] = cached
        return cached


def _create(path: Path) -> _Engines:
    _ensure_files(path)
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
    )
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    writer = engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
    try:
        _migrate(engine, writer, path)
    except BaseException:
        engine.dispose()
        raise
    return _Engines(engine=engine, writer=writer)


def _ensure_files(path: Path) -> None:
    """Create the home (0700) and an empty db file (0600) so SQLite never creates them with the umask."""
    home = path.parent
    if not home.exists():
        try:
            home.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            pass
        else:
            os.chmod(home, 0o700)  # mkdir's mode is filtered by the umask
    if not home.is_dir():
        raise StoreError(f"runs home {home} is not a directory")
    from store.netfs import network_fs_problem

    why = network_fs_problem(path)  # SQLite's locks are unreliable on NFS/Lustre: refuse, saying why
    if why:
        raise StoreError(why)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create database {path}: {exc.strerror}") from None
    os.fchmod(fd, 0o600)
    os.close(fd)


def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    """Per-connection setup: our own BEGINs (driver's transaction handling off), then the pragmas."""
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    try:
        for name, value in PRAGMAS:
            if name == "journal_mode":
                _switch_journal_mode(cur, value)
            else:
                cur.execute(f"PRAGMA {name}={value}")
    finally:
        cur.close()


def _switch_journal_mode(cur: sqlite3.Cursor, mode: str) -> None:
    """PRAGMA journal_mode, retried while another connection switches a new database at the same moment.

    Two connections that both switch a fresh file to WAL each hold a shared lock and want the exclusive
    one: SQLite breaks that deadlock by answering one of them "database is locked" at once, without the
    busy handler (seen in CI as 1 of 4 processes opening a new store together failing).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute(f"PRAGMA journal_mode={mode}")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
    if mode == "IMMEDIATE":
        _set_busy_timeout(conn, 0 if _NO_WAIT.get() else BUSY_TIMEOUT_MS)
    conn.exec_driver_sql(f"BEGIN {mode}")


def _set_busy_timeout(conn: Connection, ms: int) -> None:
    """The connection's busy_timeout for the transaction about to begin (set only when it changes; the
    value is remembered with the pooled DBAPI connection)."""
    if conn.info.get("busy_timeout", BUSY_TIMEOUT_MS) != ms:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={int(ms)}")
        conn.info["busy_timeout"] = ms


def _migrate(engine: Engine, writer: Engine, path: Path) -> None:
    """Bring the schema to len(MIGRATIONS) inside one BEGIN IMMEDIATE, so concurrent starters migrate once."""
    known = len(MIGRATIONS)
    try:
        with engine.connect() as conn:  # cheap read first: the common case is "already current"
            with conn.begin():
                current = _read_version(conn)
        if current == known:
            return
        _check_not_newer(current, known, path)
        with writer.connect() as conn, conn.begin():
            conn.exec_driver_sql(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
            )
            current = _read_version(conn)  # again, under the write lock: another process may have migrated
            _check_not_newer(current, known, path)
            for step in MIGRATIONS[current:]:
                step(conn)
            conn.exec_driver_sql(
                "INSERT INTO schema_version (id, version) VALUES (1, ?) "
                "ON CONFLICT(id) DO UPDATE SET version = excluded.version",
                (known,),
            )
    except DBAPIError as exc:
        raise StoreError(f"cannot open database {path}: {exc.orig}") from None


def _read_version(conn: Connection) -> int:
    exists = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).first()
    if exists is None:
        return 0
    row = conn.exec_driver_sql("SELECT version FROM schema_version WHERE id = 1").first()
    return 0 if row is None else int(row[0])


def _check_not_newer(current: int, known: int, path: Path) -> None:
    if current > known:
        raise StoreError(
            f"database {path} has schema version {current}; this ganmgr knows up to {known} — upgrade ganmgr"
        )
