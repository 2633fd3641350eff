"""Malformed input to every command: exit 2, one line naming the problem, nothing created or changed, and
nothing written outside the runs root (the working folder and $HOME stay empty)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.control.config import resolve_config
from engine.control.procs import process_start_token
from engine.control.submit import create_run
from store import runs as store_runs
from store.db import dispose_engines
from tests.helpers import make_npz

LONG = "x" * 4096


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return make_npz(tmp_path_factory.mktemp("queue-data"))


@pytest.fixture(scope="module")
def store(tmp_path_factory, npz: Path):
    """Run 1 completed (no checkpoints), run 2 running (a live headless worker stand-in), run 3 failed."""
    base = tmp_path_factory.mktemp("inputs")
    home = base / "store"
    cfg = resolve_config("baseline", {"dataset": f"npz:{npz}", "epochs": 2, "width": 8, "batch_size": 32})
    done = create_run(home, {**cfg, "name": "done"}, status="running", managed_by="headless")
    store_runs.set_status(home, done.id, "completed", epoch=2, progress=1.0)
    sleeper = subprocess.Popen(["sleep", "600"])
    busy = create_run(home, {**cfg, "name": "busy"}, status="running", managed_by="headless")
    store_runs.mark_started(home, busy.id, pid=sleeper.pid, pid_start=process_start_token(sleeper.pid))
    failed = create_run(home, {**cfg, "name": "failed"}, status="running", managed_by="headless")
    store_runs.set_status(home, failed.id, "failed", message="test")
    (base / "cwd").mkdir()
    (base / "userhome").mkdir()
    (base / "a-file").write_text("not a folder")
    dispose_engines()
    yield {"home": home, "base": base, "npz": npz}
    sleeper.kill()
    sleeper.wait()


def snapshot(home: Path) -> tuple:
    """Everything a command could create or change: files (not the db's own journal), rows, settings."""
    files = sorted(str(p.relative_to(home)) for p in home.rglob("*")
                   if not p.name.startswith("ganmgr.db") and p.name != "supervisor.lock")
    with sqlite3.connect(home / "ganmgr.db") as con:
        runs = con.execute("select id, name, status, tags, notes, priority, cancel_requested from runs").fetchall()
        events = con.execute("select count(*) from run_events").fetchone()
        settings = con.execute("select key, value_json from settings order by key").fetchall()
    return files, runs, events, settings


# (arguments after `--home HOME`, a fragment the one-line error must contain); run as real processes
CASES: list[tuple[list[str], str]] = [
    # run ids
    (["show", "abc/../.."], "bad run id"),
    (["show", "a;rm -rf {base}"], "bad run id"),
    (["show", "$(touch {base}/pwned)"], "bad run id"),
    (["show", LONG], "bad run id"),
    (["logs", "nosuchrun", "-f"], "no run 'nosuchrun'"),
    (["logs", "1", "-n", "-1"], "--lines -1"),
    # refused transitions
    (["cancel", "1"], "already completed"),
    (["resume", "1"], "completed all 2 epochs"),
    (["resume", "2"], "is running"),
    (["resume", "3"], "no checkpoint"),
    # fork: bad --set values and impossible choices
    (["fork", "1", "--set", "width=abc"], "width='abc' is not an integer"),
    (["fork", "1", "--set", "lr=nan"], "finite"),
    (["fork", "1", "--set", "width=16"], "width cannot change"),
    (["fork", "1", "--epoch", "0"], "--epoch 0 must be 1 or more"),
    (["fork", "1", "--epoch", "3"], "no checkpoint of epoch 3"),
    (["fork", "1"], "no checkpoint to fork from"),
    # tags and notes
    (["tag", "1", "bad tag"], "tag 'bad tag'"),
    (["note", "1", "bell\x07ring"], "control characters"),
    # rm
    (["rm", "1"], "add --yes"),
    (["rm", "2", "--yes"], "is running; cancel it first"),
    # settings
    (["settings", "--max-concurrent", "0"], "from 1 to 64"),
    (["settings", "--gpus", "0,a"], "GPU indices"),
    (["settings", "--cancel-grace", "-5"], "above 0"),
    # ls
    (["ls", "--status", "bogus"], "invalid choice: 'bogus'"),
    (["ls", "--tag", "a b"], "tag 'a b'"),
    # run (queued and headless): names, conflicting options, bad values, and nothing may change settings
    (["run", "--recipe", "baseline", "--headless", "--priority", "3"], "--priority applies to queued runs"),
    (["run", "--recipe", "baseline", "--name", "a;b", "--max-concurrent", "5"], "name='a;b'"),
    (["run", "--recipe", "baseline", "--name", "../../x"], "name="),
    (["run", "--recipe", "baseline", "--name", LONG], "name="),
    (["run", "--recipe", "baseline", "--tag", "`reboot`"], "tag"),
    (["run", "--recipe", "baseline", "--note", "esc\x1b[2J"], "control characters"),
    (["run", "--recipe", "baseline", "--priority", "high"], "'high' is not an integer"),
    (["run", "--recipe", "baseline", "--gpus", "x", "--dataset", "npz:{npz}"], "GPU indices"),
    (["run", "--recipe", "baseline", "--dataset", "npz:../../nowhere.npz", "--max-concurrent", "4"],
     "does not exist"),
    (["run", "--recipe", "baseline", "--set", "data_root=" + "d" * 5000], "data_root is 5000 characters"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]

# more of the same kinds, through main() in this process (a process start costs ~1 s of CPU here)
IN_PROCESS_CASES: list[tuple[list[str], str]] = [
    (["show", "../etc"], "bad run id"),
    (["show", "`id`"], "bad run id"),
    (["show", "--", "-5"], "bad run id"),
    (["show", "999"], "no run '999'"),
    (["cancel", "999"], "no run"),
    (["fork", "1", "--set", "epochs=1e400"], "is not an integer"),
    (["fork", "1", "--set", "noequals"], "key=value"),
    (["fork", "1", "--set", "recipe=acgan-wgangp"], "recipe cannot be changed"),
    (["fork", "1", "--set", "widht=8"], "unknown field 'widht'"),
    (["fork", "1", "--name", "../evil"], "name="),
    (["tag", "1", "$(id)"], "tag '$(id)'"),
    (["tag", "1", LONG], "must be 1-40"),
    (["note", "1", "y" * 10001], "longer than 10000"),
    (["rm", "999", "--yes"], "no run '999'"),
    (["settings", "--max-concurrent", "abc"], "not an integer"),
    (["settings", "--gpus", "1,1"], "twice"),
    (["settings", "--cancel-grace", "nan"], "above 0"),
    (["ls", "--limit", "0"], "--limit 0"),
    (["run", "--recipe", "baseline", "--headless", "--gpus", "0"], "--gpus applies to queued runs"),
    (["run", "--recipe", "baseline", "--name", "a/b"], "name="),
    (["run", "--recipe", "baseline", "--name", "$(touch {base}/pwned)"], "name="),
    (["run", "--recipe", "baseline", "--priority", "99999999"], "outside"),
    (["run", "--recipe", "baseline", "--max-concurrent", "99"], "from 1 to 64"),
    (["run", "--recipe", "baseline", "--set", "seed=-1"], "seed=-1 must be >= 0"),
]


def ganmgr_in(ctx: dict, args: list[str], home: Path | None = None) -> subprocess.CompletedProcess:
    base = ctx["base"]
    argv = [a.replace("{base}", str(base)).replace("{npz}", str(ctx["npz"])) for a in args]
    env = {**os.environ, "HOME": str(base / "userhome")}
    return subprocess.run([sys.executable, "-m", "tui.cli.main", "--home", str(home or ctx["home"]), *argv],
                          cwd=base / "cwd", capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)


def check(args: list[str], needle: str, code: int, err: str, stdout: str, ctx: dict) -> str | None:
    """What is wrong with one refusal, or None."""
    err = err.strip()
    shown = " ".join(a if len(a) < 40 else a[:20] + "..." for a in args)
    if code != 2:
        return f"{shown}: exit {code} ({err or stdout.strip()})"
    if len(err.splitlines()) != 1 or not err.startswith("ganmgr"):
        return f"{shown}: not one line: {err!r}"
    if needle.replace("{npz}", str(ctx["npz"])) not in err:
        return f"{shown}: {needle!r} not in {err!r}"
    if stdout:
        return f"{shown}: printed to stdout: {stdout!r}"
    return None


@pytest.mark.slow
def test_every_malformed_input_is_refused_with_one_line_and_changes_nothing(store):
    assert len(CASES) >= 30
    home, base = store["home"], store["base"]
    before = snapshot(home)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda case: ganmgr_in(store, case[0]), CASES))
    problems = [check(args, needle, out.returncode, out.stderr, out.stdout, store)
                for (args, needle), out in zip(CASES, results)]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)
    assert snapshot(home) == before
    assert list((base / "cwd").iterdir()) == [] and list((base / "userhome").iterdir()) == []
    assert not (base / "pwned").exists()
    assert sorted(p.name for p in base.iterdir()) == ["a-file", "cwd", "store", "userhome"]


