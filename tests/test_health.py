"""Health rules that act (issue 14): critic blow-up, BCE saturation, mode collapse, stalled; `stopped` as a
status; the warn and stalled flags in `ls`, `show`, the TUI and the end record; `fork --from-healthy`.

Each rule is exercised through the real worker with the GANMGR_DEBUG_HEALTH drill (a value beyond the rule's
bound at window or epoch close, or a silence for the stall), on tiny runs; the supervisor, the store and the
TUI are the real ones. No assertion on elapsed time.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from engine.control.config import resolve_config
from engine.control.follow import ProgressFold, outcome
from engine.control.health_rules import HealthMonitor, parse_drill
from engine.daemon.stall import StallWatch
from store import db
from store import runs as store_runs
from store.lifecycle import TERMINAL_STATUSES, health_flag
from tests.helpers import (
    RUN_TIMEOUT,
    ganmgr,
    make_run_dir,
    records,
    run_worker,
    tiny_npz,
    wait_for,
    wait_status,
)
from tests.tui_helpers import drive, make_run
from tests.tui_helpers import wait_for as pilot_wait

GAN_CPU = ("device=cpu", "threads=1", "samples=4", "width=12", "batch_size=16", "log_every=2")


@pytest.fixture(scope="module")
def npz28(tmp_path_factory) -> Path:
    """64 one-channel 28x28 images: 4 steps of 16 per epoch for the MLP GAN."""
    return tiny_npz(tmp_path_factory.mktemp("health") / "t28.npz", n_train=64, n_test=32, channels=1, size=28)


def gan_args(npz: Path, name: str, epochs: int, *sets: str) -> list[str]:
    args = ["--recipe", "mlp-gan", "--dataset", f"npz:{npz}", "--epochs", str(epochs), "--name", name]
    for s in (*GAN_CPU, *sets):
        args += ["--set", s]
    return args


def ls_json(home: Path) -> dict[int, dict]:
    out = ganmgr(home, "ls", "--json")
    assert out.returncode == 0, out.stderr
    return {r["id"]: r for r in json.loads(out.stdout)}


def table_status(app, run_id: int) -> str:
    from tui.widgets.runs_table import RunsTable

    value = app.runs_screen.query_one(RunsTable).get_cell(str(run_id), "status")
    return getattr(value, "plain", value)


# ------------------------------------------------------------------------------------ the rules, unit


def test_a_rule_acts_once_per_streak_of_k_windows() -> None:
    cfg = resolve_config("mlp-gan", assignments=["health_windows=3"])
    mon = HealthMonitor(cfg, __import__("engine.control.config", fromlist=["x"]).recipe_spec("mlp-gan"))
    bad, good = {"d_real": 0.999, "d_fake": 0.001}, {"d_real": 0.6, "d_fake": 0.4}
    assert [mon.window(bad), mon.window(bad)] == [[], []] and mon.open_streak()
    [fired] = mon.window(bad)
    assert (fired.rule, fired.action) == ("saturation", "warn")
    assert fired.message.startswith("saturation: D(x) > 0.99 and D(G(z)) < 0.01 for 3 windows")
    assert mon.window(bad) == []  # the same streak acts once
    assert mon.window(good) == [] and not mon.open_streak()
    assert mon.window(bad) == [] and mon.window(bad) == [] and len(mon.window(bad)) == 1  # a new streak


def test_off_switches_a_rule_off_and_drills_are_checked() -> None:
    from engine.control.config import recipe_spec

    cfg = resolve_config("acgan-wgangp", assignments=["health_critic=off"])
    assert HealthMonitor(cfg, recipe_spec("acgan-wgangp")).rules[0].name == "collapse"
    assert parse_drill("stall") == ("stall", 30.0) and parse_drill("critic:8") == ("critic", 8.0)
    with pytest.raises(ValueError, match="GANMGR_DEBUG_HEALTH"):
        parse_drill("nope")


def test_health_flag_is_one_rule() -> None:
    assert health_flag(None, 5.0, "running") == "stalled"
    assert health_flag(None, 5.0, "completed") is None  # a stall is about a live process
    assert health_flag("collapse: ...", None, "completed") == "warn"
    assert health_flag("critic: ...", None, "stopped") is None  # the status says it
    assert "stopped" in TERMINAL_STATUSES


@pytest.mark.parametrize("assignment, words", [
    ("health_saturation=sometimes", "health_saturation='sometimes' must be one of: off, warn, stop"),
    ("health_critic=warn", "unknown field 'health_critic' for recipe mlp-gan"),
    ("health_windows=two", "health_windows='two' is not an integer"),
    ("health_collapse_below=low", "health_collapse_below='low' is not a number"),
])
def test_bad_rule_action_or_threshold_is_exit_2_and_creates_nothing(home: Path, npz28: Path, assignment: str,
                                                                    words: str) -> None:
    out = ganmgr(home, "run", "-q", *gan_args(npz28, "bad", 1, assignment))
    assert out.returncode == 2 and words in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert ls_json(home) == {}


def test_fork_from_healthy_needs_a_health_event(home: Path) -> None:
    view = make_run(home, "completed", recipe="mlp-gan", epochs=2, epoch=2)
    ckpts = Path(view.run_dir) / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    (ckpts / "last.pt").write_bytes(b"x")
    out = ganmgr(home, "fork", str(view.id), "--from-healthy", "--set", "epochs=5")
    assert out.returncode == 2 and "no checkpoint is marked healthy" in out.stderr, out.stderr
    out = ganmgr(home, "fork", str(view.id), "--from-healthy", "--checkpoint", "last", "--set", "epochs=5")
    assert out.returncode == 2 and "not both" in out.stderr, out.stderr
    assert len(ls_json(home)) == 1


def test_a_v3_store_gains_the_health_columns(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "MIGRATIONS", db.MIGRATIONS[:3])
    db.get_engine(home)  # a store at schema 3
    db.dispose_engines()
    monkeypatch.undo()
    view = make_run(home, "completed", recipe="mlp-gan")  # migrated forward on first use
    got = store_runs.get_run(home, view.id)
    assert got is not None and (got.health, got.stalled_since, got.health_flag) == (None, None, None)
    raw = sqlite3.connect(db.db_path(home))
    try:
        assert raw.execute("SELECT version FROM schema_version").fetchone()[0] == len(db.MIGRATIONS) >= 4
    finally:
        raw.close()


def test_the_stall_watch_sets_and_clears_the_flag_in_the_store(home: Path) -> None:
    view = make_run(home, "running", recipe="mlp-gan", health_stall_seconds=2.0)
    watch = StallWatch.for_config(view.config)
    fold = ProgressFold()
    assert watch is not None
    watch.check(home, view.id, 100, fold, now=0.0)  # the first look
    watch.check(home, view.id, 100, fold, now=10.0)  # start-up silence is not a stall
    assert "stalled_since" not in fold.fields
    watch.check(home, view.id, 200, fold, now=11.0)
    watch.check(home, view.id, 200, fold, now=12.5)
    assert "stalled_since" not in fold.fields
    watch.check(home, view.id, 200, fold, now=13.5)
    assert fold.fields["stalled_since"] is not None
    watch.check(home, view.id, 300, fold, now=20.0)
    assert fold.fields["stalled_since"] is None
    events = [(e.status, e.message or "") for e in store_runs.list_events(home, view.id)]
    assert events[-2][0] == "stalled" and "nothing written to metrics.jsonl" in events[-2][1]
    assert events[-1][0] == "running" and "records flow again" in events[-1][1]
    assert StallWatch.for_config({**view.config, "health_stall_seconds": 0}) is None


def test_the_samplers_records_do_not_hide_a_stalled_loop(home: Path) -> None:
    """A hung training loop's resources sampler keeps writing: the watch counts the loop's records only."""
    view = make_run(home, "running", recipe="mlp-gan", health_stall_seconds=2.0)
    watch = StallWatch.for_config(view.config)
    fold = ProgressFold()
    assert watch is not None
    watch.check(home, view.id, fold.loop_records, fold, now=0.0)
    fold.fold({"kind": "progress", "step": 1, "epoch": 1})
    watch.check(home, view.id, fold.loop_records, fold, now=1.0)  # the loop wrote: the watch is armed
    for t in (2.0, 3.0, 4.0):
        fold.fold({"kind": "resources", "t": t, "cpu_percent": 99.0, "rss_mb": 100.0})
        watch.check(home, view.id, fold.loop_records, fold, now=t)
    assert fold.loop_records == 1 and fold.fields["stalled_since"] is not None


# ------------------------------------------------------------------------ through the real worker


@pytest.mark.slow
def test_critic_blow_up_stops_the_worker(tmp_path: Path) -> None:
    npz = tiny_npz(tmp_path / "t32.npz", n_train=64, n_test=32)
    run_dir = make_run_dir(tmp_path, "acgan-wgangp", f"dataset=npz:{npz}", "width=8", "batch_size=16",
                           "epochs=3", "device=cpu", "threads=1", "log_every=2", "health_windows=2",
                           "health_collapse=off")  # a tiny critic's class_spread is low from epoch 1
    out = run_worker(run_dir, env={"GANMGR_DEBUG_HEALTH": "critic:5"})  # epoch 1 is steps 1-4
    assert out.returncode == 4, out.stderr
    [health] = records(run_dir, "health")
    end = records(run_dir, "end")[-1]
    assert (health["rule"], health["action"]) == ("critic", "stop")
    assert end["status"] == "stopped" and end["rule"] == "critic"
    assert end["error"].startswith("critic: critic gap |d_real_source - d_fake_source| > 1e+04 for 2 windows")
    assert end["healthy_checkpoint"] == {"path": "checkpoints/healthy.pt", "epoch": 1, "step": 4}
    assert (run_dir / "checkpoints" / "healthy.pt").is_file() and (run_dir / "checkpoints" / "last.pt").is_file()
    fold = ProgressFold()
    for rec in records(run_dir):
        fold.fold(rec)
    oc = outcome(fold.end, returncode=4, cancel_requested=False, killed_by_us=False, log_path=None)
    assert oc.status == "stopped" and oc.message.startswith("stopped: critic: critic gap")
    assert "healthy checkpoint: checkpoints/healthy.pt (epoch 1, step 4)" in oc.message
    assert fold.fields["health"] == end["error"]


@pytest.mark.slow
def test_saturation_stop_shows_in_ls_show_tui_and_forks_from_healthy(store_home: Path, npz28: Path) -> None:
    home = store_home
    out = ganmgr(home, "run", "-q", *gan_args(npz28, "saturates", 4, "health_saturation=stop", "health_windows=2"),
                 env={"GANMGR_DEBUG_HEALTH": "saturation:5"})
    assert out.returncode == 0, out.stderr
    run_id = int(out.stdout)
    view = wait_status(home, run_id, TERMINAL_STATUSES)
    assert view.status == "stopped", view.error
    row = ls_json(home)[run_id]
    assert row["status"] == "stopped" and row["health"].startswith("saturation: D(x) > 0.99")
    assert row["exit_code"] == 4 and row["epoch"] == 2
    assert "stopped" in ganmgr(home, "ls").stdout
    show = ganmgr(home, "show", str(run_id)).stdout
    assert "[stopped]" in show and "health       stopped: saturation: D(x) > 0.99" in show
    assert "healthy checkpoint: checkpoints/healthy.pt (epoch 1, step 4)" in show
    end = records(Path(view.run_dir), "end")[-1]
    assert end["status"] == "stopped" and end["healthy_checkpoint"]["epoch"] == 1

    async def scenario(app, pilot) -> None:
        await pilot_wait(pilot, lambda: "stopped" in table_status(app, run_id), what="the stopped status")

    drive(home, scenario)

    out = ganmgr(home, "fork", str(run_id), "--from-healthy", "--set", "health_saturation=warn")
    assert out.returncode == 0, out.stderr
    fork = store_runs.list_runs(home)[-1]
    assert fork.parent_id == run_id and fork.parent_epoch == 1 and "healthy checkpoint" in out.stdout
    assert (Path(fork.run_dir) / "checkpoints" / "init.pt").is_file()
    ganmgr(home, "cancel", str(fork.id))


@pytest.mark.slow
def test_collapse_warns_flags_the_row_and_the_run_completes(store_home: Path, npz28: Path) -> None:
    home = store_home
    out = ganmgr(home, "run", "-q", *gan_args(npz28, "collapses", 2, "health_collapse_epochs=1",
                                              "health_collapse_after=0"),
                 env={"GANMGR_DEBUG_HEALTH": "collapse"})
    assert out.returncode == 0, out.stderr
    run_id = int(out.stdout)
    view = wait_status(home, run_id, TERMINAL_STATUSES)
    assert view.status == "completed", view.error
    row = ls_json(home)[run_id]
    assert row["health_flag"] == "warn" and row["health"].startswith("collapse: diversity < 0.1 for 1 epoch")
    listing = ganmgr(home, "ls").stdout.splitlines()
    at = listing[0].index("HEALTH")  # the HEALTH column (GPU MEM and RSS come after it)
    assert listing[1][at:].split()[0] == "warn", listing
    assert "health       warn: collapse: diversity < 0.1" in ganmgr(home, "show", str(run_id)).stdout
    events = [e for e in store_runs.list_events(home, run_id) if e.status == "warn"]
    assert len(events) == 1 and events[0].message.startswith("collapse:")  # acts once per streak
    [health] = records(Path(view.run_dir), "health")
    assert health["action"] == "warn" and health["epoch"] == 1

    async def scenario(app, pilot) -> None:
        await pilot_wait(pilot, lambda: "⚠ warn" in table_status(app, run_id), what="the warn flag")

    drive(home, scenario)


@pytest.mark.slow
def test_a_silent_worker_is_flagged_stalled_by_the_supervisor_then_cleared(store_home: Path, npz28: Path) -> None:
    home = store_home
    out = ganmgr(home, "run", "-q", *gan_args(npz28, "stalls", 2, "health_stall_seconds=8"),
                 env={"GANMGR_DEBUG_HEALTH": "stall:30"})  # floor above natural gaps
    assert out.returncode == 0, out.stderr
    run_id = int(out.stdout)
    row = wait_for(lambda: (r := ls_json(home).get(run_id)) and r["health_flag"] == "stalled" and r,
                   RUN_TIMEOUT, "the stalled flag")
    assert row["status"] == "running" and row["stalled_since"] is not None
    assert "stalled" in ganmgr(home, "show", str(run_id)).stdout
    view = wait_status(home, run_id, TERMINAL_STATUSES)
    assert view.status == "completed" and view.stalled_since is None and view.health_flag is None
    events = [(e.status, e.message or "") for e in store_runs.list_events(home, run_id)]
    stalled = [i for i, (s, _) in enumerate(events) if s == "stalled"]
    assert len(stalled) == 1 and "records flow again" in events[stalled[0] + 1][1]
