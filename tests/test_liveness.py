"""Liveness with real processes: kill -9 at random moments, pid reuse, cancel of a worker with children.

A row never says `running` after its process is gone, a reused pid never gets a signal, and a cancel
takes the worker's whole process group down within the grace period, leaving a loadable checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.control.config import resolve_config
from engine.control.procs import is_alive, process_start_token
from engine.control.submit import cancel_run, create_run
from store import runs as store_runs
from tests.test_supervisor import (
    RUN_TIMEOUT,
    clean_up_store,
    ganmgr,
    group_members,
    make_npz,
    queue,
    run,
    wait_for,
    wait_status,
    wait_supervisor_gone,
    wait_worker,
)

KILLS = 10
KILL_EPOCHS = 40  # long enough that a kill after the first checkpoint always lands mid-training


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return make_npz(tmp_path_factory.mktemp("queue-data"))


@pytest.fixture
def store_home(home: Path):
    yield home
    clean_up_store(home)


def records(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@pytest.mark.slow
def test_kill_9_of_a_worker_at_random_moments_then_resume(store_home: Path, npz: Path):
    """10 workers killed with SIGKILL at random moments (half of them after their first checkpoint)."""
    from engine.compute.checkpoint import load_checkpoint

    home = store_home
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    cfg = resolve_config("baseline", {"dataset": f"npz:{npz}", "epochs": KILL_EPOCHS, "width": 8,
                                      "batch_size": 32, "device": "cpu", "threads": 1})
    ids = [create_run(home, {**cfg, "name": f"k{i}"}).id for i in range(KILLS)]
    out = ganmgr(home, "settings", "--max-concurrent", "1")  # any command starts the supervisor
    assert out.returncode == 0, out.stderr
    latencies, checkpointed = [], []
    for i, rid in enumerate(ids):
        v = wait_worker(home, rid)
        if i % 2 == 0:  # after the first checkpoint, at a random point of the next epochs
            wait_for(lambda v=v: (Path(v.run_dir) / "checkpoints" / "last.pt").exists(), RUN_TIMEOUT,
                     f"run {rid}'s first checkpoint")
            time.sleep(rng.uniform(0.0, 0.6))
        else:  # anywhere from process start on: imports, data loading, the first steps
            time.sleep(rng.uniform(0.0, 3.0))
        assert is_alive(v.pid, v.pid_start), f"run {rid} ended before the kill (seed {seed})"
        os.kill(v.pid, signal.SIGKILL)
        t_kill = time.monotonic()
        done = wait_status(home, rid, {"lost", "killed", "completed", "failed", "cancelled", "diverged"}, 30)
        latencies.append(time.monotonic() - t_kill)
        assert done.status in ("lost", "killed"), (done.status, done.error, seed)
        if done.status == "killed":
            assert done.signal == signal.SIGKILL
        if i + 1 < len(ids):
            wait_worker(home, ids[i + 1])  # the queue moves on
        if (Path(v.run_dir) / "checkpoints" / "last.pt").exists():
            checkpointed.append(rid)
    print(f"kill -9 -> status latency (s): max {max(latencies):.2f} mean {sum(latencies) / len(latencies):.2f} "
          f"seed {seed}")
    assert max(latencies) < 5, (latencies, seed)
    assert len(checkpointed) >= KILLS // 2

    assert ganmgr(home, "settings", "--max-concurrent", "2").returncode == 0
    resumed_from = {}
    for rid in ids:
        out = ganmgr(home, "resume", str(rid))
        if rid in checkpointed:
            resumed_from[rid] = load_checkpoint(Path(run(home, rid).run_dir) / "checkpoints" / "last.pt")["epoch"]
            assert out.returncode == 0, out.stderr
        else:
            assert out.returncode == 2 and "no checkpoint" in out.stderr, out.stderr
            assert run(home, rid).status in ("lost", "killed")  # refused: nothing changed
    for rid in checkpointed:
        done = wait_status(home, rid, {"completed", "failed", "lost", "killed", "cancelled", "diverged"})
        assert done.status == "completed", (rid, done.error)
        assert done.epoch == KILL_EPOCHS
        recs = records(Path(done.run_dir))
        last_start = max(i for i, r in enumerate(recs) if r["kind"] == "start")
        start = recs[last_start]
        assert start["resumed"] is True and start["epoch"] == resumed_from[rid]
        epochs_after = [r["epoch"] for r in recs[last_start:] if r["kind"] == "epoch"]
        assert epochs_after == list(range(resumed_from[rid] + 1, KILL_EPOCHS + 1))
    wait_supervisor_gone(home)


def signal_recorder(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """An unrelated process that notes every catchable signal it receives (SIGKILL would end it)."""
    log = tmp_path / "signals.txt"
    code = ("import signal, sys, time\n"
            f"path = {str(log)!r}\n"
            "def note(n, _f):\n    open(path, 'a').write(f'{n}\\n')\n"
            "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,"
            " signal.SIGUSR2):\n    signal.signal(s, note)\n"
            "print('ready', flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc, log


def test_a_row_pointing_at_a_reused_pid_is_lost_and_that_process_gets_no_signal(store_home: Path,
                                                                                  npz: Path, tmp_path: Path):
    home = store_home
    stranger, signals = signal_recorder(tmp_path)
    try:
        real_token = process_start_token(stranger.pid)
        assert real_token is not None
        fake_token = str(int(real_token) - 1)  # what the row recorded for "its" process, long gone
        cfg = resolve_config("baseline", {"dataset": f"npz:{npz}", "epochs": 1, "width": 8, "batch_size": 32})
        rows = []
        for name in ("reused-a", "reused-b"):
            view = create_run(home, {**cfg, "name": name}, status="running", managed_by="supervisor")
            store_runs.mark_started(home, view.id, pid=stranger.pid, pid_start=fake_token)
            rows.append(view.id)
        # a cancel must not signal it either (cancel_run itself does not reconcile)
        assert cancel_run(home, rows[1]).cancel_requested
        # `ls` reconciles, unless the supervisor that cancel_run started holds the lock: then the supervisor
        # settles the rows on its next tick. Either way both are settled within a few seconds.
        deadline = time.monotonic() + 60
        while True:
            out = ganmgr(home, "ls", "--json")
            assert out.returncode == 0, out.stderr
            listed = {r["id"]: r for r in json.loads(out.stdout)}
            if all(listed[i]["status"] != "running" for i in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert listed[rows[0]]["status"] == "lost" and listed[rows[0]]["pid"] == stranger.pid
        assert listed[rows[1]]["status"] == "cancelled"  # cancelled while its process was gone
        assert "vanished" in (run(home, rows[0]).error or "")
        wait_supervisor_gone(home)  # nothing is queued: no supervisor stays (or adopts the stranger)
        assert stranger.poll() is None and process_start_token(stranger.pid) == real_token
        assert not signals.exists(), signals.read_text()
    finally:
        stranger.kill()
        stranger.wait()


SITECUSTOMIZE = '''
"""Test hook loaded by every Python started with this folder on PYTHONPATH; acts only in workers."""
import os
import subprocess
import sys


def _hook():
    try:
        argv = open("/proc/self/cmdline", "rb").read().split(b"\\0")
    except OSError:
        return
    if b"engine.worker" not in argv:
        return
    if os.environ.get("GANMGR_TEST_BLOCK_SIGTERM"):  # a worker stuck where SIGTERM cannot reach it
        import signal
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    pidfile = os.environ.get("GANMGR_TEST_CHILD_PIDFILE")
    if pidfile:  # a child in the worker's process group that ignores SIGTERM (a stray loader process)
        child = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                  "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"])
        with open(pidfile + ".tmp", "w") as fh:
            fh.write(str(child.pid))
        os.replace(pidfile + ".tmp", pidfile)


_hook()
'''


@pytest.mark.slow
@pytest.mark.parametrize("stuck", [False, True], ids=["worker-obeys", "worker-stuck"])
def test_cancel_takes_down_the_whole_process_group_within_the_grace(store_home: Path, npz: Path,
                                                                    tmp_path: Path, stuck: bool):
    from engine.compute.checkpoint import load_checkpoint

    home = store_home
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    pidfile = tmp_path / "child.pid"
    env = {"PYTHONPATH": str(site), "GANMGR_TEST_CHILD_PIDFILE": str(pidfile)}
    if stuck:
        env["GANMGR_TEST_BLOCK_SIGTERM"] = "1"
    grace = 4.0 if stuck else 20.0
    assert ganmgr(home, "settings", "--cancel-grace", str(grace)).returncode == 0
    rid = queue(home, npz, "cancel-me", 200, env=env)
    v = wait_worker(home, rid)
    last = Path(v.run_dir) / "checkpoints" / "last.pt"
    wait_for(last.exists, RUN_TIMEOUT, "the first checkpoint")
    wait_for(pidfile.exists, 30, "the worker's child")
    child = int(pidfile.read_text())
    assert os.getpgid(child) == v.pid  # the child shares the worker's process group
    members = group_members(v.pid)
    assert v.pid in members and child in members

    t0 = time.monotonic()
    out = ganmgr(home, "cancel", str(rid))
    assert out.returncode == 0 and "cancel requested" in out.stdout, out.stderr
    wait_for(lambda: group_members(v.pid) == [], grace + 15, "the worker's process group to be gone")
    elapsed = time.monotonic() - t0
    done = wait_status(home, rid, {"cancelled", "killed", "completed", "failed", "lost", "diverged"}, 30)
    print(f"cancel ({'stuck' if stuck else 'obeying'} worker): group gone after {elapsed:.2f} s, grace {grace} s")
    assert done.status == "cancelled", (done.status, done.error)
    if stuck:  # SIGKILL at the grace (counted from the supervisor's SIGTERM, up to one tick after ours)
        assert grace - 0.5 <= elapsed <= grace + 5, elapsed
        assert done.signal == signal.SIGKILL and "grace" in (done.error or "")
    else:
        assert elapsed < grace, elapsed
        assert done.signal is None and done.exit_code == 128 + signal.SIGTERM
    state = load_checkpoint(last)
    assert state["epoch"] >= 1 and "optimizers" in state
    wait_supervisor_gone(home)
