"""What every ganmgr screen shares: the store home and the one place where worker errors surface."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from textual import on
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tui.present import one_line

if TYPE_CHECKING:
    from tui.app import GanmgrApp

ResultType = TypeVar("ResultType")


class GanmgrScreen(Screen[ResultType]):
    """A screen whose thread workers only post messages; a failure in any of them becomes one
    notification line here (workers are started with exit_on_error=False)."""

    @property
    def gapp(self) -> GanmgrApp:
        return self.app  # type: ignore[return-value]

    @property
    def home(self) -> Path:
        return self.gapp.home

    @property
    def visible(self) -> bool:
        """On top, or seen through modals only. (Textual's `is_current` is also True for the screen just
        below the top one, which a full-screen screen hides: it must not keep redrawing then.)"""
        stack = self.app.screen_stack
        if self not in stack:
            return False
        return all(s.is_modal for s in stack[stack.index(self) + 1:])

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        self.worker_state_changed(event)
        if event.state == WorkerState.ERROR:
            self.report_error(event.worker.name or event.worker.group, event.worker.error)

    def worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Hook for a screen that tracks its own workers (called before errors are reported)."""

    def report_error(self, what: str, error: Any) -> None:
        text = one_line(str(error) or type(error).__name__)
        self.notify(text, title=what, severity="error", timeout=8)
