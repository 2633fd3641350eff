"""`ganmgr run --headless`: one run in the foreground, for batch jobs and quick checks.

The run gets its row and folder exactly as a queued run would (so it shows in the history); the worker
is a child process in our process group, so a terminal Ctrl-C reaches it directly and it checkpoints.
We follow its metrics.jsonl for the progress bar and fold progress into the row about once a second.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from engine.control.config import recipe_spec
from engine.control.launcher import spawn_worker
from engine.control.procs import process_start_token
from engine.control.reconcile import record_artifact_records
from engine.control.records import MetricsTail
from engine.control.submit import create_run
from store import runs as store_runs
from store.errors import StoreError
from tui.charts.series import DECLARED_EPOCH_METRICS

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
PROGRESS_FIELDS = ("epoch", "step", "progress", "last_test_acc", "best_test_acc", "last_train_acc",
                   "images_per_s", "last_metrics_json", "metrics_offset")


class RunFollower:
    """Folds metrics records into row fields and the progress display's state."""

    def __init__(self, spec_loss_names: tuple[str, ...]):
        self.loss_names = spec_loss_names
        self.fields: dict[str, Any] = {"epoch": 0, "step": 0, "progress": 0.0}
        self.epochs = 0
        self.steps_per_epoch = 0
        self.start_step = 0
        self.latest: dict[str, float] = {}
        self.end: dict[str, Any] | None = None
        self.best: float | None = None
        self.epoch_rows: list[dict[str, Any]] = []
        self.artifacts: list[dict[str, Any]] = []

    def fold(self, rec: dict[str, Any]) -> None:
        kind = rec.get("kind")
        if kind == "start":
            self.epochs = int(rec.get("epochs") or 0)
            self.steps_per_epoch = int(rec.get("steps_per_epoch") or 0)
            self.start_step = int(rec.get("step") or 0)
            self.fields.update(epoch=int(rec.get("epoch") or 0), step=self.start_step)
        elif kind == "train":
            self.latest = {k: v for k, v in rec.items() if k not in ("kind", "epoch", "step")}
            self.fields["step"] = rec.get("step", self.fields["step"])
            self.fields["last_metrics_json"] = self.latest
        elif kind == "epoch":
            self.epoch_rows.append(rec)
            acc = rec.get("test_acc")
            if isinstance(acc, (int, float)):
                self.best = acc if self.best is None else max(self.best, acc)
            self.fields.update(epoch=rec["epoch"], step=rec.get("step", self.fields["step"]),
                               last_test_acc=acc, best_test_acc=self.best,
                               last_train_acc=rec.get("train_acc"), images_per_s=rec.get("images_per_s"))
        elif kind == "artifact":
            self.artifacts.append(rec)
        elif kind == "end":
            self.end = rec
        total = self.epochs * self.steps_per_epoch
        if total:
            self.fields["progress"] = min(1.0, self.fields["step"] / total)

    def loss_text(self) -> str:
        parts = [f"{k} {self.latest[k]:.3f}" for k in (*self.loss_names, "acc") if
                 isinstance(self.latest.get(k), (int, float))]
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
            try:  # a terminal's Ctrl-C reached the worker already; a batch system's signal did not
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        else:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    follower = RunFollower(spec.loss_metrics)
    tail = MetricsTail(run_dir / "metrics.jsonl")
    try:
        follow(console, proc, tail, follower, home, view.id)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return finish(console, home, view, proc, follower, tail, run_dir, interrupted=interrupts > 0)


