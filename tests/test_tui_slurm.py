"""Pilot tests of the TUI's Slurm and sweep parts (issue 8) against a real store; no Slurm needed.

Slurm rows are walked through the store functions the supervisor uses (claim_next_slurm, record_submission,
update_cluster_state, add_event, set_status), so the TUI reads what it would read while a cluster runs
them. The store's supervisor lock is held by the test, so the form's enqueue starts no supervisor and a
queued Slurm row stays as the form left it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from engine.control.config import resolve_config
from engine.control.submit import create_run
from store import runs as store_runs
from store import settings as store_settings
from store.views import RunView
from tests.helpers import tiny_npz
from tests.tui_helpers import drive, hold_supervisor_lock, make_run, plain, wait_for
from tui.forms.new_run import NewRunScreen
from tui.present import PENDING_STYLE
from tui.run_query import FilterError, parse_filter
from tui.screens.help import HelpScreen
from tui.screens.run_detail import RunScreen
from tui.screens.runs import RunsScreen
from tui.widgets.runs_table import RunsTable

OPTIONS = {"partition": "gpu", "time": "04:00:00", "gres": "gpu:1", "grace_s": 120, "extra": []}


@pytest.fixture
def locked(home: Path):
    fd = hold_supervisor_lock(home)
    yield home
    os.close(fd)


def slurm_run(home: Path, name: str, *, state: str | None = "PENDING", reason: str | None = None,
              job: str = "101", sweep: str | None = None, notes: str = "", epoch: int = 0, epochs: int = 4,
              test_acc: float | None = None, final: str | None = None, max_segments: int | None = None,
              options: dict[str, Any] | None = None) -> RunView:
    """A slurm-backend run walked to `state` (None: still queued; SUBMITTING: claimed, sbatch not answered;
    PENDING/RUNNING: submitted as `job`), then to the terminal status `final` when given."""
    cfg = resolve_config("acgan-wgangp", {"epochs": epochs, "width": 8, "batch_size": 32, "name": name})
    tags = ("sweep", f"sweep:{sweep}") if sweep else ()
    view = create_run(home, cfg, tags=tags, notes=notes, status="queued", backend="slurm",
                      backend_options=dict(options or OPTIONS), max_segments=max_segments, sweep=sweep)
    if state is None:
        return view
    claimed = store_runs.claim_next_slurm(home, host="login1", sweep=sweep)
    assert claimed is not None and claimed.id == view.id
    if state != "SUBMITTING":
        store_runs.record_submission(home, view.id, job, message=f"segment 1: Slurm job {job} submitted")
        store_runs.update_cluster_state(home, view.id, state=state, reason=reason)
    if state == "RUNNING":
        store_runs.add_event(home, view.id, "running", f"Slurm job {job} is running")
        progress: dict[str, Any] = {"epoch": epoch, "progress": epoch / epochs}
        if test_acc is not None:
            progress.update(last_test_acc=test_acc, best_test_acc=test_acc)
        store_runs.update_progress(home, view.id, **progress)
    if final is not None:
        store_runs.set_status(home, view.id, final, cluster_state="COMPLETED" if final == "completed" else
                              "FAILED")
    return store_runs.get_run(home, view.id)  # type: ignore[return-value]


def table_of(app) -> RunsTable:
    return app.runs_screen.query_one(RunsTable)


def cell(app, run_id: int, column: str) -> str:
    value = table_of(app).get_cell(str(run_id), column)
    return getattr(value, "plain", value)


def cell_style(app, run_id: int, column: str) -> str:
    return str(table_of(app).get_cell(str(run_id), column).style)


async def type_into(pilot, screen, key: str, text: str) -> None:
    """Focus an input the way a user does and type over its text."""
    inp = screen.query_one(f"#in-{key}")
    inp.focus()
    await pilot.pause()
    inp.select_all()
    await pilot.press(*text) if text else await pilot.press("backspace")


async def set_text(pilot, screen, key: str, text: str) -> None:
    """Put text into an input at once (the fields whose typing other tests already cover)."""
    screen.query_one(f"#in-{key}").value = text
    await pilot.pause()


def error_of(screen, key: str) -> str:
    err = screen.query_one(f"#err-{key}")
    return plain(err) if err.has_class("-shown") else ""


# ----------------------------------------------------------------------------------------- the form


@pytest.mark.slow
def test_form_slurm_fields_prefilled_checked_and_submitted(locked: Path, tmp_path: Path) -> None:
    home = locked
    npz = tiny_npz(tmp_path / "tiny.npz", n_train=64, n_test=32)
    store_settings.set_setting(home, "backend", "slurm")
    store_settings.set_setting(home, "slurm_options", {"partition": "gpu", "gres": "gpu:1", "job_name": "nightly"})

    async def scenario(app, pilot) -> None:
        await wait_for(pilot, lambda: app.runs_screen.loaded)
        await pilot.press("n")
        form = app.screen
        assert isinstance(form, NewRunScreen)
        # The store's default backend and options are what the form starts from.
        assert form.query_one("#in-backend").value == "slurm"
        assert form.query_one("#slurm-fields").display
        values = form.values()
        assert values["slurm-partition"] == "gpu" and values["slurm-gres"] == "gpu:1"
        assert values["slurm-time"] == "" and values["slurm-max-segments"] == ""

        for key, text in (("dataset", f"npz:{npz}"), ("epochs", "1"), ("width", "8"), ("batch_size", "32"),
                          ("name", "on-the-cluster")):
            await set_text(pilot, form, key, text)
        await type_into(pilot, form, "slurm-time", "4h")  # not a Slurm time: refused as the CLI refuses it
        assert "slurm time='4h' is not a Slurm time" in error_of(form, "slurm-time")
        assert form.query_one("#in-slurm-time").has_class("-invalid")
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert isinstance(app.screen, NewRunScreen)
        assert store_runs.list_runs(home) == []  # nothing created

        await type_into(pilot, form, "slurm-time", "04:00:00")
        await set_text(pilot, form, "slurm-grace", "99999")
        assert "grace_s=99999" in error_of(form, "slurm-grace") and error_of(form, "slurm-time") == ""
        await set_text(pilot, form, "slurm-grace", "300")
        await set_text(pilot, form, "slurm-max-segments", "0")
        assert "--max-segments 0 must be from 1 to 1000" in error_of(form, "slurm-max-segments")
        await set_text(pilot, form, "slurm-max-segments", "5")
        await set_text(pilot, form, "slurm-extra-sbatch", "--output=/tmp/x")
        assert "--output is set by ganmgr" in error_of(form, "slurm-extra-sbatch")
        await type_into(pilot, form, "slurm-extra-sbatch", "--constraint=a100")
        await set_text(pilot, form, "slurm-cpus-per-task", "4")
        await set_text(pilot, form, "slurm-mem", "16G")
        await type_into(pilot, form, "slurm-gres", "")  # a cleared default is dropped, not put back
        assert not any(error_of(form, k) for k in ("slurm-time", "slurm-grace", "slurm-max-segments",
                                                   "slurm-extra-sbatch", "form"))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the form to close")

        (run,) = store_runs.list_runs(home)
        assert (run.backend, run.managed_by, run.status, run.max_segments) == ("slurm", "slurm", "queued", 5)
        assert run.backend_options == {"partition": "gpu", "time": "04:00:00", "cpus_per_task": 4,
                                       "mem": "16G", "grace_s": 300, "job_name": "nightly",
                                       "extra": ["--constraint=a100"]}
        assert run.name == "on-the-cluster" and run.config["epochs"] == 1
        await wait_for(pilot, lambda: run.id in table_of(app).run_ids, what="the new row")
        assert cell(app, run.id, "job") == "slurm"  # not submitted yet
        assert "#" not in cell(app, run.id, "status")  # Slurm schedules it: no place in the local queue

    drive(home, scenario, size=(100, 30))


def test_form_local_backend_hides_and_ignores_the_slurm_fields(locked: Path, tmp_path: Path) -> None:
    home = locked
    npz = tiny_npz(tmp_path / "tiny.npz", n_train=64, n_test=32)

    async def scenario(app, pilot) -> None:
        await wait_for(pilot, lambda: app.runs_screen.loaded)
        await pilot.press("n")
        form = app.screen
        assert form.query_one("#in-backend").value == "local"  # no setting: local
        assert not form.query_one("#slurm-fields").display
        form.query_one("#in-backend").value = "slurm"
        await wait_for(pilot, lambda: form.query_one("#slurm-fields").display, what="the slurm fields")
        await type_into(pilot, form, "slurm-time", "soon")
        assert "is not a Slurm time" in error_of(form, "slurm-time")
        form.query_one("#in-backend").value = "local"
        await wait_for(pilot, lambda: not form.query_one("#slurm-fields").display, what="the fields hidden")
        assert error_of(form, "slurm-time") == ""
        for key, text in (("dataset", f"npz:{npz}"), ("epochs", "1"), ("width", "8"), ("batch_size", "32")):
            await set_text(pilot, form, key, text)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the form to close")
        (run,) = store_runs.list_runs(home)
        assert (run.backend, run.managed_by, run.backend_options) == ("local", "supervisor", {})

    drive(home, scenario, size=(100, 30))


# ---------------------------------------------------------------------------------------- the table


def test_table_shows_pending_with_the_reason_and_the_job_id(home: Path) -> None:
    local = make_run(home, "running", name="local-run", epoch=1)
    local_queued = make_run(home, "queued", name="local-queued")
    pending = slurm_run(home, "waits", reason="Priority", job="2001")
    submitting = slurm_run(home, "being-sent", state="SUBMITTING")
    running = slurm_run(home, "trains", state="RUNNING", job="2002", epoch=2)
    queued = slurm_run(home, "not-sent", state=None)

    async def scenario(app, pilot) -> None:
        table = table_of(app)
        await wait_for(pilot, lambda: table.row_count == 6, what="all runs")
        assert cell(app, pending.id, "status") == "◷ pending"
        assert cell_style(app, pending.id, "status") == PENDING_STYLE
        assert cell(app, pending.id, "progress") == "Priority"  # Slurm's reason where the bar would be
        assert cell(app, pending.id, "job") == "2001"
        assert cell(app, submitting.id, "status") == "◷ pending"
        assert cell(app, submitting.id, "progress") == "submitting"
        assert cell(app, running.id, "status") == "▶ running"
        assert cell_style(app, running.id, "status") != PENDING_STYLE
        assert cell(app, running.id, "job") == "2002" and "50%" in cell(app, running.id, "progress")
        assert cell(app, local.id, "job") == "" and cell(app, local.id, "status") == "▶ running"
        assert cell(app, local_queued.id, "status") == "… queued #1"
        assert cell(app, queued.id, "status") == "… queued" and cell(app, queued.id, "job") == "slurm"
        title = plain(app.runs_screen.query_one("#runs-title"))
        assert "2 pending" in title and "2 running" in title, title

        # The supervisor's next poll: the reason changes, then the job starts; the rows follow.
        store_runs.update_cluster_state(home, pending.id, state="PENDING", reason="Resources")
        await wait_for(pilot, lambda: cell(app, pending.id, "progress") == "Resources", what="the new reason")
        store_runs.update_cluster_state(home, pending.id, state="RUNNING")
        store_runs.update_progress(home, pending.id, epoch=1, progress=0.25)
        await wait_for(pilot, lambda: cell(app, pending.id, "status") == "▶ running", what="the job running")
        assert "25%" in cell(app, pending.id, "progress") and cell(app, pending.id, "job") == "2001"

        # The filter knows the word too.
        await pilot.press("slash", *"pending", "enter")
        await wait_for(pilot, lambda: table.run_ids == [submitting.id], what="only pending runs")

    drive(home, scenario, size=(100, 30))


def test_filter_terms_for_sweeps_backends_and_pending() -> None:
    f = parse_filter("sweep:grid b:slurm pending")
    assert (f.sweeps, f.backends, f.statuses) == ({"grid"}, {"slurm"}, {"pending"})
    assert not f.empty
    with pytest.raises(FilterError, match="unknown backend 'pbs'"):
        parse_filter("backend:pbs")


# --------------------------------------------------------------------------------------- the detail


def test_detail_shows_the_show_lines_and_the_segment_history(home: Path) -> None:
    from tui.present import backend_lines

    store_settings.set_setting(home, "max_segments", 7)  # a run without its own limit shows the store's
    run = slurm_run(home, "long-one", state="RUNNING", job="3001", epoch=2, epochs=8, max_segments=5,
                    sweep="grid", notes="lr=0.0002")
    other = slurm_run(home, "no-limit", state="PENDING", reason="Resources", job="3100")
    store_runs.add_event(home, run.id, "running", "segment 1 ended: timed out (wall-time limit); the worker "
                                                  "says cancelled at epoch 2")
    store_runs.record_submission(home, run.id, "3002", message="segment 2: Slurm job 3002 submitted (the "
                                                              "worker checkpointed on the time-limit warning)")
    store_runs.update_cluster_state(home, run.id, state="PENDING", reason="Priority")
    local = make_run(home, "completed", name="plain-local", epoch=4)

    async def scenario(app, pilot) -> None:
        table = table_of(app)
        await wait_for(pilot, lambda: table.row_count == 3, what="the runs")
        assert table.select_run(run.id)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        panel = screen.query_one("#run-cluster")
        await wait_for(pilot, lambda: "segment 2: Slurm job 3002" in plain(panel), what="the history")
        text = plain(panel)
        view = store_runs.get_run(home, run.id)
        for key, value in backend_lines(view, 7):  # what `ganmgr show` prints, line by line
            assert key in text and " ".join(value.split()) in " ".join(text.split()), (key, value)
        squeezed = " ".join(text.split())
        assert squeezed.startswith("backend slurm ") and all(
            f" {o} " in squeezed for o in ("partition=gpu", "time=04:00:00", "gres=gpu:1", "grace_s=120"))
        assert "cluster job 3002 PENDING (Priority)" in squeezed
        assert "segments 2 of at most 5" in squeezed and "sweep grid" in squeezed
        assert "Slurm job 3001 is running" in text and "segment 1 ended: timed out" in text
        title = plain(screen.query_one("#run-title"))
        assert "◷ pending" in title and "slurm job 3002" in title and "waiting: Priority" in title
        await pilot.press("escape")

        assert table.select_run(other.id)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run.id == other.id)
        panel = app.screen.query_one("#run-cluster")
        await wait_for(pilot, lambda: "7 (the store's max_segments)" in plain(panel), what="the store's limit")
        assert "3100 PENDING (Resources)" in " ".join(plain(panel).split())
        await pilot.press("escape")

        assert table.select_run(local.id)  # a local run has no slurm panel
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run.id == local.id)
        assert not app.screen.query_one("#run-cluster").display

    drive(home, scenario, size=(160, 45))


# ----------------------------------------------------------------------------------------- sweeps


def seed_sweep(home: Path) -> dict[str, RunView]:
    """A 4-point Slurm sweep `grid` (2 completed, 1 training, 1 pending) beside a run of no sweep."""
    out = {"solo": make_run(home, "completed", name="solo", epoch=4, test_acc=80.0)}
    points = ("lr=0.0001 width=8", "lr=0.0002 width=8", "lr=0.0001 width=16", "lr=0.0002 width=16")
    for i, (label, acc) in enumerate(zip(points, (55.0, 71.5, 60.0, None))):
        state = "PENDING" if acc is None else "RUNNING"
        out[label] = slurm_run(home, f"grid-{i}", state=state, reason="Priority", job=f"77_{i}", sweep="grid",
                               notes=label, epoch=4 if i < 2 else 1, test_acc=acc,
                               final="completed" if i < 2 else None)
    return out


def test_sweep_key_groups_one_sweep_with_a_summary(home: Path) -> None:
    runs = seed_sweep(home)
    sweep_ids = sorted(r.id for k, r in runs.items() if k != "solo")
    best = runs["lr=0.0002 width=8"]

    async def scenario(app, pilot) -> None:
        table = table_of(app)
        bar = app.runs_screen.query_one("#runs-sweep")
        await wait_for(pilot, lambda: table.row_count == 5, what="all runs")
        assert not bar.display
        assert table.select_run(runs["solo"].id)
        await pilot.press("w")  # a run of no sweep: nothing changes, the notification says why
        await pilot.pause(0.1)
        assert table.row_count == 5 and not bar.display

        assert table.select_run(best.id)
        await pilot.press("w")
        await wait_for(pilot, lambda: sorted(table.run_ids) == sweep_ids, what="only the sweep")
        await wait_for(pilot, lambda: bar.display, what="the sweep line")
        line = plain(bar)
        assert "sweep grid" in line and "4 runs over lr × width" in line, line
        assert "◷ 1 pending" in line and "▶ 1 running" in line and "✓ 2 completed" in line, line
        assert f"best test 71.5% #{best.id} lr=0.0002 width=8" in line, line
        assert cell(app, best.id, "name") == "lr=0.0002 width=8"  # the point, not grid-1
        assert app.runs_screen.query_one("#runs-filter").value == "sweep:grid"

        await pilot.press("w")  # again: every run
        await wait_for(pilot, lambda: table.row_count == 5, what="all runs again")
        assert not bar.display and cell(app, best.id, "name") == "grid-1"

        await pilot.press("question_mark")  # the key and the filter term are in the help
        assert isinstance(app.screen, HelpScreen)
        keys = plain(app.screen.query_one("#help-keys"))
        assert "selected run's sweep" in keys
        assert "sweep:NAME" in plain(app.screen.query_one("#help-extra"))

    drive(home, scenario, size=(100, 30))
