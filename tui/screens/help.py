"""`?`: every key of the screen underneath, with what it does, plus the filter language."""

from __future__ import annotations

from dataclasses import replace

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from tui.widgets.key_bar import KeyBar

FILTER_HELP = (
    "Filter (/): words match name, recipe, dataset, notes and tags; status:running (or just 'running'), "
    "recipe:baseline, tag:x, sweep:NAME, backend:slurm, 'pending' (Slurm jobs waiting on the cluster); "
    "several values with commas (status:failed,lost); escape clears.\n\n"
    "Slurm runs: '◷ pending' until the cluster starts the job, with Slurm's reason (Priority, Resources...) "
    "where the progress bar would be; the 'slurm job' column (the table's last) has the job id. "
    "Sweeps: w on a sweep's run shows only that sweep, with a summary line (runs per status, the best test "
    "accuracy and its point) and each run's point in the name column; w again shows every run."
)


def bindings_table(screen: Screen) -> Table:
    """Every binding of `screen` and of the app that has an id (ganmgr's own), one row per action,
    all its keys, and the longer tooltip text where there is one."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    seen: set[str] = set()
    for node in (screen, screen.app):
        for _key, binding in node._bindings:
            if binding.action in seen or not binding.id:
                continue
            seen.add(binding.action)
            keys = [screen.app.get_key_display(replace(b, key_display=None))
                    for _, b in node._bindings if b.action == binding.action]
            table.add_row(" / ".join(dict.fromkeys(keys)), binding.tooltip or binding.description)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", id="help-close")]

    def __init__(self, under: Screen, title: str, extra: str = "") -> None:
        super().__init__()
        self.under = under
        self.title_text = title
        self.extra = extra

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help"):
            yield Static(f"Keys: {self.title_text}", classes="dialog-title")
            yield Static(bindings_table(self.under), id="help-keys")
            if self.extra:
                yield Static(Text(self.extra), classes="dialog-body", id="help-extra")
            yield KeyBar()

    def action_close(self) -> None:
        self.dismiss(None)
