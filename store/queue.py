"""The queue order of runs and of visualization jobs: higher priority first, then older (lower id) first.

One rule, written once for each place it is needed: in SQL (`queue_sql_order`), in Python (`queue_order`),
for a claim (`take_next`) and for moving a run within the queue (`realize_order`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import func
from sqlmodel import Session, col, select

_T = TypeVar("_T")


class _Queued(Protocol):
    id: int | None
    priority: int


_Q = TypeVar("_Q", bound=_Queued)


def queue_sql_order(table: Any) -> tuple[Any, ...]:
    """`order_by(*queue_sql_order(Run))`: the queue order of a table with `priority` and `id` columns."""
    return (col(table.priority).desc(), col(table.id).asc())


def queue_order(items: Iterable[_T]) -> list[_T]:
    """The order in which queued runs (or jobs) start: higher priority first, then older (lower id) first."""
    return sorted(items, key=lambda r: (-r.priority, r.id))  # type: ignore[attr-defined]


def take_next(s: Session, table: type[_T], *where: Any, slots: int | None = None) -> _T | None:
    """The first queued row of `table` matching `where`, or None; with `slots`, None as well while that
    many rows matching `where` are running. Call it in a write transaction (BEGIN IMMEDIATE), so the count
    and the pick are one atomic step: two supervisors never take the same row or exceed the slots."""
    t: Any = table
    if slots is not None:
        running = s.exec(select(func.count()).select_from(t).where(t.status == "running", *where)).one()
        if running >= slots:
            return None
    q = select(t).where(t.status == "queued", *where).order_by(*queue_sql_order(t))
    return s.exec(q.limit(1)).first()


def realize_order(queue: Sequence[_Q], moved: int) -> None:
    """Give `queue` (the wanted order) priorities under which (priority desc, id asc) yields that order.

    Only `queue[moved]` changes when a value fits between its new neighbours; otherwise the priorities of
    the rows ahead of it are raised just enough, and the others keep their relative order.
    """

    def before(p_a: int, a: _Q, p_b: int, b: _Q) -> bool:
        assert a.id is not None and b.id is not None
        return p_a > p_b or (p_a == p_b and a.id < b.id)

    row = queue[moved]
    prev = queue[moved - 1] if moved > 0 else None
    nxt = queue[moved + 1] if moved + 1 < len(queue) else None
    if nxt is None:
        candidates = [
            row.priority,
            prev.priority if prev else row.priority,
            (prev.priority - 1) if prev else 0,
        ]
    else:
        candidates = [row.priority, nxt.priority, nxt.priority + 1]
    for p in candidates:
        if (prev is None or before(prev.priority, prev, p, row)) and (
            nxt is None or before(p, row, nxt.priority, nxt)
        ):
            row.priority = p
            return
    # No single value fits (equal neighbours): raise priorities from the back so each run precedes the next.
    for i in range(len(queue) - 2, -1, -1):
        a, b = queue[i], queue[i + 1]
        if not before(a.priority, a, b.priority, b):
            assert a.id is not None and b.id is not None
            a.priority = b.priority if a.id < b.id else b.priority + 1
