"""Helpers of the TUI tests and benchmarks: real store rows in every status, metrics files, sample PNGs, and
driving the app (a pilot, its waits, the text a widget shows).

Rows are made with the same functions the product uses (engine.control.submit.create_run for a run
with its folder, store.runs for the status transitions), so the TUI reads exactly what it would read
in use. A `running` row is given this test process's pid and start token, so a liveness check (the
reconcile at app start) finds it alive.
"""

from __future__ import annotations

import json
import math
import os
import random
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.control.config import resolve_config
from engine.control.procs import process_start_token
from engine.control.submit import create_run
from store import runs as store_runs
from store.lifecycle import STATUSES
from store.views import RunView

if TYPE_CHECKING:
    from tui.screens.run_detail import RunScreen

LOSSES = ("gp", "d_fake_source", "d_real_source", "d_real_class", "d_fake_class")


def make_run(home: Path, status: str = "queued", *, recipe: str = "acgan-wgangp", name: str | None = None,
             tags: tuple[str, ...] = (), priority: int = 0, epochs: int = 4, epoch: int = 0,
             test_acc: float | None = None, **overrides: Any) -> RunView:
    """A run row + folder in `status` (walked through the real transitions)."""
    cfg = resolve_config(recipe, {"epochs": epochs, "width": 8, "batch_size": 32, "name": name, **overrides})
    view = create_run(home, cfg, tags=tags, priority=priority, status="queued")
    if status == "queued":
        return view
    token = process_start_token(os.getpid())
    store_runs.set_status(home, view.id, "running", started_at=view.created_at)
    view = store_runs.mark_started(home, view.id, pid=os.getpid(), pid_start=token or "0")
    progress = {"epoch": epoch, "progress": epoch / epochs if epochs else 0.0, "images_per_s": 812.5}
    if test_acc is not None:
        progress["last_test_acc"] = test_acc
    store_runs.update_progress(home, view.id, **progress)
    if status == "running":
        return store_runs.get_run(home, view.id)  # type: ignore[return-value]
    fields: dict[str, Any] = {"pid": None}
    if status == "failed":
        fields["error"] = "RuntimeError: something broke"
        fields["exit_code"] = 1
    if status == "killed":
        fields["signal"] = 9
    return store_runs.set_status(home, view.id, status, **fields)


def runs_in_every_status(home: Path) -> dict[str, RunView]:
    """One run per status, named after it (`run-completed`, ...)."""
    out = {}
    for i, status in enumerate(STATUSES):
        out[status] = make_run(home, status, name=f"run-{status}", epoch=min(i, 4),
                               test_acc=40.0 + i if status not in ("queued",) else None,
                               tags=("sweep",) if i % 2 else ())
    return out


def train_record(step: int, epoch: int, rng: random.Random, scale: float = 100.0) -> dict[str, Any]:
    """An acgan-wgangp train window at `step` whose curves move on a time scale of `scale` steps."""
    t = step / scale
    rec: dict[str, Any] = {"kind": "train", "epoch": epoch, "step": step}
    rec["gp"] = 0.5 * math.exp(-t) + 0.05 * rng.random()
    rec["d_fake_source"] = -2.0 + math.sin(t) + 0.2 * rng.random()
    rec["d_real_source"] = 2.0 - math.sin(t) + 0.2 * rng.random()
    rec["d_real_class"] = 2.3 * math.exp(-t / 3) + 0.1 * rng.random()
    rec["d_fake_class"] = 2.3 * math.exp(-t / 4) + 0.1 * rng.random()
    rec["gen_source"] = -rec["d_fake_source"]
    rec["gen_class"] = rec["d_fake_class"]
    rec["acc"] = min(99.0, 10 + 80 * (1 - math.exp(-t / 2)) + 5 * rng.random())
    return rec


