"""`python -m bench.tui {startup,refresh,idle,charts,all}`: how fast and how calm the TUI is. Numbers, no asserts.

- startup: the real `ganmgr` started in a pseudo-terminal (80x24); time from launch until the runs
  screen's title bar is painted, and until the table shows the store's runs.
- refresh: a store of 2,000 runs; the store reads behind one refresh tick (all rows, and the "changed
  since" window a tick usually needs), and in the app the table's first fill, a full rebuild (a new sort)
  and an in-place tick (5 running runs moved on) — the UI-thread cost of each.
- idle: the real `ganmgr` left alone in a pseudo-terminal (runs table, then a finished run's screen);
  its CPU use (user+system time from /proc) over a window.
- charts (not part of `all`: minutes): opening a run with a 1,000,000-line metrics.jsonl and comparing it,
  today's code against the code before issue 16 (`--base`), and the ratio to TensorBoard's loader (`bench/tui_charts.py`, issue 16).

Times are wall-clock on whatever machine runs this (a shared 2-core box gives noisy numbers: the medians
of several repeats are printed).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from bench.code_copy import BEFORE_ISSUE_16

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ------------------------------------------------------------------------------- a program in a pty


class PtyProgram:
    """`ganmgr --home HOME` with a pseudo-terminal of the given size as its stdin/stdout/stderr."""

    def __init__(self, home: Path, cols: int = 80, rows: int = 24, entry: str = "cli") -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)}
        env.pop("TMUX", None)
        self.t0 = time.perf_counter()
        argv = [sys.executable, "-m", "tui.cli.main", "--home", str(home)] if entry == "cli" else [
            sys.executable, "-c", f"from pathlib import Path; from tui.app import run_app; run_app(Path({str(home)!r}))"]
        self.proc = subprocess.Popen(argv, stdin=slave,
                                     stdout=slave, stderr=slave, cwd=ROOT, env=env, start_new_session=True,
                                     close_fds=True)
        os.close(slave)
        self.output = b""

    def pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            self.output += chunk
            # Answer the primary device-attributes query like a plain VT220 would (no Sixel), as a
            # terminal does, so a query never has to time out here.
            if b"\x1b[c" in chunk:
                os.write(self.master, b"\x1b[?62;22c")

    def wait_for(self, needle: bytes, timeout: float = 60.0) -> float:
        """Seconds from launch until `needle` was written to the terminal."""
        end = time.perf_counter() + timeout
        while needle not in self.output:
            if time.perf_counter() > end:
                raise TimeoutError(f"{needle!r} not painted within {timeout}s")
            self.pump(0.005)
        return time.perf_counter() - self.t0

    def drain(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            self.pump(0.05)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

    def close(self) -> None:
        try:
            self.send(b"q")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def small_store(n: int = 30) -> Path:
    from tests.tui_helpers import make_run, write_metrics, write_samples

    home = Path(tempfile.mkdtemp(prefix="ganmgr-bench-")) / "store"
    for i in range(n):
        run = make_run(home, "completed", name=f"bench-{i:03d}", epochs=20, epoch=20, test_acc=40.0 + i % 30)
        if i == n - 1:
            write_metrics(Path(run.run_dir), epochs=20, windows_per_epoch=20)
            write_samples(Path(run.run_dir), 20)
    return home


# ------------------------------------------------------------------------------------------- startup


def bench_startup(repeats: int) -> None:
    home = small_store()
    print(f"startup  (80x24 pty, {repeats} launches each, store of 30 runs)")
    for entry, label in (("cli", "`ganmgr`"), ("app", "run_app() alone")):
        paint, filled = [], []
        for _ in range(repeats):
            prog = PtyProgram(home, entry=entry)
            try:
                paint.append(prog.wait_for(b" ganmgr "))
                filled.append(prog.wait_for(b"bench-029"))
            finally:
                prog.close()
        print(f"  {label:<16} launch -> first paint  median {statistics.median(paint) * 1000:6.0f} ms "
              f"(min {min(paint) * 1000:.0f}, max {max(paint) * 1000:.0f})")
        print(f"  {label:<16} launch -> runs shown   median {statistics.median(filled) * 1000:6.0f} ms "
              f"(min {min(filled) * 1000:.0f}, max {max(filled) * 1000:.0f})")
    code = "import time; t = time.perf_counter(); import tui.app; print(time.perf_counter() - t)"
    imports = [float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                    check=True).stdout) for _ in range(repeats)]
    print(f"  of which `import tui.app`             median {statistics.median(imports) * 1000:7.0f} ms")


# ------------------------------------------------------------------------------------------- refresh


def bench_refresh(n: int, repeats: int) -> None:
    from store import runs as store_runs
    from tests.tui_helpers import bulk_runs, wait_for
    from tui.app import GanmgrApp
    from tui.widgets.runs_table import RunsTable

    home = Path(tempfile.mkdtemp(prefix="ganmgr-bench-")) / "store"
    t = time.perf_counter()
    bulk_runs(home, n)
    print(f"refresh  ({n} runs in the store, built in {time.perf_counter() - t:.0f} s)")

    full = [_timed(lambda: store_runs.list_runs(home)) for _ in range(repeats)]
    window = [_timed(lambda: store_runs.list_runs(home, order="-updated_at", limit=64)) for _ in range(repeats)]
    print(f"  store: read all {n} rows              median {statistics.median(full) * 1000:7.1f} ms")
    print(f"  store: read the changed-rows window    median {statistics.median(window) * 1000:7.1f} ms "
          f"(a tick while runs train)")

    running = [r.id for r in store_runs.list_runs(home, status="running")]
    results: dict[str, list[float]] = {"fill": [], "rebuild": [], "tick": [], "rows": [], "noop": [],
                                       "latency": []}

    async def scenario() -> None:
        app = GanmgrApp(home, welcome=False, reconcile=False)
        async with app.run_test(size=(120, 40)) as pilot:
            t0 = time.perf_counter()
            table = app.runs_screen.query_one(RunsTable)
            await wait_for(pilot, lambda: table.row_count == n, timeout=120)
            results["fill"].append(time.perf_counter() - t0)
            screen = app.runs_screen
            for i in range(repeats):
                screen.sort = "name" if i % 2 == 0 else "queue"
                results["rebuild"].append(_timed(screen.show))
                screen.sort = "queue"
                screen.show()
                results["noop"].append(_timed(screen.show))
                # 5 running runs moved on (what the supervisor writes): the whole table re-derived ...
                moved = _moved(screen, running)
                rebuilds, updates = table.rebuilds, table.cell_updates
                results["tick"].append(_timed(screen.show))
                assert table.rebuilds == rebuilds and table.cell_updates > updates, "not updated in place"
                # ... and what a tick really does with the changed rows it read: only their rows.
                moved = _moved(screen, running)
                results["rows"].append(_timed(lambda moved=moved: screen._update_rows(moved)))
            # End to end: the store changes; how long until the cell shows it (1 s ticks).
            for i in range(min(repeats, 5)):
                rid = running[i % len(running)]
                acc = 10.0 + i
                t1 = time.perf_counter()
                store_runs.update_progress(home, rid, last_test_acc=acc)
                await wait_for(pilot, lambda rid=rid, acc=acc: table.get_cell(str(rid), "acc") == f"{acc:.1f}",
                               timeout=30)
                results["latency"].append(time.perf_counter() - t1)

    asyncio.run(scenario())
    print(f"  app: first fill of the table           {results['fill'][0] * 1000:7.0f} ms (headless, incl. the read)")
    print(f"  app: full rebuild (new sort)           median {statistics.median(results['rebuild']) * 1000:7.1f} ms")
    print(f"  app: tick, 5 running rows changed      median {statistics.median(results['tick']) * 1000:7.1f} ms "
          f"(cells updated in place)")
    print(f"  app: tick, only the 5 changed rows     median {statistics.median(results['rows']) * 1000:7.1f} ms "
          f"(the usual tick while runs train)")
    print(f"  app: tick, nothing changed             median {statistics.median(results['noop']) * 1000:7.1f} ms")
    print(f"  store change -> cell shows it          median {statistics.median(results['latency']) * 1000:7.0f} ms "
          f"(1 s tick)")


def _moved(screen, ids: list[int]) -> list:
    """The snapshot's runs `ids` one step further on, as the next store read would return them."""
    from dataclasses import replace

    out = []
    for rid in ids:
        old = screen.snapshot[rid]
        new = replace(old, epoch=old.epoch + 1, progress=min(1.0, old.progress + 0.01),
                      images_per_s=(old.images_per_s or 0) + 1, updated_at=old.updated_at + 0.001)
        screen.snapshot[rid] = new
        out.append(new)
    return out


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ---------------------------------------------------------------------------------------------- idle


