"""Run events as news: the notifications' cursor over the run events table, and the reads the TUI's toasts use.

Every status change of a run is a row of `run_events` (`store.runs`), whoever wrote it: the supervisor,
a `ganmgr` command's reconcile, a headless run, a health rule (`warn`, `stalled`). So the notifier follows
that table, not the code paths: the supervisor takes the events past a cursor kept in the settings table
(`notify_cursor`) in one write transaction, and moves the cursor past them, so each event is announced
once, by whichever supervisor runs next, and never twice (a supervisor killed while sending drops what it
had taken: at most once). The first look, and every change from no notify URLs to some, starts the cursor
at the newest event: history is not news.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from store.checks import DEFAULT_NOTIFY_ON, NOTIFY_EVENTS, check_notify_on
from store.db import db_path, read_session, write_session
from store.errors import StoreError
from store.tables import Run, RunEvent, Setting
from store.views import RunEventView, RunView

__all__ = ["NOTIFY_CURSOR", "Notice", "events_after", "latest_event_id", "notices_pending",
           "notify_words", "reset_notify_cursor", "take_notices"]

NOTIFY_CURSOR = "notify_cursor"  # the settings key: the id of the last run event the notifier has taken
TAKE_LIMIT = 200  # events per take (a burst beyond it is taken on the next tick)


@dataclass(frozen=True)
class Notice:
    """One event to announce, with its run as it is now."""

    event: RunEventView
    run: RunView


def notify_words(notify_on: list[str] | None) -> tuple[str, ...]:
    """The event words a `notify_on` setting can announce (the default's `completed` included: whether a
    completed run was long enough is decided per run, `store.checks.notify_wanted`)."""
    return tuple(notify_on) if notify_on is not None else (*DEFAULT_NOTIFY_ON, "completed")


def latest_event_id(home: Path) -> int:
    """The newest run event's id (0 for none, or no store yet)."""
    if not db_path(home).exists():
        return 0
    with read_session(home) as s:
        return _latest(s)


def events_after(home: Path, after_id: int, words: Iterable[str] = NOTIFY_EVENTS,
                 limit: int = 100) -> list[Notice]:
    """Events newer than `after_id` whose word is one of `words`, oldest first (the TUI's toasts)."""
    if not db_path(home).exists():
        return []
    with read_session(home) as s:
        events = _events(s, after_id, None, tuple(words), limit)
        return _with_runs(s, events)


def notices_pending(home: Path) -> bool:
    """Whether a supervisor has notifications to send: notify URLs are set and an event they may be about
    came after the cursor (every `ganmgr` command asks, through `supervisor_work_pending`)."""
    if not db_path(home).exists():
        return False
    with read_session(home) as s:
        values = _settings(s, ("notify_urls", "notify_on", NOTIFY_CURSOR))
        cursor = values.get(NOTIFY_CURSOR)
        if not values.get("notify_urls") or not isinstance(cursor, int):
            return False
        try:
            words = notify_words(check_notify_on(values.get("notify_on")))
        except StoreError:  # a value written by hand: the supervisor reads it the same way and logs it
            return False
        q = select(RunEvent.id).where(col(RunEvent.id) > cursor, col(RunEvent.status).in_(words)).limit(1)
        return s.exec(q).first() is not None


def take_notices(home: Path, words: Iterable[str]) -> list[Notice]:
    """The events past the cursor whose word is one of `words`, oldest first; the cursor moves past every
    event looked at (announced or not) in the same write transaction. A cheap read comes first, so a tick
    with nothing new takes no write lock."""
    words = tuple(words)
    with read_session(home) as s:
        cursor = _cursor(s)
        if cursor is not None and _latest(s) <= cursor:
            return []
    with write_session(home) as s:
        cursor = _cursor(s)
        latest = _latest(s)
        if cursor is None:  # the first look: start from now
            _set_cursor(s, latest)
            return []
        events = _events(s, cursor, latest, words, TAKE_LIMIT)
        _set_cursor(s, events[-1].id if len(events) == TAKE_LIMIT else latest)
        return _with_runs(s, events)


def reset_notify_cursor(home: Path) -> None:
    """Start announcing from the newest event on (notify URLs were just set where there were none)."""
    with write_session(home) as s:
        _set_cursor(s, _latest(s))


# --------------------------------------------------------------------------------------- helpers


def _latest(s: Session) -> int:
    return int(s.exec(select(func.max(RunEvent.id))).one() or 0)


def _cursor(s: Session) -> int | None:
    value = _settings(s, (NOTIFY_CURSOR,)).get(NOTIFY_CURSOR)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _set_cursor(s: Session, event_id: int) -> None:
    value = json.dumps(int(event_id))
    s.execute(sqlite_insert(Setting).values(key=NOTIFY_CURSOR, value_json=value)
              .on_conflict_do_update(index_elements=["key"], set_={"value_json": value}))


def _settings(s: Session, keys: tuple[str, ...]) -> dict[str, object]:
    out: dict[str, object] = {}
    for row in s.exec(select(Setting).where(col(Setting.key).in_(keys))).all():
        try:
            out[row.key] = json.loads(row.value_json)
        except ValueError:
            continue
    return out


def _events(s: Session, after: int, upto: int | None, words: tuple[str, ...], limit: int) -> list[RunEventView]:
    q = select(RunEvent).where(col(RunEvent.id) > after, col(RunEvent.status).in_(words))
    if upto is not None:
        q = q.where(col(RunEvent.id) <= upto)
    return [RunEventView.from_row(r) for r in s.exec(q.order_by(col(RunEvent.id)).limit(limit)).all()]


def _with_runs(s: Session, events: list[RunEventView]) -> list[Notice]:
    ids = {e.run_id for e in events}
    runs = {r.id: RunView.from_row(r) for r in s.exec(select(Run).where(col(Run.id).in_(ids))).all()} if ids else {}
    return [Notice(e, runs[e.run_id]) for e in events if e.run_id in runs]
