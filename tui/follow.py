"""Following one run's folder: new metric records, new log lines, the set of PNGs. Plain file I/O.

Called from a thread worker of the run screen about twice a second. Everything is read by byte offset and
only whole lines are returned, so a line the worker is still writing waits for the next poll. Nothing
here touches the database or Textual, so it is tested directly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.control.records import END, EPOCH, PROGRESS, START, TRAIN, MetricsTail

LOG_TAIL_BYTES = 16 * 1024  # how much of an existing log the screen shows at first
MAX_READ = 4 << 20  # per poll, so a huge backlog arrives in slices (the UI thread only appends their arrays)
_SKIP_DIRS = {"checkpoints", "__pycache__"}


@dataclass
class FollowUpdate:
    # the new records; with a chart `batch` (RunFollower's), the train and progress records are folded into
    # `chart` and only the last of each is kept here (`fold_subset`): the UI thread never loops over them
    records: list[dict[str, Any]] = field(default_factory=list)
    chart: Any = None  # what the follower's `batch` made of the new records (tui.charts.series.ChartBatch)
    seen: int = 0  # how many records the update read (chart and records together)
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

    def __init__(self, run_dir: Path | str, metrics_offset: int = 0,
                 batch: Callable[[list[dict[str, Any]]], Any] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.batch = batch  # picks the charts' columns of each slice here, on the follower's thread
        # with a batch only the last progress record of a slice is kept (`fold_subset`): skip the rest unparsed
        self.metrics = MetricsTail(self.run_dir / "metrics.jsonl", metrics_offset,
                                   latest_only=(PROGRESS,) if batch is not None else ())
        self.log_offset: int | None = None  # None: not opened yet (start near the end)
        self._log_identity: tuple[int, int] | None = None
        self._images: list[str] | None = None

    def poll(self) -> FollowUpdate:
        up = FollowUpdate()
        resets = self.metrics.resets
        before, skipped = self.metrics.offset, self.metrics.skipped
        up.records = self.metrics.read_new(MAX_READ)
        up.seen = len(up.records) + self.metrics.skipped - skipped
        if self.batch is not None and up.records:
            up.chart = self.batch(up.records)
            up.records = fold_subset(up.records)
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


# Records whose fold keeps only the latest one (`engine.control.follow.ProgressFold`: step, epoch, speed,
# last_metrics are "latest wins"); every other kind is kept whole.
LATEST_WINS = frozenset({TRAIN, PROGRESS})


def fold_subset(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records a live fold needs, in order: all but train and progress records, and the last of each
    of those (folding them in order gives the same state as folding them all)."""
    keep = _last_of_each(records, LATEST_WINS)
    return [r for i, r in enumerate(records) if i in keep or r.get("kind") not in LATEST_WINS]


def title_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that give a live fold its step and progress, in order: every start and end record, and
    the last progress, train and epoch record (each sets the step; the last of them sets it last)."""
    keep = _last_of_each(records, _STEP_LATEST)
    return [r for i, r in enumerate(records) if i in keep or r.get("kind") in (START, END)]


def _last_of_each(records: list[dict[str, Any]], kinds: frozenset[str]) -> set[int]:
    """The index of the last record of each of `kinds` (scanning back from the end, stopping once all are found)."""
    last: dict[str, int] = {}
    for i in range(len(records) - 1, -1, -1):
        kind = records[i].get("kind")
        if kind in kinds and kind not in last:
            last[kind] = i
            if len(last) == len(kinds):
                break
    return set(last.values())


_STEP_LATEST = frozenset({PROGRESS, TRAIN, EPOCH})


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
    """The epoch of `samples/epoch_NNN.png`, else None (the name's rule: engine/control/sample_grids.py)."""
    from engine.control.sample_grids import sample_epoch as epoch_of

    return epoch_of(rel_path)
