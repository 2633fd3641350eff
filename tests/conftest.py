"""Shared fixtures: a private store per test, one synthetic-data cache per session, the shared data slices."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Build the synthetic set once per test session (subprocesses inherit the variable)."""
    if "GANMGR_TEST_CACHE" in os.environ:  # a developer may keep one across sessions
        os.environ["GANMGR_CACHE"] = os.environ["GANMGR_TEST_CACHE"]
    else:
        os.environ["GANMGR_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.pop("GANMGR_HOME", None)
    yield


@pytest.fixture
def home(tmp_path) -> Path:
    """A fresh store folder (not yet created: commands must create it themselves)."""
    return tmp_path / "store"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (the shared data slices live beside the project)")
    return SHARED_DATA


def cli_argv(*args: str) -> list[str]:
    """argv for the real `ganmgr` command run as a subprocess."""
    return [sys.executable, "-m", "tui.cli.main", *args]
