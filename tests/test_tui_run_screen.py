"""Pilot tests of the run screen against real run folders: charts that grow as metrics.jsonl grows, axis and
smoothing switches, the log tail, stepping through sample grids, and handing an image to a viewer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from store import runs as store_runs
from tests.tui_helpers import (
    LOSSES,
    drive,
    make_run,
    open_run,
    plain,
    wait_for,
    write_metrics,
    write_png,
    write_samples,
)
from tui.charts.metric_chart import DRAW_POINTS_PER_COLUMN, MetricChart
from tui.charts.series import TEST_ACC, TRAIN_ACC
from tui.screens.file_location import FileLocationModal
from tui.screens.run_detail import RunScreen
from tui.widgets.image_panel import ImagePanel


def test_charts_follow_the_metrics_file(home: Path) -> None:
    run = make_run(home, "running", name="live", epochs=10, epoch=1)
    run_dir = Path(run.run_dir)
    write_metrics(run_dir, epochs=1)
    (run_dir / "log.txt").write_text("--- started ---\nepoch 1 done\n")

    async def scenario(app, pilot) -> None:
        screen = await open_run(app, pilot, run.id)
        losses = screen.query_one("#loss-chart", MetricChart)
        accs = screen.query_one("#acc-chart", MetricChart)
        await wait_for(pilot, lambda: losses.lines == list(LOSSES), what="the five loss terms drawn")
        assert accs.lines == [TRAIN_ACC, TEST_ACC]
        legend = plain(losses.query_one(".chart-legend"))
        for name in LOSSES:
            assert name in legend
        step_points = len(screen.charts_data.loss_series["step"]["gp"])
        assert step_points == 5
        draws = losses.draws

        # The worker appends two more epochs: the charts grow within about a second.
        write_metrics(run_dir, epochs=2, first_epoch=2, append=True, seed=3)
        with open(run_dir / "log.txt", "a") as f:
            f.write("epoch 2 done\nepoch 3 done\n")
        await wait_for(pilot, lambda: len(screen.charts_data.loss_series["step"]["gp"]) == 15, timeout=5,
                       what="the appended records")
        await wait_for(pilot, lambda: losses.draws > draws, timeout=5, what="a redraw")
        assert screen.charts_data.acc_series["epoch"][TEST_ACC].xs == [1.0, 2.0, 3.0]
        log_text = "\n".join(screen.query_one("#run-log").lines)
        assert "epoch 3 done" in log_text and "--- started ---" in log_text

        # A half-written line is not read until its newline arrives.
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"kind": "train", "epoch": 4, "step": 999, "gp": 0.1})[:-1])
        await pilot.pause(1.2)
        assert len(screen.charts_data.loss_series["step"]["gp"]) == 15
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write("}\n")
        await wait_for(pilot, lambda: len(screen.charts_data.loss_series["step"]["gp"]) == 16, timeout=5)

        # Epoch axis: per-epoch means; smoothing says so in the chart's subtitle.
        await pilot.press("e")
        assert screen.axis == "epoch" and "x: epoch" in str(losses.border_subtitle)
        assert losses.drawn_points == 5 * 3
        await pilot.press("s")
        assert "smoothed" in str(losses.border_subtitle)
        await pilot.press("e", "s")
        assert screen.axis == "step" and not screen.smooth

        # The row's progress reaches the title line (read from the store every second).
        store_runs.update_progress(home, run.id, epoch=3, progress=0.3, images_per_s=1234.0)
        await wait_for(pilot, lambda: "epoch 3/10" in plain(screen.query_one("#run-title")))
        assert "1.2k img/s" in plain(screen.query_one("#run-title"))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, RunScreen))

    drive(home, scenario, size=(160, 48))


def test_long_runs_draw_a_bounded_number_of_points(home: Path) -> None:
    run = make_run(home, "completed", name="long", epochs=400, epoch=400)
    write_metrics(Path(run.run_dir), epochs=400, windows_per_epoch=20)  # 8,000 train windows

    async def scenario(app, pilot) -> None:
        screen = await open_run(app, pilot, run.id)
        losses = screen.query_one("#loss-chart", MetricChart)
        await wait_for(pilot, lambda: len(screen.charts_data.loss_series["step"]["gp"]) == 8000, timeout=20)
        await wait_for(pilot, lambda: losses.lines == list(LOSSES), timeout=5)
        width = losses.query_one("PlotextPlot").size.width
        # the drawing cap (issue 16): about DRAW_POINTS_PER_COLUMN (4) points per column and line
        assert 0 < losses.drawn_points <= 5 * (DRAW_POINTS_PER_COLUMN * width + 2)

    drive(home, scenario)


def test_sample_grids_step_and_follow_new_epochs(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(home, "running", name="grids", epochs=10, epoch=3)
    run_dir = Path(run.run_dir)
    write_samples(run_dir, 3)
    write_png(run_dir / "viz" / "job-1" / "saliency.png", seed=9)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)

    async def scenario(app, pilot) -> None:
        screen = await open_run(app, pilot, run.id)
        panel = screen.query_one(ImagePanel)
        await wait_for(pilot, lambda: len(panel.paths) == 4, what="the images")
        assert panel.paths[-1] == "viz/job-1/saliency.png"
        assert panel.current == run_dir / "samples" / "epoch_003.png"  # the newest grid first
        assert "epoch 3" in str(panel.border_title)
        await pilot.press("left")
        assert panel.current.name == "epoch_002.png"
        assert "samples/epoch_002.png  (2/4)" in plain(panel.query_one("#image-caption"))
        await pilot.press("left")
        assert panel.current.name == "epoch_001.png"
        await pilot.press("left")  # from the first: wraps round to the last image (issue 16)
        assert panel.current.name == "saliency.png"
        await pilot.press("right")  # and back round to the first
        assert panel.current.name == "epoch_001.png"
        await pilot.press("right")
        assert panel.current.name == "epoch_002.png"
        view = panel.query_one(".image-view")
        assert view.image is not None and view.image.size == (64, 64)

        write_png(run_dir / "samples" / "epoch_004.png", seed=4)  # a new epoch while looking at an old one
        await wait_for(pilot, lambda: len(panel.paths) == 5, what="the new grid")
        assert panel.current.name == "epoch_002.png"  # stays
        await pilot.press("right", "right")
        assert panel.current.name == "epoch_004.png"
        write_png(run_dir / "samples" / "epoch_005.png", seed=5)  # on the newest: follows
        await wait_for(pilot, lambda: panel.current is not None and panel.current.name == "epoch_005.png")

        await pilot.press("i")  # the image full size, and back
        assert screen.maximized is panel
        await pilot.press("escape")
        assert screen.maximized is None and isinstance(app.screen, RunScreen)

        await pilot.press("o")  # no display here: the path and a ready scp line
        assert isinstance(app.screen, FileLocationModal)
        text = plain(app.screen.query_one("#file-scp"))
        assert text.startswith("scp ") and str(run_dir / "samples" / "epoch_005.png") in text and text.endswith(" .")
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)

        # The shown file disappears (the run is deleted from the CLI): nothing breaks, the list follows.
        (run_dir / "samples" / "epoch_005.png").unlink()
        screen.query_one(ImagePanel).refresh(layout=True)
        await wait_for(pilot, lambda: len(panel.paths) == 5 and panel.current.name == "epoch_004.png")

    drive(home, scenario)


def test_narrow_terminal_switches_between_charts_and_details(home: Path) -> None:
    run = make_run(home, "completed", name="narrow", epochs=2, epoch=2)
    write_metrics(Path(run.run_dir), epochs=2)
    write_samples(Path(run.run_dir), 2)

    async def scenario(app, pilot) -> None:
        screen = await open_run(app, pilot, run.id)
        assert screen.has_class("-narrow")
        charts, side = screen.query_one("#run-charts"), screen.query_one("#run-side")
        assert charts.display and not side.display
        await pilot.press("d")
        await pilot.pause()
        assert side.display and not charts.display
        assert "acgan-wgangp" in plain(screen.query_one("#run-info"))
        await pilot.press("d")
        await pilot.pause()
        assert charts.display

    drive(home, scenario, size=(80, 24))
