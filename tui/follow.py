"""Following one run's folder: new metric records, new log lines, the set of PNGs. Plain file I/O.

Called from a thread worker of the run screen about twice a second. Everything is read by byte offset and
only whole lines are returned, so a line the worker is still writing waits for the next poll. Nothing
here touches the database or Textual, so it is tested directly.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.control.records import MetricsTail

LOG_TAIL_BYTES = 16 * 1024  # how much of an existing log the screen shows at first
MAX_READ = 1 << 20  # per poll, so a huge backlog arrives in slices and the UI stays responsive
_SKIP_DIRS = {"checkpoints", "__pycache__"}


@dataclass
class FollowUpdate:
    records: list[dict[str, Any]] = field(default_factory=list)
    metrics_reset: bool = False  # the metrics file was replaced (a resumed run): start the charts over
    log_lines: list[str] = field(default_factory=list)
    log_reset: bool = False
    images: list[str] | None = None  # PNG paths relative to the run folder, when the set changed
    more: bool = False  # a read hit MAX_READ: poll again soon

    @property
    def empty(self) -> bool:
        return not (self.records or self.metrics_reset or self.log_lines or self.log_reset
                    or self.images is not None)


class RunFollower:
    """Incremental reader of one run folder; one instance per reading thread."""

    def __init__(self, run_dir: Path | str, metrics_offset: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.metrics = MetricsTail(self.run_dir / "metrics.jsonl", metrics_offset)
        self.log_offset: int | None = None  # None: not opened yet (start near the end)
        self._log_identity: tuple[int, int] | None = None
        self._images: list[str] | None = None

    def poll(self) -> FollowUpdate:
        up = FollowUpdate()
        resets = self.metrics.resets
        before = self.metrics.offset
        up.records = self.metrics.read_new(MAX_READ)
        up.metrics_reset = self.metrics.resets != resets
        up.more = self.metrics.offset - before >= MAX_READ // 2
        up.log_lines, up.log_reset = self._read_log()
        images = list_images(self.run_dir)
        if images != self._images:
            self._images = images
            up.images = images
        return up

    def _read_log(self) -> tuple[list[str], bool]:
        path = self.run_dir / "log.txt"
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return [], False
        reset = False
        with f:
            st = os.fstat(f.fileno())
            identity = (st.st_dev, st.st_ino)
            first = self.log_offset is None
            if not first and (identity != self._log_identity or st.st_size < (self.log_offset or 0)):
                self.log_offset = 0
                reset = True
            self._log_identity = identity
            if first:
                self.log_offset = max(0, st.st_size - LOG_TAIL_BYTES)
            offset = self.log_offset or 0
            if st.st_size <= offset:
                return [], reset
            f.seek(offset)
            chunk = f.read(min(st.st_size - offset, MAX_READ))
        end = chunk.rfind(b"\n")
        if end < 0:
            return [], reset
        self.log_offset = offset + end + 1
        lines = chunk[:end].decode("utf-8", "replace").split("\n")
        if first and offset > 0 and lines:
            lines = lines[1:]  # started mid-line
        # A progress bar's carriage returns: keep what the terminal would show last.
        return [ln.rstrip("\r").rsplit("\r", 1)[-1] for ln in lines], reset


def natural_key(text: str) -> tuple:
    """Sort `epoch_9` before `epoch_10` (and `epoch_999` before `epoch_1000`)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def list_images(run_dir: Path) -> list[str]:
    """Every PNG of the run: the epoch sample grids first (in epoch order), then the rest by path."""
    samples: list[str] = []
    others: list[str] = []
    base = str(run_dir)
    for root, dirs, files in os.walk(run_dir):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        rel_root = os.path.relpath(root, base)
        for name in files:
            if not name.lower().endswith(".png") or name.startswith("."):
                continue
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            (samples if rel_root == "samples" else others).append(rel)
    return sorted(samples, key=natural_key) + sorted(others, key=natural_key)


def sample_epoch(rel_path: str) -> int | None:
    """The epoch of `samples/epoch_NNN.png`, else None."""
    m = re.fullmatch(r"samples/epoch_(\d+)\.png", rel_path)
    return int(m.group(1)) if m else None
