"""Issue 16's TUI gaps, each driven as a user meets it (Textual Pilot on a real store in a temporary HOME):
tags and note edited in a dialog (the CLI's rule), delete with confirmation (what `ganmgr rm` does), the tags
column and `tag:x`, `ls --sort` (the table's order) and `--json`, the GAN column of the recipes without a
classifier, the header counting visualization jobs, the fork form's epochs (prefill and its error under the
field), one-point series drawn with a marker (TUI chart and matplotlib), and the no-CUDA duration estimate.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from engine.control.config import RECIPES
from engine.control.estimate import Measurement, estimate
from engine.control.follow import ProgressFold
from engine.control.machine import cuda_present
from store import runs as store_runs
from store import viz_jobs as store_viz
from store.checks import TAG_RULE
from tests.helpers import ganmgr
from tests.tui_helpers import drive, hold_supervisor_lock, make_run, plain, wait_for
from tui.forms.new_run import DEFAULT_RECIPE, NewRunScreen
from tui.present import fmt_duration
from tui.run_query import SORT_FIELDS, order_runs, sort_of_field
from tui.screens.confirm import ConfirmModal
from tui.screens.tags_notes import TagsNotesModal
from tui.widgets.runs_table import RunsTable


@pytest.fixture
def locked(home: Path):
    fd = hold_supervisor_lock(home)  # enqueue and fork start no supervisor: rows stay as the test left them
    yield home
    os.close(fd)


def table_of(app) -> RunsTable:
    return app.runs_screen.query_one(RunsTable)


def cell(app, run_id: int, column: str) -> str:
    value = table_of(app).get_cell(str(run_id), column)
    return getattr(value, "plain", value)


async def retype(pilot, widget, text: str) -> None:
    widget.focus()
    await pilot.pause()
    widget.select_all()
    await pilot.press(*text) if text else await pilot.press("backspace")


def shown_error(screen, key: str) -> str:
    err = screen.query_one(f"#err-{key}")
    return plain(err) if err.has_class("-shown") else ""


# ---------------------------------------------------------------------------------- tags, note, filter


def test_tags_and_note_dialog_uses_the_cli_rule_and_the_filter_finds_them(home: Path) -> None:
    run = make_run(home, "completed", name="to-tag", tags=("old",))
    other = make_run(home, "completed", name="untagged")

    async def scenario(app, pilot) -> None:
        table = table_of(app)
        await wait_for(pilot, lambda: table.row_count == 2)
        assert cell(app, run.id, "tags") == "old"
        assert table.select_run(run.id)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TagsNotesModal), what="the dialog")
        dialog = app.screen
        await retype(pilot, dialog.query_one("#in-tags"), "paper,bad tag!")
        assert TAG_RULE in shown_error(dialog, "tags")  # the store's words, under the field
        await pilot.press("ctrl+s")
        assert app.screen is dialog  # refused: nothing written
        assert store_runs.get_run(home, run.id).tags == ("old",)
        await retype(pilot, dialog.query_one("#in-tags"), "paper, best")
        assert shown_error(dialog, "tags") == ""
        dialog.query_one("#in-notes").text = "lr too high\nsee run 3"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: store_runs.get_run(home, run.id).notes == "lr too high\nsee run 3",
                       what="the note saved")
        assert store_runs.get_run(home, run.id).tags == ("paper", "best")
        await wait_for(pilot, lambda: cell(app, run.id, "tags") == "paper,best", what="the tags column")

        await pilot.press("slash", *"tag:best", "enter")
        await wait_for(pilot, lambda: table.run_ids == [run.id], what="the tag filter")
        assert other.id not in table.run_ids

    drive(home, scenario)


def test_escape_leaves_the_dialog_without_writing(home: Path) -> None:
    run = make_run(home, "completed", name="keep", tags=("a",))

    async def scenario(app, pilot) -> None:
        await wait_for(pilot, lambda: table_of(app).row_count == 1)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TagsNotesModal))
        await retype(pilot, app.screen.query_one("#in-tags"), "b")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, TagsNotesModal))
        await pilot.pause(0.3)
        assert store_runs.get_run(home, run.id).tags == ("a",)

    drive(home, scenario)


# ---------------------------------------------------------------------------------------------- delete


def test_delete_asks_then_removes_row_and_folder_and_refuses_a_running_run(home: Path) -> None:
    done = make_run(home, "completed", name="to-delete")
    live = make_run(home, "running", name="live")
    folder = Path(done.run_dir)
    assert folder.is_dir()

    async def scenario(app, pilot) -> None:
        table = table_of(app)
        await wait_for(pilot, lambda: table.row_count == 2)
        assert table.select_run(done.id)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the question")
        await pilot.press("n")
        await pilot.pause(0.3)
        assert store_runs.get_run(home, done.id) is not None and folder.is_dir()

        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_for(pilot, lambda: done.id not in table.run_ids, what="the row gone from the table")
        assert store_runs.get_run(home, done.id) is None and not folder.exists()

        assert table.select_run(live.id)
        await pilot.press("d")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmModal)  # refused before asking, as `ganmgr rm` refuses
        assert store_runs.get_run(home, live.id).status == "running" and Path(live.run_dir).is_dir()

    drive(home, scenario)


# ------------------------------------------------------------------------------------ ls --sort, --json


@pytest.mark.slow  # four CLI processes
def test_ls_sort_is_the_tables_order_and_refuses_an_unknown_field(home: Path) -> None:
    make_run(home, "completed", name="mid", test_acc=50.0)
    make_run(home, "completed", name="best", test_acc=80.0, recipe="acgan-wgangp")
    make_run(home, "failed", name="low", test_acc=10.0)
    make_run(home, "queued", name="waiting")
    views = store_runs.list_runs(home)
    listed = {}
    for field in ("test_acc", "status"):
        out = ganmgr(home, "ls", "--sort", field, "--json")
        assert out.returncode == 0, out.stderr
        listed[field] = json.loads(out.stdout)
        assert [r["id"] for r in listed[field]] == [r.id for r in order_runs(views, sort_of_field(field))], field
    assert [r["name"] for r in listed["test_acc"]] == ["best", "mid", "low", "waiting"]  # no value: last
    text = ganmgr(home, "ls", "--sort", "test_acc", "--reverse").stdout.splitlines()
    assert [ln.split()[1] for ln in text[1:4]] == ["low", "mid", "best"]
    bad = ganmgr(home, "ls", "--sort", "colour")
    assert bad.returncode == 2 and bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 1
    assert all(f in bad.stderr for f in SORT_FIELDS) and "colour" in bad.stderr


# --------------------------------------------------------------------------------------- the GAN column


def test_gan_column_shows_the_collapse_signal_and_losses_of_a_gan_without_classifier(home: Path) -> None:
    # The fold the supervisor and the headless runner use: the epoch's signal joins the last window's means.
    fold = ProgressFold()
    fold.fold({"kind": "train", "epoch": 1, "step": 5, "d_loss": 1.25, "g_loss": 0.75, "d_real": 0.6,
               "d_fake": 0.4})
    fold.fold({"kind": "epoch", "epoch": 1, "step": 5, "diversity": 0.42, "seconds": 1.0})
    metrics = fold.fields["last_metrics"]
    assert metrics["diversity"] == 0.42 and metrics["d_loss"] == 1.25
    fold.fold({"kind": "train", "epoch": 2, "step": 10, "d_loss": 1.5, "g_loss": 0.5, "d_real": 0.6,
               "d_fake": 0.4})
    assert fold.fields["last_metrics"]["diversity"] == 0.42  # the signal stays until the next epoch's

    gan = make_run(home, "completed", name="mlp", recipe="mlp-gan", dataset="synthetic28", epochs=2, epoch=2)
    store_runs.update_progress(home, gan.id, last_metrics=metrics)
    acgan = make_run(home, "completed", name="acgan", test_acc=55.0)

    async def scenario(app, pilot) -> None:
        await wait_for(pilot, lambda: table_of(app).row_count == 2)
        assert cell(app, gan.id, "gan") == "div 0.42 D 1.25 G 0.75"
        assert cell(app, gan.id, "acc") == ""
        assert cell(app, acgan.id, "gan") == "" and cell(app, acgan.id, "acc") == "55.0"

    drive(home, scenario)
    out = ganmgr(home, "ls")
    line = next(ln for ln in out.stdout.splitlines() if " mlp " in ln)
    assert "div 0.42 D 1.25 G 0.75" in line
    rows = {r["name"]: r for r in json.loads(ganmgr(home, "ls", "--json").stdout)}
    assert rows["mlp"]["gan"] == {"diversity": 0.42, "d_loss": 1.25, "g_loss": 0.75}
    assert rows["acgan"]["gan"] is None and rows["acgan"]["shown_status"] == "completed"


# -------------------------------------------------------------------------------------- the header


def test_header_counts_visualization_jobs(home: Path) -> None:
    run = make_run(home, "completed", name="has-a-report")
    job = store_viz.create_viz_job(home, run_id=run.id, kind="curves", params={})

    async def scenario(app, pilot) -> None:
        title = app.runs_screen.query_one("#runs-title")
        await wait_for(pilot, lambda: "1 queued (1 viz)" in plain(title), what="the queued job counted")
        assert "0 running" in plain(title)
        store_viz.set_viz_status(home, job.id, "running", pid=os.getpid())
        await wait_for(pilot, lambda: "1 running (1 viz)" in plain(title), what="the running job counted")
        assert "0 queued" in plain(title)
        store_viz.set_viz_status(home, job.id, "completed")
        await wait_for(pilot, lambda: "0 running" in plain(title) and "viz" not in plain(title))

    drive(home, scenario)


# ---------------------------------------------------------------------------------------------- fork


def test_fork_prefills_epochs_that_work_and_puts_the_epochs_error_under_its_field(locked: Path) -> None:
    home = locked
    parent = make_run(home, "completed", name="done", epochs=4, epoch=4)
    stopped = make_run(home, "failed", name="stopped-early", epochs=6, epoch=2)

    async def scenario(app, pilot) -> None:
        table = table_of(app)
        await wait_for(pilot, lambda: table.row_count == 2)
        assert table.select_run(parent.id)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen))
        form = app.screen
        assert form.values()["epochs"] == "8"  # its 4 epochs + 4 more
        assert form.check().ok and shown_error(form, "epochs") == ""
        await retype(pilot, form.query_one("#in-epochs"), "3")
        message = shown_error(form, "epochs")
        assert "epochs must be above 4" in message and "--set" not in message
        assert shown_error(form, "form") == "" and shown_error(form, "extra") == ""
        await pilot.press("ctrl+s")
        await pilot.pause(0.3)
        assert app.screen is form and len(store_runs.list_runs(home)) == 2  # nothing queued
        await retype(pilot, form.query_one("#in-fork_epoch"), "2")  # from epoch 2: epochs 3 is fine now
        assert shown_error(form, "epochs") == ""
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, NewRunScreen))

        assert table.select_run(stopped.id)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen))
        assert app.screen.values()["epochs"] == "6"  # stopped at 2 of 6: its own target still lies ahead

    drive(home, scenario)


# ----------------------------------------------------------------------------------- one-point series


def test_a_one_point_series_is_drawn_as_a_marker_in_the_tui_chart(home: Path) -> None:
    from rich.console import Console

    from tui.charts.metric_chart import MetricChart
    from tui.charts.series import Series

    async def scenario(app, pilot) -> None:
        chart = MetricChart("one point")
        await app.screen.mount(chart)
        await pilot.pause()
        s = Series()
        s.append(1.0, 0.5)
        chart.draw({"d_loss": s})
        await pilot.pause()
        plot = chart.query_one("PlotextPlot")
        console = Console(width=plot.size.width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
        text = "".join(seg.text for line in plot.render_lines(plot.region.reset_offset) for seg in line)
        del console
        assert chart.drawn_points == 1 and chart.lines == ["d_loss"]
        assert "•" in text or "●" in text  # a visible marker, not an empty line

    drive(home, scenario, size=(100, 40))


@pytest.mark.slow  # imports torch and matplotlib
def test_a_one_epoch_runs_curves_draw_markers(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from engine.compute.viz import curves
    from engine.compute.viz.job import Job
    from engine.control.config import resolve_config
    from engine.control.records import MetricsWriter
    from engine.control.run_dir import write_run_config

    run_dir, out = tmp_path / "run", tmp_path / "job"
    run_dir.mkdir()
    out.mkdir()
    write_run_config(run_dir, resolve_config("mlp-gan", {"epochs": 1, "dataset": "synthetic28"}))
    recs = [{"kind": "start", "epoch": 0, "step": 0, "steps_per_epoch": 5, "epochs": 1},
            {"kind": "train", "epoch": 1, "step": 5, "d_loss": 1.2, "g_loss": 0.8, "d_real": 0.6, "d_fake": 0.4},
            {"kind": "epoch", "epoch": 1, "step": 5, "diversity": 0.5}]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    job = Job("curves", {"device": "cpu"}, run_dir, "checkpoints/final.pt", None, None, out, out,
              MetricsWriter(out / "metrics.jsonl", who="viz"), log=lambda _line: None)
    result = curves.run(job)
    assert result["losses"] == {"d_loss": 1, "g_loss": 1}
    for name, colour in (("losses.png", (0x1F, 0x77, 0xB4)), ("signals.png", (0x1F, 0x77, 0xB4))):
        img = np.asarray(Image.open(out / name).convert("RGB")).astype(int)
        near = (np.abs(img - np.array(colour)).sum(axis=2) < 60).sum()
        assert near >= 20, f"{name}: {near} pixels of the series colour (a line through one point draws none)"


# ------------------------------------------------------------------------------ no CUDA: the estimate


@pytest.mark.skipif(cuda_present(), reason="this machine has a CUDA device: the form shows no CPU warning")
def test_new_run_form_on_a_cpu_machine_says_so_and_estimates_from_a_measured_run(locked: Path) -> None:
    home = locked
    measured = make_run(home, "completed", name="measured", epochs=2, epoch=2)  # acgan-wgangp, width 8
    assert measured.host == socket.gethostname()  # the supervisor's host: this machine
    store_runs.update_progress(home, measured.id, images_per_s=4000.0)
    Path(measured.run_dir, "metrics.jsonl").write_text(json.dumps(
        {"kind": "start", "epoch": 0, "step": 0, "epochs": 2, "train_images": 24000}) + "\n")
    # the default form: width 196, the recipe's epochs: 4000 img/s at width 8 is (8/196)^2 of that at 196
    cfg = RECIPES[DEFAULT_RECIPE].default_config()
    seconds = cfg["epochs"] * 24000 / (4000.0 * (8 / cfg["width"]) ** 2)
    assert estimate(cfg, [Measurement(1, DEFAULT_RECIPE, "synthetic", (), 8, 4000.0, 24000)]).seconds == \
        pytest.approx(seconds)

    async def scenario(app, pilot) -> None:
        await wait_for(pilot, lambda: table_of(app).row_count == 1)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen))
        form = app.screen
        line = form.query_one("#run-estimate")
        await wait_for(pilot, lambda: "≈" in plain(line), what="the estimate")
        text = plain(line)
        assert "no CUDA device" in text and fmt_duration(seconds) in text and f"run #{measured.id}" in text
        await retype(pilot, form.query_one("#in-dataset"), "synthetic64")  # nothing measured on it
        await wait_for(pilot, lambda: "was measured here yet" in plain(line), what="no figure")
        assert "no CUDA device" in plain(line) and "first epoch" in plain(line)

    drive(home, scenario)


def test_cuda_probe_reads_the_driver_and_nvidia_smi_without_torch(tmp_path: Path) -> None:
    gpus = tmp_path / "gpus"
    assert cuda_present(which=lambda _: None, proc_gpus=gpus, environ={}) is False
    gpus.mkdir()
    (gpus / "0000:01:00.0").mkdir()
    assert cuda_present(which=lambda _: None, proc_gpus=gpus, environ={}) is True
    assert cuda_present(which=lambda _: None, proc_gpus=gpus, environ={"CUDA_VISIBLE_DEVICES": ""}) is False
    assert cuda_present(which=lambda _: "/usr/bin/nvidia-smi", proc_gpus=tmp_path / "none", environ={}) is True
    code = "import sys; from engine.control.machine import cuda_present; cuda_present(); print('torch' in sys.modules)"
    out = subprocess.run([sys_python(), "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False", out.stderr


def sys_python() -> str:
    import sys

    return sys.executable
