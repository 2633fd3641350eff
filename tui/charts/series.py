"""Chart data from metric records: bounded series, downsampling for drawing, smoothing. Pure, no Textual.

A run's metrics.jsonl can hold hundreds of thousands of train windows. The charts keep every point they
can afford (`Series` folds pairs of its oldest-resolution points together once it is full, so the whole
run stays visible at a coarser grain instead of its start falling off), and each redraw draws at most a
few points per terminal column (`downsample`, which keeps each bucket's minimum and maximum so a loss
spike stays visible). The metrics file itself is never touched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.control import records as kinds
from engine.control.config import RECIPES

DEFAULT_MAX_POINTS = 20_000
AXES = ("step", "epoch")
# Accuracy series names as the chart legends show them.
TRAIN_ACC = "train acc"
TEST_ACC = "test acc"
_NOT_METRICS = frozenset({"kind", "epoch", "step", "time", "acc"})
# Per-epoch signals the recipes declare (`RecipeSpec.epoch_metrics`, e.g. the mode-collapse signal): the
# loss chart draws them from the epoch records, at the epoch's step on the step axis.
DECLARED_EPOCH_METRICS: tuple[str, ...] = tuple(dict.fromkeys(m for spec in RECIPES.values()
                                                              for m in spec.epoch_metrics))


class Series:
    """(x, y) points in arrival order, at most `max_points`; non-finite values are dropped.

    When full, adjacent pairs are merged into their mean and each stored point stands for twice as many
    samples from then on (new samples are averaged in groups of that size before they are stored), so
    every stored point always covers the same number of samples: memory and redraw cost stay bounded on
    any run length, and the chart still spans the whole run at an even resolution.
    """

    __slots__ = ("max_points", "_xs", "_ys", "stride", "_px", "_py", "_pn", "folds")

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS) -> None:
        if max_points < 4:
            raise ValueError("a series needs room for at least 4 points")
        self.max_points = max_points
        self._xs: list[float] = []
        self._ys: list[float] = []
        self.stride = 1  # samples per stored point
        self._px = self._py = 0.0  # sums of the samples not yet stored
        self._pn = 0
        self.folds = 0

    def __len__(self) -> int:
        return len(self._xs) + (1 if self._pn else 0)

    @property
    def xs(self) -> list[float]:
        return self._xs + ([self._px / self._pn] if self._pn else [])

    @property
    def ys(self) -> list[float]:
        return self._ys + ([self._py / self._pn] if self._pn else [])

    def append(self, x: Any, y: Any) -> bool:
        """Add a sample; False (and nothing stored) when x or y is not a finite number."""
        fx, fy = _finite(x), _finite(y)
        if fx is None or fy is None:
            return False
        self._px += fx
        self._py += fy
        self._pn += 1
        if self._pn >= self.stride:
            self._xs.append(self._px / self._pn)
            self._ys.append(self._py / self._pn)
            self._px = self._py = 0.0
            self._pn = 0
            if len(self._xs) >= self.max_points:
                self._fold()
        return True

    def clear(self) -> None:
        self._xs.clear()
        self._ys.clear()
        self.stride = 1
        self._px = self._py = 0.0
        self._pn = 0
        self.folds = 0

    def _fold(self) -> None:
        xs, ys = self._xs, self._ys
        if len(xs) % 2:  # the odd last point goes back to the pending group (it is half of a new one)
            self._px, self._py, self._pn = xs.pop() * self.stride, ys.pop() * self.stride, self.stride
        self._xs = [(xs[i] + xs[i + 1]) / 2 for i in range(0, len(xs), 2)]
        self._ys = [(ys[i] + ys[i + 1]) / 2 for i in range(0, len(ys), 2)]
        self.stride *= 2
        self.folds += 1


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def downsample(xs: Sequence[float], ys: Sequence[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most about `max_points` points for drawing: per bucket its min and max, in x order.

    Keeps extremes (a spike in a loss must not vanish between two terminal columns); the first and last
    points are always kept so the axis range does not shrink.
    """
    n = len(xs)
    if max_points < 4:
        max_points = 4
    if n <= max_points:
        return list(xs), list(ys)
    buckets = max(1, (max_points - 2) // 2)
    out_x: list[float] = [xs[0]]
    out_y: list[float] = [ys[0]]
    inner = n - 2
    for b in range(buckets):
        lo = 1 + (b * inner) // buckets
        hi = 1 + ((b + 1) * inner) // buckets
        if hi <= lo:
            continue
        seg = range(lo, hi)
        i_min = min(seg, key=ys.__getitem__)
        i_max = max(seg, key=ys.__getitem__)
        for i in sorted({i_min, i_max}):
            out_x.append(xs[i])
            out_y.append(ys[i])
    out_x.append(xs[-1])
    out_y.append(ys[-1])
    return out_x, out_y


def ema(ys: Sequence[float], alpha: float) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard-style), so the start is not pulled to 0."""
    if not 0 < alpha <= 1:
        raise ValueError("alpha must be in (0, 1]")
    out: list[float] = []
    acc = 0.0
    weight = 0.0
    for y in ys:
        acc = (1 - alpha) * acc + alpha * y
        weight = (1 - alpha) * weight + alpha
        out.append(acc / weight)
    return out


def smoothing_alpha(n_points: int) -> float:
    """A smoothing strength that suits the number of drawn points (about 1/20 of them per time constant)."""
    return min(1.0, max(0.02, 20.0 / max(n_points, 1)))


def drawable(series: Series, max_points: int, smooth: bool) -> tuple[list[float], list[float]]:
    """What one chart line draws: smoothed over all stored points (if asked), then downsampled."""
    ys: Sequence[float] = series.ys
    if smooth and len(ys) > 2:
        ys = ema(ys, smoothing_alpha(len(ys)))
    return downsample(series.xs, ys, max_points)


@dataclass
class RunCharts:
    """Every series one run's charts draw, on both x axes, fed record by record.

    `losses` names the loss chart's metrics (a recipe's `loss_metrics`); the accuracy chart holds the
    train accuracy (`acc` per window in step mode, `train_acc` per epoch in epoch mode) and `test_acc`.
    With `losses` empty (an unknown recipe), every numeric train field other than `acc` is a loss.
    `epoch_metrics` are per-epoch signals (default: every recipe's declared ones) drawn on the loss chart
    after the losses, once a run's epoch records carry them.
    `probes` (a recipe without a classifier: `RecipeSpec.probe_metrics()`) go on the second chart in place
    of the accuracies: train metrics per window / epoch mean, and per-epoch signals.
    """

    losses: tuple[str, ...] = ()
    epoch_metrics: tuple[str, ...] = DECLARED_EPOCH_METRICS
    probes: tuple[str, ...] = ()
    max_points: int = DEFAULT_MAX_POINTS
    loss_series: dict[str, dict[str, Series]] = field(default_factory=lambda: {a: {} for a in AXES})
    acc_series: dict[str, dict[str, Series]] = field(default_factory=lambda: {a: {} for a in AXES})
    records_seen: int = 0

    def clear(self) -> None:
        for axis in AXES:
            self.loss_series[axis].clear()
            self.acc_series[axis].clear()
        self.records_seen = 0

    def loss_names(self) -> list[str]:
        seen = set(self.loss_series["step"]) | set(self.loss_series["epoch"])
        signals = [m for m in self.epoch_metrics if m in seen and m not in self.losses and m not in self.probes]
        if self.losses:
            return [*self.losses, *signals]
        return [*sorted(seen - set(signals)), *signals]

    def second_names(self) -> list[str]:
        """The second chart's series in order: the probes when the recipe has them, else the accuracies."""
        if self.probes:
            return list(self.probes)
        return [TRAIN_ACC, TEST_ACC]

    def ingest(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Fold records in; returns how many points were added (0: nothing to redraw)."""
        added = 0
        for rec in records:
            self.records_seen += 1
            kind = rec.get("kind")
            if kind == kinds.TRAIN:
                added += self._train(rec)
            elif kind == kinds.EPOCH:
                added += self._epoch(rec)
        return added

    def _series(self, table: dict[str, dict[str, Series]], axis: str, name: str) -> Series:
        s = table[axis].get(name)
        if s is None:
            s = table[axis][name] = Series(self.max_points)
        return s

    def _train(self, rec: Mapping[str, Any]) -> int:
        step = rec.get("step")
        added = 0
        names = self.losses or [k for k in rec if k not in _NOT_METRICS and _finite(rec[k]) is not None]
        for name in names:
            if name in rec:
                added += self._series(self.loss_series, "step", name).append(step, rec[name])
        if "acc" in rec:
            added += self._series(self.acc_series, "step", TRAIN_ACC).append(step, rec["acc"])
        for name in self.probes:
            if _finite(rec.get(name)) is not None:
                added += self._series(self.acc_series, "step", name).append(step, rec[name])
        return added

    def _epoch(self, rec: Mapping[str, Any]) -> int:
        epoch, step = rec.get("epoch"), rec.get("step")
        added = 0
        names = self.losses or [k[5:] for k in rec if k.startswith("mean_")]
        for name in names:
            key = f"mean_{name}"
            if key in rec:
                added += self._series(self.loss_series, "epoch", name).append(epoch, rec[key])
        if "train_acc" in rec:
            added += self._series(self.acc_series, "epoch", TRAIN_ACC).append(epoch, rec["train_acc"])
        if "test_acc" in rec:
            added += self._series(self.acc_series, "epoch", TEST_ACC).append(epoch, rec["test_acc"])
            added += self._series(self.acc_series, "step", TEST_ACC).append(step, rec["test_acc"])
        for name in self.probes:
            if name in self.epoch_metrics:
                continue
            if _finite(rec.get(f"mean_{name}")) is not None:
                added += self._series(self.acc_series, "epoch", name).append(epoch, rec[f"mean_{name}"])
        for name in self.epoch_metrics:
            if _finite(rec.get(name)) is not None:
                table = self.acc_series if name in self.probes else self.loss_series
                added += self._series(table, "epoch", name).append(epoch, rec[name])
                added += self._series(table, "step", name).append(step, rec[name])
        return added


def metric_series(records: Iterable[Mapping[str, Any]], metric: str, axis: str,
                  max_points: int = DEFAULT_MAX_POINTS) -> Series:
    """One metric of one run for the compare chart.

    Step axis: the metric from train records (or, for epoch-only metrics such as test_acc, from epoch
    records at their step). Epoch axis: the epoch record's field, or `mean_<metric>` for train metrics.
    """
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}")
    out = Series(max_points)
    records = list(records)
    if axis == "step":
        train_has = any(r.get("kind") == kinds.TRAIN and metric in r for r in records)
        kind = "train" if train_has else "epoch"
        for r in records:
            if r.get("kind") == kind and metric in r:
                out.append(r.get("step"), r[metric])
    else:
        for r in records:
            if r.get("kind") != "epoch":
                continue
            value = r.get(metric, r.get(f"mean_{metric}"))
            if metric == "acc" and value is None:
                value = r.get("train_acc")
            if value is not None:
                out.append(r.get("epoch"), value)
    return out


def metric_names(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The numeric metrics found in train and epoch records (for the compare screen's choice)."""
    seen: dict[str, None] = {}
    for r in records:
        if r.get("kind") not in ("train", "epoch"):
            continue
        for k, v in r.items():
            if k in ("kind", "epoch", "step", "time") or _finite(v) is None:
                continue
            seen[k[5:] if k.startswith("mean_") else k] = None
    return list(seen)
