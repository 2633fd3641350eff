"""The ganmgr TUI: `ganmgr` with no arguments opens it on a store (`run_app(home)`).

The app itself is small: it owns the store home, starts on the runs screen, reconciles the store with
the processes that are really alive (in a thread), and routes app-wide messages. Everything a screen
shows lives in tui/screens and tui/widgets. Never imports torch (tests/test_tui_no_torch.py checks):
training runs in worker processes that the supervisor starts, so quitting leaves them running.
"""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

# The store, imported here on the main thread: the screens import it lazily inside worker threads, and
# several threads importing SQLAlchemy at once leave each other half-initialised modules ("cannot import
# name 'Artifact'", "module 'sqlalchemy' has no attribute 'dialects'"). The CLI's read commands never import
# this module, so they stay light.
import store.notices  # noqa: F401  (isort: skip)
import store.runs  # noqa: F401
import store.settings  # noqa: F401
import store.viz_jobs  # noqa: F401
from engine.control.paths import ensure_home
from tui.forms.new_run import NewRunScreen
from tui.messages import RunsChanged
from tui.present import one_line
from tui.run_events import RunEventToasts
from tui.screens.help import FILTER_HELP, HelpScreen
from tui.screens.runs import RunsScreen
from tui.screens.welcome import WelcomeModal


class GanmgrApp(RunEventToasts, App[int]):
    CSS_PATH = "ganmgr.tcss"
    TITLE = "ganmgr"
    ENABLE_COMMAND_PALETTE = False
    ALLOW_IN_MAXIMIZED_VIEW = "KeyBar, #run-title"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="app-quit")]

    def __init__(self, home: Path, *, welcome: bool = True, reconcile: bool = True) -> None:
        super().__init__()
        self.home = ensure_home(Path(home))
        self.welcome_enabled = welcome
        self.reconcile_enabled = reconcile
        self.runs_screen = RunsScreen()
        self._welcomed = False

    def get_default_screen(self) -> Screen:
        return self.runs_screen

    def on_mount(self) -> None:
        self.start_event_toasts()  # a run's end (and a health flag) as a toast with the bell: tui/run_events.py
        if self.reconcile_enabled:
            self.reconcile()

    @work(thread=True, exclusive=True, group="reconcile", exit_on_error=False, name="reconcile")
    def reconcile(self) -> None:
        """Runs whose process died while nobody watched are marked as such before we show them."""
        from engine.control.reconcile import reconcile

        changed = reconcile(self.home)
        if changed:
            self.post_message(RunsChanged(note=f"{len(changed)} run(s) reconciled with their processes"))

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(one_line(str(error) or type(error).__name__), title=event.worker.name,
                        severity="error", timeout=8)

    @on(RunsChanged)
    def _runs_changed(self, event: RunsChanged) -> None:
        if event.note:
            self.notify(event.note, timeout=4)
        self.runs_screen.reload(full=True, select_id=event.select_id)

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        extra = FILTER_HELP if screen is self.runs_screen else ""
        title = type(screen).__name__.removesuffix("Screen").lower() or "ganmgr"
        self.push_screen(HelpScreen(screen, title, extra))

    # -- first start -----------------------------------------------------------------------------------

    def offer_welcome(self) -> None:
        """Called by the runs screen when its first read finds an empty store."""
        if self._welcomed or not self.welcome_enabled:
            return
        self._welcomed = True
        from tui.quickstart import describe, has_gpu, quick_config

        gpu = has_gpu()
        self.push_screen(WelcomeModal(str(self.home), describe(quick_config(gpu)), gpu), self._welcome_choice)

    def _welcome_choice(self, choice: str | None) -> None:
        if choice == "quick":
            self.quick_start()
        elif choice == "form":
            self.push_screen(NewRunScreen())

    @work(thread=True, exclusive=True, group="quick-start", exit_on_error=False, name="quick start")
    def quick_start(self) -> None:
        from engine.control.submit import enqueue
        from tui.quickstart import has_gpu, quick_config

        view = enqueue(self.home, quick_config(has_gpu()), tags=("quickstart",), notes="quick start")
        self.post_message(RunsChanged(view.id, f"queued run {view.id} {view.name}"))


def run_app(home: Path) -> int:
    """Open the TUI on `home`; returns the exit code for the `ganmgr` command."""
    from tui.widgets.image_panel import image_widget_class

    image_widget_class()  # asks the terminal about graphics now, before Textual owns stdin
    app = GanmgrApp(home)
    app.run()
    return app.return_code or 0
