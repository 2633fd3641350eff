"""A run's folder never leads a process outside the configured roots (HOME and the runs roots).

The store is a file the user owns: a `run_dir` or a viz job's `job_dir` can be edited by hand (sqlite3),
and `ganmgr settings --runs-root` can move the root while runs are training. Neither may make the supervisor,
a worker, a viz job, `rm`, `resume`, `fork` or `viz` write a byte outside those roots: each path from the
store goes through `engine.control.runs_root.ensure_run_folder` before it is written to. The hostile
folders here are complete copies of a real run folder (config.json, job.json), so a process that skipped the
guard would really run there.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from engine.control.config import resolve_config
from engine.control.submit import create_run
from engine.control.viz_jobs import submit_viz
from store import runs as store_runs
from store import viz_jobs as store_viz
from store.db import db_path, dispose_engines
from store.lifecycle import TERMINAL_STATUSES
from tests.helpers import (
    RUN_TIMEOUT,
    ganmgr,
    make_npz,
    queue,
    records,
    run,
    wait_for,
    wait_status,
    wait_supervisor_gone,
    wait_worker,
)

FINAL = TERMINAL_STATUSES


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return make_npz(tmp_path_factory.mktemp("escape-data"))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under `folder` with its size and mtime: any write shows as a difference."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def edit_store(home: Path, sql: str, *params: object) -> None:
    """What a user with sqlite3 does to the store (no ganmgr code involved)."""
    dispose_engines()
    con = sqlite3.connect(db_path(home))
    try:
        con.execute(sql, params)
        con.commit()
    finally:
        con.close()


def hostile_copy(folder: Path, outside: Path, how: str, home: Path) -> str:
    """A copy of a real run folder outside the roots, and the run_dir string that points at it: a `..`
    path out of HOME, an absolute path elsewhere, or a symlink inside HOME that leads out."""
    target = outside / folder.name
    shutil.copytree(folder, target)
    if how == "dotdot":
        return str(home / ".." / outside.name / folder.name)
    if how == "absolute":
        return str(target)
    link = home / "escape-link"
    link.symlink_to(target, target_is_directory=True)
    return str(link)


def tiny_cfg(npz: Path, name: str, epochs: int = 1) -> dict:
    return resolve_config("baseline", {"dataset": f"npz:{npz}", "epochs": epochs, "width": 8, "batch_size": 32,
                                       "device": "cpu", "threads": 1, "name": name})


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_supervisor_writes_nothing_outside_for_a_hostile_queued_run_dir(store_home: Path, npz: Path,
                                                                       tmp_path: Path, how: str):
    home = store_home
    view = create_run(home, tiny_cfg(npz, "hostile"))
    outside = tmp_path / "outside"
    outside.mkdir()
    edit_store(home, "UPDATE runs SET run_dir = ? WHERE id = ?", hostile_copy(Path(view.run_dir), outside, how, home),
               view.id)
    before = snapshot(outside)
    assert ganmgr(home, "ls").returncode == 0  # starts the supervisor, which claims the queued row
    done = wait_status(home, view.id, FINAL, RUN_TIMEOUT)
    assert done.status == "failed" and "outside the runs root" in (done.error or ""), (done.status, done.error)
    wait_supervisor_gone(home)
    assert snapshot(outside) == before  # no log header, no worker, no metrics out there


@pytest.mark.parametrize("how", ["dotdot", "symlink"])
def test_commands_refuse_a_hostile_run_dir_and_write_nothing_outside(store_home: Path, npz: Path,
                                                                     tmp_path: Path, how: str):
    home = store_home
    view = create_run(home, tiny_cfg(npz, "hostile"), held=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    hostile = hostile_copy(Path(view.run_dir), outside, how, home)
    (outside / Path(view.run_dir).name / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    edit_store(home, "UPDATE runs SET run_dir = ?, status = 'failed' WHERE id = ?", hostile, view.id)
    before = snapshot(outside)
    for args in (("resume", str(view.id)), ("fork", str(view.id)), ("viz", str(view.id), "curves"),
                 ("rm", "--yes", str(view.id)), ("logs", str(view.id))):
        out = ganmgr(home, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "outside" in out.stderr, (args, out.stderr)
    assert snapshot(outside) == before
    assert run(home, view.id).status == "failed"  # the row too is as it was: nothing was queued or deleted
    assert len(store_runs.list_runs(home)) == 1
    wait_supervisor_gone(home)


@pytest.mark.slow
def test_supervisor_writes_nothing_outside_for_a_hostile_viz_job_dir(store_home: Path, npz: Path,
                                                                    tmp_path: Path):
    home = store_home
    view = create_run(home, tiny_cfg(npz, "viz-host"), held=True)  # held: the supervisor trains nothing
    job = submit_viz(home, view.id, "curves", start_supervisor=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copytree(job.job_dir, outside / Path(job.job_dir).name)  # a complete job folder: job.json
    edit_store(home, "UPDATE viz_jobs SET job_dir = ? WHERE id = ?", str(outside / Path(job.job_dir).name), job.id)
    before = snapshot(outside)
    assert ganmgr(home, "ls").returncode == 0
    done = wait_for(lambda: (j := store_viz.get_viz_job(home, job.id)).status in FINAL and j, RUN_TIMEOUT,
                    "the viz job to end")
    assert done.status == "failed" and "outside the runs root" in (done.error or ""), (done.status, done.error)
    wait_supervisor_gone(home)
    assert snapshot(outside) == before


@pytest.mark.slow
def test_runs_root_changed_mid_run_keeps_every_write_inside_the_roots(store_home: Path, npz: Path,
                                                                      tmp_path: Path):
    """`settings --runs-root` while a run trains: it finishes in its old folder, the next run goes to the new
    root, `rm` still finds the old folder; nothing is written anywhere else."""
    home = store_home
    new_root = tmp_path / "scratch"
    bystander = tmp_path / "bystander"
    bystander.mkdir()
    (bystander / "keep.txt").write_text("untouched")
    before = snapshot(bystander)
    first = queue(home, npz, "before-move", 6)
    v = wait_worker(home, first)
    wait_for((Path(v.run_dir) / "checkpoints" / "last.pt").exists, RUN_TIMEOUT, "the first checkpoint")
    out = ganmgr(home, "settings", "--runs-root", str(new_root))
    assert out.returncode == 0, out.stderr
    second = queue(home, npz, "after-move", 1)
    a = wait_status(home, first, FINAL)
    b = wait_status(home, second, FINAL)
    assert (a.status, b.status) == ("completed", "completed"), (a.error, b.error)
    assert Path(a.run_dir).parent == home.resolve() and Path(b.run_dir).parent == new_root.resolve()
    assert records(Path(a.run_dir), "end")[-1]["status"] == "completed"
    wait_supervisor_gone(home)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bystander", "scratch", "store"]
    assert snapshot(bystander) == before
    out = ganmgr(home, "rm", "--yes", str(first), str(second))
    assert out.returncode == 0, out.stderr
    assert not Path(a.run_dir).exists() and not Path(b.run_dir).exists()
    assert new_root.is_dir() and snapshot(bystander) == before
