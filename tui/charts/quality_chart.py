"""The run screen's sample-quality chart: the `eval` records of evaluation during training (eval_every).

Distances by epoch: FID (Inception, when the run has the weights) and fd_clf with its real-vs-real floor at
the same n (a baseline classifier, eval_baseline): lower is better, and fd_clf can only approach its floor.
KID, IS, kid_clf and the GAN-test accuracy have other scales; their latest values are in the chart's
subtitle. The title says "(uncalibrated)" when the Inception weights are not the real file (such a FID is
not comparable with any published one). It takes the records the screen's follower already reads and stays
hidden until the run writes its first eval record, so a run without evaluation keeps its layout.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from engine.control.quality_text import UNCALIBRATED
from engine.control.records import EVAL
from tui.charts.metric_chart import MetricChart
from tui.charts.series import Series

DRAWN = ("fid", "fd_clf", "fd_clf_floor")  # one chart: the distances (lower is better)
NOTED = (("kid", "KID {:.4f}"), ("is", "IS {:.2f}"), ("kid_clf", "kid_clf {:.4f}"),
         ("gan_test_acc", "GAN-test acc {:.1f}%"))
TITLE = "sample quality (eval)"


def _finite(v: Any) -> float | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


class QualityChart(MetricChart):
    """`ingest(records)` from the screen's follower updates; `redraw()` when the screen draws its charts."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(TITLE, id=id, classes=classes)
        self.series: dict[str, Series] = {}
        self.latest: dict[str, float] = {}
        self.epoch: int | None = None
        self.n: int | None = None
        self.uncalibrated = False

    def on_mount(self) -> None:
        self.display = bool(self.series)

    def clear(self) -> None:
        self.series.clear()
        self.latest.clear()
        self.epoch = self.n = None
        self.uncalibrated = False
        self.display = False

    def ingest(self, records: Iterable[Mapping[str, Any]]) -> bool:
        """Take the eval records among `records`; True when one arrived (the chart needs a redraw)."""
        changed = False
        for rec in records:
            if rec.get("kind") != EVAL or not isinstance(rec.get("epoch"), int):
                continue
            epoch = rec["epoch"]
            for name in DRAWN:
                v = _finite(rec.get(name))
                if v is not None:
                    self.series.setdefault(name, Series()).append(epoch, v)
            self.latest = {name: v for name, _ in NOTED if (v := _finite(rec.get(name))) is not None}
            self.epoch, self.n = epoch, rec.get("n") if isinstance(rec.get("n"), int) else None
            if "fid" in rec:
                self.uncalibrated = bool(rec.get("uncalibrated"))
            changed = True
        if changed and not self.display:
            self.display = True
        return changed

    def note(self) -> str:
        """The subtitle: the latest values of the metrics not drawn, and the epoch and n they are from."""
        parts = [fmt.format(self.latest[name]) for name, fmt in NOTED if name in self.latest]
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch}" + (f", n={self.n}" if self.n else ""))
        return "  ".join(parts)

    def redraw(self) -> None:
        if not self.display:
            return
        if not self.size.width:  # shown just now: laid out at the next refresh, drawn to its width then
            self.call_after_refresh(self.redraw)
            return
        self.draw(self.series, order=list(DRAWN), xlabel="epoch", note=self.note(), empty="no evaluation yet")
        self.border_title = f"{TITLE} {UNCALIBRATED}" if self.uncalibrated else TITLE
