"""Live feedback within seconds (issue 14): train windows bounded by `log_seconds`, `progress` records between
them, folded into the row, the headless bar and the run screen; and divergence caught at the exact step it
happens, with the healthy checkpoint named. Real workers on tiny data; the time-bounded cases slow each step
with the GANMGR_DEBUG_STEP_SLEEP drill. No assertion on elapsed time: only on the records and their order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.compute.checkpoint import load_checkpoint
from engine.control.follow import ProgressFold, outcome
from tests.helpers import (
    ROOT,
    cli_argv,
    ganmgr,
    make_run_dir,
    queue,
    records,
    run_worker,
    tiny_npz,
    wait_for,
    wait_status,
)
from tests.tui_helpers import drive, make_run, open_run, plain
from tests.tui_helpers import wait_for as pilot_wait
from tui.charts.metric_chart import MetricChart
from tui.cli.headless import HeadlessView

CPU = ("device=cpu", "threads=1", "keep_every=1")


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return tiny_npz(tmp_path_factory.mktemp("live") / "tiny.npz", n_train=128, n_test=32)


@pytest.fixture(scope="module")
def grey(tmp_path_factory) -> Path:
    return tiny_npz(tmp_path_factory.mktemp("grey") / "grey.npz", n_train=128, n_test=32, channels=1, size=28)


# ------------------------------------------------------------------------------------- time-bounded windows


@pytest.mark.slow
def test_windows_close_by_time_mid_epoch_when_an_epoch_is_shorter_than_log_every(tmp_path, grey):
    """8 steps per epoch, log_every 50: without log_seconds no window would close before the epoch end."""
    run_dir = make_run_dir(tmp_path, "mlp-gan", f"dataset=npz:{grey}", "width=8", "batch_size=16", "epochs=2",
                           "log_every=50", "log_seconds=0.2", *CPU)
    out = run_worker(run_dir, env={"GANMGR_DEBUG_STEP_SLEEP": "0.12"})  # 2 steps make a window
    assert out.returncode == 0, out.stderr
    recs = [r for r in records(run_dir) if r["kind"] in ("train", "epoch", "progress")]
    train = [r for r in recs if r["kind"] == "train"]
    steps = [r["step"] for r in train]
    assert steps == sorted(set(steps)), "windows close at increasing steps, never twice at one"
    mid = [r for r in train if r["step"] % 8]
    assert mid, f"no window closed inside an epoch: {steps}"
    assert {8, 16} <= set(steps), "every epoch end closes a window"
    assert all(r["step"] < 50 for r in train)  # none of them is a log_every window
    for r in train:  # a window never spans an epoch end
        assert (r["step"] - 1) // 8 + 1 == r["epoch"]
    # the stream is in step order: each epoch record follows its last window
    order = [(r["step"], r["kind"] == "epoch") for r in recs]
    assert order == sorted(order)


@pytest.mark.slow
def test_progress_records_between_windows(tmp_path, grey):
    """log_seconds=0 (steps only) and a long log_every: the progress records are the only sign of life."""
    run_dir = make_run_dir(tmp_path, "mlp-gan", f"dataset=npz:{grey}", "width=8", "batch_size=16", "epochs=1",
                           "log_every=1000", "log_seconds=0", *CPU)
    out = run_worker(run_dir, env={"GANMGR_DEBUG_STEP_SLEEP": "0.3"})  # 8 steps: about 2.4 s
    assert out.returncode == 0, out.stderr
    recs = records(run_dir)
    kinds = [r["kind"] for r in recs]
    progress = [r for r in recs if r["kind"] == "progress"]
    assert progress, kinds
    assert kinds.index("progress") < kinds.index("train") < kinds.index("epoch")
    assert [r["step"] for r in records(run_dir, "train")] == [8]
    for r in progress:
        assert set(r) >= {"epoch", "step", "steps_per_epoch", "time"}
        assert r["epoch"] == 1 and r["steps_per_epoch"] == 8 and 1 <= r["step"] < 8
    assert [r["step"] for r in progress] == sorted({r["step"] for r in progress})
    assert all(r["images_per_s"] > 0 for r in progress if "images_per_s" in r)
    # the supervisor's fold moves the row's step, epoch and progress with them
    fold = ProgressFold()
    for r in recs[: kinds.index("progress") + 1]:
        fold.fold(r)
    first = progress[0]
    assert fold.fields["step"] == first["step"] and fold.fields["epoch"] == 0
    assert fold.fields["progress"] == pytest.approx(first["step"] / 8)


@pytest.mark.slow
def test_ls_and_show_move_step_by_step_before_the_first_epoch_ends(store_home, tmp_path):
    """A queued run through the real supervisor: the row's step moves on progress records alone."""
    data = tiny_npz(tmp_path / "long.npz", n_train=1280, n_test=64)  # 40 steps of 32
    rid = queue(store_home, data, "live", 1, "--set", "log_every=1000", "--set", "log_seconds=0",
                env={"GANMGR_DEBUG_STEP_SLEEP": "0.25"})

    def moving():
        out = ganmgr(store_home, "ls", "--json")
        assert out.returncode == 0, out.stderr
        row = json.loads(out.stdout)[0]
        return row if row["status"] == "running" and 0 < row["step"] < 40 else None

    try:
        row = wait_for(moving, 300, "the row's step to move inside epoch 1", interval=0.3)
        assert row["epoch"] == 0 and 0 < row["progress"] < 1
        run_dir = Path(row["run_dir"])
        assert not records(run_dir, "epoch") or records(run_dir, "epoch")[0]["step"] >= row["step"]
        shown = ganmgr(store_home, "show", str(rid))
        assert shown.returncode == 0 and "step " in shown.stdout
        later = wait_for(lambda: (r := moving()) and r["step"] > row["step"] and r, 120, "a later step",
                         interval=0.3)
        assert later["step"] > row["step"]
    finally:
        ganmgr(store_home, "cancel", str(rid))
    wait_status(store_home, rid, {"cancelled", "completed"})


