"""store.db: pragmas, file modes, how transactions begin, schema versioning and forward migration."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, text
from sqlmodel import SQLModel

import store.db as db
from store import StoreError
from store import runs as R
from store import viz_jobs as store_viz
from store.runs import create_run, get_run, list_runs


@pytest.fixture
def home(tmp_path: Path):
    yield tmp_path / "home"
    db.dispose_engines()


def _v1_run(conn) -> int:
    """A run row as the first release wrote it (raw SQL: today's tables have columns schema 1 lacks)."""
    conn.exec_driver_sql(
        "INSERT INTO runs (name, kind, recipe, dataset, config_json, status, priority, created_at, updated_at, "
        "epoch, epochs, step, progress, notes, tags, managed_by, metrics_offset, cancel_requested) VALUES "
        "('old', 'train', 'baseline', 'synthetic', '{}', 'completed', 0, 1.0, 1.0, 2, 2, 8, 1.0, '', '', "
        "'supervisor', 0, 0)")
    return int(conn.exec_driver_sql("SELECT max(id) FROM runs").scalar())


def _new_run(home: Path, name: str = "r") -> int:
    return create_run(
        home, name=name, recipe="baseline", dataset="synthetic", config={"lr": 1e-4}, epochs=2
    ).id


def test_pragmas_are_set_on_every_new_connection(home: Path) -> None:
    engine = db.get_engine(home)
    with engine.connect() as conn:  # a fresh pooled connection
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    # ... including a second, concurrently checked-out connection
    with engine.connect() as c1, engine.connect() as c2:
        assert c1.connection.dbapi_connection is not c2.connection.dbapi_connection
        assert c2.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c2.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    # WAL is a property of the file: a plain sqlite3 connection sees it too
    raw = sqlite3.connect(db.db_path(home))
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_home_and_db_file_modes(home: Path) -> None:
    old = os.umask(0o022)
    try:
        db.get_engine(home)
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.db_path(home).stat().st_mode) == 0o600
    assert db.db_path(home) == home / "ganmgr.db"


def test_existing_home_mode_is_left_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    db.get_engine(tmp_path)
    try:
        assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
        assert stat.S_IMODE(db.db_path(tmp_path).stat().st_mode) == 0o600
    finally:
        db.dispose_engines()


def test_one_engine_per_process_and_path(home: Path, tmp_path: Path) -> None:
    assert db.get_engine(home) is db.get_engine(home)
    assert db.get_engine(home) is db.get_engine(Path(str(home) + "/"))
    assert db.get_engine(tmp_path / "other") is not db.get_engine(home)


def _try_begin_immediate(path: Path) -> str | None:
    """From an unrelated connection that does not wait: None if it got the write lock, else the error."""
    raw = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        raw.execute("PRAGMA busy_timeout=0")
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("ROLLBACK")
        return None
    except sqlite3.OperationalError as exc:
        return str(exc)
    finally:
        raw.close()


def test_write_session_takes_the_write_lock_at_begin(home: Path) -> None:
    run_id = _new_run(home)
    path = db.db_path(home)
    with db.write_session(home) as s:
        # Only a read so far: a deferred transaction would not hold the write lock yet.
        s.execute(text("SELECT id FROM runs WHERE id = :i"), {"i": run_id}).all()
        assert _try_begin_immediate(path) == "database is locked"
    assert _try_begin_immediate(path) is None


def test_read_session_does_not_block_writers(home: Path) -> None:
    _new_run(home)
    path = db.db_path(home)
    with db.read_session(home) as s:
        s.execute(text("SELECT count(*) FROM runs")).all()
        assert _try_begin_immediate(path) is None


def test_read_session_is_a_snapshot(home: Path) -> None:
    run_id = _new_run(home)
    with db.read_session(home) as s:
        before = s.execute(text("SELECT name FROM runs WHERE id = :i"), {"i": run_id}).scalar()
        done = threading.Event()

        def rename() -> None:
            with db.write_session(home) as w:
                w.execute(text("UPDATE runs SET name = 'renamed' WHERE id = :i"), {"i": run_id})
            done.set()

        t = threading.Thread(target=rename)
        t.start()
        t.join(10)
        assert done.is_set()  # the writer was not blocked by the open read
        again = s.execute(text("SELECT name FROM runs WHERE id = :i"), {"i": run_id}).scalar()
        assert before == again == "r"
    assert get_run(home, run_id).name == "renamed"


def test_write_session_rolls_back_on_error(home: Path) -> None:
    run_id = _new_run(home)
    with pytest.raises(RuntimeError), db.write_session(home) as s:
        s.execute(text("UPDATE runs SET name = 'x' WHERE id = :i"), {"i": run_id})
        raise RuntimeError("boom")
    assert get_run(home, run_id).name == "r"


def test_foreign_keys_enforced(home: Path) -> None:
    with pytest.raises(Exception, match="FOREIGN KEY"), db.write_session(home) as s:
        s.execute(text("INSERT INTO run_events (run_id, at, status) VALUES (999, 0, 'queued')"))


def _schema(conn: sqlite3.Connection) -> dict[str, set[tuple[str, bool]]]:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return {
        t: {(r[1], bool(r[3])) for r in conn.execute(f"PRAGMA table_info({t})")}
        for t in tables
        if not t.startswith("sqlite_")
    }


