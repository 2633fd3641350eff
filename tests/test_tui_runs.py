"""Pilot tests of the runs screen against a real temporary store: every status shown, in-place refresh,
filtering, sorting, marks and compare, cancel, queue order, the welcome on an empty store, help, quit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.control.procs import process_start_token
from store import runs as store_runs
from store.lifecycle import STATUSES
from tests.tui_helpers import (
    drive,
    hold_supervisor_lock,
    make_run,
    plain,
    runs_in_every_status,
    wait_for,
    write_metrics,
)
from tui.charts.metric_chart import MetricChart
from tui.screens.compare import CompareScreen
from tui.screens.confirm import ConfirmModal
from tui.screens.help import HelpScreen
from tui.screens.runs import RunsScreen
from tui.screens.welcome import WelcomeModal
from tui.widgets.key_bar import KeyBar
from tui.widgets.runs_table import RunsTable


def table_of(app) -> RunsTable:
    return app.runs_screen.query_one(RunsTable)


def cell(app, run_id: int, column: str) -> str:
    value = table_of(app).get_cell(str(run_id), column)
    return getattr(value, "plain", value)


def put_cursor(app, run_id: int) -> None:
    assert table_of(app).select_run(run_id)


def test_table_shows_every_status_and_updates_in_place(home: Path) -> None:
    runs = runs_in_every_status(home)
    running = runs["running"]

    async def scenario(app, pilot) -> None:
        table = table_of(app)
        await wait_for(pilot, lambda: table.row_count == len(STATUSES), what="all runs in the table")
        for status, run in runs.items():
            assert status in cell(app, run.id, "status"), status
            assert cell(app, run.id, "name") == f"run-{status}"
        # The queue view: the running run first, then the queue, then finished runs newest first.
        assert table.run_ids[0] == running.id and table.run_ids[1] == runs["queued"].id
        assert "queued #1" in cell(app, runs["queued"].id, "status")
        assert cell(app, runs["completed"].id, "progress").endswith("100%")
        title = plain(app.runs_screen.query_one("#runs-title"))
        assert "1 running" in title and "1 queued" in title and f"{len(STATUSES)} runs" in title

        # The supervisor moves a run on: the table follows without a rebuild (cells change in place).
        rebuilds = table.rebuilds
        store_runs.update_progress(home, running.id, epoch=3, progress=0.75, last_test_acc=61.5)
        await wait_for(pilot, lambda: cell(app, running.id, "acc") == "61.5", what="the new accuracy")
        assert cell(app, running.id, "epoch") == "3/4" and "75%" in cell(app, running.id, "progress")
        assert table.rebuilds == rebuilds and table.cell_updates > 0

        # A new run (e.g. queued from the CLI) appears without any key press.
        new = make_run(home, "queued", name="from-the-cli")
        await wait_for(pilot, lambda: new.id in table.run_ids, what="the new run")
        assert "queued #2" in cell(app, new.id, "status")

    drive(home, scenario)


def test_filter_by_status_text_recipe_and_tag(home: Path) -> None:
    runs = runs_in_every_status(home)
    other = make_run(home, "completed", name="baseline-one", recipe="baseline", tags=("paper",))

    async def scenario(app, pilot) -> None:
        table = table_of(app)
        await wait_for(pilot, lambda: table.row_count == len(runs) + 1)
        await pilot.press("slash", *"status:failed,lost")
        await wait_for(pilot, lambda: set(table.run_ids) == {runs["failed"].id, runs["lost"].id})
        assert "2 shown" in plain(app.runs_screen.query_one("#runs-title"))
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == len(runs) + 1, what="the filter cleared")
        assert table.has_focus
        await pilot.press("slash", *"recipe:baseline")
        await wait_for(pilot, lambda: table.run_ids == [other.id])
        await pilot.press("enter")  # keeps the filter, back to the table
        assert table.has_focus and table.run_ids == [other.id]
        box = app.runs_screen.query_one("#runs-filter")
        box.value = "tag:paper"
        await wait_for(pilot, lambda: table.run_ids == [other.id])
        box.value = "run-div"
        await wait_for(pilot, lambda: table.run_ids == [runs["diverged"].id])
        box.value = "status:runing"  # a typo: said so, the last good filter stays
        await pilot.pause(0.1)
        assert box.has_class("-invalid")
        assert "unknown status 'runing'" in plain(app.runs_screen.query_one("#runs-empty"))
        box.value = "nothing-matches-this"
        await wait_for(pilot, lambda: table.row_count == 0)
        assert app.runs_screen.query_one("#runs-empty").display
        box.value = ""
        await pilot.press("slash", *"npz:/x")  # a "/" inside the filter is text, not the filter key
        assert box.value == "npz:/x"

    drive(home, scenario)


def test_sort_cycles_and_reverses(home: Path) -> None:
    runs = runs_in_every_status(home)

    async def scenario(app, pilot) -> None:
        table = table_of(app)
        await wait_for(pilot, lambda: table.row_count == len(runs))
        await pilot.press("s")  # queue -> id
        assert app.runs_screen.sort == "id"
        assert table.run_ids == sorted(table.run_ids)
        await pilot.press("S")
        assert table.run_ids == sorted(table.run_ids, reverse=True)
        for _ in range(3):  # id -> name -> status -> test acc
            await pilot.press("s")
        assert app.runs_screen.sort == "test acc"
        accs = [store_runs.get_run(home, i).last_test_acc for i in table.run_ids]
        known = [a for a in accs if a is not None]
        assert known == sorted(known)  # reversed: lowest first

    drive(home, scenario)


def test_mark_and_compare(home: Path) -> None:
    a = make_run(home, "completed", name="cmp-a", epochs=4, epoch=4)
    b = make_run(home, "completed", name="cmp-b", epochs=4, epoch=4, lr=0.0003)
    make_run(home, "completed", name="cmp-c")
    write_metrics(Path(a.run_dir), epochs=4, seed=1)
    write_metrics(Path(b.run_dir), epochs=3, seed=2)

    async def scenario(app, pilot) -> None:
        table = table_of(app)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.press("c")  # nothing marked: a hint, no screen
        assert isinstance(app.screen, RunsScreen)
        put_cursor(app, a.id)
        await pilot.press("space")
        put_cursor(app, b.id)
        await pilot.press("space")
        assert app.runs_screen.marks == {a.id, b.id}
        assert cell(app, a.id, "mark") == "●"
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="the compare screen")
        screen = app.screen
        chart = screen.query_one(MetricChart)
        await wait_for(pilot, lambda: len(chart.lines) == 2, what="two runs on the chart")
        assert screen.metric == "test_acc"
        assert chart.lines == [f"#{a.id} cmp-a", f"#{b.id} cmp-b"]
        diff = screen.query_one("#compare-diff")
        keys = [str(diff.get_row_at(i)[0]) for i in range(diff.row_count)]
        assert keys == ["lr", "name"]  # only what differs
        await pilot.press("m")
        assert screen.metric != "test_acc"
        draws = chart.draws
        await pilot.press("e")
        assert chart.draws == draws + 1 and screen.axis == "step"
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)

    drive(home, scenario)


def test_cancel_a_queued_run_after_confirming(home: Path) -> None:
    keep = make_run(home, "queued", name="keep-me")
    drop = make_run(home, "queued", name="drop-me")
    done = make_run(home, "completed", name="done")
    fd = hold_supervisor_lock(home)

    async def scenario(app, pilot) -> None:
        await wait_for(pilot, lambda: table_of(app).row_count == 3)
        put_cursor(app, keep.id)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")  # changed my mind
        assert store_runs.get_run(home, keep.id).status == "queued"
        put_cursor(app, drop.id)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await wait_for(pilot, lambda: "cancelled" in cell(app, drop.id, "status"), what="cancelled in the table")
        assert store_runs.get_run(home, drop.id).status == "cancelled"
        put_cursor(app, done.id)
        await pilot.press("x")  # a finished run: refused without a question
        assert isinstance(app.screen, RunsScreen)

    try:
        drive(home, scenario)
    finally:
        os.close(fd)


def test_cancel_a_running_run_signals_its_process(home: Path) -> None:
    """A headless run (its worker in the foreground of some terminal): cancel sends SIGTERM to it."""
    from engine.control.config import resolve_config
    from engine.control.submit import create_run

    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        cfg = resolve_config("baseline", {"width": 8, "epochs": 2, "name": "long-one"})
        run = create_run(home, cfg, status="running", managed_by="headless")
        store_runs.mark_started(home, run.id, pid=worker.pid, pid_start=process_start_token(worker.pid) or "0")

        async def scenario(app, pilot) -> None:
            await wait_for(pilot, lambda: run.id in table_of(app).run_ids)
            await pilot.press("x", "y")
            await wait_for(pilot, lambda: "stopping" in cell(app, run.id, "status"), what="stop requested")

        drive(home, scenario)
        assert worker.wait(timeout=30) == -15  # SIGTERM reached the worker
        assert store_runs.get_run(home, run.id).cancel_requested
    finally:
        if worker.poll() is None:
            worker.kill()


def test_queue_order_changes_with_plus_and_minus(home: Path) -> None:
    q = [make_run(home, "queued", name=f"q{i}") for i in range(3)]

    async def scenario(app, pilot) -> None:
        await wait_for(pilot, lambda: table_of(app).row_count == 3)
        put_cursor(app, q[2].id)
        await pilot.press("plus")
        await wait_for(pilot, lambda: [r.id for r in store_runs.queued_in_order(home)] == [q[0].id, q[2].id, q[1].id],
                       what="q2 moved ahead of q1")
        await wait_for(pilot, lambda: table_of(app).run_ids == [q[0].id, q[2].id, q[1].id])
        assert table_of(app).current_run_id() == q[2].id  # the cursor stays on the moved run
        await pilot.press("shift+up")
        await wait_for(pilot, lambda: store_runs.queued_in_order(home)[0].id == q[2].id)
        await pilot.press("minus")
        await wait_for(pilot, lambda: store_runs.queued_in_order(home)[1].id == q[2].id)

    drive(home, scenario)


def test_welcome_on_an_empty_store_offers_a_quick_start(home: Path) -> None:
    fd = hold_supervisor_lock(home)

    async def scenario(app, pilot) -> None:
        await wait_for(pilot, lambda: isinstance(app.screen, WelcomeModal)
                       and app.screen.query_one("#welcome-quick-text"), what="the welcome")
        text = " ".join(plain(w) for w in app.screen.query("Static"))
        assert "Quick start: acgan-wgangp" in text and "width" in text
        await pilot.press("enter")
        await wait_for(pilot, lambda: table_of(app).row_count == 1, what="the quick-start run")
        (run,) = store_runs.list_runs(home)
        assert run.name == "quickstart" and run.status == "queued" and run.dataset == "synthetic"

    try:
        drive(home, scenario, welcome=True)
    finally:
        os.close(fd)


def test_help_and_footer_list_every_action_at_80x24(home: Path) -> None:
    make_run(home, "completed", name="one")

    async def scenario(app, pilot) -> None:
        await wait_for(pilot, lambda: table_of(app).row_count == 1)
        bar = app.runs_screen.query_one(KeyBar)
        shown = [b for b in RunsScreen.BINDINGS if b.show]
        bar_text = plain(bar)
        for binding in shown:
            assert binding.description in bar_text, binding.description
        await wait_for(pilot, lambda: bar.size.height == plain(bar).count("\n") + 1, timeout=5,
                       what="the key bar to show all its lines")
        assert bar.size.height <= 3
        assert max(len(line) for line in bar_text.splitlines()) <= 78
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = plain(app.screen.query_one("#help-keys"))
        for binding in RunsScreen.BINDINGS:
            assert (binding.tooltip or binding.description) in help_text
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("q")
        await pilot.pause(0.2)

    app = drive(home, scenario)
    assert app.return_code in (0, None)
    assert store_runs.get_run(home, 1).status == "completed"
