"""The store is imported by the TUI/CLI (which must start fast) and by the supervisor: no torch, no textual."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import sys
import store, store.db, store.errors, engine.control.records, store.runs, store.tables, store.views
import store.checks, store.lifecycle, store.queue, store.settings, store.viz_jobs
heavy = sorted(m for m in ("torch", "torchvision", "textual") if m in sys.modules)
assert not heavy, f"store imported {heavy}"
assert store.db._CACHE == {}, "importing the store opened a database"
print("clean")
"""


def test_store_imports_neither_torch_nor_textual() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"
