"""The lifecycle of a run and of a visualization job: one set of status words, one set of rules.

    queued -> running -> completed | failed | cancelled | killed | diverged | stopped | lost

`stopped`: a health rule's stop action ended the run after a checkpoint (resumable and forkable like
`cancelled`). A row also carries two health flags beside its status, never a status themselves: `health`
(a rule's warn or stop message) and `stalled_since` (the supervisor saw no record for too long);
`health_flag` is the one rule for the word the table, `ls` and `show` print for them.

Runs and visualization jobs share it. A terminal status stays terminal: no write may leave it (only
`store.runs.requeue` takes a finished run back to queued, as a fresh start). A running row may go back to
queued (a claim whose worker never started). Entering `running` stamps `started_at` once; entering a
terminal status stamps `ended_at`. A queued row is cancelled at once; a running one gets `cancel_requested`
and the supervisor signals its process.

The functions below change a row in place inside the caller's write transaction. This module imports no
SQLAlchemy (`store.views` reads the status words too).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, Protocol

from store.errors import StoreError

STATUSES: tuple[str, ...] = (
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
    "killed",
    "diverged",
    "stopped",
    "lost",
)
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"completed", "failed", "cancelled", "killed", "diverged", "stopped", "lost"}
)
ACTIVE_STATUSES: frozenset[str] = frozenset({"queued", "running"})


class LifecycleRow(Protocol):
    """The columns of a run or a visualization job that the lifecycle reads and writes."""

    status: str
    started_at: float | None
    ended_at: float | None
    updated_at: float
    host: str | None
    cancel_requested: bool


def health_flag(health: str | None, stalled_since: float | None, status: str) -> str | None:
    """The row's health flag: `stalled` while a live run writes nothing, `warn` when a rule warned (or
    stopped it: the status says `stopped` then, and the flag is dropped); None when healthy."""
    if stalled_since is not None and status == "running":
        return "stalled"
    if health and status != "stopped":
        return "warn"
    return None


def check_statuses(status: str | Iterable[str]) -> list[str]:
    """One status word or several, each of them known."""
    items = [status] if isinstance(status, str) else list(status)
    for st in items:
        if st not in STATUSES:
            raise StoreError(f"unknown status {st!r}; one of {', '.join(STATUSES)}")
    return items


def refuse_terminal(row: LifecycleRow, what: str) -> None:
    """Nothing changes a finished row: `what` names it in the message ("run 3", "visualization job 2")."""
    if row.status in TERMINAL_STATUSES:
        raise StoreError(f"{what} is already {row.status}")


def move(row: LifecycleRow, status: str, values: dict[str, Any], now: float, what: str) -> None:
    """The one status write: `status` (a checked word) with `values` set beside it; stamps started_at on
    the first `running` and ended_at on a terminal status (unless `values` gives it)."""
    refuse_terminal(row, what)
    for k, v in values.items():
        setattr(row, k, v)
    row.status = status
    if status == "running" and row.started_at is None:
        row.started_at = now
    if status in TERMINAL_STATUSES and "ended_at" not in values:
        row.ended_at = now
    row.updated_at = now


def claim(row: LifecycleRow, *, host: str, now: float, keep_started: bool = False) -> None:
    """queued -> running for the supervisor on `host`. The clock starts now, unless `keep_started` and it
    started before (a Slurm run's segments count from its first one)."""
    row.status = "running"
    row.started_at = (row.started_at or now) if keep_started else now
    row.updated_at = now
    row.host = host


def cancel(row: LifecycleRow, now: float, what: str) -> Literal["cancelled", "requested"] | None:
    """Queued -> cancelled at once; running -> cancel_requested. Returns what happened (None: the cancel
    was already requested)."""
    refuse_terminal(row, what)
    outcome: Literal["cancelled", "requested"] | None = None
    if row.status == "queued":
        move(row, "cancelled", {}, now, what)
        outcome = "cancelled"
    elif not row.cancel_requested:
        row.cancel_requested = True
        outcome = "requested"
    row.updated_at = now
    return outcome
