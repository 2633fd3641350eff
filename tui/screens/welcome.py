"""First start with an empty store: what ganmgr is, and a quick-start run sized for this machine."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.widgets.key_bar import KeyBar

WELCOME = (
    "ganmgr queues and runs GAN and classifier training in the background, keeps every run in "
    "{home}, and shows their losses, accuracies and sample grids live. Runs keep going when you quit."
)


class WelcomeModal(ModalScreen[str | None]):
    """Dismisses with "quick" (queue the quick start), "form" (open the new-run form) or None."""

    BINDINGS = [
        Binding("enter,y", "choose('quick')", "Quick start", id="welcome-quick"),
        Binding("n", "choose('form')", "New run form", id="welcome-form"),
        Binding("escape", "choose(None)", "Later", id="welcome-later"),
    ]

    def __init__(self, home: str, quick_description: str, gpu: bool) -> None:
        super().__init__()
        self.home_text = home
        self.quick_description = quick_description
        self.gpu = gpu

    def compose(self) -> ComposeResult:
        machine = "a GPU was found" if self.gpu else "no GPU found, so it is sized for the CPU"
        with Vertical(classes="dialog", id="welcome"):
            yield Static("Welcome to ganmgr", classes="dialog-title")
            yield Static(WELCOME.format(home=self.home_text), classes="dialog-body")
            yield Static(f"Quick start: {self.quick_description} ({machine}).", classes="dialog-body",
                         id="welcome-quick-text")
            yield KeyBar()

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)
