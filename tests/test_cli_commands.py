"""The `ganmgr` subcommands as real subprocesses on a real store: ls, show, logs, tag, note, rm, settings,
resume refusals and fork (which trains, from the parent's checkpoint)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.control.config import resolve_config
from engine.control.procs import process_start_token
from engine.control.submit import create_run
from store import runs as store_runs
from store import settings as store_settings
from store.db import dispose_engines
from tests.helpers import (
    ganmgr,
    make_npz,
    processes_of,
    run,
    tiny_args,
    wait_status,
    wait_supervisor_gone,
)


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return make_npz(tmp_path_factory.mktemp("queue-data"))


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def done_home(tmp_path_factory, npz: Path):
    """A store with one completed run (id 1, two epochs, a checkpoint per epoch) and one cancelled run."""
    home = tmp_path_factory.mktemp("cmds") / "store"
    out = ganmgr(home, "run", "--headless", *tiny_args(npz, "parent", 2, "--set", "keep_every=1"),
                 "--tag", "smoke", timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    cfg = resolve_config("baseline", {"dataset": f"npz:{npz}", "epochs": 2, "width": 8, "batch_size": 32,
                                      "name": "never-ran"})
    queued = create_run(home, cfg, notes="queued then cancelled")
    store_runs.request_cancel(home, queued.id)
    store_runs.update_progress(home, queued.id, last_metrics={"loss": math.nan})  # NaN must not leak
    yield home
    dispose_engines()
    for pid in processes_of(home):
        os.kill(pid, 9)


def test_ls_shows_a_table_and_filters(done_home: Path):
    out = ganmgr(done_home, "ls")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["ID", "NAME", "RECIPE", "DATASET", "STATUS"]
    assert any(ln.split()[:2] == ["1", "parent"] and "completed" in ln and "2/2" in ln for ln in lines)
    assert any(ln.split()[:2] == ["2", "never-ran"] and "cancelled" in ln for ln in lines)
    only = ganmgr(done_home, "ls", "--status", "cancelled").stdout.splitlines()
    assert len(only) == 2 and "never-ran" in only[1]
    assert "parent" in ganmgr(done_home, "ls", "--tag", "smoke").stdout
    assert "parent" not in ganmgr(done_home, "ls", "never").stdout
    assert ganmgr(done_home, "ls", "--recipe", "acgan-wgangp").stdout.strip() == "no runs match"


def test_ls_json_is_strict_json_with_the_documented_keys(done_home: Path):
    out = ganmgr(done_home, "ls", "--json")
    assert out.returncode == 0, out.stderr
    runs = strict_json(out.stdout)
    assert [r["id"] for r in runs] == [1, 2]
    for r in runs:
        assert {"id", "name", "recipe", "status", "pid", "epoch", "run_dir"} <= set(r)
    assert runs[0]["status"] == "completed" and runs[0]["epoch"] == 2 and Path(runs[0]["run_dir"]).is_dir()
    assert runs[1]["last_metrics"] == {"loss": None}


def test_show_has_config_history_metrics_paths_and_commit(done_home: Path):
    out = ganmgr(done_home, "show", "1")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    v = run(done_home, 1)
    assert text.startswith("run 1  parent  [completed]")
    for needle in ("config", "history", "batch_size", "created (headless)", "completed", "test last",
                   str(Path(v.run_dir) / "log.txt"), "final.pt", "epoch_001.pt"):
        assert needle in text, needle
    if v.git_commit:
        assert v.git_commit in text
    same = ganmgr(done_home, "show", "parent", "--json")  # by name, as JSON
    data = strict_json(same.stdout)
    assert data["run"]["id"] == 1 and [e["status"] for e in data["events"]][-1] == "completed"
    assert any(a["kind"] == "final" for a in data["artifacts"]) or data["artifacts"] == []


def test_logs_prints_the_log_and_follow_stops_at_a_finished_run(done_home: Path):
    log = (Path(run(done_home, 1).run_dir) / "log.txt").read_bytes()
    out = ganmgr(done_home, "logs", "1")
    assert out.returncode == 0 and out.stdout.encode() == log
    tail = ganmgr(done_home, "logs", "1", "-n", "2")
    assert tail.stdout.encode() == b"".join(log.splitlines(keepends=True)[-2:])
    follow = ganmgr(done_home, "logs", "1", "-f", timeout=60)  # returns: the run is over
    assert follow.returncode == 0 and follow.stdout.encode() == log


def test_tag_and_note(done_home: Path):
    assert ganmgr(done_home, "tag", "1", "keep", "paper:fig2").returncode == 0
    assert run(done_home, 1).tags == ("smoke", "keep", "paper:fig2")
    assert ganmgr(done_home, "tag", "1", "smoke", "--remove").returncode == 0
    assert run(done_home, 1).tags == ("keep", "paper:fig2")
    assert ganmgr(done_home, "note", "1", "first line").returncode == 0
    assert ganmgr(done_home, "note", "1", "second; $(not a command)", "--append").returncode == 0
    assert run(done_home, 1).notes == "first line\nsecond; $(not a command)"
    assert "second; $(not a command)" in ganmgr(done_home, "show", "1").stdout


def test_settings_are_kept_in_the_store(done_home: Path):
    out = ganmgr(done_home, "settings", "--max-concurrent", "3", "--gpus", "0,2", "--cancel-grace", "12.5")
    assert out.returncode == 0, out.stderr
    assert strict_json(ganmgr(done_home, "settings", "--json").stdout) == {
        "max_concurrent": 3, "gpus": [0, 2], "cancel_grace_s": 12.5}
    assert ganmgr(done_home, "settings", "--gpus", "none", "--max-concurrent", "1").returncode == 0
    assert store_settings.get_settings(done_home)["gpus"] == [] and store_settings.get_settings(done_home)["max_concurrent"] == 1


def test_rm_asks_first_never_deletes_a_running_run_and_removes_row_and_folder(done_home: Path, npz: Path):
    cfg = resolve_config("baseline", {"dataset": f"npz:{npz}", "epochs": 1, "width": 8, "batch_size": 32})
    victim = create_run(done_home, {**cfg, "name": "victim"}, status="running", managed_by="headless")
    store_runs.set_status(done_home, victim.id, "failed", message="test")
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        busy = create_run(done_home, {**cfg, "name": "busy"}, status="running", managed_by="headless")
        store_runs.mark_started(done_home, busy.id, pid=sleeper.pid, pid_start=process_start_token(sleeper.pid))
        refused = ganmgr(done_home, "rm", str(busy.id), "--yes")
        assert refused.returncode == 2 and "is running; cancel it first" in refused.stderr
        assert Path(busy.run_dir).is_dir() and run(done_home, busy.id).status == "running"
        asked = ganmgr(done_home, "rm", str(victim.id))  # stdin is not a terminal: no silent deletion
        assert asked.returncode == 2 and "--yes" in asked.stderr
        assert Path(victim.run_dir).is_dir()
        out = ganmgr(done_home, "rm", str(victim.id), "--yes")
        assert out.returncode == 0, out.stderr
        assert store_runs.get_run(done_home, victim.id) is None and not Path(victim.run_dir).exists()
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    if run(done_home, busy.id).status == "running":
        store_runs.set_status(done_home, busy.id, "lost", message="test cleanup")


def test_resume_refuses_a_completed_run_and_a_changed_config(done_home: Path, npz: Path):
    out = ganmgr(done_home, "resume", "1")
    assert out.returncode == 2 and "completed all 2 epochs" in out.stderr
    # a failed run with a checkpoint, whose config.json was edited afterwards
    parent = run(done_home, 1)
    cfg = {**parent.config, "name": "edited", "epochs": 3}
    failed = create_run(done_home, cfg, status="running", managed_by="headless")
    store_runs.set_status(done_home, failed.id, "failed", message="test")
    folder = Path(failed.run_dir)
    shutil.copy(Path(parent.run_dir) / "checkpoints" / "last.pt", folder / "checkpoints" / "last.pt")
    original = (folder / "config.json").read_text()
    (folder / "config.json").write_text(original.replace('"lr": 0.0001', '"lr": 0.001'))
    out = ganmgr(done_home, "resume", str(failed.id))
    assert out.returncode == 2 and "was changed" in out.stderr and "lr" in out.stderr, out.stderr
    assert run(done_home, failed.id).status == "failed"
    (folder / "config.json").write_text(original)
    store_runs.delete_run(done_home, failed.id)
    shutil.rmtree(folder)


@pytest.mark.slow
def test_fork_trains_from_the_parents_epoch_checkpoint_with_the_changed_config(done_home: Path):
    parent = run(done_home, 1)
    out = ganmgr(done_home, "fork", "1", "--epoch", "1", "--set", "lr=0.0005", "--set", "epochs=3",
                 "--tag", "forked")
    assert out.returncode == 0, out.stderr
    assert "forked from run 1 after epoch 1" in out.stdout and "lr=0.0005" in out.stdout
    child = next(r for r in store_runs.list_runs(done_home) if r.parent_id == 1)
    assert (child.parent_relation, child.parent_epoch, child.name) == ("fork", 1, "parent-fork")
    assert child.config["lr"] == 0.0005 and child.config["epochs"] == 3 and child.tags == ("forked",)
    init = Path(child.run_dir) / "checkpoints" / "init.pt"
    assert init.read_bytes() == (Path(parent.run_dir) / "checkpoints" / "epoch_001.pt").read_bytes()
    done = wait_status(done_home, child.id, {"completed", "failed", "lost", "killed", "cancelled", "diverged"})
    assert done.status == "completed", done.error
    recs = [json.loads(line) for line in (Path(child.run_dir) / "metrics.jsonl").read_text().splitlines()]
    start = next(r for r in recs if r["kind"] == "start")
    assert start["forked_from"].endswith("init.pt") and start["epoch"] == 1
    assert [r["epoch"] for r in recs if r["kind"] == "epoch"] == [2, 3]
    assert [r["lr"] for r in recs if r["kind"] == "epoch"] == [0.0005, 0.0005]
    wait_supervisor_gone(done_home)
