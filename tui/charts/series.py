"""Chart data from metric records: bounded series, decimation for drawing, smoothing. Pure, no Textual.

A run's metrics.jsonl can hold a million train windows. The charts keep every point they can afford
(`Series` folds pairs of its oldest-resolution points together once it is full, so the whole run stays
visible at a coarser grain instead of its start falling off, each point keeping the lowest and highest
sample it stands for), take records a slice at a time (`RunCharts.batch`: the shown columns of a slice as
numpy arrays, `engine.control.columns`, one finiteness check per array), and each redraw draws a few
points per terminal column (`decimate`, which keeps each bucket's lowest and highest value so a loss spike
stays visible). The metrics file itself is never touched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.control import records as kinds
from engine.control.columns import column, columns, finite_pairs, keys_of, of_kind
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
    any run length, and the chart still spans the whole run at an even resolution. Each stored point also
    keeps the lowest and highest sample it covers, so a spike stays visible however far the series folds.

    Samples arrive in batches (`extend`: numpy arrays, one finiteness check per batch) or one at a time
    (`append`).
    """

    __slots__ = ("max_points", "_x", "_y", "_lo", "_hi", "_n", "stride", "_px", "_py", "_plo", "_phi", "_pn",
                 "folds")

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS) -> None:
        if max_points < 4:
            raise ValueError("a series needs room for at least 4 points")
        self.max_points = max_points
        self._x = np.empty(max_points)
        self._y = np.empty(max_points)
        self._lo = np.empty(max_points)
        self._hi = np.empty(max_points)
        self._n = 0  # stored points
        self.stride = 1  # samples per stored point
        self._px = self._py = 0.0  # sums of the samples not yet stored
        self._plo, self._phi = math.inf, -math.inf
        self._pn = 0
        self.folds = 0

    def __len__(self) -> int:
        return self._n + (1 if self._pn else 0)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """x, mean y, lowest y, highest y of every point (the pending group last), as arrays."""
        n = self._n
        if not self._pn:
            return self._x[:n].copy(), self._y[:n].copy(), self._lo[:n].copy(), self._hi[:n].copy()
        pn = self._pn
        return (np.append(self._x[:n], self._px / pn), np.append(self._y[:n], self._py / pn),
                np.append(self._lo[:n], self._plo), np.append(self._hi[:n], self._phi))

    @property
    def xs(self) -> list[float]:
        return self.arrays()[0].tolist()

    @property
    def ys(self) -> list[float]:
        return self.arrays()[1].tolist()

    @property
    def last_y(self) -> float:
        """The newest point's y (the legend's value)."""
        return self._py / self._pn if self._pn else float(self._y[self._n - 1])

    def append(self, x: Any, y: Any) -> bool:
        """Add a sample; False (and nothing stored) when x or y is not a finite number."""
        fx, fy = _finite(x), _finite(y)
        if fx is None or fy is None:
            return False
        self._add(np.array([fx]), np.array([fy]))
        return True

    def extend(self, xs: np.ndarray, ys: np.ndarray) -> int:
        """Add a batch of samples (float arrays of one length); the pairs where either is not finite are
        dropped. Returns how many were added."""
        fx, fy = finite_pairs(np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64))
        if len(fx):
            self._add(fx, fy)
        return len(fx)

    def _add(self, xs: np.ndarray, ys: np.ndarray) -> None:
        i, total = 0, len(xs)
        while i < total:
            if self._pn:  # complete the pending group first
                take = min(self.stride - self._pn, total - i)
                seg_y = ys[i:i + take]
                self._px += float(xs[i:i + take].sum())
                self._py += float(seg_y.sum())
                self._plo = min(self._plo, float(seg_y.min()))
                self._phi = max(self._phi, float(seg_y.max()))
                self._pn += take
                i += take
                if self._pn == self.stride:
                    n = self._n
                    self._x[n], self._y[n] = self._px / self._pn, self._py / self._pn
                    self._lo[n], self._hi[n] = self._plo, self._phi
                    self._n += 1
                    self._reset_pending()
                    if self._n >= self.max_points:
                        self._fold()
                continue
            groups = min((total - i) // self.stride, self.max_points - self._n)
            if groups == 0:  # fewer samples left than a group: they start the pending one
                seg_y = ys[i:]
                self._px, self._py = float(xs[i:].sum()), float(seg_y.sum())
                self._plo, self._phi = float(seg_y.min()), float(seg_y.max())
                self._pn = total - i
                return
            k = self.stride
            gx = xs[i:i + groups * k].reshape(groups, k)
            gy = ys[i:i + groups * k].reshape(groups, k)
            n = self._n
            self._x[n:n + groups] = gx.mean(axis=1)
            self._y[n:n + groups] = gy.mean(axis=1)
            self._lo[n:n + groups] = gy.min(axis=1)
            self._hi[n:n + groups] = gy.max(axis=1)
            self._n += groups
            i += groups * k
            if self._n >= self.max_points:
                self._fold()

    def _reset_pending(self) -> None:
        self._px = self._py = 0.0
        self._plo, self._phi = math.inf, -math.inf
        self._pn = 0

    def clear(self) -> None:
        self._n = 0
        self.stride = 1
        self._reset_pending()
        self.folds = 0

    def _fold(self) -> None:
        n = self._n
        if n % 2:  # the odd last point goes back to the pending group (it is half of a new one)
            n -= 1
            self._px, self._py = float(self._x[n]) * self.stride, float(self._y[n]) * self.stride
            self._plo, self._phi = float(self._lo[n]), float(self._hi[n])
            self._pn = self.stride
        h = n // 2
        self._x[:h] = self._x[:n].reshape(h, 2).mean(axis=1)
        self._y[:h] = self._y[:n].reshape(h, 2).mean(axis=1)
        self._lo[:h] = self._lo[:n].reshape(h, 2).min(axis=1)
        self._hi[:h] = self._hi[:n].reshape(h, 2).max(axis=1)
        self._n = h
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
    if len(xs) <= max(max_points, 4):
        return list(xs), list(ys)
    y = np.asarray(ys, dtype=np.float64)
    x, out_y = decimate(np.asarray(xs, dtype=np.float64), y, y, y, max_points)
    return x.tolist(), out_y.tolist()


def decimate(x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_points: int,
             envelope: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """About `max_points` points of a line whose points span [lo, hi] around y: the first and the last
    point, and per bucket between them the lowest `lo` and the highest `hi`, in x order (vectorized).
    A line of at most `max_points` points is returned as it is, unless `envelope` (its points stand for
    several samples each: their lows and highs are drawn)."""
    n = len(x)
    max_points = max(max_points, 4)
    inner = n - 2
    if (n <= max_points and not envelope) or inner < 1:
        return x, y
    buckets = max(1, min(inner, (max_points - 2) // 2))
    size = -(-inner // buckets)  # ceil
    rows = -(-inner // size)
    pad = rows * size - inner
    lo_in = np.concatenate([lo[1:-1], np.full(pad, np.inf)]).reshape(rows, size)
    hi_in = np.concatenate([hi[1:-1], np.full(pad, -np.inf)]).reshape(rows, size)
    base = 1 + np.arange(rows) * size
    i_min = base + lo_in.argmin(axis=1)
    i_max = base + hi_in.argmax(axis=1)
    px, py = _envelope(x, lo, hi, i_min, i_max)
    if envelope:  # the ends stand for many samples too: their low and high
        return (np.concatenate([[x[0], x[0]], px, [x[-1], x[-1]]]),
                np.concatenate([[lo[0], hi[0]], py, [lo[-1], hi[-1]]]))
    return (np.concatenate([[x[0]], px, [x[-1]]]), np.concatenate([[y[0]], py, [y[-1]]]))


def _envelope(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, i_min: np.ndarray,
              i_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bucket its low point and its high point, the earlier one first."""
    first_is_min = i_min <= i_max
    a = np.where(first_is_min, i_min, i_max)
    b = np.where(first_is_min, i_max, i_min)
    ya = np.where(first_is_min, lo[a], hi[a])
    yb = np.where(first_is_min, hi[b], lo[b])
    return np.column_stack([x[a], x[b]]).ravel(), np.column_stack([ya, yb]).ravel()


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
    """What one chart line draws: smoothed over all stored points (if asked), then decimated to about
    `max_points`, keeping each bucket's lowest and highest sample (unsmoothed) so spikes stay visible."""
    x, y, lo, hi = series.arrays()
    envelope = series.stride > 1
    if smooth and len(y) > 2:
        y = np.asarray(ema(y.tolist(), smoothing_alpha(len(y))))
        lo = hi = y
        envelope = False
    dx, dy = decimate(x, y, lo, hi, max_points, envelope)
    return dx.tolist(), dy.tolist()


# A batch of chart points: (chart, axis, series name, xs, ys); chart is "loss" or "acc".
ChartBatch = list[tuple[str, str, str, np.ndarray, np.ndarray]]


@dataclass
class RunCharts:
    """Every series one run's charts draw, on both x axes, fed a slice of records at a time.

    `losses` names the loss chart's metrics (a recipe's `loss_metrics`); the accuracy chart holds the
    train accuracy (`acc` per window in step mode, `train_acc` per epoch in epoch mode) and `test_acc`.
    With `losses` empty (an unknown recipe), every numeric train field other than `acc` is a loss.
    `epoch_metrics` are per-epoch signals (default: every recipe's declared ones) drawn on the loss chart
    after the losses, once a run's epoch records carry them.
    `probes` (a recipe without a classifier: `RecipeSpec.probe_metrics()`) go on the second chart in place
    of the accuracies: train metrics per window / epoch mean, and per-epoch signals.

    `batch(records)` picks the shown columns of a slice (numpy, no state: the follower thread calls it),
    `extend(batch)` adds them to the series (the UI thread); `ingest` is both at once.
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

    def ingest(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Fold records in; returns how many points were added (0: nothing to redraw)."""
        return self.extend(self.batch(records), len(records))

    def extend(self, batch: ChartBatch, records: int = 0) -> int:
        """Add a batch from `batch` (`records`: how many records it was picked from)."""
        self.records_seen += records
        added = 0
        for chart, axis, name, xs, ys in batch:
            table = self.loss_series if chart == "loss" else self.acc_series
            s = table[axis].get(name)
            if s is None:
                s = table[axis][name] = Series(self.max_points)
            added += s.extend(xs, ys)
        return added

    def batch(self, records: Sequence[Mapping[str, Any]]) -> ChartBatch:
        """The shown columns of a slice of records, one array per series (a series with no finite value
        in the slice is left out)."""
        out: ChartBatch = []

        def put(chart: str, axis: str, name: str, xs: np.ndarray, ys: np.ndarray) -> None:
            fx, fy = finite_pairs(xs, ys)
            if len(fx):
                out.append((chart, axis, name, fx, fy))

        train = of_kind(records, kinds.TRAIN)
        if train:
            names = list(self.losses or keys_of(train, _NOT_METRICS))
            cols = columns(train, list(dict.fromkeys(["step", *names, "acc", *self.probes])))
            step = cols["step"]
            for name in names:
                put("loss", "step", name, step, cols[name])
            put("acc", "step", TRAIN_ACC, step, cols["acc"])
            for name in self.probes:
                put("acc", "step", name, step, cols[name])
        epochs = of_kind(records, kinds.EPOCH)
        if epochs:
            epoch, step = column(epochs, "epoch"), column(epochs, "step")
            names = self.losses or [k[5:] for k in keys_of(epochs) if k.startswith("mean_")]
            for name in names:
                put("loss", "epoch", name, epoch, column(epochs, f"mean_{name}"))
            put("acc", "epoch", TRAIN_ACC, epoch, column(epochs, "train_acc"))
            test = column(epochs, "test_acc")
            put("acc", "epoch", TEST_ACC, epoch, test)
            put("acc", "step", TEST_ACC, step, test)
            for name in self.probes:
                if name not in self.epoch_metrics:
                    put("acc", "epoch", name, epoch, column(epochs, f"mean_{name}"))
            for name in self.epoch_metrics:
                chart = "acc" if name in self.probes else "loss"
                values = column(epochs, name)
                put(chart, "epoch", name, epoch, values)
                put(chart, "step", name, step, values)
        return out


class CompareSeries:
    """Every metric of one run on both axes, as bounded series, built from slices of its records (off the
    UI thread): what the compare screen draws, so a metric or axis key only picks series already built.

    Step axis: a metric from the train records (or, for an epoch-only metric such as test_acc, from the
    epoch records at their step). Epoch axis: the epoch record's field, or `mean_<metric>` for a train
    metric; `acc` per epoch is the epoch's `train_acc`.
    """

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS) -> None:
        self.max_points = max_points
        self.train: dict[str, Series] = {}  # step axis, from train records
        self.epoch_at_step: dict[str, Series] = {}  # step axis, from epoch records
        self.epoch: dict[str, Series] = {}  # epoch axis
        self.names: dict[str, None] = {}  # every metric, in order of first appearance
        self.records = 0

    def _put(self, table: dict[str, Series], name: str, xs: np.ndarray, ys: np.ndarray) -> None:
        fx, fy = finite_pairs(xs, ys)
        if not len(fx):
            return
        if name not in table:
            table[name] = Series(self.max_points)
        table[name].extend(fx, fy)
        self.names.setdefault(name, None)

    def add(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.records += len(records)
        train = of_kind(records, kinds.TRAIN)
        if train:
            step = column(train, "step")
            for k in keys_of(train, _COMPARE_SKIP):
                self._put(self.train, k, step, column(train, k))
        epochs = of_kind(records, kinds.EPOCH)
        if epochs:
            epoch, step = column(epochs, "epoch"), column(epochs, "step")
            keys = keys_of(epochs, _COMPARE_SKIP)
            for name in dict.fromkeys(k[5:] if k.startswith("mean_") else k for k in keys):
                plain = column(epochs, name) if name in keys else None
                mean = column(epochs, f"mean_{name}") if f"mean_{name}" in keys else None
                values = plain if mean is None else mean if plain is None else np.where(
                    np.isnan(plain), mean, plain)  # the field itself wins where a record has both
                if name == "acc" and "train_acc" in keys:
                    values = np.where(np.isnan(values), column(epochs, "train_acc"), values)
                self._put(self.epoch, name, epoch, values)
                self._put(self.epoch_at_step, name, step, values)
            if "train_acc" in keys and "acc" not in keys and "mean_acc" not in keys:
                self._put(self.epoch, "acc", epoch, column(epochs, "train_acc"))

    def series(self, metric: str, axis: str) -> Series:
        """The metric on an axis (an empty series when the run has none)."""
        if axis not in AXES:
            raise ValueError(f"axis must be one of {AXES}")
        if axis == "epoch":
            found = self.epoch.get(metric)
        else:
            found = self.train.get(metric) or self.epoch_at_step.get(metric)
        return found if found is not None else Series(self.max_points)

    def metric_names(self) -> list[str]:
        return list(self.names)


_COMPARE_SKIP = frozenset({"kind", "epoch", "step", "time"})


def compare_series(records: Iterable[Mapping[str, Any]], max_points: int = DEFAULT_MAX_POINTS) -> CompareSeries:
    """A CompareSeries of records held in memory (tests; the screen feeds it slice by slice)."""
    out = CompareSeries(max_points)
    out.add(list(records))
    return out


def metric_series(records: Iterable[Mapping[str, Any]], metric: str, axis: str,
                  max_points: int = DEFAULT_MAX_POINTS) -> Series:
    """One metric of one run for the compare chart (`CompareSeries.series`)."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}")
    return compare_series(records, max_points).series(metric, axis)


def metric_names(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The numeric metrics found in train and epoch records (for the compare screen's choice)."""
    return compare_series(records).metric_names()
