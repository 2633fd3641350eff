"""The TUI in a fresh interpreter, as `ganmgr` starts it: nothing of the store imported beforehand.

In the test process the store is already imported by the time a Pilot test opens the app, which hid a
race: the screens import the store lazily in worker threads, and two threads importing SQLAlchemy at once
left the table empty with "cannot import name 'Artifact'" toasts. This test starts the app in a child
process whose first import is the app, and waits for both runs to be listed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT
from tests.tui_helpers import make_run

CHILD = """
import asyncio, sys
from pathlib import Path
from tui.app import GanmgrApp

async def main() -> int:
    app = GanmgrApp(Path(sys.argv[1]), welcome=False)
    async with app.run_test(size=(160, 45)) as pilot:
        table = app.runs_screen.query_one("RunsTable")
        for _ in range(150):
            await pilot.pause(0.1)
            if table.row_count == 2:
                break
        print("rows", table.row_count)
        for n in app._notifications:
            print("note", n.message.replace(chr(10), " "))
    return 0

sys.exit(asyncio.run(main()))
"""


def test_a_fresh_tui_process_lists_the_runs_without_import_errors(home: Path) -> None:
    make_run(home, "completed", name="first")
    make_run(home, "queued", name="second")
    out = subprocess.run([sys.executable, "-c", CHILD, str(home)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rows 2" in out.stdout, out.stdout + out.stderr[-2000:]
    assert "cannot import" not in out.stdout and "has no attribute" not in out.stdout, out.stdout
