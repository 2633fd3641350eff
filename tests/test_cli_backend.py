"""`ganmgr run --backend ...` and `ganmgr settings --backend ...`: validation before anything is created,
and the store-wide default. No Slurm is needed: the one run made here fails to submit, which is the
submission-error path (the supervisor marks it failed with sbatch's one-line reason)."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import runs as store_runs
from store import settings as store_settings
from tests.helpers import (
    clean_up_store,
    ganmgr,
    run,
    tiny_args,
    tiny_npz,
    wait_for,
    wait_status,
    wait_supervisor_gone,
)


@pytest.fixture
def npz(tmp_path) -> Path:
    return tiny_npz(tmp_path / "tiny.npz", n_train=64, n_test=32)


def test_bad_slurm_options_are_refused_before_anything_is_created(home, npz):
    for flags, words in ((["--backend", "slurm", "--time", "4 hours"], "slurm time='4 hours'"),
                         (["--backend", "slurm", "--extra-sbatch", "--output=/tmp/x"], "--output is set by ganmgr"),
                         (["--partition", "gpu"], "--partition applies to the slurm backend"),
                         (["--backend", "slurm", "--time", "1", "--grace", "90"], "grace_s=90 must be shorter"),
                         (["--backend", "slurm", "--headless"], "cannot run on the slurm backend")):
        out = ganmgr(home, "run", *tiny_args(npz, "refused", 1), *flags)
        assert out.returncode == 2 and words in out.stderr, (flags, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1
    assert not (home / "ganmgr.db").exists() or store_runs.list_runs(home) == []


@pytest.mark.slow
def test_the_default_backend_comes_from_the_settings(home, npz):
    out = ganmgr(home, "settings", "--backend", "slurm", "--slurm-default", "partition=debug",
                 "--slurm-default", "time=00:30:00")
    assert out.returncode == 0, out.stderr
    assert "backend         slurm" in out.stdout and "partition=debug" in out.stdout
    settings = store_settings.get_settings(home)
    assert settings["backend"] == "slurm" and settings["slurm_options"] == {"partition": "debug", "time": "00:30:00"}
    bad = ganmgr(home, "settings", "--slurm-default", "gres=gpu 1")
    assert bad.returncode == 2 and "gres" in bad.stderr
    assert store_settings.get_settings(home)["slurm_options"] == {"partition": "debug", "time": "00:30:00"}
    # a run made now is a Slurm run with the defaults, its own flags on top; with no sbatch on PATH the
    # supervisor marks it failed, saying why (a missing slurm.conf would make sbatch retry for 60 s)
    env = {"PATH": str(home.parent / "empty-bin")}
    try:
        out = ganmgr(home, "run", "-q", *tiny_args(npz, "dflt", 1), "--time", "5", "--max-segments", "3", env=env)
        assert out.returncode == 0, out.stderr
        view = run(home, int(out.stdout))
        assert (view.backend, view.managed_by, view.max_segments) == ("slurm", "slurm", 3)
        assert view.backend_options["partition"] == "debug" and view.backend_options["time"] == "5"
        done = wait_status(home, view.id, {"failed", "completed", "cancelled", "lost"}, timeout=60)
        assert done.status == "failed", done.error
        assert done.error == "could not submit to Slurm: sbatch is not installed or not on PATH (is this a Slurm " \
                             "login node?)"
        assert len(done.error.splitlines()) == 1
        wait_supervisor_gone(home, timeout=60)
        # --headless trains here whatever the store's default backend says
        local = ganmgr(home, "run", "--headless", *tiny_args(npz, "here", 1), env=env)
        assert local.returncode == 0, local.stderr
        here = store_runs.find_run(home, "here")
        assert (here.backend, here.managed_by, here.status) == ("local", "headless", "completed")
    finally:
        clean_up_store(home)


@pytest.mark.slow
def test_a_sweep_is_checked_whole_then_queued_as_a_tagged_group(home, npz):
    args = tiny_args(npz, "unused", 1)
    args = args[:args.index("--name")]  # a sweep names its runs itself
    dry = ganmgr(home, "sweep", *args, "--set", "lr=1e-4,2e-4", "--set", "seed=0,1", "--name", "g1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "sweep g1: 4 runs of baseline over lr (2) x seed (2)" in dry.stdout
    assert "g1-3  lr=0.0002 seed=1" in dry.stdout and not (home / "ganmgr.db").exists()
    bad = ganmgr(home, "sweep", *args, "--set", "lr=1e-4,-1", "--name", "g0")
    assert bad.returncode == 2 and "sweep point 1 (lr=-1)" in bad.stderr and len(bad.stderr.splitlines()) == 1
    assert not (home / "ganmgr.db").exists()  # one bad point: nothing created
    try:
        out = ganmgr(home, "sweep", *args, "--set", "seed=0,1", "--name", "g1", "-q")
        assert out.returncode == 0, out.stderr
        ids = [int(x) for x in out.stdout.split()]
        views = [wait_status(home, i, {"completed", "failed", "lost", "killed", "cancelled"}) for i in ids]
        assert [v.status for v in views] == ["completed", "completed"]
        assert [v.name for v in views] == ["g1-0", "g1-1"] and [v.config["seed"] for v in views] == [0, 1]
        assert all(v.sweep == "g1" and {"sweep", "sweep:g1"} <= set(v.tags) and v.backend == "local" for v in views)
        assert [v.notes for v in views] == ["seed=0", "seed=1"]
        listed = ganmgr(home, "ls", "--sweep", "g1").stdout
        assert "g1-0" in listed and "g1-1" in listed
        again = ganmgr(home, "sweep", *args, "--set", "seed=0,1", "--name", "g1")
        assert again.returncode == 2 and "exists already" in again.stderr
        wait_supervisor_gone(home, timeout=60)
    finally:
        clean_up_store(home)


@pytest.mark.slow
def test_run_folders_go_to_the_runs_root_and_stay_reachable_after_it_changes(home, npz, tmp_path):
    """On a cluster the store stays on local disk while the run folders go where the nodes see them."""
    for root, words in ((str(tmp_path / "with space"), "no spaces"), ("relative/runs", "must be an absolute path"),
                        ("/", "a folder of its own")):
        bad = ganmgr(home, "settings", "--runs-root", root)
        assert bad.returncode == 2 and words in bad.stderr and len(bad.stderr.splitlines()) == 1, bad.stderr
    assert not (home / "ganmgr.db").exists() or "runs_root" not in store_settings.get_settings(home)
    shared = tmp_path / "shared"
    out = ganmgr(home, "settings", "--runs-root", str(shared))
    assert out.returncode == 0, out.stderr
    assert f"runs_root       {shared}" in out.stdout and (shared.stat().st_mode & 0o777) == 0o700
    try:
        first = run(home, int(ganmgr(home, "run", "-q", *tiny_args(npz, "on-shared", 1)).stdout))
        assert Path(first.run_dir).parent == shared and (Path(first.run_dir) / "config.json").is_file()
        assert wait_status(home, first.id, {"completed", "failed", "lost"}).status == "completed"
        assert ganmgr(home, "settings", "--runs-root", "home").returncode == 0
        second = run(home, int(ganmgr(home, "run", "-q", *tiny_args(npz, "at-home", 1)).stdout))
        assert Path(second.run_dir).parent == home
        wait_status(home, second.id, {"completed", "failed", "lost"})
        # the first run's folder, made under the old root, is still the store's: show, logs and rm reach it
        logs = ganmgr(home, "logs", str(first.id))
        assert logs.returncode == 0 and "baseline: 64 train" in logs.stdout, (logs.stdout, logs.stderr)
        gone = ganmgr(home, "rm", str(first.id), "--yes")
        assert gone.returncode == 0, gone.stderr
        assert not Path(first.run_dir).exists() and shared.is_dir()
        wait_supervisor_gone(home, timeout=60)
    finally:
        clean_up_store(home)


@pytest.mark.slow
def test_a_whole_sweep_is_cancelled_at_once(home, npz):
    args = tiny_args(npz, "unused", 100000)
    args = args[:args.index("--name")]
    local = ganmgr(home, "sweep", *args, "--set", "seed=0,1,2", "--name", "g9", "--max-parallel", "2")
    assert local.returncode == 2 and "--max-parallel throttles a Slurm job array" in local.stderr
    try:
        out = ganmgr(home, "sweep", *args, "--set", "seed=0,1,2", "--name", "g9", "-q")
        assert out.returncode == 0, out.stderr
        ids = [int(x) for x in out.stdout.split()]
        wait_for(lambda: run(home, ids[0]).epoch >= 1, 120, "the first run to train")
        assert ganmgr(home, "cancel", "--sweep", "nope").returncode == 2
        both = ganmgr(home, "cancel", "3", "--sweep", "g9")
        assert both.returncode == 2 and "not both" in both.stderr
        out = ganmgr(home, "cancel", "--sweep", "g9")
        assert out.returncode == 0, out.stderr
        assert "sweep g9: 2 queued run(s) cancelled, cancel requested for 1 running" in out.stdout
        done = [wait_status(home, i, {"cancelled", "completed", "failed", "lost", "killed"}) for i in ids]
        assert [d.status for d in done] == ["cancelled"] * 3
        assert (Path(done[0].run_dir) / "checkpoints" / "last.pt").is_file()  # the running one checkpointed
        wait_supervisor_gone(home, timeout=60)
    finally:
        clean_up_store(home)
