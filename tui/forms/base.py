"""What the new-run, fork and visualization forms share: check on every keystroke, submit once, show why not.

A form's check is pure (`check()` returns an object with `ok`, `errors` {field: message} and `request`);
submitting runs in a thread worker that posts `Submitted` or `SubmitFailed`, so the UI never waits on the
store, and a second ctrl+s while one submission is on its way does nothing.
"""

from __future__ import annotations

from typing import Any, TypeVar

from textual import on
from textual.message import Message
from textual.widgets import Button, Input, Static

from tui.screens.base import GanmgrScreen

ResultType = TypeVar("ResultType")


class FormScreen(GanmgrScreen[ResultType]):
    """Subclasses set the button ids and titles and implement check, show_errors, submit_request, submitted."""

    SUBMIT_BUTTON = "form-submit"
    CANCEL_BUTTON = "form-cancel"
    SUBMITTING_TITLE = "submitting…"
    FAILED_TITLE = "not queued: fix the field marked below"

    class Submitted(Message):
        def __init__(self, value: Any) -> None:
            super().__init__()
            self.value = value

    class SubmitFailed(Message):
        def __init__(self, field: str, error: str) -> None:
            super().__init__()
            self.field = field
            self.error = error

    _submitting = False

    # -- what a form defines ---------------------------------------------------------------------------

    def check(self) -> Any:
        raise NotImplementedError

    def show_errors(self, errors: dict[str, str]) -> None:
        raise NotImplementedError

    def submit_request(self, request: Any) -> None:
        """Start the submission (a thread worker that posts Submitted or SubmitFailed)."""
        raise NotImplementedError

    def submitted(self, value: Any) -> None:
        self.dismiss(value)

    def focus_error(self, errors: dict[str, str]) -> None:
        """Where the cursor goes when ctrl+s finds errors (default: stay)."""

    # -- shared behaviour ------------------------------------------------------------------------------

    def validate(self) -> Any:
        check = self.check()
        self.show_errors(check.errors)
        return check

    @on(Input.Submitted)
    def _enter(self) -> None:
        self.focus_next()

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        if event.button.id == self.SUBMIT_BUTTON:
            self.action_submit()
        elif event.button.id == self.CANCEL_BUTTON:
            self.action_leave()

    def action_leave(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        if self._submitting:
            return
        check = self.validate()
        if not check.ok or check.request is None:
            self.focus_error(check.errors)
            self.notify(next(iter(check.errors.values())), title="not queued", severity="error")
            return
        self._submitting = True
        self.query_one("#form-title", Static).update(self.SUBMITTING_TITLE)
        self.submit_request(check.request)

    @on(SubmitFailed)
    def _failed(self, event: SubmitFailed) -> None:
        self._submitting = False
        self.query_one("#form-title", Static).update(self.FAILED_TITLE)
        self.show_errors({event.field: event.error})
        self.notify(event.error, title="not queued", severity="error")

    @on(Submitted)
    def _done(self, event: Submitted) -> None:
        self.submitted(event.value)