def write_metrics(run_dir: Path, *, epochs: int, windows_per_epoch: int = 5, steps_per_window: int = 10,
                  seed: int = 0, append: bool = False, first_epoch: int = 1) -> int:
    """Append GAN metric records for `epochs` epochs; returns the number of records written."""
    rng = random.Random(seed)
    lines = []
    for e in range(first_epoch, first_epoch + epochs):
        for w in range(windows_per_epoch):
            step = ((e - 1) * windows_per_epoch + w + 1) * steps_per_window
            lines.append(train_record(step, e, rng))
        ep = {"kind": "epoch", "epoch": e, "step": e * windows_per_epoch * steps_per_window,
              "train_acc": 20.0 + 10 * e, "test_acc": 15.0 + 9 * e, "seconds": 3.2, "images_per_s": 900.0,
              "lr": 1e-4}
        for name in LOSSES:
            ep[f"mean_{name}"] = sum(r[name] for r in lines[-windows_per_epoch:]) / windows_per_epoch
        lines.append(ep)
    with open(run_dir / "metrics.jsonl", "a" if append else "w") as f:
        for rec in lines:
            f.write(json.dumps(rec) + "\n")
    return len(lines)


def write_png(path: Path, size: int = 64, seed: int = 0) -> Path:
    """A small RGB PNG (a colour pattern that differs by seed) without any imaging library."""
    rng = random.Random(seed)
    base = [rng.randrange(256) for _ in range(3)]
    rows = []
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            row += bytes(((base[0] + 4 * x) % 256, (base[1] + 4 * y) % 256, (base[2] + 2 * (x + y)) % 256))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
    png += chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def write_samples(run_dir: Path, epochs: int) -> list[Path]:
    return [write_png(run_dir / "samples" / f"epoch_{e:03d}.png", seed=e) for e in range(1, epochs + 1)]


def bulk_runs(home: Path, n: int, *, running: int = 5, queued: int = 20) -> None:
    """`n` rows straight through the store (no folders): enough history to time the table on."""
    from engine.control.paths import ensure_home

    ensure_home(home)
    cfg = resolve_config("acgan-wgangp", {"epochs": 10, "width": 8})
    statuses = ("completed", "failed", "cancelled", "completed", "diverged", "lost", "killed")
    for i in range(n):
        if i >= n - queued:
            status = "queued"
        elif i >= n - queued - running:
            status = "running"
        else:
            status = statuses[i % len(statuses)]
        v = store_runs.create_run(home, name=f"bulk-{i:05d}", recipe="acgan-wgangp", dataset="synthetic",
                                  config=cfg, epochs=10, tags=("bulk", f"g{i % 7}"))
        if status == "queued":
            continue
        store_runs.set_status(home, v.id, "running")
        store_runs.update_progress(home, v.id, epoch=i % 10, progress=(i % 10) / 10, last_test_acc=30 + i % 50,
                                   images_per_s=500.0 + i)
        if status != "running":
            store_runs.set_status(home, v.id, status)


# ----------------------------------------------------------------------------------- driving the app


def drive(home: Path, scenario, *, size: tuple[int, int] = (80, 24), welcome: bool = False,
          reconcile: bool = False):
    """Run `await scenario(app, pilot)` inside `GanmgrApp(home).run_test(size=size)`; returns the app."""
    import asyncio

    from tui.app import GanmgrApp

    app = GanmgrApp(home, welcome=welcome, reconcile=reconcile)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(app, pilot)

    asyncio.run(main())
    return app


async def wait_for(pilot, predicate, timeout: float = 15.0, what: str = "condition") -> None:
    """Let the app run until `predicate()` holds (workers and timers are real, so this takes real time)."""
    import time

    end = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - a widget not mounted yet counts as "not yet"
            pass
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


async def open_run(app, pilot, run_id: int) -> RunScreen:
    """Select `run_id` in the runs table, press enter, and return the run screen once it is shown."""
    from tui.screens.run_detail import RunScreen
    from tui.widgets.runs_table import RunsTable

    table = app.runs_screen.query_one(RunsTable)
    await wait_for(pilot, lambda: run_id in table.run_ids, what="the run in the table")
    table.select_run(run_id)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
    return app.screen


def hold_supervisor_lock(home: Path) -> int:
    """Take the store's supervisor lock so enqueue/cancel start no supervisor (the test drives the store)."""
    from engine.control.paths import ensure_home
    from engine.control.supervisor_lock import try_lock

    ensure_home(home)
    fd = try_lock(home)
    assert fd is not None, "a supervisor already holds the lock"
    return fd


def plain(widget, width: int = 200) -> str:
    """The text a Static shows (its content rendered by Rich, styles dropped)."""
    from rich.console import Console
    from rich.text import Text

    content = widget.content
    if isinstance(content, str):
        return content
    if isinstance(content, Text):
        return content.plain
    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(content)
    return console.export_text()
