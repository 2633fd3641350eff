"""The `stalled` health flag: a live worker whose metrics.jsonl has gained nothing for too long.

A training worker writes a record at least every `log_seconds` (and a progress record about once a second),
so silence once it has begun writing means it hangs: a dead data mount, a deadlocked collective, a GPU stuck in a kernel. The
supervisor notes when each watched run's file last grew and how far apart its growths are; when nothing has
come for max(health_stall_seconds, 10 x the median interval) it sets the row's `stalled_since` (through the
run's fold, so the next flush writes it) and records a `stalled` event (the notifier and the TUI toast it).
When records flow again the flag is cleared and a `running` event says for how long it was stalled. The
flag is never a status: the run stays `running`. `health_stall_seconds` is a config field (0: never); a
test sets it to a second or two.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.control.config import HEALTH_STALL
from engine.control.follow import ProgressFold
from engine.daemon.log import log
from store import runs as store_runs
from store.errors import StoreError

MEDIAN_FACTOR = 10.0  # a run is stalled after this many of its usual intervals (and at least the floor)
MIN_INTERVALS = 5  # growths needed before the median counts (before that, the floor alone)
KEEP_INTERVALS = 64


def _fmt(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{seconds:.1f} s"


@dataclass
class StallWatch:
    """One watched run: when its metrics.jsonl last grew, and whether it is flagged stalled."""

    floor_s: float
    offset: int = -1
    grew_at: float = field(default_factory=time.monotonic)
    intervals: deque[float] = field(default_factory=lambda: deque(maxlen=KEEP_INTERVALS))
    stalled_at: float | None = None  # monotonic time the flag was set
    grown: bool = False  # the file grew since the watch began

    @classmethod
    def for_config(cls, cfg: dict[str, Any]) -> StallWatch | None:
        """The watch for a run's config (None when health_stall_seconds is 0: never flagged)."""
        try:
            floor = float(cfg.get(HEALTH_STALL.name, HEALTH_STALL.default))
        except (TypeError, ValueError):
            floor = float(HEALTH_STALL.default)
        return cls(floor_s=floor) if floor > 0 else None

    def threshold(self) -> float:
        if len(self.intervals) < MIN_INTERVALS:
            return self.floor_s
        return max(self.floor_s, MEDIAN_FACTOR * statistics.median(self.intervals))

    def check(self, home: Path, run_id: int, offset: int, fold: ProgressFold, now: float | None = None) -> None:
        """After a follow: note growth, set or clear the flag (into `fold`, written at the next flush).
        `offset` only ever grows while the training loop writes: the supervisor passes the count of the
        loop's records (`ProgressFold.loop_records`), so the resources sampler's records, which a hung loop
        keeps writing, never hide a stall."""
        now = time.monotonic() if now is None else now
        if self.offset < 0:  # the first look: where the file stands when the watch began
            self.offset, self.grew_at = offset, now
            return
        if offset != self.offset:
            quiet = now - self.grew_at
            if offset > self.offset and self.grown:
                self.intervals.append(quiet)
            self.offset, self.grew_at, self.grown = offset, now, True
            if self.stalled_at is not None:
                self.stalled_at = None
                fold.fields["stalled_since"] = None
                fold.dirty = True
                self._event(home, run_id, "running", f"records flow again after {_fmt(quiet)} without one")
            return
        quiet = now - self.grew_at
        limit = self.threshold()
        # judged only once the worker wrote its first record since the watch began (its start-up: imports,
        # data loading, is not a stall)
        if self.grown and self.stalled_at is None and quiet >= limit:
            self.stalled_at = now
            fold.fields["stalled_since"] = time.time() - quiet
            fold.dirty = True
            self._event(home, run_id, "stalled", f"stalled: nothing written to metrics.jsonl for {_fmt(quiet)} "
                                                 f"(limit {_fmt(limit)}: max(health_stall_seconds, 10x the "
                                                 f"median record interval)); the process is alive")

    @staticmethod
    def _event(home: Path, run_id: int, status: str, message: str) -> None:
        log(f"run {run_id}: {message}")
        try:
            store_runs.add_event(home, run_id, status, message)
        except StoreError as e:
            log(f"run {run_id}: event not recorded: {e}")