# -------------------------------------------------------------------------------------- exact divergence


@pytest.mark.parametrize("recipe", [pytest.param("acgan-wgangp", marks=pytest.mark.slow), "mlp-gan"])
def test_nan_drill_names_step_5_and_keeps_the_checkpoint_from_before_it(tmp_path, npz, grey, recipe):
    """4 steps per epoch, log_every 50: the NaN arrives at step 5 (epoch 2, inside a long window)."""
    data = npz if recipe == "acgan-wgangp" else grey
    run_dir = make_run_dir(tmp_path, recipe, f"dataset=npz:{data}", "width=8", "batch_size=32", "epochs=4",
                           "log_every=50", *CPU)
    out = run_worker(run_dir, env={"GANMGR_DEBUG_NAN_STEP": "5"})
    assert out.returncode == 3, out.stderr
    end = records(run_dir, "end")[-1]
    assert end["status"] == "diverged"
    assert "at step 5 (epoch 2)" in end["error"] and end["error"].startswith("non-finite ")
    assert end["step"] == 5 and end["epoch"] == 2
    assert end["healthy_checkpoint"] == {"path": "checkpoints/last.pt", "epoch": 1, "step": 4}
    ckpt = load_checkpoint(run_dir / end["healthy_checkpoint"]["path"])
    assert ckpt["epoch"] == 1 and ckpt["step"] == 4
    for sd in ckpt["models"].values():
        assert all(torch.isfinite(t).all() for t in sd.values() if t.is_floating_point())
    for path in (run_dir / "checkpoints").glob("*.pt"):  # nothing was saved at or after the bad step
        assert load_checkpoint(path)["step"] < 5, path.name
    assert [e["epoch"] for e in records(run_dir, "epoch")] == [1]
    # the supervisor's (and headless's) status message names the step and the checkpoint
    oc = outcome(end, returncode=3, cancel_requested=False, killed_by_us=False, log_path=None)
    assert oc.status == "diverged" and "step 5" in oc.message and "checkpoints/last.pt (epoch 1, step 4)" in oc.message


def test_nan_in_the_first_epoch_has_no_healthy_checkpoint(tmp_path, grey):
    run_dir = make_run_dir(tmp_path, "mlp-gan", f"dataset=npz:{grey}", "width=8", "batch_size=16", "epochs=2",
                           "log_every=50", *CPU)
    out = run_worker(run_dir, env={"GANMGR_DEBUG_NAN_STEP": "5"})  # epoch 1 is steps 1-8
    assert out.returncode == 3, out.stderr
    end = records(run_dir, "end")[-1]
    assert end["step"] == 5 and end["epoch"] == 1 and "at step 5 (epoch 1)" in end["error"]
    assert end["healthy_checkpoint"] is None
    assert not list((run_dir / "checkpoints").glob("*.pt"))
    oc = outcome(end, returncode=3, cancel_requested=False, killed_by_us=False, log_path=None)
    assert "no healthy checkpoint" in oc.message


# ------------------------------------------------------------------------------------------ the run screen


def test_run_screen_shows_the_step_from_progress_records_before_any_window(home):
    run = make_run(home, "running", name="live", epochs=10)
    path = Path(run.run_dir) / "metrics.jsonl"

    def append(*recs: dict) -> None:
        with open(path, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in recs)

    append({"kind": "start", "epoch": 0, "step": 0, "epochs": 10, "steps_per_epoch": 39})

    async def scenario(app, pilot) -> None:
        screen = await open_run(app, pilot, run.id)
        title = screen.query_one("#run-title")
        losses = screen.query_one("#loss-chart", MetricChart)
        append({"kind": "progress", "epoch": 1, "step": 12, "steps_per_epoch": 39, "time": 1.0,
                "images_per_s": 64.0})
        await pilot_wait(pilot, lambda: "step 12" in plain(title), timeout=10, what="the step in the title")
        assert "3%" in plain(title)  # 12 of 390 steps
        await pilot_wait(pilot, lambda: "step 12: the first train window" in str(losses.border_subtitle),
                         timeout=10, what="the empty chart saying which step the run is at")
        append({"kind": "progress", "epoch": 1, "step": 20, "steps_per_epoch": 39, "time": 2.0},
               {"kind": "train", "epoch": 1, "step": 24, "gp": 0.5, "d_fake_source": 1.0, "d_real_source": 0.5,
                "d_real_class": 2.0, "d_fake_class": 2.1, "gen_source": -1.0, "gen_class": 2.2, "acc": 10.0})
        await pilot_wait(pilot, lambda: "step 24" in plain(title) and losses.drawn_points > 0, timeout=10,
                         what="the first window drawn")
        assert "waiting" not in str(losses.border_subtitle) and "first train window" not in str(
            losses.border_subtitle)

    drive(home, scenario, size=(140, 40))


