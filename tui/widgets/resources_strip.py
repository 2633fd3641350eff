"""The run screen's resources strip: what the run uses now, from its `resources` records.

One line: GPU memory used / total and util (when the records carry GPU figures: NVML on the worker's node), CPU
and RSS of the worker's process tree, and a sparkline of the last few minutes (GPU memory when known, else RSS).
It takes the records the screen's follower already reads (no file access of its own) and repaints only when its
text changes (QuietStatic). A run that writes no resources records (resources_every=0, an older worker) shows a
dim line saying so.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.text import Text

from engine.control.records import RESOURCES
from engine.control.resource_use import mb_text
from tui.widgets.quiet_static import QuietStatic

SPARK = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 30  # samples in the sparkline: 5 minutes at the default resources_every of 10 s


def sparkline(values: list[float]) -> str:
    """`▁▃▅█`: each value scaled between the series' min and max (a flat series is a flat low line)."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo
    return "".join(SPARK[0] if span <= 0 else SPARK[min(len(SPARK) - 1, int((v - lo) / span * len(SPARK)))]
                   for v in values)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


class ResourcesStrip(QuietStatic):
    """`ingest(records)` from the screen's follower updates; `clear()` when the metrics file starts over."""

    DEFAULT_CSS = """
    ResourcesStrip { height: 1; padding: 0 1; }
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last: dict[str, Any] | None = None
        self.history: deque[float] = deque(maxlen=SPARK_POINTS)
        self.history_of = ""  # "gpu" or "rss": what the sparkline draws

    def on_mount(self) -> None:
        self.show(self.text())

    def clear(self) -> None:
        self.last = None
        self.history.clear()
        self.show(self.text())

    def ingest(self, records: list[dict[str, Any]]) -> bool:
        """Take the resources records among `records`; True when the line changed."""
        seen = False
        for rec in records:
            if rec.get("kind") != RESOURCES:
                continue
            seen = True
            self.last = rec
            gpu_used = self._gpu_used(rec)
            kind, value = ("gpu", gpu_used) if gpu_used is not None else ("rss", _num(rec.get("rss_mb")))
            if kind != self.history_of:
                self.history.clear()
                self.history_of = kind
            if value is not None:
                self.history.append(value)
        return self.show(self.text()) if seen else False

    @staticmethod
    def _gpu_used(rec: dict[str, Any]) -> float | None:
        gpus = [g for g in rec.get("gpu") or [] if isinstance(g, dict)]
        used = [u for u in (_num(g.get("mem_used_mb")) for g in gpus) if u is not None]
        proc = _num(rec.get("proc_gpu_mem_mb"))
        return proc if proc is not None else (sum(used) if used else None)

    def text(self) -> Text:
        t = Text()
        rec = self.last
        if rec is None:
            t.append("resources: none recorded yet (every resources_every seconds; 0: off)", style="dim")
            return t
        gpus = [g for g in rec.get("gpu") or [] if isinstance(g, dict)]
        for g in gpus:
            util = _num(g.get("util_percent"))
            t.append(f"GPU {g.get('index', '?')} ", style="bold")
            t.append(f"{mb_text(g.get('mem_used_mb'))}/{mb_text(g.get('mem_total_mb'))}")
            if util is not None:
                t.append(f" {util:.0f}%")
            t.append("  ")
        if "proc_gpu_mem_mb" in rec:
            t.append("run ", style="bold")
            t.append(f"{mb_text(rec['proc_gpu_mem_mb'])}  ")
        cpu = _num(rec.get("cpu_percent"))
        t.append("CPU ", style="bold")
        t.append(f"{cpu:.0f}%  " if cpu is not None else "?  ")
        t.append("RSS ", style="bold")
        t.append(f"{mb_text(rec.get('rss_mb'))}  ")
        if self.history:
            t.append(sparkline(list(self.history)), style="cyan")
            t.append(f" {'GPU mem' if self.history_of == 'gpu' else 'RSS'}", style="dim")
        if not gpus:
            t.append("  (no GPU figures)", style="dim")
        return t
