"""A Static that repaints only when what it shows changes.

Panels here are refreshed from timers (the run's row every second). `Static.update` lays out and
repaints even for the same text, which on a run screen means redrawing the charts and the image too:
megabytes a minute to an idle terminal over SSH. `show()` compares first.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


def _signature(content: object) -> object:
    if isinstance(content, Text):
        return (content.plain, str(content.style), tuple(content.spans))
    if isinstance(content, str):
        return content
    return id(content)


class QuietStatic(Static):
    _shown: object = None

    def show(self, content: Text | str) -> bool:
        """Display `content` unless it is what is shown already; True when it repainted."""
        sig = _signature(content)
        if sig == self._shown:
            return False
        self._shown = sig
        self.update(content)
        return True
