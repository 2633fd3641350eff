"""`ganmgr run --headless`: one run in the foreground, for batch jobs and quick checks.

The run gets its row and folder exactly as a queued run would (so it shows in the history); the worker
is a child process in our process group, so a terminal Ctrl-C reaches it directly and it checkpoints.
We follow its metrics.jsonl for the progress bar and fold progress into the row about once a second.
The worker's `progress` records (about once a second between train windows) move the bar step by step
and give the images/s and the time left; without a terminal (a batch job's log) a progress line is
printed every PRINT_S seconds, and one line per epoch.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from engine.control import records as kinds
from engine.control.config import recipe_spec
from engine.control.follow import ProgressFold, outcome
from engine.control.launcher import spawn_worker
from engine.control.procs import process_start_token
from engine.control.reconcile import reconcile_and_ensure_supervisor, record_artifacts
from engine.control.records import MetricsTail
from engine.control.submit import create_run
from store import runs as store_runs
from store.errors import StoreError
from tui.charts.series import DECLARED_EPOCH_METRICS

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
RATE_WINDOW_S = 30.0  # the speed (and so the time left) is measured over the last this many seconds
PRINT_S = 10.0  # without a terminal: a progress line at most this often


@dataclass
class HeadlessView:
    """The progress bar's and the closing table's view of a run. The row's fields and the end record come
    from ProgressFold (the supervisor's own fold), so a headless run records exactly what a queued one does;
    this only keeps what the display needs beside them."""

    loss_names: tuple[str, ...]
    fold: ProgressFold = field(default_factory=ProgressFold)
    batch_size: int = 0
    start_step: int = 0
    epoch_rows: list[dict[str, Any]] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    marks: deque[tuple[float, int]] = field(default_factory=deque)  # (time, step) of recent records

    def add(self, rec: dict[str, Any], now: float | None = None) -> None:
        """Fold one record; `now` (wall clock) dates a record that carries no `time` of its own."""
        kind = rec.get("kind")
        if kind == kinds.START and isinstance(rec.get("step"), int):
            self.start_step = rec["step"]
            self.marks.clear()  # a new attempt: its speed starts over
        if kind in (kinds.PROGRESS, kinds.TRAIN, kinds.EPOCH) and isinstance(rec.get("step"), int):
            t = rec.get("time")
            t = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else now
            if t is not None and (not self.marks or (t > self.marks[-1][0] and rec["step"] >= self.marks[-1][1])):
                self.marks.append((t, rec["step"]))
                while len(self.marks) > 2 and t - self.marks[1][0] >= RATE_WINDOW_S:
                    self.marks.popleft()
        if kind == kinds.EPOCH:
            self.epoch_rows.append(rec)
        elif kind == kinds.ARTIFACT and rec.get("what") == "samples" and isinstance(rec.get("path"), str):
            self.samples.append(rec["path"])
        self.fold.fold(rec)

    @property
    def epochs(self) -> int:
        return self.fold.epochs

    @property
    def step(self) -> int:
        return int(self.fold.fields.get("step") or 0)

    @property
    def epoch(self) -> int:
        return int(self.fold.fields.get("epoch") or 0)

    @property
    def total(self) -> int:
        return self.fold.epochs * self.fold.steps_per_epoch

    def steps_per_s(self) -> float | None:
        """Steps per second over the last RATE_WINDOW_S seconds of records; None before two of them."""
        if len(self.marks) < 2:
            return None
        (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 and s1 > s0 else None

    def images_per_s(self) -> float | None:
        rate = self.steps_per_s()
        return rate * self.batch_size if rate is not None and self.batch_size else None

    def seconds_left(self) -> float | None:
        rate = self.steps_per_s()
        if rate is None or not self.total:
            return None
        return max(0, self.total - self.step) / rate

    def speed_text(self) -> str:
        ips = self.images_per_s()
        return f"{ips:.1f} img/s" if ips is not None else ""

    def eta_text(self) -> str:
        left = self.seconds_left()
        return f"eta {fmt_clock(left)}" if left is not None else "eta -:--:--"

    def progress_line(self) -> str:
        """The bar as one line of text (a log without a terminal)."""
        # starts with "step", so a log reader tells it from a finished epoch's line (which starts "epoch")
        bits = [f"step {self.step}/{self.total or '?'}", f"epoch {min(self.epoch + 1, self.epochs or 1)}/"
                f"{self.epochs or '?'}", self.speed_text(), self.eta_text(), self.loss_text()]
        return "  ".join(b for b in bits if b)

    def best_test_acc(self) -> float | None:
        accs = [r["test_acc"] for r in self.epoch_rows if isinstance(r.get("test_acc"), (int, float))]
        return max(accs) if accs else None

    def loss_text(self) -> str:
        latest = self.fold.fields.get("last_metrics") or {}
        parts = [f"{k} {latest[k]:.3f}" for k in (*self.loss_names, "acc") if
                 isinstance(latest.get(k), (int, float))]
        return "  ".join(parts)


def run_headless(home: Path, cfg: dict[str, Any], *, tags: list[str], notes: str) -> int:
    spec = recipe_spec(cfg["recipe"])
    view = create_run(home, cfg, tags=tags, notes=notes, status="running", managed_by="headless")
    run_dir = Path(view.run_dir)
    console = Console(stderr=False)
    console.print(f"run [bold]{view.id}[/] {view.name}: {run_dir}")

    proc = spawn_worker(home, run_dir, new_session=False)
    store_runs.mark_started(home, view.id, pid=proc.pid, pid_start=process_start_token(proc.pid),
                            host=socket.gethostname())
    interrupts = 0

    def on_signal(signum, _frame):
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            console.print("[yellow]stopping: the worker finishes its step and checkpoints "
                          "(Ctrl-C again to kill it)[/]")
            try:  # a terminal's Ctrl-C reached the worker already; a batch system's signal did not. The
                # same signal, so the worker's end record names the real cause (SIGINT: the user's Ctrl-C)
                os.kill(proc.pid, signum)
            except ProcessLookupError:
                pass
        else:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    follower = HeadlessView(spec.loss_metrics, ProgressFold(since=view.started_at), batch_size=cfg["batch_size"])
    tail = MetricsTail(run_dir / "metrics.jsonl")
    try:
        follow(console, proc, tail, follower, home, view.id)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return finish(console, home, view, proc, follower, tail, run_dir, interrupted=interrupts > 0)


def follow(console: Console, proc, tail: MetricsTail, follower: HeadlessView, home: Path, run_id: int) -> None:
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[speed]}"), TextColumn("{task.fields[eta]}"),
                        TextColumn("{task.fields[losses]}"), console=console, transient=False)
    task = progress.add_task("starting", total=None, speed="", eta="", losses="")
    last_store = 0.0
    printed: tuple[float, int] = (time.monotonic(), -1)  # when a progress line was printed, at which step
    live = Live(progress, console=console, refresh_per_second=4) if console.is_terminal else None
    if live:
        live.start()
    try:
        while True:
            done = proc.poll() is not None
            for rec in tail.read_new():
                follower.add(rec, time.time())
                if not live and rec.get("kind") == kinds.EPOCH:
                    console.print(epoch_line(rec, follower.epochs, follower.loss_text()))
            progress.update(task, total=follower.total or None, completed=follower.step,
                            speed=follower.speed_text(), eta=follower.eta_text(), losses=follower.loss_text(),
                            description=f"epoch {min(follower.epoch + 1, follower.epochs or 1)}"
                                        f"/{follower.epochs or '?'}")
            now = time.monotonic()
            if not live and not done and now - printed[0] >= PRINT_S and follower.step > max(printed[1], 0):
                console.print(follower.progress_line())
                printed = (now, follower.step)
            if now - last_store > 1.0 or done:
                _record_progress(home, run_id, follower, tail)
                last_store = now
            if done:
                for rec in tail.read_new():
                    follower.add(rec, time.time())
                break
            time.sleep(0.2)
    finally:
        if live:
            live.stop()


def _record_progress(home: Path, run_id: int, follower: HeadlessView, tail: MetricsTail) -> None:
    """The folded progress, the byte offset and new artifacts into the row, as the supervisor records them."""
    store_runs.update_progress(home, run_id, **follower.fold.fields, metrics_offset=tail.offset)
    record_artifacts(home, run_id, follower.fold)


def finish(console: Console, home: Path, view, proc, follower: HeadlessView, tail: MetricsTail, run_dir: Path,
           *, interrupted: bool) -> int:
    rc = proc.wait()
    _record_progress(home, view.id, follower, tail)
    oc = outcome(follower.fold.end, returncode=rc, cancel_requested=False, killed_by_us=False,
                 log_path=run_dir / "log.txt")
    status, error = oc.status, oc.error
    try:
        store_runs.set_status(home, view.id, status, message=oc.message, **oc.fields())
    except StoreError:  # another command's reconcile settled the row between the worker's exit and now
        pass
    reconcile_and_ensure_supervisor(home)  # a supervisor sends its end notification (engine/daemon/notify.py)
    table = Table(title=f"run {view.id} {view.name}: {status}", show_header=False)
    table.add_row("epochs", f"{follower.epoch}/{follower.epochs}")
    best = follower.best_test_acc()
    if best is not None:
        table.add_row("test accuracy", f"last {follower.fold.fields.get('last_test_acc', 0):.2f}%  "
                                       f"best {best:.2f}%")
    if follower.epoch_rows:
        last = follower.epoch_rows[-1]
        for key in DECLARED_EPOCH_METRICS:  # the mode-collapse signal of the last epoch
            if isinstance(last.get(key), (int, float)):
                table.add_row(key, f"{last[key]:.3f} (epoch {last.get('epoch')})")
        ips = [r.get("images_per_s") or 0 for r in follower.epoch_rows]
        table.add_row("images/s", f"{sum(ips) / len(ips):.1f} (mean over epochs)")
    if follower.samples:
        table.add_row("last samples", str(run_dir / follower.samples[-1]))
    table.add_row("folder", str(run_dir))
    if error:
        table.add_row("error", error.strip().splitlines()[0][:300])
    console.print(table)
    if status == "completed":
        return EXIT_OK
    if status in ("cancelled", "killed") or interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def fmt_clock(seconds: float) -> str:
    """`0:05:12`, as rich's time columns write it."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def epoch_line(rec: dict[str, Any], epochs: int | None, losses: str) -> str:
    """One finished epoch for a non-terminal: its accuracies where the recipe has a classifier, its
    per-epoch signals (diversity, class_spread), images/s and the latest losses."""
    bits = [f"epoch {rec.get('epoch')}/{epochs}"]
    for key in ("test_acc", "train_acc"):
        if isinstance(rec.get(key), (int, float)):
            bits.append(f"{key} {rec[key]:.2f}")
    for key in DECLARED_EPOCH_METRICS:
        if isinstance(rec.get(key), (int, float)):
            bits.append(f"{key} {rec[key]:.3f}")
    bits.append(f"{rec.get('images_per_s')} img/s")
    if losses:
        bits.append(losses)
    return "  ".join(bits)

