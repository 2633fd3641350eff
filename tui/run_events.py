"""Toasts and the terminal bell for run events: a run's end, and a health rule's warn, stalled or stop.

The app follows the store's run events (`store.notices.events_after`), the same stream the supervisor's
notifications follow, so a run settled by anyone (the supervisor, a command's reconcile, a headless run)
is announced on whatever screen is open. Events from before the app started are history, not news.
Every event word of `store.checks.NOTIFY_EVENTS` is shown, whatever `notify_on` says (that setting is
for messages sent away); the bell rings once per batch.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from textual import work
from textual.message import Message

if TYPE_CHECKING:
    from store.notices import Notice

EVENTS_S = 1.0  # how often the store's run events are read
_SEVERITY: dict[str, Literal["information", "warning", "error"]] = {
    "completed": "information", "cancelled": "warning", "warn": "warning", "stalled": "warning"}


def toast(notice: Notice) -> tuple[str, str, Literal["information", "warning", "error"]]:
    """The title, text and severity of one event's toast."""
    ev, run = notice.event, notice.run
    text = f"{run.name}: {ev.status} at epoch {run.epoch}/{run.epochs}"
    reason = (ev.message or run.error or "").strip().splitlines()
    if reason and reason[0] != ev.status:
        text += f"\n{reason[0][:200]}"
    return f"run {run.id} {ev.status}", text, _SEVERITY.get(ev.status, "error")


class RunEventsRead(Message):
    """New run events, oldest first (posted by the app's reader thread)."""

    def __init__(self, notices: list[Notice]) -> None:
        super().__init__()
        self.notices = notices


class RunEventToasts:
    """The app's part: `start_event_toasts()` from on_mount; the rest runs by itself."""

    home: Path
    _event_cursor: int | None = None
    _event_lock: threading.Lock | None = None

    def start_event_toasts(self) -> None:
        self._event_lock = threading.Lock()
        self.set_interval(EVENTS_S, self.read_run_events)  # type: ignore[attr-defined]
        self.read_run_events()

    @work(thread=True, group="run-events", exit_on_error=False, name="run events")
    def read_run_events(self) -> None:
        from store.notices import events_after, latest_event_id

        lock = self._event_lock
        if lock is None or not lock.acquire(blocking=False):  # the last read is still going
            return
        try:
            if self._event_cursor is None:  # the first read: what happened before we opened is history
                self._event_cursor = latest_event_id(self.home)
                return
            notices = events_after(self.home, self._event_cursor)
            if notices:
                self._event_cursor = notices[-1].event.id
                self.post_message(RunEventsRead(notices))  # type: ignore[attr-defined]
        finally:
            lock.release()

    def on_run_events_read(self, event: RunEventsRead) -> None:
        for notice in event.notices:
            title, text, severity = toast(notice)
            self.notify(text, title=title, severity=severity, timeout=10)  # type: ignore[attr-defined]
        self.bell()  # type: ignore[attr-defined]
