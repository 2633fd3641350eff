"""One run (`enter`): live charts of its loss terms and accuracies, its status and config, log tail,
files and images. A Slurm run also gets a `slurm` panel: the lines `ganmgr show` prints for it (backend and
options, cluster job, state and reason, segments, sweep) and its history (each segment's submission, start
and end), newest last.

A thread worker follows the run folder (`tui.follow.RunFollower`, by byte offset, whole lines only) and
re-reads the run's row once a second; it hands updates over through a deque and a coalescing message, so
a burst of records costs one message. Charts redraw at most twice a second, only when something new
arrived and only while this screen is the one shown: with records arriving every 0.5 s at most, a new
point is on screen within about a second. The records also go through the supervisor's own fold
(`ProgressFold`): a running run's title takes its step and progress from the worker's `progress` records
(about once a second) as soon as they are ahead of the row, and an empty chart says which step the run is
at rather than waiting silently for its first train window.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Log
from textual.worker import get_current_worker

from engine.control.config import RECIPES
from engine.control.follow import ProgressFold
from store.views import ArtifactView, RunEventView, RunView, VizJobView
from tui.charts.metric_chart import PALETTE, MetricChart
from tui.charts.quality_chart import QualityChart
from tui.charts.series import AXES, TEST_ACC, TRAIN_ACC, RunCharts
from tui.external import open_external, scp_line, viewer_argv
from tui.follow import FollowUpdate, RunFollower, title_records
from tui.forms.viz_form import viz_output_rel
from tui.present import (
    PENDING_STYLE,
    STATUS_STYLES,
    backend_lines,
    cluster_reason,
    fmt_duration,
    fmt_epoch,
    fmt_number,
    fmt_pct,
    fmt_rate,
    fmt_started,
    log_line,
    one_line,
    progress_bar,
    run_status_text,
    run_status_word,
    short_dataset,
    status_text,
)
from tui.screens.base import GanmgrScreen
from tui.screens.file_location import FileLocationModal
from tui.screens.run_actions import RunActions
from tui.widgets.image_panel import ImagePanel
from tui.widgets.key_bar import KeyBar
from tui.widgets.quiet_static import QuietStatic
from tui.widgets.resources_strip import ResourcesStrip

POLL_S = 0.5  # folder poll period of the follower thread
ROW_POLL_S = 1.0  # how often the run's row is re-read
# A finished run changes only when someone resumes it or a visualization adds images: look less often.
IDLE_POLL_S = 2.0
IDLE_ROW_POLL_S = 5.0
DRAW_S = 0.5  # chart redraw period (only when something changed)
LOG_LINES = 400
JOB_LINES = 4  # visualization jobs listed on the run screen (the newest)
NARROW = 110  # below this many columns the side panel gets narrower and the file list hides
ACC_COLORS = {TRAIN_ACC: PALETTE[0], TEST_ACC: PALETTE[1]}
CONFIG_SUMMARY = ("width", "batch_size", "lr", "epochs", "seed", "device", "precision")
HISTORY_LINES = 6  # the newest run_events lines in the slurm panel (`ganmgr show` lists them all)


class RunScreen(RunActions, GanmgrScreen[None]):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", id="run-back", tooltip="back to the runs table"),
        Binding("v", "visualize", "Visualize", id="run-viz",
                tooltip="queue a visualization job on this run; its image opens here when it completes"),
        Binding("d", "toggle_details", "Charts/details", id="run-view",
                tooltip="narrow terminals: switch between the charts and the details (info, images, log)"),
        Binding("e", "toggle_axis", "Step/epoch", id="run-axis",
                tooltip="x axis: optimizer step (train windows) or epoch (per-epoch means)"),
        Binding("s", "toggle_smooth", "Smooth", id="run-smooth", tooltip="smooth the lines (moving average)"),
        Binding("left", "image(-1)", "Prev img", id="run-image-prev", tooltip="previous image (epoch grid)"),
        Binding("right", "image(1)", "Next img", id="run-image-next", tooltip="next image (epoch grid)"),
        Binding("i", "zoom_image", "Big image", id="run-image-zoom", tooltip="show the image full size (again: back)"),
        Binding("o", "open_file", "Open img", id="run-open",
                tooltip="open the image in a viewer on this display, or show its path and an scp line"),
        Binding("l", "open_log", "Open log", id="run-open-log", tooltip="the same for log.txt"),
        Binding("x", "cancel_run", "Cancel", id="run-cancel", tooltip="cancel or stop this run (asks first)"),
        Binding("r", "resume", "Resume", id="run-resume", tooltip="queue this finished run again"),
        Binding("f", "fork", "Fork", id="run-fork", tooltip="new run from this run, form prefilled"),
        Binding("h", "fork_healthy", "Fork healthy", id="run-fork-healthy",
                tooltip="new run (same config) from the checkpoint kept before a health rule fired or it diverged"),
        Binding("question_mark", "app.help", "Help", id="run-help", tooltip="this help"),
        Binding("q", "app.quit", "Quit", id="run-quit", tooltip="quit; runs keep going"),
    ]

    class Pending(Message):
        """New follower output waits in the screen's deque (coalesced: one in the queue is enough)."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunScreen.Pending)

    class RowRead(Message):
        def __init__(self, run: RunView, artifacts: list[ArtifactView], jobs: list[VizJobView],
                     events: list[RunEventView] | None = None, max_segments: int | None = None) -> None:
            super().__init__()
            self.run = run
            self.artifacts = artifacts
            self.jobs = jobs
            self.events = events or []
            self.max_segments = max_segments  # the store's setting (a run without its own limit uses it)

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunScreen.RowRead)

    def __init__(self, run: RunView) -> None:
        super().__init__()
        self.run = run
        spec = RECIPES.get(run.recipe)
        self.loss_names: tuple[str, ...] = spec.loss_metrics if spec else ()
        self.charts_data = RunCharts(losses=self.loss_names, probes=spec.probe_metrics() if spec else ())
        self.axis = "step"
        self.smooth = False
        self._dirty = True
        self._pending: deque[FollowUpdate] = deque()
        self._backlog = False  # the follower is reading a backlog (its last update hit its read limit)
        self._backlog_gap, self._backlog_next = DRAW_S, 0.0
        self._stop = threading.Event()
        self._row_now = threading.Event()  # read the row (and jobs) at the next poll, not in 5 s
        self.artifacts: list[ArtifactView] = []
        self.jobs: list[VizJobView] = []
        self.events: list[RunEventView] = []  # the run's history, read for Slurm runs (their segments)
        self._cluster_shown: tuple | None = None
        self.store_max_segments: int | None = None
        self.watched: set[int] = set()  # jobs queued from here: their image opens when they complete
        self.updates_applied = 0  # follower updates taken in (tests read it)
        self.live = ProgressFold()  # the records read so far, folded as the supervisor folds them

    @property
    def run_dir(self) -> Path | None:
        return Path(self.run.run_dir) if self.run.run_dir else None

    def selected_run(self) -> RunView | None:
        return self.run

    def compose(self) -> ComposeResult:
        yield QuietStatic(id="run-title")
        yield ResourcesStrip(id="run-resources")  # CPU, RSS, GPU memory and util (the `resources` records)
        with Horizontal(id="run-body"):
            with Vertical(id="run-charts"):
                yield MetricChart("losses", id="loss-chart")
                second = "D outputs & signals" if self.charts_data.probes else "accuracy %"
                yield MetricChart(second, id="acc-chart")
                yield QualityChart(id="quality-chart")  # eval records (eval_every); hidden until the first
            with Vertical(id="run-side"):
                yield QuietStatic(id="run-info")
                yield QuietStatic(id="run-cluster")
                yield ImagePanel(id="run-images")
                yield QuietStatic(id="run-jobs")
                yield QuietStatic(id="run-files")
                yield Log(max_lines=LOG_LINES, id="run-log")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#run-info").border_title = "run"
        self.query_one("#run-files").border_title = "files"
        self.query_one("#run-jobs").border_title = "visualization jobs (v)"
        self.query_one("#run-jobs").display = False
        self.query_one("#run-cluster").border_title = "slurm"
        self.query_one("#run-cluster").display = self.run.backend == "slurm"
        log = self.query_one("#run-log", Log)
        log.border_title = "log.txt"
        log.can_focus = False
        self._apply_width(self.app.size.width)
        self._render_run()
        self.set_interval(DRAW_S, self._tick_draw)
        self.follow()

    def on_resize(self) -> None:
        self._apply_width(self.size.width)

    def _apply_width(self, width: int) -> None:
        self.set_class(width < NARROW, "-narrow")

    def on_unmount(self) -> None:
        self._stop.set()

    def action_back(self) -> None:
        if self.maximized is not None:
            self.minimize()
            return
        self._stop.set()
        self.dismiss(None)

    # -- the follower thread ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False, name="follow")
    def follow(self) -> None:
        from store import runs as store_runs
        from store import settings as store_settings
        from store import viz_jobs as store_viz

        worker = get_current_worker()
        run_dir = self.run_dir
        # the charts' columns are picked here, off the UI thread (RunCharts.batch is stateless)
        follower = RunFollower(run_dir, batch=self.charts_data.batch) if run_dir else None
        next_row = 0.0
        while not worker.is_cancelled and not self._stop.is_set():
            more = False
            if follower is not None:
                up = follower.poll()
                if not up.empty:
                    self._pending.append(up)
                    self.post_message(self.Pending())
                more = up.more
            now = time.monotonic()
            jobs_active = bool(self.watched) or any(j.is_active for j in self.jobs)
            finished = self.run.is_terminal and not jobs_active
            if now >= next_row or self._row_now.is_set():
                self._row_now.clear()
                next_row = now + (IDLE_ROW_POLL_S if finished else ROW_POLL_S)
                view = store_runs.get_run(self.home, self.run.id)
                if view is not None:
                    arts = store_runs.list_artifacts(self.home, self.run.id)
                    jobs = store_viz.list_viz_jobs(self.home, run_id=self.run.id)
                    events, limit = [], None
                    if view.backend == "slurm":
                        events = store_runs.list_events(self.home, self.run.id)
                        limit = store_settings.get_settings(self.home).get("max_segments")
                    self.post_message(self.RowRead(view, arts, jobs, events, limit))
            # Back off while the app is behind on its messages (a huge backlog being read).
            backlog = self.app.message_queue_size + self.message_queue_size
            base = IDLE_POLL_S if finished else POLL_S
            delay = 0.01 if more and backlog < 20 else base * (4 if backlog > 50 else 1)
            self._stop.wait(delay)

    @on(Pending)
    def _take_pending(self) -> None:
        log = self.query_one("#run-log", Log)
        images = self.query_one(ImagePanel)
        if not self._pending:  # an earlier message's handler took them all
            return
        loading = False
        while self._pending:
            up = self._pending.popleft()
            loading = up.more  # a backlog still arriving: the DRAW_S timer draws (backing off), not every slice
            self.updates_applied += 1
            if up.metrics_reset:
                self.charts_data.clear()
                self.query_one(ResourcesStrip).clear()
                self.query_one(QualityChart).clear()
                self.live = ProgressFold()
                self._dirty = True
            if up.records:
                self.query_one(ResourcesStrip).ingest(up.records)
                if self.query_one(QualityChart).ingest(up.records):
                    self._dirty = True
            if up.chart is not None and self.charts_data.extend(up.chart, up.seen):
                self._dirty = True
            if up.records and self._fold_live(up.records):
                self._render_title()
                if not self.charts_data.loss_series[self.axis]:  # an empty chart says the step it is at
                    self._dirty = True
            if up.log_reset:
                log.clear()
            if up.log_lines:
                log.write_lines([log_line(ln) for ln in up.log_lines])
            if up.images is not None and self.run_dir is not None:
                images.set_images(self.run_dir, up.images)
        if loading and not self._backlog:  # a backlog starts: its first draw in 2 DRAW_S, then less and less often
            self._backlog_gap, self._backlog_next = 2 * DRAW_S, time.monotonic() + 2 * DRAW_S
        self._backlog = loading
        if self._dirty and self.visible and not loading:
            self._draw_if_dirty()

    @on(RowRead)
    def _row_read(self, event: RowRead) -> None:
        self.run = event.run
        self.artifacts = event.artifacts
        self.jobs = event.jobs
        self.events = event.events
        self.store_max_segments = event.max_segments
        for job in event.jobs:
            if job.id in self.watched and job.is_terminal:
                self.watched.discard(job.id)
                self._job_ended(job)
        self._render_run()

    def viz_queued(self, job: VizJobView) -> None:
        self.watched.add(job.id)
        self._row_now.set()

    def _job_ended(self, job: VizJobView) -> None:
        """A job queued from this screen ended: show its image (or say where its page is, or why it failed)."""
        if job.status != "completed":
            self.notify(f"viz job {job.id} {job.kind}: {one_line(job.message or job.status, 200)}",
                        severity="error", timeout=10)
            return
        rel = viz_output_rel(self.run_dir, job)
        if rel is None or not rel.endswith(".png"):
            where = f" -> {Path(job.job_dir or '') / (job.outputs[0] if job.outputs else '')}"
            self.notify(f"viz job {job.id} {job.kind} completed{where}", timeout=10)
            return
        panel = self.query_one(ImagePanel)
        panel.select(rel)
        self.notify(f"viz job {job.id} {job.kind} completed: showing {rel.split('/')[-1]} (o opens it)",
                    timeout=8)

    # -- drawing -------------------------------------------------------------------------------------

    def _tick_draw(self) -> None:
        """The DRAW_S timer. While a backlog loads, the charts are drawn after 1 s, then at gaps doubling
        (2, 4, 8 ... s): a million-line run shows its shape early, and its loading is not spent on
        drawing (issue 16); it is drawn once more when the backlog is done (`_take_pending`)."""
        if self._backlog:
            now = time.monotonic()
            if now < self._backlog_next:
                return
            self._backlog_gap *= 2
            self._backlog_next = now + self._backlog_gap
        self._draw_if_dirty()

    def _draw_if_dirty(self) -> None:
        if not self._dirty or not self.visible:
            return
        self.draw_charts()

    def draw_charts(self) -> None:
        self._dirty = False
        data = self.charts_data
        note = "" if self.axis == "step" else "per-epoch means"
        empty = self._empty_chart_text()
        self.query_one("#loss-chart", MetricChart).draw(
            data.loss_series[self.axis], order=data.loss_names(), xlabel=self.axis, smooth=self.smooth,
            note=note, empty=empty)
        self.query_one("#acc-chart", MetricChart).draw(
            data.acc_series[self.axis], order=data.second_names(), xlabel=self.axis, smooth=self.smooth,
            colors=None if data.probes else ACC_COLORS, empty=empty)
        self.query_one(QualityChart).redraw()

    def _fold_live(self, records: list[dict]) -> bool:
        """Fold new records into the live view; True when the step it shows moved."""
        before = self.live.fields.get("step")
        for rec in title_records(records):  # the title shows its step and progress only
            self.live.fold(rec)
        self.live.take_artifacts()  # the row lists the files; nothing to keep here
        return self.live.fields.get("step") != before

    def _live_progress(self) -> tuple[int | None, float | None]:
        """(step, progress) for the title: the row's, or the live fold's when the run is running and the
        worker's records are ahead of the row (re-read once a second; the rest of the title comes from it)."""
        r = self.run
        step, progress = r.step, r.progress
        live_step = self.live.fields.get("step")
        if r.status == "running" and isinstance(live_step, int) and live_step > (step or 0):
            step = live_step
            progress = self.live.fields.get("progress", progress)
        return step, progress

    def _empty_chart_text(self) -> str:
        step, _progress = self._live_progress()
        if self.run.status == "running" and step:
            return f"step {step}: the first train window is on its way"
        return "waiting for metrics"

    def _render_run(self) -> None:
        self._render_title()
        r = self.run
        cluster = self.query_one("#run-cluster", QuietStatic)
        cluster.display = r.backend == "slurm"
        if r.backend == "slurm":
            signature, content = self._cluster_content()
            if signature != self._cluster_shown:  # a Group has no text to compare: compare the lines
                self._cluster_shown = signature
                cluster.update(content)
        self.query_one("#run-info", QuietStatic).show(self._info_text())
        self.query_one("#run-files", QuietStatic).show(self._files_text())
        jobs = self.query_one("#run-jobs", QuietStatic)
        jobs.display = bool(self.jobs)
        if self.jobs:
            jobs.show(self._jobs_text())

    def _render_title(self) -> None:
        r = self.run
        step, progress = self._live_progress()
        title = run_status_text(r)
        head = f" #{r.id} {r.name}  "
        pending = run_status_word(r) == "pending"
        line = progress_bar(progress if r.status != "completed" else 1.0, width=10,
                            style=PENDING_STYLE.replace("bold ", "") if pending else "cyan")
        bits = [f"epoch {fmt_epoch(r.epoch, r.epochs)}"]
        if r.status == "running" and step:
            bits.append(f"step {step}")
        if r.images_per_s and r.status == "running":  # the row's: progress records keep it current
            bits.append(f"{fmt_rate(r.images_per_s)} img/s")
        if r.duration_s is not None:
            bits.append(fmt_duration(r.duration_s))
        if r.backend == "slurm" and r.cluster_job_id:
            bits.append(f"slurm job {r.cluster_job_id}")
        text = Text()
        text.append(head, style="bold")
        text.append_text(title)
        text.append("  ")
        text.append_text(line)
        text.append("   " + "  ".join(bits))
        if pending:
            text.append(f"  waiting: {cluster_reason(r) or 'no reason given yet'}", style=PENDING_STYLE)
        self.query_one("#run-title", QuietStatic).show(text)

    def _jobs_text(self) -> Text:
        t = Text()
        for j in self.jobs[-JOB_LINES:]:
            t.append(f"#{j.id:<3} {j.kind:<12} ", style="bold" if j.is_active else "")
            t.append_text(status_text(j.status, cancelling=j.cancel_requested))
            if j.status == "running" and j.progress is not None:
                t.append(f" {j.progress * 100:3.0f}%")
            detail = j.message or ""
            if j.status == "completed":
                detail = f"{fmt_duration(j.duration_s)}  {', '.join(str(o).split('/')[-1] for o in j.outputs[:2])}"
            t.append(f"  {one_line(detail, 60)}".rstrip() + "\n", style="dim")
        if len(self.jobs) > JOB_LINES:
            t.append(f"… {len(self.jobs) - JOB_LINES} earlier (ganmgr jobs {self.run.id})", style="dim")
        return t.rstrip() or t

    def _info_text(self) -> Text:
        r = self.run
        cfg = r.config
        t = Text()
        t.append(f"{r.recipe} · {short_dataset(r.dataset)}\n", style="bold")
        summary = " · ".join(f"{k} {fmt_number(cfg[k])}" for k in CONFIG_SUMMARY if k in cfg)
        t.append(summary + "\n")
        acc = fmt_pct(r.last_test_acc)
        if acc:
            t.append(f"test acc {acc}% (best {fmt_pct(r.best_test_acc)})\n")
        started = fmt_started(r.started_at)
        where = f" on {r.host}" if r.host else ""
        gpu = f" gpu {r.gpu}" if r.gpu else ""
        t.append(f"created {fmt_started(r.created_at)}" + (f" · started {started}{where}{gpu}" if started else "")
                 + "\n", style="dim")
        if r.parent_id:
            at = f" @ epoch {r.parent_epoch}" if r.parent_epoch is not None else ""
            t.append(f"{r.parent_relation or 'child'} of #{r.parent_id}{at}\n", style="dim")
        if r.tags:
            t.append("tags " + ", ".join(r.tags) + "\n")
        if r.notes:
            t.append("note " + one_line(r.notes, 120) + "\n")
        if r.error:
            t.append(one_line(r.error, 300) + "\n", style=STATUS_STYLES.get(r.status, "red"))
        return t.rstrip() or t

    def _cluster_content(self) -> tuple[tuple, Group]:
        """`ganmgr show`'s backend lines (the same helper), then the newest history lines (the segments'
        submissions, starts and ends), one line each so the newest always fits; with a signature, so the
        panel repaints only when one of them changed."""

        limit = self.store_max_segments
        lines = backend_lines(self.run, limit if isinstance(limit, int) and not isinstance(limit, bool) else None)
        events = self.events[-HISTORY_LINES:]
        signature = (tuple(lines), tuple((e.id, e.message) for e in events), len(self.events),
                     run_status_word(self.run))
        show = Table.grid(padding=(0, 1))
        show.add_column(style="dim", no_wrap=True)
        show.add_column()
        for key, value in lines:
            style = PENDING_STYLE if key == "cluster job" and run_status_word(self.run) == "pending" else ""
            show.add_row(key, Text(value.replace("    ", "  "), style=style))
        parts: list = [show]
        if events:
            earlier = len(self.events) - len(events)
            parts.append(Text("history" + (f"  (… {earlier} earlier: ganmgr show {self.run.id})" if earlier
                                           else ""), style="dim"))
            history = Table.grid(padding=(0, 1), expand=True)
            history.add_column(style="dim", no_wrap=True, min_width=11)
            history.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
            today = time.localtime().tm_yday
            for e in events:
                at = time.localtime(e.at)
                when = time.strftime("%H:%M:%S" if at.tm_yday == today else "%m-%d %H:%M", at)
                history.add_row(when, one_line(e.message or e.status, 300))
            parts.append(history)
        return signature, Group(*parts)

    def _files_text(self) -> str:
        if not self.artifacts:
            return "(no files recorded yet)"
        by = self.run.config.get("best_metric") or "best_metric"  # best.pt: always listed first
        best = [f"{a.path} (best {by}, epoch {a.epoch})" for a in self.artifacts if a.kind == "best"]
        names = [a.path for a in self.artifacts if a.kind != "best"]
        return "\n".join(best + names[-6:]) + (f"\n… {len(names) - 6} more" if len(names) > 6 else "")

    # -- keys ----------------------------------------------------------------------------------------

    def action_toggle_details(self) -> None:
        """Narrow terminals show the charts or the details (info, images, log); wide ones show both."""
        if not self.has_class("-narrow"):
            self.notify("everything is on screen already (this switch is for narrow terminals)", timeout=3)
            return
        self.toggle_class("-details")
        self._dirty = True
        self.call_after_refresh(self._draw_if_dirty)

    def action_toggle_axis(self) -> None:
        self.axis = AXES[(AXES.index(self.axis) + 1) % len(AXES)]
        self.draw_charts()

    def action_toggle_smooth(self) -> None:
        self.smooth = not self.smooth
        self.draw_charts()

    def action_image(self, delta: int) -> None:
        self.query_one(ImagePanel).step(delta)

    def action_zoom_image(self) -> None:
        panel = self.query_one(ImagePanel)
        if self.has_class("-narrow") and not self.has_class("-details"):
            self.add_class("-details")
        if self.maximized is panel:
            self.minimize()
        else:
            self.maximize(panel, container=False)

    def action_open_file(self) -> None:
        path = self.query_one(ImagePanel).current
        if path is None:
            self.notify("this run has no image yet", severity="warning")
            return
        self._open(path)

    def action_open_log(self) -> None:
        if self.run_dir is None:
            return
        self._open(self.run_dir / "log.txt")

    def _open(self, path: Path) -> None:
        argv = viewer_argv(path)
        if argv is not None:
            try:
                open_external(argv)
            except OSError as e:
                self.notify(f"cannot start {argv[0]}: {e}", severity="error")
            else:
                self.notify(f"opened {path.name} with {Path(argv[0]).name}")
                return
        self.app.push_screen(FileLocationModal(path, scp_line(path)))