def follow(console: Console, proc, tail: MetricsTail, follower: RunFollower, home: Path, run_id: int) -> None:
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[speed]}"), TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
                        console=console, transient=False)
    task = progress.add_task("starting", total=None, speed="", losses="")
    last_store = 0.0
    t0 = time.monotonic()
    live = Live(progress, console=console, refresh_per_second=4) if console.is_terminal else None
    if live:
        live.start()
    try:
        while True:
            done = proc.poll() is not None
            for rec in tail.read_new():
                follower.fold(rec)
                if not live and rec.get("kind") == "epoch":
                    console.print(epoch_line(rec, follower.epochs, follower.loss_text()))
            total = follower.epochs * follower.steps_per_epoch
            step = follower.fields["step"]
            elapsed = time.monotonic() - t0
            done_steps = step - follower.start_step
            speed = f"{done_steps / elapsed:.1f} it/s" if elapsed > 0 and done_steps else ""
            progress.update(task, total=total or None, completed=step, speed=speed, losses=follower.loss_text(),
                            description=f"epoch {min(follower.fields['epoch'] + 1, follower.epochs or 1)}"
                                        f"/{follower.epochs or '?'}")
            now = time.monotonic()
            if now - last_store > 1.0 or done:
                store_runs.update_progress(home, run_id, **_row_fields(follower, tail))
                last_store = now
            if done:
                for rec in tail.read_new():
                    follower.fold(rec)
                break
            time.sleep(0.2)
    finally:
        if live:
            live.stop()


def _row_fields(follower: RunFollower, tail: MetricsTail) -> dict[str, Any]:
    import json

    f = dict(follower.fields)
    if "last_metrics_json" in f and not isinstance(f["last_metrics_json"], str):
        f["last_metrics_json"] = json.dumps(f["last_metrics_json"])
    f["metrics_offset"] = tail.offset
    return {k: v for k, v in f.items() if k in PROGRESS_FIELDS}


def finish(console: Console, home: Path, view, proc, follower: RunFollower, tail: MetricsTail, run_dir: Path,
           *, interrupted: bool) -> int:
    rc = proc.wait()
    store_runs.update_progress(home, view.id, **_row_fields(follower, tail))
    record_artifact_records(home, view.id, follower.artifacts)
    end = follower.end
    sig = -rc if rc < 0 else None
    if end is not None:
        status = end.get("status", "failed")
        error = end.get("error")
    elif sig:
        status, error = "killed", f"worker killed by signal {sig}"
    else:
        status, error = "lost", f"worker exited with code {rc} without an end record"
    if status == "failed":
        error = (error or "") + _log_tail(run_dir / "log.txt")
    try:
        store_runs.set_status(home, view.id, status, message=error, error=error,
                              exit_code=rc if rc >= 0 else None, signal=sig)
    except StoreError:  # another command's reconcile settled the row between the worker's exit and now
        pass
    table = Table(title=f"run {view.id} {view.name}: {status}", show_header=False)
    table.add_row("epochs", f"{follower.fields['epoch']}/{follower.epochs}")
    if follower.best is not None:
        table.add_row("test accuracy", f"last {follower.fields.get('last_test_acc', 0):.2f}%  "
                                       f"best {follower.best:.2f}%")
    if follower.epoch_rows:
        last = follower.epoch_rows[-1]
        for key in DECLARED_EPOCH_METRICS:  # the mode-collapse signal of the last epoch
            if isinstance(last.get(key), (int, float)):
                table.add_row(key, f"{last[key]:.3f} (epoch {last.get('epoch')})")
        ips = [r.get("images_per_s") or 0 for r in follower.epoch_rows]
        table.add_row("images/s", f"{sum(ips) / len(ips):.1f} (mean over epochs)")
    samples = [a["path"] for a in follower.artifacts if a.get("what") == "samples"]
    if samples:
        table.add_row("last samples", str(run_dir / samples[-1]))
    table.add_row("folder", str(run_dir))
    if error:
        table.add_row("error", error.strip().splitlines()[0][:300])
    console.print(table)
    if status == "completed":
        return EXIT_OK
    if status in ("cancelled", "killed") or interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED


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


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    tail = [ln for ln in text[-lines:] if ln.strip()]
    return ("\n" + "\n".join(tail)) if tail else ""
