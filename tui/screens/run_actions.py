"""Cancel, resume and fork on "the selected run": shared by the runs table and the run screen.

The host screen supplies `selected_run()`. The work happens in thread workers (a cancel writes the
store and may signal a process; a resume re-queues and starts the supervisor); they post `RunsChanged`
to the app, which reloads the table and says what happened.
"""

from __future__ import annotations

from textual import work

from store.views import RunView, VizJobView
from tui.messages import RunsChanged
from tui.screens.confirm import ConfirmModal


class RunActions:
    """Mixin for a GanmgrScreen."""

    def selected_run(self) -> RunView | None:
        raise NotImplementedError

    def _need_run(self) -> RunView | None:
        run = self.selected_run()
        if run is None:
            self.notify("no run selected", severity="warning")  # type: ignore[attr-defined]
        return run

    def action_cancel_run(self) -> None:
        run = self._need_run()
        if run is None:
            return
        if not run.is_active:
            self.notify(f"run {run.id} is {run.status}; only a queued or running run can be cancelled",  # type: ignore[attr-defined]
                        severity="warning")
            return
        what = "stop it (it checkpoints first)" if run.status == "running" else "drop it from the queue"
        self.app.push_screen(  # type: ignore[attr-defined]
            ConfirmModal(f"Cancel run #{run.id} {run.name}?", f"This will {what}."),
            callback=lambda yes: self._cancel(run.id) if yes else None,
        )

    @work(thread=True, exclusive=True, group="cancel", exit_on_error=False, name="cancel")
    def _cancel(self, run_id: int) -> None:
        from engine.control.submit import cancel_run

        view = cancel_run(self.home, str(run_id))  # type: ignore[attr-defined]
        note = f"run {view.id} cancelled" if view.status == "cancelled" else f"run {view.id}: stop requested"
        self.app.post_message(RunsChanged(view.id, note))  # type: ignore[attr-defined]

    def action_resume(self) -> None:
        run = self._need_run()
        if run is None:
            return
        if run.is_active:
            self.notify(f"run {run.id} is {run.status}; only a finished run can be resumed",  # type: ignore[attr-defined]
                        severity="warning")
            return
        self._resume(run.id)

    @work(thread=True, exclusive=True, group="resume", exit_on_error=False, name="resume")
    def _resume(self, run_id: int) -> None:
        from engine.control.submit import resume_run

        view = resume_run(self.home, str(run_id))  # type: ignore[attr-defined]
        self.app.post_message(RunsChanged(view.id, f"run {view.id} {view.name} queued to resume"))  # type: ignore[attr-defined]

    def action_visualize(self) -> None:
        """`v`: the visualization launcher on the selected run."""
        run = self._need_run()
        if run is None:
            return
        if run.status == "queued" or not run.run_dir:
            self.notify(f"run {run.id} has not started: there is nothing to visualize yet",  # type: ignore[attr-defined]
                        severity="warning")
            return
        from store import runs as store_runs
        from tui.forms.viz_launch import VizLaunchScreen

        baselines = store_runs.list_runs(self.home, status="completed", recipe="baseline")  # type: ignore[attr-defined]
        self.app.push_screen(VizLaunchScreen(run, baselines), callback=self._viz_queued)  # type: ignore[attr-defined]

    def _viz_queued(self, job: VizJobView | None) -> None:
        if job is None:
            return
        self.notify(f"viz job {job.id} queued: {job.kind} on run {job.run_id}")  # type: ignore[attr-defined]
        self.viz_queued(job)

    def viz_queued(self, job: VizJobView) -> None:
        """Hook: the run screen watches the job and shows its image when it completes."""

    def action_fork_healthy(self) -> None:
        """`h`: `ganmgr fork ID --from-healthy`, the parent's config, from the checkpoint kept before a health
        rule fired (or the run diverged); refused with a toast when there is none."""
        run = self._need_run()
        if run is None:
            return
        if run.is_active:
            self.notify(f"run {run.id} is {run.status}; fork it from a healthy checkpoint once it ended",  # type: ignore[attr-defined]
                        severity="warning")
            return
        self._fork_healthy(run.id)

    @work(thread=True, exclusive=True, group="fork", exit_on_error=False, name="fork from healthy")
    def _fork_healthy(self, run_id: int) -> None:
        from engine.control.submit import fork_run

        view = fork_run(self.home, run_id, from_healthy=True)  # type: ignore[attr-defined]
        self.app.post_message(RunsChanged(view.id, f"run {view.id} {view.name} queued: forked from run {run_id}'s "  # type: ignore[attr-defined]
                                                   f"healthy checkpoint (epoch {view.parent_epoch})"))

    def action_fork(self) -> None:
        run = self._need_run()
        if run is None:
            return
        from tui.forms.new_run import NewRunScreen

        self.app.push_screen(NewRunScreen(parent=run))  # type: ignore[attr-defined]
