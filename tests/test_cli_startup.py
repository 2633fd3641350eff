"""The read commands stay quick (issue 16): `ls` and `show` import neither the database layer nor torch nor
textual, and the SQLAlchemy-free read view they use returns what the full store returns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from store import runs as store_runs
from store.read_view import read_view
from store.views import RunView

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sqlalchemy", "sqlmodel", "torch", "textual", "numpy")


def _finished(home: Path, name: str, *, tags: tuple[str, ...] = (), notes: str = "", recipe: str = "baseline",
              status: str = "completed") -> RunView:
    run = store_runs.create_run(home, name=name, recipe=recipe, dataset="synthetic", config={"lr": 1e-4},
                                epochs=2, tags=tags, notes=notes, managed_by="headless", status="running")
    return store_runs.set_status(home, run.id, status, message="done", epoch=2, progress=1.0,
                                 last_test_acc=42.0, last_metrics={"loss_d": -1.5})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "runs"
    _finished(h, "alpha", tags=("keep", "sweep:a"), notes="Lr Sweep")
    _finished(h, "beta", recipe="acgan-wgangp", status="failed")
    _finished(h, "gamma_100%", tags=("keep",))
    return h


def _imports_after(home: Path, *argv: str) -> tuple[str, list[str]]:
    """Run `ganmgr ARGV` in a fresh interpreter; its output and the heavy packages it imported."""
    code = ("import sys, io, contextlib\nfrom tui.cli.main import main\nbuf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n    rc = main(sys.argv[1:])\n"
            f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
            "print(repr((rc, buf.getvalue(), heavy)))\n")
    out = subprocess.run([sys.executable, "-c", code, "--home", str(home), *argv], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rc, text, heavy = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own repr
    assert rc == 0, text
    return text, heavy


@pytest.mark.parametrize("argv", [("ls",), ("ls", "--json"), ("ls", "--tag", "keep"), ("show", "2"),
                                  ("show", "alpha", "--json")])
def test_read_commands_import_nothing_heavy(home: Path, argv: tuple[str, ...]) -> None:
    text, heavy = _imports_after(home, *argv)
    assert heavy == [], f"`ganmgr {' '.join(argv)}` imported {heavy}"
    assert text.strip()


def test_a_store_with_a_running_row_is_reconciled_through_the_full_store(home: Path) -> None:
    """Not quiet: the read view says so, and `ls` pays for the reconcile (the dead row is settled)."""
    run = store_runs.create_run(home, name="dead", recipe="baseline", dataset="synthetic", config={}, epochs=1,
                                managed_by="headless", status="running")
    store_runs.mark_started(home, run.id, pid=2**22 + 12345, pid_start="gone")
    with read_view(home) as view:
        assert view is not None and not view.quiet()
    text, heavy = _imports_after(home, "ls", "--json")
    assert "sqlalchemy" in heavy
    rows = {r["name"]: r["status"] for r in json.loads(text)}
    assert rows["dead"] == "lost"
    with read_view(home) as view:
        assert view is not None and view.quiet()


FILTERS = [{}, {"status": "failed"}, {"status": ["completed", "failed"]}, {"recipe": "baseline"},
           {"tag": "keep"}, {"tag": "sweep:a"}, {"text": "SWEEP"}, {"text": "%"}, {"text": "_"},
           {"text": "a", "tag": "keep", "status": "completed"}, {"order": "-id"}, {"order": "name", "limit": 2}]


@pytest.mark.parametrize("filters", FILTERS, ids=[json.dumps(f) for f in FILTERS])
def test_the_read_view_lists_what_the_store_lists(home: Path, filters: dict) -> None:
    with read_view(home) as view:
        assert view is not None
        quick = view.list_runs(**filters)
    assert quick == store_runs.list_runs(home, **filters)


def test_the_read_view_finds_and_reads_a_run_as_the_store_does(home: Path) -> None:
    store_runs.add_artifact(home, 1, "samples", "samples/epoch_001.png", epoch=1)
    with read_view(home) as view:
        assert view is not None
        assert view.find_run("alpha") == store_runs.find_run(home, "alpha")
        assert view.find_run("3") == store_runs.find_run(home, 3)
        assert view.list_events(1) == store_runs.list_events(home, 1)
        assert view.list_artifacts(1) == store_runs.list_artifacts(home, 1)
        assert view.setting("max_segments", 20) == 20
        with pytest.raises(Exception, match="no run 'nope'"):
            view.find_run("nope")


def test_a_store_of_another_schema_version_is_left_to_the_full_store(home: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(home / "ganmgr.db")
    conn.execute("UPDATE schema_version SET version = version - 1")
    conn.commit()
    conn.close()
    with read_view(home) as view:
        assert view is None
