"""Runs on the Slurm backend end to end: the real `ganmgr` CLI, the real supervisor, a real single-node
Slurm (tests/slurm_cluster.py) and tiny real CPU runs.

Skipped, saying why, where the cluster cannot start (not root, Slurm not installed). Every test waits for
the supervisor to exit on its own once its runs are settled; the module's cluster fixture then checks that
no daemon and no job process is left.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import runs as store_runs
from tests.helpers import (
    clean_up_store,
    ganmgr,
    live_records,
    run,
    supervisor_pid,
    tiny_args,
    tiny_npz,
    wait_for,
    wait_status,
    wait_supervisor_gone,
)
from tests.slurm_cluster import SlurmCluster, start_test_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

JOB_TIMEOUT = 240.0  # seconds a tiny job may take on a busy 2-core machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[SlurmCluster]:
    yield from start_test_cluster(tmp_path_factory)


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz", n_train=256, n_test=128)


@pytest.fixture(scope="module")
def big_npz(tmp_path_factory) -> Path:
    return tiny_npz(tmp_path_factory.mktemp("data") / "big.npz", n_train=1024, n_test=128)


@pytest.fixture
def store(home, cluster) -> Iterator[tuple[Path, dict]]:
    """A store whose supervisor polls Slurm twice a second; the cluster's SLURM_CONF in every command."""
    env = {"SLURM_CONF": cluster.env["SLURM_CONF"]}
    out = ganmgr(home, "settings", "--slurm-poll", "0.5", env=env)
    assert out.returncode == 0, out.stderr
    yield home, env
    try:
        wait_supervisor_gone(home, timeout=60)
    finally:
        clean_up_store(home)


def submit(home: Path, env: dict, npz: Path, name: str, epochs: int, *slurm: str) -> int:
    out = ganmgr(home, "run", "-q", *tiny_args(npz, name, epochs, "--set", "log_every=4", "--set", "keep_every=0"),
                 "--backend", "slurm", *slurm, env=env)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def history(home: Path, run_id: int) -> list[str]:
    return [e.message or "" for e in store_runs.list_events(home, run_id)]


def test_submit_runs_and_completes_with_metrics_in_the_row(store, npz):
    home, env = store
    run_id = submit(home, env, npz, "s-ok", 25, "--time", "10", "--grace", "30")
    view = wait_for(lambda: (v := run(home, run_id)).cluster_state == "RUNNING" and v, 120, "RUNNING")
    assert view.backend == "slurm" and view.managed_by == "slurm" and view.cluster_job_id
    assert view.backend_options["time"] == "10" and view.backend_options["grace_s"] == 30
    script = (Path(view.run_dir) / "job.sbatch").read_text()
    assert "#SBATCH --time=10" in script and "#SBATCH --signal=B:TERM@30" in script
    # metrics streamed into the row while the job still runs
    mid = wait_for(lambda: (v := run(home, run_id)).epoch >= 1 and v, JOB_TIMEOUT, "an epoch in the row")
    assert mid.status == "running" and mid.epoch < 25
    done = wait_status(home, run_id, {"completed", "failed", "lost", "killed"})
    assert done.status == "completed", done.error
    assert (done.epoch, done.progress, done.segments, done.cluster_state) == (25, 1.0, 1, "COMPLETED")
    assert done.last_metrics and done.images_per_s
    shown = ganmgr(home, "show", str(run_id), env=env).stdout
    assert re.search(r"backend\s+slurm\s+grace_s=30\s+time=10", shown), shown
    assert re.search(rf"cluster job\s+{done.cluster_job_id}\s+COMPLETED", shown), shown
    assert re.search(r"segments\s+1 of at most", shown), shown
    assert any(f"segment 1: Slurm job {done.cluster_job_id} submitted" in m for m in history(home, run_id))


def test_cancel_stops_the_job_and_keeps_a_loadable_checkpoint(store, npz):
    from engine.compute.checkpoint import load_checkpoint

    home, env = store
    run_id = submit(home, env, npz, "s-cancel", 100000)
    wait_for(lambda: run(home, run_id).epoch >= 2, JOB_TIMEOUT, "two epochs in the row")
    out = ganmgr(home, "cancel", str(run_id), env=env)
    assert out.returncode == 0, out.stderr
    done = wait_status(home, run_id, {"cancelled", "failed", "lost", "killed", "completed"}, timeout=120)
    assert done.status == "cancelled", (done.status, done.error)
    assert done.segments == 1 and done.cluster_state == "CANCELLED"
    state = load_checkpoint(Path(done.run_dir) / "checkpoints" / "last.pt")  # weights_only inside
    assert state["epoch"] >= 2 and "optimizers" in state
    assert live_records(Path(done.run_dir), "end")[-1]["status"] == "cancelled"
    assert not alive(live_records(Path(done.run_dir), "start")[-1]["pid"])


def test_an_scancel_from_outside_ganmgr_is_a_cancel_not_a_new_segment(store, npz, cluster):
    home, env = store
    run_id = submit(home, env, npz, "s-outside", 100000)
    view = wait_for(lambda: (v := run(home, run_id)).epoch >= 1 and v, JOB_TIMEOUT, "an epoch in the row")
    subprocess.run(["scancel", view.cluster_job_id], env=cluster.env, check=True, timeout=30)
    done = wait_status(home, run_id, {"cancelled", "failed", "lost", "killed", "completed"}, timeout=120)
    assert (done.status, done.segments, done.cluster_state) == ("cancelled", 1, "CANCELLED"), history(home, run_id)
    assert "was cancelled outside ganmgr (scancel)" in history(home, run_id)[-1]
    assert (Path(done.run_dir) / "checkpoints" / "last.pt").is_file()  # `resume` can continue it


