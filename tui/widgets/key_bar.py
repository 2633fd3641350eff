"""A footer that wraps: every shown binding of the screen, on as many lines as the width needs.

Textual's Footer is one line that scrolls sideways with the mouse; at 80 columns that hides half the
actions, and this app promises every action visible without a mouse. Items are packed whole (a key is
never split from its description).
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widgets import Static

from tui.present import pack_items


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        width: 1fr;
        padding: 0 1;
    }
    """

    _shown: tuple | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.call_after_refresh(self.update_keys)

    def on_resize(self, event: events.Resize) -> None:
        # Not inside the layout pass that sent the resize: a height change asked for there is lost.
        self.call_after_refresh(self.update_keys)

    def _bindings_changed(self, screen: Screen) -> None:
        if self.is_attached and screen is self.screen:
            self.update_keys()

    def items(self) -> list[tuple[str, str, bool]]:
        """(key shown, description, enabled) of each shown action, first binding per action."""
        out: list[tuple[str, str, bool]] = []
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            out.append((self.app.get_key_display(binding), binding.description, active.enabled))
        return out

    def update_keys(self) -> None:
        width = (self.size.width or self.app.size.width) - 2
        items = []
        for key, desc, enabled in self.items():
            item = Text()
            item.append(f" {key} ", style="bold reverse" if enabled else "dim reverse")
            item.append(" " + desc, style="" if enabled else "dim")
            items.append(item)
        text = pack_items(items, width)
        key = (text.plain, tuple(text.spans))
        if key != self._shown:  # the bindings signal fires often; repaint only on a real change
            self._shown = key
            self.update(text)
        lines = text.plain.count("\n") + 1
        if self.styles.height is None or self.styles.height.value != lines:
            # An explicit height: a docked auto-height widget is not re-measured when its text grows.
            self.styles.height = lines
