"""What the runs table shows and in which order: the `/` filter language and the sort orders. Pure.

Filter: space-separated terms, all of which must match. `status:running` (also `s:`), `recipe:baseline`
(`r:`), `tag:sweep` (`t:`) match a field exactly; a bare status name (`failed`) matches the status; any
other word matches case-insensitively inside the name, recipe, dataset, notes or tags. Several values of
one field may be comma-separated (`status:failed,lost`). The table filters the snapshot it already holds,
so typing never touches the database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from store.views import STATUSES, RunView

_FIELD_ALIASES = {"status": "status", "s": "status", "is": "status", "recipe": "recipe", "r": "recipe",
                  "tag": "tag", "t": "tag"}
SORTS: tuple[str, ...] = ("queue", "id", "name", "status", "test acc", "started", "duration")


class FilterError(ValueError):
    """A filter term that cannot match anything (e.g. an unknown status); one line."""


@dataclass(frozen=True)
class RunFilter:
    statuses: frozenset[str] = frozenset()
    recipes: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    words: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.statuses or self.recipes or self.tags or self.words)

    def matches(self, run: RunView) -> bool:
        if self.statuses and run.status not in self.statuses:
            return False
        if self.recipes and run.recipe not in self.recipes:
            return False
        if self.tags and not self.tags.intersection(run.tags):
            return False
        if self.words:
            hay = " ".join((run.name, run.recipe, run.dataset, run.notes, " ".join(run.tags))).lower()
            return all(w in hay for w in self.words)
        return True


def parse_filter(query: str) -> RunFilter:
    """Parse the `/` filter; raises FilterError naming a bad term."""
    statuses: set[str] = set()
    recipes: set[str] = set()
    tags: set[str] = set()
    words: list[str] = []
    for term in query.split():
        key, sep, value = term.partition(":")
        field = _FIELD_ALIASES.get(key.lower()) if sep else None
        if field is None:
            low = term.lower()
            if low in STATUSES:
                statuses.add(low)
            else:
                words.append(low)
            continue
        values = [v for v in value.split(",") if v]
        if not values:
            raise FilterError(f"'{term}' needs a value after ':'")
        if field == "status":
            for v in values:
                if v.lower() not in STATUSES:
                    raise FilterError(f"unknown status '{v}'; one of {', '.join(STATUSES)}")
                statuses.add(v.lower())
        elif field == "recipe":
            recipes.update(values)
        else:
            tags.update(values)
    return RunFilter(frozenset(statuses), frozenset(recipes), frozenset(tags), tuple(words))


def queue_positions(runs: Iterable[RunView]) -> dict[int, int]:
    """Run id -> 1-based place in the queue (priority first, then id), for queued runs only."""
    queued = sorted((r for r in runs if r.status == "queued"), key=lambda r: (-r.priority, r.id))
    return {r.id: i + 1 for i, r in enumerate(queued)}


def order_runs(runs: Sequence[RunView], sort: str = "queue", reverse: bool = False) -> list[RunView]:
    """Rows in display order.

    `queue` (the default) is what a researcher watches: running runs first, then the queue in the order
    it will start, then finished runs newest first. The others sort by one column (missing values last).
    """
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}")
    if sort == "queue":
        rank = {"running": 0, "queued": 1}

        def key(r: RunView) -> tuple:
            group = rank.get(r.status, 2)
            if group == 0:
                return (0, r.started_at or 0.0, r.id)
            if group == 1:
                return (1, -r.priority, r.id)
            return (2, -r.id, 0)

        out = sorted(runs, key=key)
        return out[::-1] if reverse else out
    if sort == "id":
        return sorted(runs, key=lambda r: r.id, reverse=reverse)
    if sort == "name":
        return sorted(runs, key=lambda r: (r.name.lower(), r.id), reverse=reverse)
    if sort == "status":
        order = {s: i for i, s in enumerate(STATUSES)}
        return sorted(runs, key=lambda r: (order.get(r.status, 99), -r.id), reverse=reverse)
    getter = {
        "test acc": lambda r: r.last_test_acc,
        "started": lambda r: r.started_at,
        "duration": lambda r: r.duration_s,
    }[sort]
    present = [r for r in runs if _num(getter(r)) is not None]
    missing = [r for r in runs if _num(getter(r)) is None]
    # Descending by default for these: the best accuracy, the latest start, the longest run first.
    present.sort(key=lambda r: (_num(getter(r)), r.id), reverse=not reverse)
    return present + sorted(missing, key=lambda r: -r.id)


def _num(v: object) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None