def bench_idle(seconds: float) -> None:
    home = small_store()
    prog = PtyProgram(home, cols=200, rows=60)
    try:
        prog.wait_for(b"bench-029")
        prog.drain(3.0)
        c0, t0 = prog.cpu_seconds(), time.perf_counter()
        prog.drain(seconds)
        table = (prog.cpu_seconds() - c0) / (time.perf_counter() - t0)
        prog.send(b"\r")  # open the newest run (finished: its charts are drawn once, then stay)
        prog.wait_for(b"accuracy %")
        prog.drain(3.0)
        c0, t0 = prog.cpu_seconds(), time.perf_counter()
        prog.drain(seconds)
        run = (prog.cpu_seconds() - c0) / (time.perf_counter() - t0)
    finally:
        prog.close()
    print(f"idle     (real ganmgr in a 200x60 pty, {seconds:.0f} s windows, store of 30 runs)")
    print(f"  runs table                             {table * 100:5.1f} % of one core")
    print(f"  run screen of a finished run           {run * 100:5.1f} % of one core")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.tui", description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("startup", "refresh", "idle", "charts", "all"), nargs="?", default="all")
    p.add_argument("--lines", type=int, default=1_000_000, help="metrics.jsonl lines for `charts`")
    p.add_argument("--reps", type=int, default=2, help="interleaved rounds for `charts`")
    p.add_argument("--base", default=BEFORE_ISSUE_16, help="the commit `charts` compares with (default: before issue 16)")
    p.add_argument("--runs", type=int, default=2000, help="runs in the store for `refresh`")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seconds", type=float, default=20.0, help="measuring window for `idle`")
    args = p.parse_args()
    os.environ.setdefault("GANMGR_CACHE", str(Path(tempfile.gettempdir()) / "gcache"))
    os.environ.pop("DISPLAY", None)
    if args.what in ("startup", "all"):
        bench_startup(args.repeats)
    if args.what in ("refresh", "all"):
        bench_refresh(args.runs, args.repeats)
    if args.what in ("idle", "all"):
        bench_idle(args.seconds)
    if args.what == "charts":
        from bench.tui_charts import bench_charts

        bench_charts(args.lines, args.reps, base=args.base)


if __name__ == "__main__":
    main()
