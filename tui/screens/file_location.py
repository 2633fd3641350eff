"""Where a file is, for a session without a display: its path and a ready `scp` line to copy it home."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.widgets.key_bar import KeyBar


class FileLocationModal(ModalScreen[None]):
    BINDINGS = [
        Binding("c", "copy", "Copy scp line", id="file-copy"),
        Binding("escape,enter,q", "close", "Close", id="file-close"),
    ]

    def __init__(self, path: Path, scp: str) -> None:
        super().__init__()
        self.path = path
        self.scp = scp

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("No display here: copy the file to your machine", classes="dialog-title")
            yield Static(str(self.path), id="file-path", classes="dialog-body")
            yield Static(self.scp, id="file-scp", classes="dialog-code")
            yield KeyBar()

    def action_copy(self) -> None:
        # OSC 52: most terminals (and tmux with set-clipboard on) put it on the local clipboard.
        self.app.copy_to_clipboard(self.scp)
        self.notify("scp line sent to the clipboard (OSC 52)")

    def action_close(self) -> None:
        self.dismiss(None)
