"""`t` on a run: its tags and its note in one small dialog, checked as they are typed.

The same rule as `ganmgr tag` and `ganmgr note` (store.checks.normalize_tags and check_note): what is
refused here is refused there, with the same words, under the field it belongs to. The dialog only
answers with the checked values; the runs screen writes them (in a thread worker).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static, TextArea

from store.checks import check_note, normalize_tags
from store.errors import StoreError
from store.views import RunView
from tui.widgets.key_bar import KeyBar


@dataclass(frozen=True)
class TagsNotes:
    """The dialog's checked answer: the run's new tags and note."""

    tags: tuple[str, ...]
    notes: str


def check_tags_notes(tags_text: str, notes: str) -> tuple[TagsNotes | None, dict[str, str]]:
    """(answer, errors by field `tags`/`notes`): the store's own rule, one line per refusal."""
    errors: dict[str, str] = {}
    tags: tuple[str, ...] = ()
    try:
        tags = normalize_tags(tags_text)
    except StoreError as e:
        errors["tags"] = str(e)
    try:
        check_note(notes)
    except StoreError as e:
        errors["notes"] = str(e)
    return (None if errors else TagsNotes(tags, notes)), errors


class TagsNotesModal(ModalScreen[TagsNotes | None]):
    """Dismisses with the checked tags and note on ctrl+s, None on escape."""

    DEFAULT_CSS = """
    TagsNotesModal #in-notes { height: 6; }
    """

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="tags-save", priority=True),
        Binding("escape", "leave", "Back", id="tags-back", priority=True),
        Binding("tab", "app.focus_next", "Next field", id="tags-next", show=False, priority=True),
        Binding("shift+tab", "app.focus_previous", "Previous field", id="tags-prev", show=False, priority=True),
    ]

    def __init__(self, run: RunView) -> None:
        super().__init__()
        self.run = run

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="tags-dialog"):
            yield Static(f"Tags and note of run #{self.run.id} {self.run.name}", classes="dialog-title", markup=False)
            yield Label("tags (comma-separated; filter with /tag:NAME)")
            yield Input(",".join(self.run.tags), id="in-tags", compact=True)
            yield Static("", id="err-tags", classes="field-error")
            yield Label("note")
            yield TextArea(self.run.notes, id="in-notes", soft_wrap=True, compact=True)
            yield Static("", id="err-notes", classes="field-error")
            yield KeyBar()

    def on_mount(self) -> None:
        for err in self.query(".field-error"):
            err.styles.padding = (0, 0)  # no label column here: the message starts under its field
        self.query_one("#in-tags", Input).focus()

    def check(self) -> tuple[TagsNotes | None, dict[str, str]]:
        answer, errors = check_tags_notes(self.query_one("#in-tags", Input).value,
                                          self.query_one("#in-notes", TextArea).text)
        for key in ("tags", "notes"):
            err = self.query_one(f"#err-{key}", Static)
            err.update(errors.get(key, ""))
            err.set_class(key in errors, "-shown")
        return answer, errors

    @on(Input.Changed)
    @on(TextArea.Changed)
    def _changed(self) -> None:
        self.check()

    @on(Input.Submitted)
    def _enter(self) -> None:
        self.focus_next()

    def action_save(self) -> None:
        answer, errors = self.check()
        if answer is None:
            self.notify(next(iter(errors.values())), title="not saved", severity="error")
            return
        self.dismiss(answer)

    def action_leave(self) -> None:
        self.dismiss(None)
