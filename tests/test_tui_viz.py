"""The visualization launcher (`v`) in the real app: the form's checks, queueing a job that the real supervisor
runs (`python -m engine.compute.viz`), the job listed on the run screen, and its PNG shown when it completes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.widgets import Input, Select

from store import viz_jobs as store_viz
from tests.tui_helpers import drive, make_run, open_run, plain, wait_for, write_metrics, write_samples
from tui.forms.viz_form import baselines_from, check_viz_form, kinds_for
from tui.forms.viz_launch import VizLaunchScreen
from tui.widgets.image_panel import ImagePanel


def test_the_form_offers_what_the_run_can_take(home: Path) -> None:
    gan = make_run(home, "completed", name="g", epochs=2, epoch=2)
    base = make_run(home, "completed", recipe="baseline", name="b", epochs=2, epoch=2, test_acc=71.5)
    assert kinds_for(base) == ["perturb", "max_class", "max_features", "curves"]
    assert kinds_for(gan) == list(__import__("engine.control.viz_spec", fromlist=["x"]).VIZ_KINDS)
    assert baselines_from([gan, base]) == [(f"#{base.id} b  test 71.5%", base.id)]
    bad = check_viz_form("max_features", {"layer": "5", "iterations": "ten"}, "final", None)
    assert set(bad.errors) == {"layer", "iterations"} and "visualized layer" in bad.errors["layer"]
    assert check_viz_form("quality", {}, "final", None).errors == {
        "baseline": "pick a completed baseline run: its classifier scores the generator"}
    ok = check_viz_form("max_class", {"iterations": "50"}, "3", None)
    assert ok.ok and ok.request.epoch == 3 and ok.request.params["iterations"] == 50


@pytest.mark.slow
def test_v_queues_a_job_shows_its_progress_and_opens_its_png(home: Path) -> None:
    run = make_run(home, "completed", name="viz-me", epochs=3, epoch=3)
    write_metrics(Path(run.run_dir), epochs=3)
    write_samples(Path(run.run_dir), 3)

    async def scenario(app, pilot) -> None:
        screen = await open_run(app, pilot, run.id)
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, VizLaunchScreen), what="the launcher")
        form = app.screen
        # a bad parameter is shown under its input and nothing is queued
        form.query_one("#viz-kind", Select).value = "progression"
        await wait_for(pilot, lambda: form.texts().get("count") == "6", what="progression's inputs")
        count = form.query_one(f"#{form._input_id('count')}", Input)
        count.value = "0"
        await wait_for(pilot, lambda: "count" in plain(form.query_one("#err-p-count")), what="the count error")
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert isinstance(app.screen, VizLaunchScreen) and store_viz.list_viz_jobs(home) == []
        count.value = "2"
        await wait_for(pilot, lambda: plain(form.query_one("#err-p-count")) == "", what="the error gone")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is screen, what="back on the run screen")
        [job] = store_viz.list_viz_jobs(home)
        assert (job.kind, job.params) == ("progression", {"count": 2, "epochs": []})
        await wait_for(pilot, lambda: re.search(rf"#{job.id}\s+progression", plain(screen.query_one("#run-jobs"))),
                       what="the job listed")
        panel = screen.query_one(ImagePanel)
        await wait_for(pilot, lambda: panel.current is not None and panel.current.name == "progression.png",
                       timeout=240, what="the job's PNG in the image panel")
        done = store_viz.get_viz_job(home, job.id)
        assert done.status == "completed" and "completed" in plain(screen.query_one("#run-jobs"))
        assert panel.border_title == "visualization"

    drive(home, scenario, size=(160, 48))
