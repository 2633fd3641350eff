"""Issue 3's store acceptance test: 8 processes write run progress at 20 Hz for 30 s while another process
reads at 10 Hz. Zero "database is locked" errors, no lost update, `PRAGMA integrity_check` ok.

Real processes (spawn), a real SQLite file. The numbers (writes/s, latencies) are printed, not asserted:
tests never assert on wall time. GANMGR_STORE_STRESS_S shortens the run for local iteration.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

import store.db as db
from store import runs as R

WRITERS = 8
WRITE_HZ = 20
READ_HZ = 10
DURATION_S = float(os.environ.get("GANMGR_STORE_STRESS_S", "30"))
HEARTBEAT_EVERY = 20  # every 20th progress write also records a status event (~1/s)
ARTIFACT_EVERY = 25  # every 25th also records an artifact (~0.8/s)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _writer(home_s: str, run_id: int, duration: float, go: Any, out: Any) -> None:
    """A supervisor-like writer: progress at WRITE_HZ on its own run, plus status events and artifacts."""
    home = Path(home_s)
    stats: dict[str, Any] = {"run_id": run_id, "writes": 0, "heartbeats": 0, "artifacts": 0, "errors": []}
    latencies: list[float] = []
    try:
        db.get_engine(home)  # open and check the schema before the clock starts
        out.put(("ready", run_id))
        go.wait(120)
        period = 1.0 / WRITE_HZ
        start = next_at = time.monotonic()
        while time.monotonic() - start < duration:
            n = stats["writes"] + 1
            try:
                t = time.perf_counter()
                R.update_progress(
                    home,
                    run_id,
                    step=n,
                    epoch=n // 100,
                    progress=min(1.0, n / (WRITE_HZ * duration)),
                    last_metrics={"gp": 0.01 * n, "d_real_source": -1.0, "acc": 50.0},
                    metrics_offset=n * 200,
                )
                latencies.append(time.perf_counter() - t)
                stats["writes"] = n
                if n % HEARTBEAT_EVERY == 0:
                    t = time.perf_counter()
                    R.set_status(home, run_id, "running", message=f"heartbeat {n}")
                    latencies.append(time.perf_counter() - t)
                    stats["heartbeats"] += 1
                if n % ARTIFACT_EVERY == 0:
                    t = time.perf_counter()
                    R.add_artifact(home, run_id, "samples", f"samples/epoch_{n // ARTIFACT_EVERY:03d}.png")
                    latencies.append(time.perf_counter() - t)
                    stats["artifacts"] += 1
            except Exception as exc:  # counted and reported: the test asserts there are none
                stats["errors"].append(_error_text(exc))
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))
        stats["elapsed"] = time.monotonic() - start
    except Exception:
        stats["errors"].append("crashed: " + traceback.format_exc()[-500:])
    latencies.sort()
    stats["max_latency"] = latencies[-1] if latencies else None
    stats["p99_latency"] = latencies[int(0.99 * (len(latencies) - 1))] if latencies else None
    stats["calls"] = len(latencies)
    out.put(("done", stats))


def _reader(home_s: str, run_ids: list[int], duration: float, go: Any, out: Any) -> None:
    """A TUI-like reader: list_runs at READ_HZ; a step that goes backwards would be a lost update."""
    home = Path(home_s)
    stats: dict[str, Any] = {"reads": 0, "regressions": 0, "errors": []}
    latencies: list[float] = []
    last_step = dict.fromkeys(run_ids, 0)
    try:
        db.get_engine(home)
        out.put(("ready", "reader"))
        go.wait(120)
        period = 1.0 / READ_HZ
        start = next_at = time.monotonic()
        while time.monotonic() - start < duration:
            try:
                t = time.perf_counter()
                rows = R.list_runs(home)
                latencies.append(time.perf_counter() - t)
                stats["reads"] += 1
                for r in rows:
                    if r.step < last_step.get(r.id, 0):
                        stats["regressions"] += 1
                    last_step[r.id] = r.step
            except Exception as exc:
                stats["errors"].append(_error_text(exc))
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))
    except Exception:
        stats["errors"].append("crashed: " + traceback.format_exc()[-500:])
    latencies.sort()
    stats["max_latency"] = latencies[-1] if latencies else None
    out.put(("done", stats))


@pytest.mark.slow
def test_eight_writers_and_a_reader(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_ids = [
        R.create_run(
            home,
            name=f"w{i}",
            recipe="acgan-wgangp",
            dataset="synthetic",
            config={"i": i},
            epochs=10,
            status="running",
            managed_by="headless",
        ).id
        for i in range(WRITERS)
    ]
    db.dispose_engines()

    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(str(home), rid, DURATION_S, go, out), name=f"writer-{rid}")
        for rid in run_ids
    ]
    procs.append(ctx.Process(target=_reader, args=(str(home), run_ids, DURATION_S, go, out), name="reader"))
    for p in procs:
        p.start()
    try:
        for _ in procs:  # everyone has imported and opened the store: start the clock together
            kind, _who = out.get(timeout=120)
            assert kind == "ready"
        go.set()
        results = [out.get(timeout=DURATION_S + 120) for _ in procs]
    finally:
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * len(procs)

    done = [stats for kind, stats in results if kind == "done"]
    writers = [s for s in done if "run_id" in s]
    (reader,) = [s for s in done if "reads" in s]
    errors = [e for s in done for e in s["errors"]]
    total_writes = sum(s["writes"] for s in writers)
    total_calls = sum(s["calls"] for s in writers)
    elapsed = max(s["elapsed"] for s in writers)
    print(
        f"\nstore stress: {WRITERS} writers x {DURATION_S:.0f}s: {total_writes} progress writes "
        f"({total_writes / elapsed:.1f}/s, target {WRITERS * WRITE_HZ}/s), {total_calls} write transactions "
        f"({total_calls / elapsed:.1f}/s); write latency max {max(s['max_latency'] for s in writers) * 1000:.1f} ms, "
        f"worst p99 {max(s['p99_latency'] for s in writers) * 1000:.1f} ms; reader {reader['reads']} reads "
        f"({reader['reads'] / elapsed:.1f}/s), max {reader['max_latency'] * 1000:.1f} ms; errors {len(errors)}"
    )

    assert not [e for e in errors if "locked" in e or "busy" in e.lower()], errors[:5]
    assert errors == []
    assert reader["regressions"] == 0
    assert reader["reads"] > 0 and all(s["writes"] > 0 for s in writers)

    raw = sqlite3.connect(db.db_path(home))
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        for s in writers:
            rid = s["run_id"]
            step, offset = raw.execute(
                "SELECT step, metrics_offset FROM runs WHERE id = ?", (rid,)
            ).fetchone()
            assert (step, offset) == (s["writes"], s["writes"] * 200), f"lost update on run {rid}"
            events = raw.execute("SELECT count(*) FROM run_events WHERE run_id = ?", (rid,)).fetchone()[0]
            assert events == 1 + s["heartbeats"]
            artifacts = raw.execute("SELECT count(*) FROM artifacts WHERE run_id = ?", (rid,)).fetchone()[0]
            assert artifacts == s["artifacts"]
    finally:
        raw.close()
    assert {r.status for r in R.list_runs(home)} == {"running"}
    db.dispose_engines()
