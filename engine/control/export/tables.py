"""A run's records of one kind as a table: one row per record (long), or several runs joined on step or epoch
(wide, one column per run and metric) for plotting. CSV and JSON lines renderings of them.

Columns are the union of the kind's numeric fields (a bool is not a number; a field that is null in every
record is left out), the join keys first (`epoch`, `step`), then the rest alphabetically: the same records
give the same columns whatever their order. A value the worker wrote as null (non-finite) is an empty cell.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.control.export import JOIN_KEY

LEAD_COLUMNS = ("epoch", "step")


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def of_kind(records: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("kind") == kind]


def numeric_fields(records: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """Every field that is a number in at least one record, in the stable order described above."""
    seen = {k for r in records for k, v in r.items() if is_number(v)}
    lead = tuple(k for k in LEAD_COLUMNS if k in seen)
    return lead + tuple(sorted(seen - set(lead)))


def long_table(records: Sequence[dict[str, Any]]) -> Table:
    """One row per record (records of one kind), numbers as written, anything else empty."""
    columns = numeric_fields(records)
    rows = tuple(tuple(r.get(c) if is_number(r.get(c)) else None for c in columns) for r in records)
    return Table(columns, rows)


def wide_table(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]], kind: str) -> Table:
    """Several runs' records of `kind` joined on its key (`step` for train, `epoch` otherwise): one column
    per run and metric, named `LABEL/metric`. A key a run logged twice (a resumed epoch) takes its last
    record; a run without a record at a key has empty cells there."""
    key = JOIN_KEY[kind]
    columns: list[str] = [key]
    by_key: dict[Any, dict[str, Any]] = {}
    for label, records in runs:
        fields = [f for f in numeric_fields(records) if f != key]
        columns += [f"{label}/{f}" for f in fields]
        for r in records:
            k = r.get(key)
            if not is_number(k):
                continue
            row = by_key.setdefault(k, {})
            for f in fields:
                v = r.get(f)
                row[f"{label}/{f}"] = v if is_number(v) else None
    rows = tuple((k, *(by_key[k].get(c) for c in columns[1:])) for k in sorted(by_key))
    return Table(tuple(columns), rows)


def csv_bytes(table: Table) -> bytes:
    """The table as CSV (a header line, then the rows; floats in Python's shortest round-trip form)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(table.columns)
    for row in table.rows:
        w.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in row])
    return out.getvalue().encode()


def jsonl_bytes(records: Iterable[dict[str, Any]]) -> bytes:
    """The records as JSON lines, each as the worker wrote it (same fields, same values, same order)."""
    return b"".join(json.dumps(r, separators=(",", ":"), allow_nan=False).encode() + b"\n" for r in records)
