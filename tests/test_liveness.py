"""Liveness with real processes: kill -9 at random moments, pid reuse, cancel of a worker with children.

A row never says `running` after its process is gone, a reused pid never gets a signal, and a cancel
takes the worker's whole process group down (SIGKILL only for a worker that ignores the SIGTERM, once its
grace is over), leaving a loadable checkpoint. The kill moments are drawn from a seeded random source
(`chaos_rng`, GANMGR_CHAOS_SEED); how fast each of these settles is measured by `python -m bench.liveness`,
not asserted here.
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
from tests.helpers import (
    RUN_TIMEOUT,
    ganmgr,
    group_members,
    make_npz,
    queue,
    records,
    run,
    wait_for,
    wait_status,
    wait_supervisor_gone,
    wait_worker,
    worker_hooks,
)

KILLS = 10
KILL_EPOCHS = 40  # long enough that a kill after the first checkpoint always lands mid-training
SETTLE_TIMEOUT = 120  # a generous deadline for a row to leave `running` once its process is gone
ENDED = {"lost", "killed", "completed", "failed", "cancelled", "diverged"}


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return make_npz(tmp_path_factory.mktemp("queue-data"))


@pytest.mark.slow
def test_kill_9_of_a_worker_at_random_moments_then_resume(store_home: Path, npz: Path,
                                                          chaos_rng: random.Random):
    """10 workers killed with SIGKILL at random moments (half of them after their first checkpoint)."""
    from engine.compute.checkpoint import load_checkpoint

    home = store_home
    rng = chaos_rng
    cfg = resolve_config("baseline", {"dataset": f"npz:{npz}", "epochs": KILL_EPOCHS, "width": 8,
                                      "batch_size": 32, "device": "cpu", "threads": 1})
    ids = [create_run(home, {**cfg, "name": f"k{i}"}).id for i in range(KILLS)]
    out = ganmgr(home, "settings", "--max-concurrent", "1")  # any command starts the supervisor
    assert out.returncode == 0, out.stderr
    checkpointed = []
    for i, rid in enumerate(ids):
        v = wait_worker(home, rid)
        if i % 2 == 0:  # after the first checkpoint, at a random point of the next epochs
            wait_for(lambda v=v: (Path(v.run_dir) / "checkpoints" / "last.pt").exists(), RUN_TIMEOUT,
                     f"run {rid}'s first checkpoint")
            time.sleep(rng.uniform(0.0, 0.6))
        else:  # anywhere from process start on: imports, data loading, the first steps
            time.sleep(rng.uniform(0.0, 3.0))
        assert is_alive(v.pid, v.pid_start), f"run {rid} ended before the kill"
        os.kill(v.pid, signal.SIGKILL)
        done = wait_status(home, rid, ENDED, SETTLE_TIMEOUT)  # settled by the supervisor: nothing else runs
        assert done.status in ("lost", "killed"), (done.status, done.error)
        if done.status == "killed":
            assert done.signal == signal.SIGKILL
        assert done.pid == v.pid and not is_alive(v.pid, v.pid_start)
        history = [e.status for e in store_runs.list_events(home, rid)]
        assert history[-1] == done.status and history.count(done.status) == 1, history
        if i + 1 < len(ids):
            nxt = wait_worker(home, ids[i + 1])  # the queue moves on, into the slot the settled row freed
            assert nxt.started_at >= done.ended_at, (done.ended_at, nxt.started_at)
        if (Path(v.run_dir) / "checkpoints" / "last.pt").exists():
            checkpointed.append(rid)
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
        # settles the rows on its next tick. Either way both get settled.
        def settled() -> dict[int, dict] | None:
            out = ganmgr(home, "ls", "--json")
            assert out.returncode == 0, out.stderr
            listed = {r["id"]: r for r in json.loads(out.stdout)}
            return listed if all(listed[i]["status"] != "running" for i in rows) else None

        listed = wait_for(settled, SETTLE_TIMEOUT, "both rows to leave `running`", interval=0.2)
        assert listed[rows[0]]["status"] == "lost" and listed[rows[0]]["pid"] == stranger.pid
        assert listed[rows[1]]["status"] == "cancelled"  # cancelled while its process was gone
        assert "vanished" in (run(home, rows[0]).error or "")
        wait_supervisor_gone(home)  # nothing is queued: no supervisor stays (or adopts the stranger)
        assert stranger.poll() is None and process_start_token(stranger.pid) == real_token
        assert not signals.exists(), signals.read_text()
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.slow
@pytest.mark.parametrize("stuck", [False, True], ids=["worker-obeys", "worker-stuck"])
def test_cancel_takes_down_the_whole_process_group_within_the_grace(store_home: Path, npz: Path,
                                                                    tmp_path: Path, stuck: bool):
    from engine.compute.checkpoint import load_checkpoint

    home = store_home
    pidfile = tmp_path / "child.pid"
    env = worker_hooks(tmp_path / "site", child_pidfile=pidfile, block_sigterm=stuck)
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

    out = ganmgr(home, "cancel", str(rid))
    assert out.returncode == 0 and "cancel requested" in out.stdout, out.stderr
    wait_for(lambda: group_members(v.pid) == [], grace + SETTLE_TIMEOUT,
             "the worker's process group to be gone")
    done = wait_status(home, rid, ENDED, SETTLE_TIMEOUT)
    assert done.status == "cancelled", (done.status, done.error)
    log = [line for line in (home / "supervisor.log").read_text().splitlines() if f"run {rid}:" in line]
    term = [i for i, line in enumerate(log) if "cancel requested; SIGTERM sent to group" in line]
    kill = [i for i, line in enumerate(log)
            if f"still running {grace:g} s after SIGTERM; SIGKILL sent" in line]
    ends = [r for r in records(Path(v.run_dir)) if r["kind"] == "end"]
    assert len(term) == 1, log  # exactly one SIGTERM reached the group
    if stuck:  # the grace path: SIGKILL once the grace after the SIGTERM was over, and only then
        assert len(kill) == 1 and term[0] < kill[0], log
        assert done.signal == signal.SIGKILL and "grace" in (done.error or "")
        assert ends == []  # killed where it stood: the worker never wrote its end record
    else:  # the worker stopped on the SIGTERM by itself: no SIGKILL was needed
        assert kill == [], log
        assert done.signal is None and done.exit_code == 128 + signal.SIGTERM
        stopped = ("cancelled", f"stopped by signal {int(signal.SIGTERM)}")
        assert [(e["status"], e.get("error")) for e in ends] == [stopped]  # what the worker wrote as it went
    state = load_checkpoint(last)
    assert state["epoch"] >= 1 and "optimizers" in state
    wait_supervisor_gone(home)
