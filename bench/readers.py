"""`python -m bench.readers [--rounds N] [--writers W] [--writer-kind store|cli]`: read commands quiet vs
under concurrent writers.

tests/test_readers_never_wait.py checks that `ls`, `show` and `logs` never wait for the write lock; this
measures what writers still cost them. A private store (200 runs with events, one dead `running` row per
round for the commands' reconcile to settle), W writer processes that enqueue runs (default 8), and the real
`ganmgr ls --json`, `ganmgr show ID` and `ganmgr logs ID` as subprocesses. Quiet and busy take turns in
every round (writers paused, then enqueueing), so a noisy shared machine slows both alike. The bench holds
the supervisor lock itself, so no real supervisor starts workers for the rows the writers queue. A quiet
phase starts once every write in flight has ended.

Writer kinds:
- `store` (default): processes calling `store.runs.create_run` in a loop, each holding the write lock
  ~20 ms per run (the run folder written under it): the lock is taken nearly all the time, CPU stays low.
  What is left of a read command's slowdown is waiting, which is what this bench is about.
- `cli`: processes running `ganmgr run -q` in a loop, as the issue measured. Each is a whole Python
  start-up (~0.5 s CPU), so on a small machine the readers mostly wait for a CPU, not for a lock.

Prints one line per command and kind with the median, min and max wall time, and the ratio busy/quiet
(the median of each round's ratio). Wall-clock times on whatever machine runs this: not a test.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.control.supervisor_lock import try_lock
from store import runs as store_runs
from store.db import dispose_engines, get_engine
from tests.helpers import cli_argv, make_npz, tiny_args

ROOT = Path(__file__).resolve().parents[1]
SEED_RUNS = 200
COMMANDS: dict[str, list[str]] = {"ls": ["ls", "--json"], "show": ["show", "1"], "logs": ["logs", "1"]}


def _store_writer(home_s: str, index: int, go: Any, stop: Any, inflight: Any) -> None:
    home = Path(home_s)
    n = 0

    def prepare(_view: Any) -> str:
        time.sleep(0.02)
        return str(home / f"w{index}-{n}")

    while not stop.is_set():
        if not go.wait(0.2):
            continue
        with _counted(inflight):
            store_runs.create_run(home, name=f"w{index}-{n}", recipe="baseline", dataset="synthetic", config={},
                                  epochs=1, prepare=prepare)
        n += 1


def _cli_writer(home_s: str, index: int, go: Any, stop: Any, inflight: Any, npz_s: str) -> None:
    n = 0
    while not stop.is_set():
        if not go.wait(0.2):
            continue
        with _counted(inflight):
            subprocess.run(cli_argv("--home", home_s, "run", "-q", *tiny_args(Path(npz_s), f"c{index}-{n}", 1)),
                           cwd=ROOT, capture_output=True, timeout=300)
        n += 1


@contextmanager
def _counted(inflight: Any) -> Iterator[None]:
    """Count a write in flight, so a quiet phase starts only once the last one has ended."""
    with inflight.get_lock():
        inflight.value += 1
    try:
        yield
    finally:
        with inflight.get_lock():
            inflight.value -= 1


def _seed(home: Path) -> None:
    def prepare(view: Any) -> str:
        folder = home / f"{view.id}-seed"
        folder.mkdir(mode=0o700)
        (folder / "log.txt").write_text("".join(f"step {i} loss 0.5\n" for i in range(2000)))
        return str(folder)

    for i in range(SEED_RUNS):
        run = store_runs.create_run(home, name=f"seed-{i}", recipe="baseline", dataset="synthetic", config={},
                                    epochs=1, managed_by="headless", status="running",
                                    prepare=prepare if i == 0 else None)
        store_runs.set_status(home, run.id, "completed", message="done")


def _dead_row(home: Path, name: str) -> None:
    run = store_runs.create_run(home, name=name, recipe="baseline", dataset="synthetic", config={}, epochs=1,
                                managed_by="headless", status="running")
    store_runs.mark_started(home, run.id, pid=os.getpid(), pid_start="gone")


def _time(home: Path, args: list[str]) -> float:
    t = time.perf_counter()
    out = subprocess.run(cli_argv("--home", str(home), *args), cwd=ROOT, capture_output=True, timeout=600)
    dt = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"ganmgr {' '.join(args)} failed: {out.stderr.decode()[-300:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--writer-kind", choices=("store", "cli"), default="store")
    ap.add_argument("--settle-s", type=float, default=1.0, help="pause after starting or pausing the writers")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ganmgr-bench-readers-"))
    home = base / "home"
    get_engine(home)
    lock = try_lock(home)
    assert lock is not None
    _seed(home)
    npz = make_npz(base) if a.writer_kind == "cli" else None
    dispose_engines()
    ctx = mp.get_context("spawn")
    go, stop, inflight = ctx.Event(), ctx.Event(), ctx.Value("i", 0)
    if a.writer_kind == "store":
        procs = [ctx.Process(target=_store_writer, args=(str(home), i, go, stop, inflight))
                 for i in range(a.writers)]
    else:
        procs = [ctx.Process(target=_cli_writer, args=(str(home), i, go, stop, inflight, str(npz)))
                 for i in range(a.writers)]
    for p in procs:
        p.start()
    times: dict[tuple[str, str], list[float]] = {(c, k): [] for c in COMMANDS for k in ("quiet", "busy")}
    try:
        for r in range(a.rounds):
            for kind in ("quiet", "busy"):
                (go.set if kind == "busy" else go.clear)()
                deadline = time.monotonic() + 300
                while kind == "quiet" and inflight.value and time.monotonic() < deadline:
                    time.sleep(0.05)  # the writes already started end first
                time.sleep(a.settle_s)
                for cmd, args in COMMANDS.items():
                    _dead_row(home, f"dead-{r}-{kind}-{cmd}")
                    times[(cmd, kind)].append(_time(home, args))
            dispose_engines()
    finally:
        go.clear()
        stop.set()
        for p in procs:
            p.join(120)
        os.close(lock)
    queued = len(store_runs.list_runs(home, status="queued"))
    print(f"writers: {a.writers} ({a.writer_kind}), rounds: {a.rounds}, runs queued by the writers: {queued}")
    for cmd in COMMANDS:
        q, b = times[(cmd, "quiet")], times[(cmd, "busy")]
        ratio = statistics.median(y / x for x, y in zip(q, b))
        print(f"{cmd:5} quiet median {statistics.median(q):.2f} s (min {min(q):.2f}, max {max(q):.2f})   "
              f"busy median {statistics.median(b):.2f} s (min {min(b):.2f}, max {max(b):.2f})   "
              f"ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
