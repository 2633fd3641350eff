"""What the runs table shows and in which order: the `/` filter language and the sort orders. Pure.

Filter: space-separated terms, all of which must match. `status:running` (also `s:`), `recipe:baseline`
(`r:`), `tag:sweep` (`t:`), `sweep:NAME` (`w:`, a sweep's runs) and `backend:slurm` (`b:`) match a field
exactly; a bare status name (`failed`, or `pending`: a Slurm job waiting on the cluster) matches the status;
any other word matches case-insensitively inside the name, recipe, dataset, notes or tags. Several values of
one field may be comma-separated (`status:failed,lost`). The table filters the snapshot it already holds,
so typing never touches the database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from store.checks import BACKENDS
from store.lifecycle import STATUSES
from store.views import RunView

_FIELD_ALIASES = {"status": "status", "s": "status", "is": "status", "recipe": "recipe", "r": "recipe",
                  "tag": "tag", "t": "tag", "sweep": "sweep", "w": "sweep", "backend": "backend",
                  "b": "backend"}
PENDING = "pending"  # not a store status: a `running` Slurm row whose job waits on the cluster
FILTER_STATUSES: tuple[str, ...] = (*STATUSES, PENDING)
# The sort orders, in the order `s` cycles through them in the table; `ganmgr ls --sort` names them with `_`
# for the space (SORT_FIELDS). One rule for both: order_runs.
SORTS: tuple[str, ...] = ("queue", "id", "name", "status", "test acc", "started", "duration", "recipe")
SORT_FIELDS: tuple[str, ...] = tuple(s.replace(" ", "_") for s in SORTS)


def sort_of_field(field: str) -> str:
    """The sort a `--sort FIELD` names; ValueError (one line, listing the fields) for any other word."""
    if field in SORT_FIELDS:
        return SORTS[SORT_FIELDS.index(field)]
    raise ValueError(f"unknown sort field {field!r}; one of {', '.join(SORT_FIELDS)}")


class FilterError(ValueError):
    """A filter term that cannot match anything (e.g. an unknown status); one line."""


@dataclass(frozen=True)
class RunFilter:
    statuses: frozenset[str] = frozenset()
    recipes: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    words: tuple[str, ...] = ()
    sweeps: frozenset[str] = frozenset()
    backends: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.statuses or self.recipes or self.tags or self.words or self.sweeps or self.backends)

    def matches(self, run: RunView) -> bool:
        if self.statuses and run.status not in self.statuses and not (
                PENDING in self.statuses and is_pending(run)):
            return False
        if self.sweeps and run.sweep not in self.sweeps:
            return False
        if self.backends and run.backend not in self.backends:
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
    sweeps: set[str] = set()
    backends: set[str] = set()
    words: list[str] = []
    for term in query.split():
        key, sep, value = term.partition(":")
        field = _FIELD_ALIASES.get(key.lower()) if sep else None
        if field is None:
            low = term.lower()
            if low in FILTER_STATUSES:
                statuses.add(low)
            else:
                words.append(low)
            continue
        values = [v for v in value.split(",") if v]
        if not values:
            raise FilterError(f"'{term}' needs a value after ':'")
        if field == "status":
            for v in values:
                if v.lower() not in FILTER_STATUSES:
                    raise FilterError(f"unknown status '{v}'; one of {', '.join(FILTER_STATUSES)}")
                statuses.add(v.lower())
        elif field == "backend":
            for v in values:
                if v.lower() not in BACKENDS:
                    raise FilterError(f"unknown backend '{v}'; one of {', '.join(BACKENDS)}")
                backends.add(v.lower())
        elif field == "recipe":
            recipes.update(values)
        elif field == "sweep":
            sweeps.update(values)
        else:
            tags.update(values)
    return RunFilter(frozenset(statuses), frozenset(recipes), frozenset(tags), tuple(words), frozenset(sweeps),
                     frozenset(backends))


def is_pending(run: RunView) -> bool:
    """A Slurm run submitted but not started (what `ganmgr ls` shows as `pending`)."""
    if run.backend != "slurm" or run.status != "running":
        return False
    from tui.present import run_status_word

    return run_status_word(run) == PENDING


def sweep_filter(name: str) -> str:
    """The filter text that shows one sweep's runs."""
    return f"sweep:{name}"


@dataclass(frozen=True)
class SweepSummary:
    """One sweep at a glance: how many runs in each shown status, and its best run by test accuracy."""

    name: str
    runs: int
    counts: dict[str, int]  # shown status word (`pending` included) -> runs
    best: RunView | None  # the highest best_test_acc (else last_test_acc)
    best_acc: float | None
    axes: tuple[str, ...]  # the swept keys, from the points' labels (`lr=... width=...`)


def sweep_summary(name: str, runs: Iterable[RunView]) -> SweepSummary:
    members = [r for r in runs if r.sweep == name]
    counts: dict[str, int] = {}
    best: RunView | None = None
    best_acc: float | None = None
    axes: dict[str, None] = {}
    for r in members:
        word = PENDING if is_pending(r) else r.status
        counts[word] = counts.get(word, 0) + 1
        acc = _num(r.best_test_acc) if _num(r.best_test_acc) is not None else _num(r.last_test_acc)
        if acc is not None and (best_acc is None or acc > best_acc):
            best, best_acc = r, acc
        for part in point_label(r).split():
            key, eq, _ = part.partition("=")
            if eq:
                axes[key] = None
    return SweepSummary(name, len(members), counts, best, best_acc, tuple(axes))


def point_label(run: RunView) -> str:
    """A sweep run's point (`lr=0.0002 width=128`): the first line of its notes, as `ganmgr sweep` wrote it."""
    if not run.sweep or not run.notes:
        return ""
    first = run.notes.splitlines()[0].strip()
    return first if "=" in first else ""


def queue_positions(runs: Iterable[RunView]) -> dict[int, int]:
    """Run id -> 1-based place in the queue (priority first, then id), for queued runs only."""
    # A queued Slurm run is not in this queue: the supervisor submits it at once and Slurm schedules it.
    queued = sorted((r for r in runs if r.status == "queued" and r.backend != "slurm"),
                    key=lambda r: (-r.priority, r.id))
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
    if sort == "recipe":
        return sorted(runs, key=lambda r: (r.recipe, -r.id), reverse=reverse)
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
