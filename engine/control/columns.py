"""Columns of metric records: the numbers of one field across a slice of records, as one float array.

The charts (the run screen, compare) draw a few fields of hundreds of thousands of records. Taking a field
of a whole slice at once (`column`) and checking finiteness once per array costs a fraction of a
per-value loop (issue 16: the per-value checks were two thirds of opening a 1M-line run). The records come
from the one reader of `metrics.jsonl` (`engine.control.records.MetricsTail`); nothing here reads files.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

Record = Mapping[str, Any]
_PLAIN = frozenset({float, int, type(None)})


def of_kind(records: Iterable[Record], kind: str) -> list[Record]:
    """The records of one kind, in order."""
    return [r for r in records if r.get("kind") == kind]


def column(records: Sequence[Record], key: str) -> np.ndarray:
    """`key` of every record as float64: NaN where it is absent, null or not a number (a boolean is not a
    number). One conversion for the whole slice; a slice holding something odd (a string, a list) falls
    back to a per-value check."""
    values = [r.get(key) for r in records]
    if set(map(type, values)) <= _PLAIN:  # one pass at C speed: numpy would take "1.5" and True as numbers
        try:
            return np.array(values, dtype=np.float64)  # None -> NaN
        except OverflowError:  # an integer beyond float64
            pass
    return np.array([_number(v) for v in values], dtype=np.float64)


def columns(records: Sequence[Record], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """`column` of each key, in one pass when every record has every key (a recipe's train windows always
    do): one tuple per record, one conversion for the whole table."""
    if not records or not keys:
        return {k: column(records, k) for k in keys}
    get = operator.itemgetter(*keys)
    try:
        rows = list(map(get, records))
    except KeyError:
        return {k: column(records, k) for k in keys}
    if len(keys) == 1:
        rows = [(v,) for v in rows]
    if set(map(type, itertools.chain.from_iterable(rows))) <= _PLAIN:
        try:
            table = np.array(rows, dtype=np.float64)
        except OverflowError:
            pass
        else:
            return {k: table[:, i] for i, k in enumerate(keys)}
    return {k: column(records, k) for k in keys}


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return math.nan
    try:
        return float(v)
    except OverflowError:
        return math.nan


def keys_of(records: Iterable[Record], skip: frozenset[str] = frozenset()) -> list[str]:
    """Every key of the records but `skip`, in order of first appearance."""
    seen: dict[str, None] = {}
    for r in records:
        for k in r:
            if k not in seen and k not in skip:
                seen[k] = None
    return list(seen)


def finite_pairs(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) pairs where both are finite: one check for the whole batch."""
    ok = np.isfinite(xs) & np.isfinite(ys)
    if ok.all():
        return xs, ys
    return xs[ok], ys[ok]
