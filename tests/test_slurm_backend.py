"""The Slurm backend against a real single-node Slurm (tests/slurm_cluster.py), with tiny real CPU runs.

Skipped, saying why, where the cluster cannot start (not root, Slurm not installed). Timings the
groundwork notes quote are printed (`-s` shows them); nothing asserts on wall time.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.control.follow import log_tail
from engine.daemon.backends.base import ClusterState, resubmit_reason
from engine.daemon.backends.slurm import SCRIPT_NAME, SlurmBackend
from tests.helpers import make_run_dir, records, tiny_npz, wait_for
from tests.slurm_cluster import SlurmCluster, start_test_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

JOB_TIMEOUT = 240.0  # seconds a tiny job may take on a busy 2-core machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[SlurmCluster]:
    yield from start_test_cluster(tmp_path_factory)


@pytest.fixture(scope="module")
def backend(cluster) -> SlurmBackend:
    return SlurmBackend(env=cluster.env, sacct_delay_s=0.3)


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz", n_train=256, n_test=128)


@pytest.fixture(scope="module")
def big_npz(tmp_path_factory) -> Path:
    """Four times the tiny set: an epoch takes a few tenths of a second on one thread."""
    return tiny_npz(tmp_path_factory.mktemp("data") / "big.npz", n_train=1024, n_test=128)


def tiny_run(base: Path, npz: Path, epochs: int, *extra: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    return make_run_dir(base, "baseline", f"dataset=npz:{npz}", "width=8", "batch_size=32", "device=cpu",
                        "threads=1", f"epochs={epochs}", "log_every=4", "keep_every=0", *extra)


def wait_terminal(backend: SlurmBackend, job: str, timeout: float = JOB_TIMEOUT) -> ClusterState:
    return wait_for(lambda: (s := backend.state(job)).terminal and s, timeout, f"job {job} to end")


def count(run_dir: Path, kind: str) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    n = 0
    for line in path.read_text().splitlines():
        try:
            n += json.loads(line).get("kind") == kind
        except ValueError:  # a line still being written
            pass
    return n


def end_record(run_dir: Path) -> dict:
    ends = records(run_dir, "end")
    assert ends, f"no end record in {run_dir / 'metrics.jsonl'}"
    return ends[-1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ tests


def test_submit_runs_to_completion_streaming_metrics(tmp_path, backend, npz):
    run_dir = tiny_run(tmp_path, npz, epochs=25)
    t0 = time.monotonic()
    job = backend.submit(run_dir, {"time": "10", "grace_s": 30})
    script = (run_dir / SCRIPT_NAME).read_text()
    assert "#SBATCH --signal=B:TERM@30" in script and "#SBATCH --open-mode=append" in script
    assert f"#SBATCH --output={run_dir.resolve()}/log.txt" in script and "#SBATCH --time=10" in script
    assert (run_dir / SCRIPT_NAME).stat().st_mode & 0o077 == 0

    running = wait_for(lambda: (s := backend.state(job)).status == "running" and s, 60, "RUNNING")
    print(f"\nsubmit -> RUNNING: {time.monotonic() - t0:.2f} s")
    assert running.cluster_state == "RUNNING" and running.source == "scontrol" and not running.terminal
    # while the job runs, metrics.jsonl grows: an epoch record appears before the run has ended
    first = wait_for(lambda: count(run_dir, "epoch"), JOB_TIMEOUT, "a first epoch record")
    assert backend.state(job).status == "running" and count(run_dir, "end") == 0
    assert first < 25

    final = wait_terminal(backend, job)
    assert (final.status, final.cluster_state, final.exit_code, final.signal) == ("completed", "COMPLETED", 0, None)
    assert count(run_dir, "epoch") == 25 and end_record(run_dir)["status"] == "completed"
    log = (run_dir / "log.txt").read_text()
    assert re.search(rf"ganmgr: slurm job {job} \(restart 0\) started", log), log[-2000:]
    # after the controller forgets the job, sacct (-c: jobcomp/filetxt here) gives the same answer
    later = wait_for(lambda: backend.sacct_state(job), 30, "sacct to list the job")
    assert (later.status, later.exit_code, later.source) == ("completed", 0, "sacct -c")


def test_cancel_stops_the_job_and_keeps_a_loadable_checkpoint(tmp_path, backend, npz):
    from engine.compute.checkpoint import load_checkpoint

    run_dir = tiny_run(tmp_path, npz, epochs=100000)
    job = backend.submit(run_dir)
    wait_for(lambda: count(run_dir, "epoch") >= 2, JOB_TIMEOUT, "two epochs")
    t0 = time.monotonic()
    backend.cancel(job)
    final = wait_terminal(backend, job, timeout=60)
    print(f"\nscancel -> {final.cluster_state}: {time.monotonic() - t0:.2f} s")
    assert (final.status, final.cluster_state) == ("cancelled", "CANCELLED")
    assert end_record(run_dir)["status"] == "cancelled"  # the worker checkpointed and said so
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")  # weights_only=True inside
    assert state["epoch"] >= 2 and "optimizers" in state
    assert resubmit_reason(final, end_record(run_dir), checkpoint_exists=True, cancel_requested=False,
                           segments_done=1, max_segments=5) is None  # a scancel is respected
    pid = records(run_dir, "start")[-1]["pid"]
    assert not alive(pid)


def test_time_limit_warning_checkpoints_then_a_resubmission_completes(tmp_path, backend, big_npz):
    # far more epochs than a minute holds on any machine; once the first job has stopped on the warning,
    # `epochs` (a runtime key a resumed run may change) is cut to a few more, so the second job finishes soon
    run_dir = tiny_run(tmp_path, big_npz, epochs=100000)
    job = backend.submit(run_dir, {"time": "1", "grace_s": 10})
    first = wait_terminal(backend, job, timeout=180)
    end = end_record(run_dir)
    info = backend._run(["scontrol", "show", "job", "-o", job]).stdout
    start = time.mktime(time.strptime(re.search(r"StartTime=(\S+)", info).group(1), "%Y-%m-%dT%H:%M:%S"))
    print(f"\nwarning signal: worker ended {end['time'] - start:.1f} s into the 60 s job "
          f"({start + 60 - end['time']:.1f} s before the limit); Slurm said {first.cluster_state} "
          f"exit {first.exit_code}")
    # the worker got SIGTERM before the limit, checkpointed and exited 143; Slurm calls that FAILED 143:0
    # (TIMEOUT if the machine was so slow that the limit struck first)
    assert end["status"] == "cancelled", end
    assert first.cluster_state in ("FAILED", "TIMEOUT") and first.exit_code in (143, 0)
    reached = records(run_dir, "epoch")[-1]["epoch"]
    assert reached > 0
    reason = resubmit_reason(first, end, checkpoint_exists=(run_dir / "checkpoints" / "last.pt").is_file(),
                             cancel_requested=False, segments_done=1, max_segments=3)
    assert reason is not None
    if first.cluster_state == "FAILED":
        assert reason == "the worker checkpointed on the time-limit warning signal"

    cfg = json.loads((run_dir / "config.json").read_text())
    target = reached + 5
    (run_dir / "config.json").write_text(json.dumps({**cfg, "epochs": target}))
    second = backend.resubmit(run_dir, ["--time=UNLIMITED"])
    assert second != job
    final = wait_terminal(backend, second, timeout=JOB_TIMEOUT)
    assert final.status == "completed"
    starts = records(run_dir, "start")
    assert [s["resumed"] for s in starts] == [False, True] and starts[1]["epoch"] >= reached
    assert [e["epoch"] for e in records(run_dir, "epoch")][-1] == target
    assert end_record(run_dir)["status"] == "completed"
    log = (run_dir / "log.txt").read_text()
    assert f"slurm job {job} " in log and f"slurm job {second} " in log  # one log, appended per segment
    assert "signal 15: finishing the step, then checkpointing" in log


def test_a_failing_run_is_failed_with_its_log_tail(tmp_path, backend, npz):
    run_dir = tiny_run(tmp_path, npz, epochs=1)
    (run_dir / "config.json").write_text('{"recipe": "baseline", "width": "wide"')  # cut off: corrupt
    job = backend.submit(run_dir)
    final = wait_terminal(backend, job)
    assert (final.status, final.cluster_state, final.exit_code) == ("failed", "FAILED", 2)
    assert end_record(run_dir)["status"] == "failed"
    tail = log_tail(run_dir / "log.txt")
    assert "config.json is unreadable" in tail, tail


def test_a_four_point_sweep_runs_as_one_array(tmp_path, backend, npz):
    dirs = [tiny_run(tmp_path / f"p{i}", npz, 2, f"seed={i}") for i in range(4)]
    ids = backend.submit_array(dirs, {"time": "10", "grace_s": 30}, array_dir=tmp_path / "array")
    assert len(ids) == 4 and len({i.split("_")[0] for i in ids}) == 1  # one array job
    assert [i.split("_")[1] for i in ids] == ["0", "1", "2", "3"]
    snapshot = backend.states(ids)  # one squeue call; tasks it no longer lists asked one by one
    assert list(snapshot) == ids and all(s.status in ("queued", "running", "completed") for s in snapshot.values())
    finals = [wait_terminal(backend, j) for j in ids]
    assert [f.status for f in finals] == ["completed"] * 4
    for i, d in enumerate(dirs):
        assert end_record(d)["status"] == "completed" and count(d, "epoch") == 2
        assert json.loads((d / "config.json").read_text())["seed"] == i
        assert f"task {i} (restart 0) started" in (d / "log.txt").read_text()
        assert (d / SCRIPT_NAME).is_file()  # each run can continue alone as a plain job
    assert (tmp_path / "array" / "runs.txt").read_text().split() == [str(d.resolve()) for d in dirs]
    # sacct -c knows a task only by its own job id, which scontrol reported while it knew the task
    assert all(f.raw_id and f.raw_id.isdigit() for f in finals) and len({f.raw_id for f in finals}) == 4
    fresh = SlurmBackend(env=backend.env)  # a restarted supervisor: only what the store kept
    assert fresh.sacct_state(ids[3]) is None
    via_sacct = wait_for(lambda: fresh.sacct_state(ids[3], finals[3].raw_id), 30, "sacct to list an array task")
    assert (via_sacct.job_id, via_sacct.status, via_sacct.exit_code) == (ids[3], "completed", 0)


def test_teardown_leaves_no_daemon_and_no_job_process(tmp_path, cluster, npz):
    """A second cluster beside the module's (own ports and name), torn down with a job still running."""
    with SlurmCluster.up(tmp_path) as private:
        assert (private.ctld_port, private.name) != (cluster.ctld_port, cluster.name)
        backend = SlurmBackend(env=private.env)
        run_dir = tiny_run(tmp_path / "r", npz, epochs=100000)
        job = backend.submit(run_dir)
        wait_for(lambda: count(run_dir, "epoch") >= 1, JOB_TIMEOUT, "an epoch")
        pid = records(run_dir, "start")[-1]["pid"]
        daemons = [int((private.root / "run" / f"{d}.pid").read_text()) for d in ("slurmctld", "slurmd")]
        assert alive(pid) and all(alive(p) for p in daemons)
        assert any(p == pid for p, _ in private.leftovers())  # the job carries the cluster's SLURM_CONF
        assert backend.state(job).status == "running"
    assert private.leftovers() == []  # down() also raises if anything was left
    assert not alive(pid) and not any(alive(p) for p in daemons)
    assert cluster.run(["sinfo", "-h", "-o", "%a"]).stdout.strip() == "up"  # the module's cluster is unaffected
