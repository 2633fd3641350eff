"""The visualization launcher (`v` on a run): pick a kind, the checkpoint (final, best, last or a kept epoch,
those the run has), the baseline run where the kind needs one, and its parameters (the course's defaults
filled in); ctrl+s queues the job.

Rules live in `tui.forms.viz_form` (pure); this screen moves text in and errors out. The submit (checks, row,
job folder, supervisor start) runs in a thread worker through `engine.control.viz_jobs.submit_viz`; a
refusal lands on the form as one line. Dismisses with the queued job (a VizJobView) or None.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from engine.control.errors import ConfigError
from engine.control.viz_spec import VIZ_KINDS
from store.errors import StoreError
from store.views import RunView, VizJobView
from tui.forms.base import FormScreen
from tui.forms.viz_form import (
    GENERAL,
    VizRequest,
    baselines_from,
    check_viz_form,
    checkpoints_for,
    defaults_text,
    kinds_for,
)
from tui.widgets.key_bar import KeyBar


class VizLaunchScreen(FormScreen[VizJobView | None]):
    SUBMIT_BUTTON = "viz-submit-button"
    CANCEL_BUTTON = "viz-cancel-button"
    SUBMITTING_TITLE = "queueing…"
    FAILED_TITLE = "not queued: see below"

    BINDINGS = [
        Binding("ctrl+s", "submit", "Queue job", id="viz-submit"),
        Binding("escape", "leave", "Back", id="viz-back"),
        Binding("tab", "app.focus_next", "Next field", id="viz-next", priority=True),
        Binding("shift+tab", "app.focus_previous", "Previous field", id="viz-prev", show=False, priority=True),
        Binding("f1", "app.help", "Help", id="viz-help", tooltip="this help"),
    ]

    def __init__(self, run: RunView, baselines: list[RunView] | None = None, kind: str | None = None) -> None:
        super().__init__()
        self.run = run
        self.kinds = kinds_for(run)
        self.kind = kind if kind in self.kinds else (self.kinds[0] if self.kinds else "curves")
        self.checkpoints = checkpoints_for(run)
        self.baselines = baselines_from(baselines or [])
        self._generation = 0  # parameter inputs are rebuilt per kind; ids carry the generation

    def compose(self) -> ComposeResult:
        yield Static(f"Visualize #{self.run.id} {self.run.name} ({self.run.recipe}): ctrl+s queues the job",
                     id="form-title")
        with VerticalScroll(id="form"):
            with Horizontal(classes="form-row"):
                yield Label("kind", classes="form-label")
                yield Select([(k, k) for k in self.kinds], value=self.kind, allow_blank=False, id="viz-kind",
                             compact=True)
            yield Static(VIZ_KINDS[self.kind].summary, id="viz-summary", classes="form-help")
            with Horizontal(classes="form-row", id="row-checkpoint"):
                yield Label("checkpoint", classes="form-label")
                if self.checkpoints:
                    yield Select(self.checkpoints, value=self.checkpoints[0][1], allow_blank=False,
                                 id="viz-checkpoint", compact=True)
                else:
                    yield Static("none yet", id="viz-checkpoint-none")
            yield Static("", id="err-checkpoint", classes="field-error")
            with Horizontal(classes="form-row", id="row-baseline"):
                yield Label("baseline run", classes="form-label")
                if self.baselines:
                    yield Select(self.baselines, value=self.baselines[0][1], allow_blank=False, id="viz-baseline",
                                 compact=True)
                else:
                    yield Static("no completed baseline run in this store", id="viz-baseline-none")
            yield Static("", id="err-baseline", classes="field-error")
            yield Vertical(id="viz-params")
            yield Static("", id=f"err-{GENERAL}", classes="field-error")
            with Horizontal(id="form-buttons"):
                yield Button("Queue job", id="viz-submit-button", variant="primary", compact=True)
                yield Button("Cancel", id="viz-cancel-button", compact=True)
        yield KeyBar()

    async def on_mount(self) -> None:
        await self._build_params()
        self.query_one("#viz-kind").focus()

    # -- the per-kind part ---------------------------------------------------------------------------

    async def _build_params(self) -> None:
        box = self.query_one("#viz-params", Vertical)
        await box.remove_children()  # awaited: the new inputs reuse the error lines' ids
        self._generation += 1
        rows = []
        spec = VIZ_KINDS[self.kind]
        fields = spec.field_map()
        for name, text in defaults_text(self.kind).items():
            rows.append(Horizontal(Label(name, classes="form-label"),
                                   Input(text, placeholder=fields[name].help, id=self._input_id(name),
                                         compact=True, tooltip=fields[name].help),
                                   classes="form-row"))
            rows.append(Static("", id=f"err-p-{name}", classes="field-error"))
        if not rows:
            rows.append(Static("(no parameters)", classes="form-help"))
        await box.mount_all(rows)
        self.query_one("#row-checkpoint").display = spec.needs_checkpoint
        self.query_one("#row-baseline").display = spec.needs_baseline
        self.query_one("#viz-summary", Static).update(spec.summary)
        self.call_after_refresh(self.validate)

    def _input_id(self, name: str) -> str:
        return f"p{self._generation}-{name}"

    def texts(self) -> dict[str, str]:
        prefix = f"p{self._generation}-"
        return {inp.id[len(prefix):]: inp.value for inp in self.query(Input)
                if inp.id and inp.id.startswith(prefix)}

    def _selected(self, selector: str) -> object | None:
        found = self.query(selector)
        if not found:
            return None
        value = found.first(Select).value
        return None if value is Select.BLANK else value

    def check(self):
        checkpoint = self._selected("#viz-checkpoint")
        baseline = self._selected("#viz-baseline")
        return check_viz_form(self.kind, self.texts(), None if checkpoint is None else str(checkpoint),
                              None if baseline is None else int(baseline))  # type: ignore[arg-type]

    def show_errors(self, errors: dict[str, str]) -> None:
        for err in self.query(".field-error").results(Static):
            key = (err.id or "")[4:]
            if key.startswith("p-"):
                key = key[2:]
            message = errors.get(key, "")
            err.update(message)
            err.set_class(bool(message), "-shown")
        for name, inp in ((k, self.query(f"#{self._input_id(k)}")) for k in self.texts()):
            if inp:
                inp.first(Input).set_class(name in errors, "-invalid")

    @on(Select.Changed, "#viz-kind")
    async def _kind_changed(self, event: Select.Changed) -> None:
        new = str(event.value)
        if new != self.kind and new in VIZ_KINDS:
            self.kind = new
            await self._build_params()

    @on(Select.Changed, "#viz-checkpoint, #viz-baseline")
    @on(Input.Changed)
    def _changed(self) -> None:
        self.validate()

    # -- submitting ------------------------------------------------------------------------------------

    def submit_request(self, request: VizRequest) -> None:
        self._submit(request)

    @work(thread=True, exclusive=True, group="viz-submit", exit_on_error=False, name="queue viz job")
    def _submit(self, request: VizRequest) -> None:
        from engine.control.viz_jobs import submit_viz

        try:
            job = submit_viz(self.home, self.run.id, request.kind, epoch=request.epoch,
                             checkpoint=request.checkpoint, overrides=request.params,
                             baseline_id=request.baseline_id)
        except (ConfigError, StoreError, ValueError, OSError) as e:
            self.post_message(self.SubmitFailed(GENERAL, str(e)))
            return
        self.post_message(self.Submitted(job))
