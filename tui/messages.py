"""App-wide messages. Messages that belong to one screen or widget are nested in it."""

from __future__ import annotations

from textual.message import Message


class RunsChanged(Message):
    """This app changed the store (queued, forked, resumed, cancelled, moved a run): reload the table
    now rather than at the next tick, and put the cursor on `select_id` if given."""

    def __init__(self, select_id: int | None = None, note: str = "") -> None:
        super().__init__()
        self.select_id = select_id
        self.note = note
