"""Pilot tests of the new-run form (bad input stays inline and creates nothing; good input is queued and
its row appears), the fork form (prefilled from the parent) and resume, against a real store.

The store's supervisor lock is held by the test, so `enqueue` starts no supervisor and the queued rows
stay as the form left them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from store import runs as store_runs
from tests.helpers import tiny_npz
from tests.tui_helpers import drive, hold_supervisor_lock, make_run, plain, wait_for
from tui.forms.new_run import NewRunScreen
from tui.screens.runs import RunsScreen
from tui.widgets.runs_table import RunsTable


@pytest.fixture
def locked(home: Path):
    fd = hold_supervisor_lock(home)
    yield home
    os.close(fd)


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz", n_train=64, n_test=32)


async def type_into(pilot, screen, key: str, text: str) -> None:
    """Focus an input the way a user does (select-all on focus) and type over its text."""
    inp = screen.query_one(f"#in-{key}")
    inp.focus()
    await pilot.pause()
    inp.select_all()
    await pilot.press(*text) if text else await pilot.press("backspace")


def error_of(screen, key: str) -> str:
    err = screen.query_one(f"#err-{key}")
    return plain(err) if err.has_class("-shown") else ""


@pytest.mark.slow
def test_form_rejects_bad_input_then_queues_good_input(locked: Path, npz: Path) -> None:
    home = locked

    async def scenario(app, pilot) -> None:
        await wait_for(pilot, lambda: app.runs_screen.loaded)
        await pilot.press("n")
        assert isinstance(app.screen, NewRunScreen)
        form = app.screen
        assert form.values()["epochs"] == "500" and form.values()["width"] == "196"  # recipe defaults

        await type_into(pilot, form, "epochs", "two")
        assert "'two' is not an integer" in error_of(form, "epochs")
        assert form.query_one("#in-epochs").has_class("-invalid")
        await type_into(pilot, form, "lr", "0")
        assert "lr=0.0 must be > 0" in error_of(form, "lr")
        await pilot.press("ctrl+s")  # refused: nothing is created, the form stays
        await pilot.pause(0.2)
        assert isinstance(app.screen, NewRunScreen)
        assert store_runs.list_runs(home) == []

        await type_into(pilot, form, "epochs", "1")
        await type_into(pilot, form, "lr", "0.0002")
        assert error_of(form, "epochs") == "" and error_of(form, "lr") == ""
        await type_into(pilot, form, "dataset", "npz:/no/such/file.npz")
        await type_into(pilot, form, "width", "8")
        await type_into(pilot, form, "batch_size", "32")
        await type_into(pilot, form, "tags", "tui,tiny")
        await type_into(pilot, form, "name", "from-the-form")
        await pilot.press("ctrl+s")  # the data check happens on submit: the missing file is named inline
        await wait_for(pilot, lambda: "does not exist" in error_of(form, "dataset"), what="the data error")
        assert store_runs.list_runs(home) == []

        await type_into(pilot, form, "dataset", f"npz:{npz}")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the form to close")
        (run,) = store_runs.list_runs(home)
        table = app.runs_screen.query_one(RunsTable)
        await wait_for(pilot, lambda: table.run_ids == [run.id], what="the new row")
        assert table.current_run_id() == run.id  # the cursor lands on the new run
        assert run.status == "queued" and run.name == "from-the-form" and run.tags == ("tui", "tiny")
        cfg = run.config
        assert (cfg["epochs"], cfg["width"], cfg["batch_size"], cfg["lr"]) == (1, 8, 32, 0.0002)
        assert cfg["dataset"] == f"npz:{npz}"
        assert Path(run.run_dir, "config.json").is_file()

    drive(home, scenario)


def test_recipe_switch_refills_untouched_defaults(locked: Path) -> None:
    async def scenario(app, pilot) -> None:
        await wait_for(pilot, lambda: app.runs_screen.loaded)
        await pilot.press("n")
        form = app.screen
        await type_into(pilot, form, "width", "8")
        select = form.query_one("#in-recipe")
        select.value = "baseline"
        await pilot.pause(0.1)
        values = form.values()
        assert values["epochs"] == "100"  # followed the new recipe's default
        assert values["width"] == "8"  # the user's value stays
        assert "classifier" in plain(form.query_one("#recipe-summary"))
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)

    drive(locked, scenario)


@pytest.mark.slow
def test_fork_prefills_from_the_parent_and_resume_requeues(locked: Path) -> None:
    home = locked
    import torch  # a checkpoint the worker's loader accepts: fork and resume check it before queueing

    parent = make_run(home, "completed", name="parent", epochs=4, epoch=4, lr=0.0003, tags=("base",))
    torch.save({"models": {}, "config": parent.config}, Path(parent.run_dir, "checkpoints", "last.pt"))
    checkpoint = Path(parent.run_dir, "checkpoints", "last.pt").read_bytes()
    failed = make_run(home, "failed", name="crashed", epochs=4, epoch=2)
    torch.save({"models": {}, "config": failed.config}, Path(failed.run_dir, "checkpoints", "last.pt"))

    async def scenario(app, pilot) -> None:
        table = app.runs_screen.query_one(RunsTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        assert table.select_run(parent.id)
        await pilot.press("f")
        assert isinstance(app.screen, NewRunScreen) and app.screen.fork
        form = app.screen
        values = form.values()
        assert values["lr"] == "0.0003" and values["width"] == "8" and values["tags"] == "base"
        assert values["epochs"] == "8"  # a finished run's fork is offered as many epochs again (issue 16)
        assert form.query_one("#in-recipe").disabled
        await type_into(pilot, form, "epochs", "4")
        await pilot.press("ctrl+s")  # the fork starts after epoch 4: refused under epochs, in the form's words
        await wait_for(pilot, lambda: "epochs must be above 4" in error_of(form, "epochs"), what="the refusal")
        assert error_of(form, "form") == "" and "--set" not in error_of(form, "epochs")
        await type_into(pilot, form, "epochs", "6")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        child = max(store_runs.list_runs(home), key=lambda r: r.id)
        assert child.parent_id == parent.id and child.parent_relation == "fork"
        assert child.config["epochs"] == 6 and child.config["lr"] == 0.0003 and child.status == "queued"
        assert Path(child.run_dir, "checkpoints", "init.pt").read_bytes() == checkpoint
        await wait_for(pilot, lambda: child.id in table.run_ids)

        assert table.select_run(failed.id)
        await pilot.press("r")
        await wait_for(pilot, lambda: store_runs.get_run(home, failed.id).status == "queued", what="requeued")
        await wait_for(pilot, lambda: "queued" in table.get_cell(str(failed.id), "status").plain)

    drive(home, scenario)
