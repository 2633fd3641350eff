"""The new-run form (`n`) and the fork form (`f`): the recipe's defaults (or the parent's config) filled in,
every input checked as it is typed, the error under the input it belongs to, submit enqueues.

A new run also picks its backend (the store's `backend` setting first): with slurm, the Slurm fields appear,
filled in from the store's `slurm_options`, and are checked exactly as `ganmgr run --backend slurm` checks
its flags. A fork runs on this machine (engine.control.submit.fork_run takes no backend).

Rules live in `tui.forms.run_form` (pure); this screen moves text in and errors out. The submit itself (row,
folder, data check, supervisor start) runs in a thread worker; a ConfigError it raises lands inline too.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Select, Static

from engine.control.config import RECIPES
from engine.control.errors import ConfigError, SubmitError
from engine.control.fork_epochs import fork_default_epochs
from engine.control.machine import cuda_present
from store.errors import StoreError
from store.views import RunView
from tui.forms.base import FormScreen
from tui.forms.estimate_line import estimate_line
from tui.forms.run_form import (
    BACKENDS,
    CONFIG_INPUTS,
    DATASET_SUGGESTIONS,
    FORK_INPUTS,
    GENERAL,
    META_INPUTS,
    SLURM_INPUTS,
    FormCheck,
    RunRequest,
    check_form,
    error_field,
    slurm_text_values,
    text_values,
)
from tui.messages import RunsChanged
from tui.widgets.key_bar import KeyBar

DEFAULT_RECIPE = "acgan-wgangp"


class NewRunScreen(FormScreen[RunView | None]):
    """Dismisses with the created run, or None when left with escape."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "Submit", id="form-submit"),
        Binding("escape", "leave", "Back", id="form-back"),
        # Priority: the app moves focus before it hands the next typed key to a widget, so "Tab, type"
        # typed fast never lands in the field being left.
        Binding("tab", "app.focus_next", "Next field", id="form-next", priority=True),
        Binding("shift+tab", "app.focus_previous", "Previous field", id="form-prev", show=False, priority=True),
        Binding("f1", "app.help", "Help", id="form-help", tooltip="this help"),
    ]

    def __init__(self, parent: RunView | None = None, recipe: str | None = None) -> None:
        super().__init__()
        self.parent_run = parent
        self.recipe = parent.recipe if parent is not None else (recipe or DEFAULT_RECIPE)
        if self.recipe not in RECIPES:
            self.recipe = DEFAULT_RECIPE
        self.backend = "local"
        self.slurm_defaults: dict = {}
        self.max_segments_setting: object = None
        self.cuda = True  # until on_mount probes (engine.control.machine)
        self.measured: list = []  # this machine's finished runs' rates (engine.control.estimate)

    @property
    def fork(self) -> bool:
        return self.parent_run is not None

    def _initial_values(self) -> dict[str, str]:
        if self.parent_run is not None:
            values = text_values(self.parent_run.config)
            values["tags"] = ",".join(self.parent_run.tags)
            values["name"] = ""
            values["epochs"] = str(fork_default_epochs(self.parent_run))  # a finished run's fork continues it
            return values
        return text_values(RECIPES[self.recipe].default_config())

    def _read_settings(self) -> None:
        """The store's default backend and Slurm options (a store not created yet has none)."""
        from store.db import db_path

        if self.fork or not db_path(self.home).exists():
            return
        from store import settings as store_settings

        try:
            settings = store_settings.get_settings(self.home)
        except StoreError:
            return
        backend = settings.get("backend")
        self.backend = backend if backend in BACKENDS else "local"
        self.max_segments_setting = settings.get("max_segments")
        options = settings.get("slurm_options")
        self.slurm_defaults = dict(options) if isinstance(options, dict) else {}

    def compose(self) -> ComposeResult:
        if self.parent_run is not None:
            p = self.parent_run
            title = f"Fork #{p.id} {p.name}: continues from its checkpoint (ctrl+s queues it)"
        else:
            title = "New run  (defaults of the recipe; ctrl+s queues it)"
        yield Static(title, id="form-title")
        self._read_settings()
        values = self._initial_values()
        with VerticalScroll(id="form"):
            with Horizontal(classes="form-row"):
                yield Label("recipe", classes="form-label")
                yield Select([(name, name) for name in RECIPES], value=self.recipe, allow_blank=False,
                             id="in-recipe", compact=True, disabled=self.fork)
            yield Static(RECIPES[self.recipe].summary, id="recipe-summary", classes="form-help")
            yield Static("", id="run-estimate", classes="form-help")
            inputs = list(CONFIG_INPUTS) + (list(FORK_INPUTS) if self.fork else []) + list(META_INPUTS)
            for key, label, placeholder in inputs:
                with Horizontal(classes="form-row"):
                    yield Label(label, classes="form-label")
                    suggester = SuggestFromList(DATASET_SUGGESTIONS) if key == "dataset" else None
                    yield Input(values.get(key, ""), placeholder=placeholder, id=f"in-{key}", compact=True,
                                suggester=suggester)
                yield Static("", id=f"err-{key}", classes="field-error")
            if not self.fork:
                yield from self._compose_backend()
            yield Static("", id=f"err-{GENERAL}", classes="field-error")
            with Horizontal(id="form-buttons"):
                yield Button("Fork" if self.fork else "Queue run", id="form-submit", variant="primary",
                             compact=True)
                yield Button("Cancel", id="form-cancel", compact=True)
        yield KeyBar()

    def _compose_backend(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label("backend", classes="form-label")
            yield Select([(name, name) for name in BACKENDS], value=self.backend, allow_blank=False,
                         id="in-backend", compact=True)
        yield Static("", id="err-backend", classes="field-error")
        values = slurm_text_values(self.slurm_defaults)
        with Vertical(id="slurm-fields"):
            yield Static("sbatch runs the run folder's job.sbatch; past the time limit a new job continues it",
                         classes="form-help", id="slurm-help")
            for key, label, placeholder in SLURM_INPUTS:
                if key == "slurm-max-segments" and self.max_segments_setting is not None:
                    placeholder = placeholder.replace("max_segments, 20",
                                                      f"max_segments, {self.max_segments_setting}")
                with Horizontal(classes="form-row"):
                    yield Label(label, classes="form-label")
                    yield Input(values.get(key, ""), placeholder=placeholder, id=f"in-{key}", compact=True)
                yield Static("", id=f"err-{key}", classes="field-error")

    def on_mount(self) -> None:
        self.cuda = cuda_present()
        if not self.cuda:
            self._read_measurements()
        if not self.fork:
            self.query_one("#slurm-fields").display = self.backend == "slurm"
        self.query_one("#in-epochs" if self.fork else "#in-recipe").focus()
        self.validate()

    # -- reading and checking ------------------------------------------------------------------------

    def values(self) -> dict[str, str]:
        return {inp.id[3:]: inp.value for inp in self.query(Input) if inp.id and inp.id.startswith("in-")}

    def check(self) -> FormCheck:
        base = self.parent_run.config if self.parent_run is not None else None
        start = self.parent_run.epoch if self.parent_run is not None else None
        return check_form(self.recipe, self.values(), base=base, fork=self.fork, backend=self.backend,
                          slurm_defaults=self.slurm_defaults, fork_start=start)

    def validate(self) -> FormCheck:
        check = super().validate()
        self._show_estimate(check)
        return check

    # -- the CPU warning and the duration estimate --------------------------------------------------------

    @work(thread=True, exclusive=True, group="measured", exit_on_error=False, name="measured rates")
    def _read_measurements(self) -> None:
        from engine.control.estimate import measurements

        found = measurements(self.home)
        self.app.call_from_thread(self._measured, found)

    def _measured(self, found: list) -> None:
        if not self.is_attached:  # the form was left before the store answered
            return
        self.measured = found
        self._show_estimate(self.check())

    def _show_estimate(self, check: FormCheck) -> None:
        """No CUDA here and the run stays here: say so, and how long it would take (tui.forms.estimate_line)."""
        line = self.query_one("#run-estimate", Static)
        if self.cuda or self.backend == "slurm":
            line.display = False
            return
        start = self.parent_run.epoch if self.parent_run is not None else 0
        if check.request is not None and check.request.fork_epoch is not None:
            start = check.request.fork_epoch
        cfg = check.request.cfg if check.request is not None else None
        line.update(estimate_line(cfg, self.measured, start))
        line.display = True

    def show_errors(self, errors: dict[str, str]) -> None:
        for err in self.query(".field-error").results(Static):
            key = (err.id or "")[4:]
            message = errors.get(key, "")
            err.update(message)
            err.set_class(bool(message), "-shown")
            try:
                self.query_one(f"#in-{key}").set_class(bool(message), "-invalid")
            except Exception:  # noqa: BLE001 - the general error line has no input
                pass

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self.validate()

    @on(Select.Changed, "#in-recipe")
    def _recipe_changed(self, event: Select.Changed) -> None:
        new = str(event.value)
        if new == self.recipe or new not in RECIPES:
            return
        old_defaults = text_values(RECIPES[self.recipe].default_config())
        new_defaults = text_values(RECIPES[new].default_config())
        self.recipe = new
        for key, text in new_defaults.items():
            inp = self.query_one(f"#in-{key}", Input)
            if inp.value == old_defaults.get(key):  # untouched: follow the recipe's default
                inp.value = text
        self.query_one("#recipe-summary", Static).update(RECIPES[new].summary)
        self.validate()

    @on(Select.Changed, "#in-backend")
    def _backend_changed(self, event: Select.Changed) -> None:
        new = str(event.value)
        if new == self.backend or new not in BACKENDS:
            return
        self.backend = new
        self.query_one("#slurm-fields").display = new == "slurm"
        self.validate()

    # -- submitting ------------------------------------------------------------------------------------

    def focus_error(self, errors: dict[str, str]) -> None:
        try:
            self.query_one(f"#in-{next(iter(errors))}").focus()
        except Exception:  # noqa: BLE001 - a general error has no input to focus
            pass

    def submit_request(self, request: RunRequest) -> None:
        self._submit(request)

    @work(thread=True, exclusive=True, group="submit", exit_on_error=False, name="submit")
    def _submit(self, req: RunRequest) -> None:
        try:
            if self.parent_run is not None:
                from engine.control.submit import fork_run

                overrides = {k: v for k, v in req.overrides.items() if k != "name"}
                view = fork_run(self.home, str(self.parent_run.id), overrides=overrides,
                                assignments=req.assignments, epoch=req.fork_epoch, name=req.cfg.get("name"),
                                tags=req.tags, notes=req.notes, priority=req.priority)
            else:
                from engine.control.submit import enqueue

                view = enqueue(self.home, req.cfg, tags=req.tags, notes=req.notes, priority=req.priority,
                               backend=req.backend, backend_options=req.backend_options,
                               max_segments=req.max_segments)
        except ConfigError as e:
            self.post_message(self.SubmitFailed(error_field(str(e)), str(e)))
            return
        except SubmitError as e:  # a fork's refusal that names its field lands under it, in the form's words
            self.post_message(self.SubmitFailed(e.field or GENERAL, e.form_message))
            return
        except (StoreError, ValueError, OSError) as e:
            self.post_message(self.SubmitFailed(GENERAL, str(e)))
            return
        self.post_message(self.Submitted(view))

    def submitted(self, run: RunView) -> None:
        verb = "forked" if self.fork else "queued"
        where = " for Slurm (the supervisor submits it with sbatch)" if run.backend == "slurm" else ""
        self.app.post_message(RunsChanged(run.id, f"{verb} run {run.id} {run.name}{where}"))
        self.dismiss(run)