def test_more_malformed_input_through_main_in_process(store, capsys, monkeypatch):
    from tui.cli.main import main

    monkeypatch.chdir(store["base"] / "cwd")
    before = snapshot(store["home"])
    problems = []
    for args, needle in IN_PROCESS_CASES:
        argv = [a.replace("{base}", str(store["base"])) for a in args]
        try:
            code = main(["--home", str(store["home"]), *argv])
        except SystemExit as e:  # argparse's own refusals
            code = e.code
        out = capsys.readouterr()
        problems.append(check(args, needle, code, out.err, out.out, store))
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)
    assert snapshot(store["home"]) == before
    assert list((store["base"] / "cwd").iterdir()) == [] and not (store["base"] / "pwned").exists()


def test_a_home_that_is_a_file_or_missing_is_refused_or_left_uncreated(store):
    base = store["base"]
    out = ganmgr_in(store, ["ls"], home=base / "a-file")
    assert out.returncode == 2 and "is not a folder" in out.stderr
    missing = base / "not-yet"
    out = ganmgr_in(store, ["show", "1"], home=missing)
    assert out.returncode == 2 and "there is no store" in out.stderr
    out = ganmgr_in(store, ["ls"], home=missing)
    assert out.returncode == 0 and out.stdout.strip() == "no runs yet"
    assert not missing.exists()  # asking never creates a store


def test_nul_characters_are_refused_in_process(store, capsys):
    """A NUL cannot pass through exec's argv, but a caller of main() can hand one over."""
    from tui.cli.main import main

    home = str(store["home"])
    before = snapshot(store["home"])
    for argv in (["--home", home, "show", "a\x00b"],
                 ["--home", home, "run", "--recipe", "baseline", "--name", "x\x00y"],
                 ["--home", home + "\x00", "ls"],
                 ["--home", home, "note", "1", "nul\x00"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "NUL" in err, err
    assert snapshot(store["home"]) == before
