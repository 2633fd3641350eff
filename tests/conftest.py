"""Shared fixtures: a private store per test, one synthetic-data cache per session, the shared data slices,
the seeded random source of the chaos tests (its seed is printed when such a test fails); and
`--cpu-durations=N`, the tests that used the most CPU (what decides `@pytest.mark.slow` on a busy machine,
where --durations' wall times mostly measure the neighbours)."""

from __future__ import annotations

import os
import random
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CHAOS_SEED_VAR, ROOT, chaos_seed, clean_up_store

SHARED_DATA = ROOT.parent / "shared" / "data"
CHAOS_SEED_KEY = pytest.StashKey[int]()
CPU_KEY = pytest.StashKey[dict[str, float]]()


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
def store_home(home: Path) -> Iterator[Path]:
    """A store folder whose supervisors and workers are all gone after the test, whatever happened."""
    yield home
    clean_up_store(home)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (the shared data slices live beside the project)")
    return SHARED_DATA


@pytest.fixture
def chaos_rng(request: pytest.FixtureRequest) -> random.Random:
    """The random source of a chaos test's timings, seeded by `helpers.chaos_seed()` (fixed by default)."""
    seed = chaos_seed()
    request.node.stash[CHAOS_SEED_KEY] = seed
    return random.Random(seed)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed chaos test says which seed drew its timings and how to draw them again."""
    report = yield
    seed = item.stash.get(CHAOS_SEED_KEY, None)
    if report.failed and seed is not None:
        report.sections.append(("chaos seed", f"{seed}: rerun with {CHAOS_SEED_VAR}={seed}"))
    return report


# ----------------------------------------------------------------------------------- --cpu-durations


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-durations", type=int, default=None, metavar="N",
                     help="list the N tests that used the most CPU seconds (0: all): this process and the "
                          "subprocesses it waited for; a detached supervisor and its workers are not counted")


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    if item.config.getoption("cpu_durations") is None:
        return (yield)
    start = _cpu_seconds()
    try:
        return (yield)
    finally:
        item.config.stash.setdefault(CPU_KEY, {})[item.nodeid] = _cpu_seconds() - start


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    n = config.getoption("cpu_durations")
    if n is None:
        return
    rows = sorted(config.stash.get(CPU_KEY, {}).items(), key=lambda row: -row[1])
    terminalreporter.write_sep("=", f"{'all' if not n else n} most CPU-hungry tests (setup + call + teardown)")
    for nodeid, seconds in rows[:n] if n else rows:
        terminalreporter.write_line(f"{seconds:8.2f}s cpu  {nodeid}")


@pytest.fixture(autouse=True)
def _torch_global_state() -> Iterator[None]:
    """Leave torch's process-wide switches as each test found them.

    An in-process Trainer calls `setup_runtime`, which sets the thread count and deterministic algorithms for
    the whole process (right for a worker, which trains one run); in the test process that leaked into later
    tests and changed their summation order (the fast path's parity with the course failed only after
    tests/test_eval_training.py). Only when torch is already imported: the torch-free tests stay torch-free.
    """
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    grad = torch.is_grad_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.set_grad_enabled(grad)