def test_migrated_schema_matches_the_tables(home: Path) -> None:
    """The frozen migrations and store.tables must describe the same schema (catches a forgotten migration)."""
    db.get_engine(home)
    raw = sqlite3.connect(db.db_path(home))
    try:
        built = _schema(raw)
        version = raw.execute("SELECT version FROM schema_version").fetchone()[0]
        indexes = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        raw.close()
    assert version == len(db.MIGRATIONS)
    expected = {
        t.name: {(c.name, not c.nullable) for c in t.columns} for t in SQLModel.metadata.sorted_tables
    }
    assert {k: v for k, v in built.items() if k != "schema_version"} == expected
    wanted_indexes = {ix.name for t in SQLModel.metadata.sorted_tables for ix in t.indexes}
    assert wanted_indexes <= indexes
    assert "ix_runs_queue" in indexes


def test_forward_migration_keeps_rows(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [_new_run(home, f"run{i}") for i in range(3)]
    db.dispose_engines()

    applied: list[int] = []
    nxt = len(db.MIGRATIONS) + 1

    def v_next(conn: Connection) -> None:
        applied.append(nxt)
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN seed INTEGER NOT NULL DEFAULT 7")

    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, v_next])
    engine = db.get_engine(home)
    assert applied == [nxt]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version FROM schema_version").scalar() == nxt
        rows = conn.exec_driver_sql("SELECT id, name, seed FROM runs ORDER BY id").all()
    assert [tuple(r) for r in rows] == [(i, f"run{n}", 7) for n, i in enumerate(ids)]
    assert "seed" in {c["name"] for c in inspect(engine).get_columns("runs")}
    # The store keeps working on the upgraded db, and a second start does not migrate again.
    assert [r.name for r in list_runs(home)] == ["run0", "run1", "run2"]
    db.dispose_engines()
    db.get_engine(home)
    assert applied == [nxt]


def test_failed_migration_rolls_back_entirely(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _new_run(home)
    db.dispose_engines()

    def v_bad(conn: Connection) -> None:
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN half_done INTEGER")
        raise RuntimeError("migration bug")

    current = len(db.MIGRATIONS)
    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, v_bad])
    with pytest.raises(RuntimeError, match="migration bug"):
        db.get_engine(home)
    raw = sqlite3.connect(db.db_path(home))
    try:
        assert raw.execute("SELECT version FROM schema_version").fetchone()[0] == current
        assert "half_done" not in {r[1] for r in raw.execute("PRAGMA table_info(runs)")}
    finally:
        raw.close()


def test_newer_schema_is_a_clear_error(home: Path) -> None:
    _new_run(home)
    db.dispose_engines()
    raw = sqlite3.connect(db.db_path(home))
    raw.execute("UPDATE schema_version SET version = 99")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError) as info:
        db.get_engine(home)
    message = str(info.value)
    assert "schema version 99" in message and f"knows up to {len(db.MIGRATIONS)}" in message
    assert "upgrade ganmgr" in message and "\n" not in message


def test_not_a_database_is_a_store_error(home: Path) -> None:
    home.mkdir(mode=0o700)
    db.db_path(home).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        db.get_engine(home)


def _start_store(home: str, go, out) -> None:  # type: ignore[no-untyped-def]
    """Child process: open the store the moment `go` is set; report success or the error."""
    go.wait(30)
    try:
        db.get_engine(Path(home))
        out.put("ok")
    except Exception as exc:  # reported to the parent, which asserts on it
        out.put(f"{type(exc).__name__}: {exc}")


def test_concurrent_first_starts_migrate_once(home: Path) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_start_store, args=(str(home), go, out)) for _ in range(4)]
    for p in procs:
        p.start()
    go.set()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert results == ["ok"] * 4
    raw = sqlite3.connect(db.db_path(home))
    try:
        assert raw.execute("SELECT id, version FROM schema_version").fetchall() == [(1, len(db.MIGRATIONS))]
        assert raw.execute("SELECT count(*) FROM sqlite_master WHERE name = 'runs'").fetchone()[0] == 1
    finally:
        raw.close()


def test_v1_store_gains_the_viz_job_columns(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store made by the first release (schema 1) keeps its viz jobs when migration 2 adds columns."""
    monkeypatch.setattr(db, "MIGRATIONS", db.MIGRATIONS[:1])
    with db.get_engine(home).begin() as conn:
        run_id = _v1_run(conn)
        conn.exec_driver_sql(
            "INSERT INTO viz_jobs (run_id, kind, params_json, status, priority, created_at, updated_at, "
            f"outputs_json, cancel_requested) VALUES ({run_id}, 'perturb', '{{}}', 'completed', 0, 1.0, 1.0, "
            "'[\"a.png\"]', 0)")
    db.dispose_engines()
    monkeypatch.undo()
    [job] = store_viz.list_viz_jobs(home, run_id=run_id)
    assert (job.kind, job.outputs, job.baseline_run_id, job.progress, job.message) == (
        "perturb", ("a.png",), None, None, None)
    raw = sqlite3.connect(db.db_path(home))
    try:
        assert raw.execute("SELECT version FROM schema_version").fetchone()[0] == len(db.MIGRATIONS) >= 3
    finally:
        raw.close()


def test_v2_store_gains_the_cluster_columns(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store at schema 2 keeps its runs when migration 3 adds the backend columns (local by default)."""
    monkeypatch.setattr(db, "MIGRATIONS", db.MIGRATIONS[:2])
    with db.get_engine(home).begin() as conn:
        run_id = _v1_run(conn)
    db.dispose_engines()
    monkeypatch.undo()
    view = R.get_run(home, run_id)
    assert view is not None and view.name == "old" and view.status == "completed"
    assert (view.backend, view.backend_options, view.cluster_job_id, view.segments, view.sweep) == (
        "local", {}, None, 0, None)
