"""The queue and its supervisor with real processes and a real SQLite file (tiny CPU runs)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from engine.control.follow import Outcome, ProgressFold, outcome
from engine.control.procs import is_alive
from engine.control.supervisor_lock import lock_is_held
from engine.daemon.local_runs import RunJobs, trains_on_cpu
from store import runs as store_runs
from tests.helpers import (
    ROOT,
    RUN_TIMEOUT,
    cli_argv,
    ganmgr,
    make_npz,
    queue,
    run,
    supervisor_pid,
    tiny_args,
    wait_for,
    wait_status,
    wait_supervisor_gone,
    wait_worker,
)


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return make_npz(tmp_path_factory.mktemp("queue-data"))


# ----------------------------------------------------------------------------------------- queue


@pytest.mark.slow
def test_three_queued_runs_start_one_after_another_in_queue_order(store_home: Path, npz: Path):
    home = store_home
    ids = [queue(home, npz, f"q{i}", 2, "--max-concurrent", "1") for i in range(3)]
    assert ids == sorted(ids)
    for rid in ids:
        wait_status(home, rid, {"completed", "failed", "lost", "killed", "cancelled", "diverged"})
    runs = [run(home, rid) for rid in ids]
    assert [r.status for r in runs] == ["completed"] * 3, [(r.status, r.error) for r in runs]
    # one slot: each run was claimed only after the previous one had ended, in id order
    for a, b in zip(runs, runs[1:]):
        assert a.ended_at <= b.started_at, (a.id, a.ended_at, b.id, b.started_at)
    assert sorted(runs, key=lambda r: r.started_at) == runs
    for r in runs:
        assert r.epoch == 2 and r.progress == pytest.approx(1.0) and r.last_test_acc is not None
        assert r.exit_code == 0 and r.pid is not None
        history = [(e.status, e.message) for e in store_runs.list_events(home, r.id)]
        assert [s for s, _ in history] == ["queued", "running", "running", "completed"], history
        kinds = {a.kind for a in store_runs.list_artifacts(home, r.id)}
        assert "final" in kinds
    wait_supervisor_gone(home)
    assert store_runs.list_runs(home, status=("running", "queued")) == []
    log = (home / "supervisor.log").read_text()
    assert log.count("started worker") == 3 and "exiting: nothing queued or running" in log


@pytest.mark.slow
def test_a_killed_supervisor_is_replaced_by_the_next_command_which_adopts_the_live_run(store_home: Path,
                                                                                       npz: Path):
    home = store_home
    first = queue(home, npz, "adopted", 3, "--max-concurrent", "1")
    rest = [queue(home, npz, f"after{i}", 1) for i in range(2)]
    worker = wait_worker(home, first)
    wait_for(lambda: (Path(worker.run_dir) / "metrics.jsonl").exists(), RUN_TIMEOUT, "the worker's first record")
    old = supervisor_pid(home)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not lock_is_held(home), 10, "the killed supervisor's lock to be released")
    assert is_alive(worker.pid, worker.pid_start), "the worker died with its supervisor"
    assert [run(home, i).status for i in rest] == ["queued", "queued"]

    out = ganmgr(home, "ls")
    assert out.returncode == 0, out.stderr
    assert re.search(rf"^\s*{first}\s+adopted\b.*\brunning\b", out.stdout, re.M), out.stdout
    new = wait_for(lambda: supervisor_pid(home), 30, "a new supervisor")
    assert new != old
    # no row may stay `running` without a live process: one seen so is settled by the supervisor (nothing
    # else runs here to reconcile it)
    def all_ended() -> bool:
        views = [run(home, i) for i in (first, *rest)]
        for v in views:
            if v.status == "running" and v.pid is not None and not is_alive(v.pid, v.pid_start):
                wait_for(lambda v=v: run(home, v.id).status != "running", 60,
                         f"run {v.id} to leave `running` after its worker died")
        return all(v.is_terminal for v in views)

    wait_for(all_ended, RUN_TIMEOUT, "the three runs to end")
    views = [run(home, i) for i in (first, *rest)]
    assert [v.status for v in views] == ["completed"] * 3, [(v.status, v.error) for v in views]
    adopted = views[0]
    assert adopted.epoch == 3 and adopted.progress == pytest.approx(1.0)  # followed to the end
    assert adopted.pid == worker.pid  # the same worker finished it: adopted, not restarted
    log = (home / "supervisor.log").read_text()
    assert f"run {first}: adopted worker pid {worker.pid}" in log
    wait_supervisor_gone(home)


@pytest.mark.slow
def test_a_queued_run_survives_the_end_of_the_ssh_session(store_home: Path, npz: Path):
    """A login shell on its own terminal queues a run, then the terminal hangs up (SIGHUP)."""
    home = store_home
    cmd = shlex.join(cli_argv("--home", str(home), "run", "-q", *tiny_args(npz, "hangup", 2)))
    master, slave = os.openpty()

    def take_terminal() -> None:  # runs after setsid(): the pty becomes the session's controlling tty
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    shell = subprocess.Popen(["bash", "-c", f"{cmd} && echo QUEUED && exec sleep 600"], stdin=slave,
                             stdout=slave, stderr=slave, cwd=ROOT, start_new_session=True,
                             preexec_fn=take_terminal)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    while b"QUEUED" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
    assert b"QUEUED" in seen, seen.decode(errors="replace")
    run_id = int(re.search(rb"^(\d+)\s*$", seen, re.M).group(1))
    os.close(master)  # the terminal goes away: the kernel sends SIGHUP to the session
    try:
        os.killpg(shell.pid, signal.SIGHUP)  # and what sshd does to the session's processes
    except ProcessLookupError:
        pass
    assert shell.wait(timeout=30) == -signal.SIGHUP
    done = wait_status(home, run_id, {"completed", "failed", "lost", "killed", "cancelled"})
    assert done.status == "completed", done.error
    sup_log = (home / "supervisor.log").read_text()
    assert "started worker" in sup_log


# ------------------------------------------------------------------------- pieces, without processes


def test_outcome_prefers_the_end_record_then_signal_then_exit_code(tmp_path: Path):
    log = tmp_path / "log.txt"
    log.write_text("Traceback (most recent call last):\nValueError: boom\n")
    cases: list[tuple[Outcome, str]] = [
        (outcome({"status": "completed"}, returncode=0, cancel_requested=False, killed_by_us=False,
                 log_path=log), "completed"),
        (outcome({"status": "cancelled"}, returncode=143, cancel_requested=True, killed_by_us=False,
                 log_path=log), "cancelled"),
        (outcome(None, returncode=-9, cancel_requested=False, killed_by_us=False, log_path=log), "killed"),
        (outcome(None, returncode=-9, cancel_requested=True, killed_by_us=True, log_path=log), "cancelled"),
        (outcome(None, returncode=1, cancel_requested=False, killed_by_us=False, log_path=log), "failed"),
        (outcome(None, returncode=None, cancel_requested=False, killed_by_us=False, log_path=log), "lost"),
        (outcome({"status": "diverged", "error": "nan"}, returncode=3, cancel_requested=False,
                 killed_by_us=False, log_path=log), "diverged"),
    ]
    assert [o.status for o, _ in cases] == [want for _, want in cases]
    assert cases[2][0].signal == 9 and "SIGKILL" in cases[2][0].message
    assert "ValueError: boom" in cases[4][0].error
    failed = outcome({"status": "failed", "error": "RuntimeError: x"}, returncode=1, cancel_requested=False,
                     killed_by_us=False, log_path=log)
    assert failed.error.startswith("RuntimeError: x") and "ValueError: boom" in failed.error


def test_progress_fold_ignores_an_end_record_of_an_earlier_attempt():
    fold = ProgressFold(since=1000.0)
    fold.fold({"kind": "start", "epoch": 1, "step": 4, "epochs": 3, "steps_per_epoch": 4})
    fold.fold({"kind": "end", "status": "cancelled", "time": 999.0})  # before this attempt began
    assert fold.end is None
    fold.fold({"kind": "epoch", "epoch": 2, "step": 8, "test_acc": 12.5, "train_acc": 10.0,
               "images_per_s": 100.0})
    fold.fold({"kind": "end", "status": "completed", "time": 1001.0})
    assert fold.end["status"] == "completed"
    assert fold.fields["epoch"] == 2 and fold.fields["last_test_acc"] == 12.5 and fold.fields["progress"] == 1.0


def test_gpus_are_handed_out_least_busy_first_in_rotation(tmp_path: Path):
    jobs = RunJobs(tmp_path, "host")
    picks = [jobs.pick_gpu({"device": "auto"}, [0, 1])[0] for _ in range(4)]
    assert picks == ["0", "1", "0", "1"]
    assert jobs.pick_gpu({"device": "auto"}, [2])[1] == {"CUDA_VISIBLE_DEVICES": "2"}
    assert jobs.pick_gpu({"device": "cuda:1"}, [0, 1]) == ("1", {})  # a pinned device is kept
    assert jobs.pick_gpu({"device": "cpu"}, [0, 1]) == (None, {})
    assert jobs.pick_gpu({"device": "auto"}, []) == (None, {})
    assert trains_on_cpu({"device": "cpu"}, [0]) and not trains_on_cpu({"device": "cuda"}, [])
    assert not trains_on_cpu({"device": "auto"}, [0])


def test_the_supervisor_refuses_a_home_that_is_not_a_store(tmp_path: Path):
    out = subprocess.run([sys.executable, "-m", "engine.supervisor", "--home", str(tmp_path / "nope")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "is not a store folder" in out.stderr
    assert not (tmp_path / "nope").exists()


def test_a_run_claimed_by_a_supervisor_that_died_before_starting_it_is_queued_again(home: Path, npz: Path):
    from engine.control.config import resolve_config
    from engine.control.reconcile import reconcile
    from engine.control.submit import create_run

    cfg = resolve_config("baseline", {"dataset": f"npz:{npz}", "epochs": 1, "width": 8, "batch_size": 32})
    a = create_run(home, {**cfg, "name": "claimed"})
    b = create_run(home, {**cfg, "name": "claimed-and-cancelled"})
    for _ in (a, b):
        assert store_runs.claim_next(home, host=os.uname().nodename, slots=5) is not None
    store_runs.request_cancel(home, b.id)
    assert run(home, a.id).status == "running" and run(home, a.id).pid is None
    changed = {v.id: v.status for v in reconcile(home)}  # no supervisor holds the lock: they are orphans
    assert changed == {a.id: "queued", b.id: "cancelled"}
    assert reconcile(home) == []


def test_the_queue_side_never_imports_torch():
    probe = ("import sys\n"
             "import engine.daemon.loop, engine.control.reconcile, engine.control.submit, tui.cli.main, tui.cli.queue\n"
             "assert 'torch' not in sys.modules, 'torch was imported'\nprint('clean')\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "clean", out.stderr