# ------------------------------------------------------------------------------------------ the folds


def test_progress_fold_moves_step_epoch_progress_and_speed():
    fold = ProgressFold()
    fold.fold({"kind": "start", "epoch": 2, "step": 78, "epochs": 10, "steps_per_epoch": 39})
    fold.fold({"kind": "progress", "epoch": 3, "step": 90, "steps_per_epoch": 39, "time": 5.0,
               "images_per_s": 64.5})
    assert fold.fields["step"] == 90 and fold.fields["epoch"] == 2
    assert fold.fields["progress"] == pytest.approx(90 / 390) and fold.fields["images_per_s"] == 64.5
    assert "last_metrics" not in fold.fields  # a progress record carries no metrics
    fold.fold({"kind": "epoch", "epoch": 3, "step": 117, "images_per_s": 60.0})
    assert fold.fields["epoch"] == 3 and fold.fields["images_per_s"] == 60.0


def test_headless_view_speed_and_time_left_from_progress_records():
    view = HeadlessView(("d_loss",), ProgressFold(), batch_size=64)
    view.add({"kind": "start", "epoch": 0, "step": 0, "epochs": 2, "steps_per_epoch": 50})
    assert view.steps_per_s() is None and view.eta_text() == "eta -:--:--"
    for i in range(1, 6):  # a step every half second
        view.add({"kind": "progress", "epoch": 1, "step": 2 * i, "steps_per_epoch": 50, "time": 100.0 + i})
    assert view.steps_per_s() == pytest.approx(2.0)
    assert view.images_per_s() == pytest.approx(128.0) and view.speed_text() == "128.0 img/s"
    assert view.seconds_left() == pytest.approx((100 - 10) / 2.0)
    assert view.eta_text() == "eta 0:00:45"
    assert "step 10/100" in view.progress_line()
    view.add({"kind": "start", "epoch": 0, "step": 10, "epochs": 2, "steps_per_epoch": 50})  # a resume
    assert view.steps_per_s() is None


@pytest.mark.slow
def test_headless_without_a_terminal_prints_progress_lines_before_the_first_epoch_ends(tmp_path, npz):
    home = tmp_path / "store"
    data = tiny_npz(tmp_path / "long.npz", n_train=1600, n_test=32)  # 50 steps of 32
    out = subprocess.run(cli_argv("--home", str(home), "run", "--headless", "--recipe", "baseline", "--dataset",
                                  f"npz:{data}", "--epochs", "1", "--width", "8", "--batch-size", "32",
                                  "--device", "cpu", "--set", "threads=1", "--set", "log_every=1000"),
                         cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "GANMGR_DEBUG_STEP_SLEEP": "0.3"})
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    progress = [i for i, ln in enumerate(lines) if ln.startswith("step ") and "  epoch 1/1" in ln]
    epoch = [i for i, ln in enumerate(lines) if ln.startswith("epoch 1/1  test_acc")]
    assert progress and epoch and progress[0] < epoch[0], out.stdout
    line = lines[progress[0]]
    assert "/50" in line and "img/s" in line and "eta 0:" in line, line


# ------------------------------------------------------------------------------------------ the bench


@pytest.mark.slow
def test_bench_prices_the_live_side_against_the_quiet_one(tmp_path):
    """`python -m bench.train_speed --liveness`: both sides ran, interleaved, and the live side did write its
    windows (a tiny log_seconds closes one after each step); no speed is asserted."""
    out = tmp_path / "bench.jsonl"
    res = subprocess.run([sys.executable, "-m", "bench.train_speed", "--liveness", "--device", "cpu", "--width",
                          "8", "--batch-size", "32", "--steps", "3", "--warmup", "1", "--repeats", "2",
                          "--threads", "1", "--recipes", "baseline", "--log-seconds", "0.001", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert rec["kind"] == "liveness" and rec["recipe"] == "baseline" and rec["log_seconds"] == 0.001
    assert len(rec["quiet_images_per_s_all"]) == len(rec["live_images_per_s_all"]) == 2
    ratios = sorted(lv / q for q, lv in zip(rec["quiet_images_per_s_all"], rec["live_images_per_s_all"]))
    assert rec["ratio"] == pytest.approx(sum(ratios) / 2, rel=1e-2)
    assert all(n >= 3 for n in rec["live_records_per_run"]), rec["live_records_per_run"]
    assert "live/quiet" in res.stdout
