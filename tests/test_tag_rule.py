"""One tag rule: `ganmgr run --tag` and the TUI's new-run form accept and refuse exactly the same tags.

Both call store.checks.normalize_tags; this drives the real command (in-process, against a real store whose
supervisor lock the test holds, so nothing trains) and the real form in the app, with the same tags.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from store import runs as store_runs
from tests.tui_helpers import drive, hold_supervisor_lock, plain, wait_for
from tui.cli.main import main
from tui.forms.new_run import NewRunScreen

ACCEPTED = ["a", "v1.2_b-c", "lr:1e-4", "x" * 40, "9lives"]
REFUSED = ["bad tag", "x" * 41, "-lead", ".dot", "naïve", "a/b", "semi;colon", "tab\there"]


@pytest.fixture
def locked(home: Path):
    fd = hold_supervisor_lock(home)
    yield home
    os.close(fd)


def cli_verdicts(home: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, bool]:
    out = {}
    for tag in ACCEPTED + REFUSED:
        code = main(["--home", str(home), "run", "--recipe", "baseline", "--dataset", "synthetic", "--epochs", "1",
                     f"--tag={tag}", "-q"])  # '=' so a tag that starts with '-' reaches the check
        err = capsys.readouterr().err
        assert code in (0, 2), (tag, code, err)
        if code == 2:
            assert "bad tag" in err and "must be 1-40" in err, err  # the refusal names the rule
        out[tag] = code == 0
    return out


def test_cli_and_form_accept_and_refuse_the_same_tags(locked: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = locked
    cli = cli_verdicts(home, capsys)
    queued_tags = {t for r in store_runs.list_runs(home) for t in r.tags}
    assert queued_tags == set(ACCEPTED)  # what the command accepted is what the store holds
    form_verdicts: dict[str, bool] = {}

    async def scenario(app, pilot) -> None:
        await wait_for(pilot, lambda: app.runs_screen.loaded)
        await pilot.press("n")
        assert isinstance(app.screen, NewRunScreen)
        form = app.screen
        inp = form.query_one("#in-tags")
        err = form.query_one("#err-tags")
        for tag in ACCEPTED + REFUSED:
            inp.value = tag
            await pilot.pause()
            form_verdicts[tag] = not err.has_class("-shown")
            if not form_verdicts[tag]:
                assert "bad tag" in plain(err)

    drive(home, scenario)
    assert cli == {t: True for t in ACCEPTED} | {t: False for t in REFUSED}
    assert form_verdicts == cli