def test_a_restarted_supervisor_adopts_the_running_job(store, npz):
    """The supervisor dies (kill -9) while its job runs on the cluster; the next command starts another,
    which follows the same job by its id and settles the run."""
    home, env = store
    run_id = submit(home, env, npz, "s-adopt", 60)
    first = wait_for(lambda: (v := run(home, run_id)).epoch >= 1 and v, JOB_TIMEOUT, "an epoch in the row")
    pid = supervisor_pid(home)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: supervisor_pid(home) is None, 30, "the killed supervisor's lock to be free")
    assert ganmgr(home, "ls", env=env).returncode == 0  # reconciles: Slurm work and no supervisor -> one starts
    done = wait_status(home, run_id, {"completed", "failed", "lost", "killed", "cancelled"})
    assert (done.status, done.epoch, done.segments) == ("completed", 60, 1), (done.error, history(home, run_id))
    assert done.cluster_job_id == first.cluster_job_id
    log = (home / "supervisor.log").read_text()
    assert f"run {run_id}: following Slurm job {first.cluster_job_id}" in log


def test_a_run_past_its_time_limit_is_resubmitted_and_completes(store, big_npz):
    home, env = store
    # far more epochs than a minute holds; once the first job stopped on the warning signal, `epochs` (a
    # runtime key a resumed run may change) is cut to a few more, so the second segment finishes
    run_id = submit(home, env, big_npz, "s-long", 100000, "--time", "1", "--grace", "10", "--max-segments", "4")
    run_dir = Path(wait_for(lambda: run(home, run_id).run_dir, 30, "the run folder"))
    end = wait_for(lambda: (e := live_records(run_dir, "end")) and e[-1], 180, "the first segment's end record")
    assert end["status"] == "cancelled", end  # the warning: checkpoint and stop
    reached = live_records(run_dir, "epoch")[-1]["epoch"]
    target = reached + 3
    cfg = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**cfg, "epochs": target}))
    done = wait_status(home, run_id, {"completed", "failed", "lost", "killed", "cancelled"}, timeout=300)
    assert done.status == "completed", (done.status, done.error, history(home, run_id))
    assert done.segments >= 2 and done.epoch == target
    events = history(home, run_id)
    assert any(re.match(r"segment 2: Slurm job \d+ submitted \(", m) for m in events), events
    assert any(m.startswith("segment 1 ended at epoch ") and "checkpointed on the wall-time warning" in m
               for m in events), events
    starts = live_records(run_dir, "start")
    assert starts[0]["resumed"] is False and starts[-1]["resumed"] is True
    log = (run_dir / "log.txt").read_text()
    assert len(re.findall(r"ganmgr: slurm job \d+ ", log)) == done.segments  # one log, every segment


def test_a_failing_run_is_failed_with_its_log_tail(store, tmp_path):
    home, env = store
    bad = tmp_path / "broken.npz"
    good = tiny_npz(tmp_path / "good.npz", n_train=64, n_test=32)
    bad.write_bytes(good.read_bytes())  # passes the CLI's header check...
    run_id = submit(home, env, bad, "s-fail", 2)
    run_dir = Path(wait_for(lambda: run(home, run_id).run_dir, 30, "the run folder"))
    with open(bad, "r+b") as f:  # ...then is cut short before the job reads it
        f.truncate(100)
    done = wait_status(home, run_id, {"failed", "completed", "lost", "killed", "cancelled"})
    assert done.status == "failed", done.status
    assert done.cluster_state == "FAILED" and done.exit_code not in (None, 0)
    last = [ln.strip() for ln in (run_dir / "log.txt").read_text().splitlines() if ln.strip()][-1]
    assert done.error and last[:60] in done.error, (last, done.error)  # the log's tail


def test_a_four_point_sweep_runs_as_one_array(store, npz):
    home, env = store
    args = tiny_args(npz, "unused", 2, "--set", "log_every=4", "--set", "keep_every=0")
    args = [a for i, a in enumerate(args) if a != "--name" and (i == 0 or args[i - 1] != "--name")]
    out = ganmgr(home, "sweep", *args, "--set", "seed=0,1,2,3", "--name", "arr", "--backend", "slurm",
                 "--time", "10", "--max-parallel", "2", "-q", env=env)
    assert out.returncode == 0, out.stderr
    ids = [int(x) for x in out.stdout.split()]
    views = [wait_status(home, i, {"completed", "failed", "lost", "killed", "cancelled"}) for i in ids]
    assert [v.status for v in views] == ["completed"] * 4, [v.error for v in views]
    jobs = [v.cluster_job_id for v in views]
    assert len({j.split("_")[0] for j in jobs}) == 1 and [j.split("_")[1] for j in jobs] == ["0", "1", "2", "3"]
    assert [v.epoch for v in views] == [2] * 4 and [v.config["seed"] for v in views] == [0, 1, 2, 3]
    assert all("sweep:arr" in v.tags and v.sweep == "arr" and v.segments == 1 for v in views)
    assert "#SBATCH --array=0-3%2\n" in (home / "arrays" / f"arr-{ids[0]}" / "array.sbatch").read_text()
    assert views[0].backend_options["max_parallel"] == 2
