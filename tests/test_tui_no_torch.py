"""The TUI starts fast because it never imports torch: not at import, not while it shows every screen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import asyncio, sys, tempfile
from pathlib import Path

import tui.app
assert "torch" not in sys.modules, "importing tui.app imported torch"

from tests.tui_helpers import make_run, write_metrics, write_samples
from tui.app import GanmgrApp
from tui.screens.compare import CompareScreen
from tui.forms.new_run import NewRunScreen
from tui.screens.run_detail import RunScreen

home = Path(tempfile.mkdtemp()) / "store"
a = make_run(home, "running", name="a", epochs=3, epoch=1)
b = make_run(home, "completed", name="b", epochs=3, epoch=3)
for run in (a, b):
    write_metrics(Path(run.run_dir), epochs=2)
    write_samples(Path(run.run_dir), 2)


async def main():
    app = GanmgrApp(home)  # with the reconcile at start, as `ganmgr` runs it
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.runs_screen.query_one("#runs-table")
        while table.row_count < 2:
            await pilot.pause(0.05)
        table.select_run(a.id)
        await pilot.press("enter")
        while not isinstance(app.screen, RunScreen) or not app.screen.charts_data.records_seen:
            await pilot.pause(0.05)
        await pilot.pause(0.6)
        await pilot.press("escape", "n")
        assert isinstance(app.screen, NewRunScreen)
        await pilot.press("escape")
        table.select_run(a.id)
        await pilot.press("space")
        table.select_run(b.id)
        await pilot.press("space", "c")
        while not isinstance(app.screen, CompareScreen) or not app.screen.data:
            await pilot.pause(0.05)
        await pilot.press("escape", "question_mark", "escape", "q")


asyncio.run(main())
heavy = sorted(m for m in ("torch", "torchvision") if m in sys.modules)
assert not heavy, f"the TUI imported {heavy}"
print("clean")
"""


def test_tui_never_imports_torch() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("clean")
