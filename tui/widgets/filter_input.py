"""The runs table's `/` filter line: typing filters at once, enter keeps the filter, escape clears it."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class FilterInput(Input):
    BINDINGS = [
        Binding("enter", "keep", "Keep filter", id="filter-keep", key_display="⏎"),
        Binding("escape", "clear", "Clear filter", id="filter-clear"),
    ]

    class Done(Message):
        """The user left the filter line (kept or cleared); the table takes the focus back."""

    def action_keep(self) -> None:
        if not self.value.strip():
            self.display = False
        self.post_message(self.Done())

    def action_clear(self) -> None:
        self.value = ""
        self.display = False
        self.post_message(self.Done())
