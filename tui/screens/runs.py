"""The runs screen: history and queue in one table, refreshed from the store about once a second.

A thread worker reads the store; the table is then updated in place (see `RunsTable`). Reads are cheap
on a big store: each tick asks only for the rows changed since the last one (newest `updated_at` first),
and the whole table is re-read when something structural may have happened (a new or queued run, a
status change, an action of ours) and every FULL_RELOAD_S anyway. Filtering and sorting work on the
snapshot in memory, so typing a filter never waits for the database.

Sweeps: `w` narrows the table to the selected run's sweep (the filter `sweep:NAME`, so `/` shows and edits
it); a line above the table then sums the sweep up (runs per status, the best test accuracy and its point),
and the name column shows each run's point (`lr=0.0002 width=128`) instead of `<sweep>-<i>`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Input
from textual.worker import Worker, WorkerState, get_current_worker

from store.views import RunView
from tui.forms.new_run import NewRunScreen
from tui.messages import RunsChanged
from tui.present import (
    PENDING_GLYPH,
    PENDING_STYLE,
    STATUS_GLYPHS,
    STATUS_STYLES,
    fmt_pct,
    header_counts,
    short_path,
)
from tui.run_query import (
    PENDING,
    SORTS,
    FilterError,
    RunFilter,
    is_pending,
    order_runs,
    parse_filter,
    point_label,
    queue_positions,
    sweep_filter,
    sweep_summary,
)
from tui.screens.base import GanmgrScreen
from tui.screens.compare import CompareScreen
from tui.screens.confirm import ConfirmModal
from tui.screens.run_actions import RunActions
from tui.screens.run_detail import RunScreen
from tui.screens.samples import SamplesScreen
from tui.screens.tags_notes import TagsNotes, TagsNotesModal
from tui.widgets.filter_input import FilterInput
from tui.widgets.key_bar import KeyBar
from tui.widgets.quiet_static import QuietStatic
from tui.widgets.runs_table import RunsTable, run_cells

TICK_S = 1.0
STABLE_SORTS = ("queue", "id", "name", "status")  # orders that progress updates cannot change
FULL_RELOAD_S = 15.0
CHANGED_WINDOW = 64  # rows asked for per tick; more changes than this means a full reload


class RunsScreen(RunActions, GanmgrScreen[None]):
    BINDINGS = [
        Binding("enter", "open_run", "Open", id="runs-open", key_display="⏎",
                tooltip="open the run: live charts, status, config, log, files and images"),
        Binding("n", "new_run", "New", id="runs-new", tooltip="new run form (recipe defaults filled in)"),
        Binding("r", "resume", "Resume", id="runs-resume",
                tooltip="queue a finished run again; it continues from its last checkpoint"),
        Binding("f", "fork", "Fork", id="runs-fork",
                tooltip="new run from this run's checkpoint, with the form prefilled from its config"),
        Binding("v", "visualize", "Visualize", id="runs-viz",
                tooltip="queue a visualization job on the selected run (perturb, max_class, report...)"),
        Binding("x", "cancel_run", "Cancel", id="runs-cancel",
                tooltip="cancel a queued run, or stop a running one (it checkpoints first); asks first"),
        Binding("t", "edit_tags", "Tags", id="runs-tags",
                tooltip="edit the run's tags and note (the rule of ganmgr tag and ganmgr note)"),
        Binding("d,delete", "delete_run", "Delete", id="runs-delete", key_display="d",
                tooltip="delete a finished or queued run: its row and its folder, as ganmgr rm; asks first"),
        Binding("space", "toggle_mark", "Mark", id="runs-mark", key_display="␣",
                tooltip="mark or unmark the run for compare"),
        Binding("c", "compare", "Compare", id="runs-compare",
                tooltip="compare the marked runs: one metric overlaid, and the config keys that differ"),
        Binding("i", "samples", "Samples", id="runs-samples",
                tooltip="the run's sample grids, as large as the terminal allows, newest epoch first (←/→ scrub)"),
        # Priority (so "/failed" typed fast lands in the filter, not on the f key); off while typing in it.
        Binding("slash", "filter", "Filter", id="runs-filter", tooltip="filter the table (see below)",
                priority=True),
        Binding("w", "sweep", "Sweep", id="runs-sweep",
                tooltip="show only the selected run's sweep, summed up above the table (again: all runs); "
                        "the filter sweep:NAME does the same"),
        Binding("s", "cycle_sort", "Sort", id="runs-sort",
                tooltip="next sort: queue (running, queue order, newest), id, name, status, test acc, "
                        "started, duration, recipe"),
        Binding("S", "reverse_sort", "Reverse", id="runs-sort-reverse", tooltip="reverse the sort order"),
        Binding("plus,shift+up", "move(-1)", "Earlier", id="runs-queue-up", key_display="+",
                tooltip="move the queued run one place toward the front of the queue"),
        Binding("minus,shift+down", "move(1)", "Later", id="runs-queue-down", key_display="-",
                tooltip="move the queued run one place back in the queue"),
        Binding("g", "gpus", "GPUs", id="runs-gpus",
                tooltip="this node's GPUs: memory, util and the processes on each, tied to their runs"),
        Binding("question_mark", "app.help", "Help", id="runs-help", tooltip="this help"),
        Binding("q", "app.quit", "Quit", id="runs-quit",
                tooltip="quit; queued and running runs keep going (the supervisor runs them)"),
    ]

    class Loaded(Message):
        """A store read: `runs` replaces the snapshot (full) or is merged into it (changed rows only)."""

        def __init__(self, runs: list[RunView], full: bool, viz: dict[str, int] | None = None) -> None:
            super().__init__()
            self.runs = runs
            self.full = full
            self.viz = viz or {}  # visualization jobs per status (running, queued): the header counts them

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: dict[int, RunView] = {}
        self.marks: set[int] = set()
        self.filter: RunFilter = RunFilter()
        self.sort = "queue"
        self.reverse = False
        self.loaded = False
        self._watermark = 0.0  # newest updated_at seen
        self._last_full = 0.0
        self._want_full = True
        self._select_after_load: int | None = None
        self._loading = False
        self.loads = 0
        self._cell_cache: dict[int, tuple[tuple, tuple]] = {}
        self.viz_counts: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield QuietStatic(id="runs-title")
        yield FilterInput(placeholder="filter: words, status:running, recipe:baseline, tag:x", id="runs-filter",
                          compact=True)
        yield QuietStatic("", id="runs-sweep")
        yield RunsTable(id="runs-table")
        yield QuietStatic("", id="runs-empty")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#runs-filter", Input).display = False
        self.query_one("#runs-sweep").display = False
        self.query_one(RunsTable).focus()
        self._render_title()
        self.set_interval(TICK_S, self.tick)
        self.reload(full=True)

    # -- loading ---------------------------------------------------------------------------------------

    def tick(self) -> None:
        if not self.visible:  # another screen is on top: read again when we are back
            return
        full = self._want_full or time.monotonic() - self._last_full > FULL_RELOAD_S
        self.reload(full=full)
        self._tick_clock()

    def reload(self, full: bool = True, select_id: int | None = None) -> None:
        """Read the store in a thread; `select_id` puts the cursor on that run once it is shown."""
        if select_id is not None:
            self._select_after_load = select_id
        if full:
            self._want_full = True
        if self._loading and not full:
            return
        self._loading = True
        self._load(self._want_full, self._watermark)

    def on_screen_resume(self) -> None:
        if self.loaded:
            self.reload(full=False)

    def worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "runs-load" and event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self._loading = False

    @work(thread=True, exclusive=True, group="runs-load", exit_on_error=False, name="load runs")
    def _load(self, full: bool, watermark: float) -> None:
        # SQLAlchemy sits behind the store: imported here, off the UI thread, after the first paint.
        from store import runs as store_runs
        from store import viz_jobs as store_viz

        worker = get_current_worker()
        viz: dict[str, int] = {}
        for job in store_viz.list_viz_jobs(self.home, status=("running", "queued")):
            viz[job.status] = viz.get(job.status, 0) + 1
        if not full:
            changed = store_runs.list_runs(self.home, order="-updated_at", limit=CHANGED_WINDOW)
            changed = [r for r in changed if r.updated_at > watermark]
            if len(changed) >= CHANGED_WINDOW:
                full = True
            elif not worker.is_cancelled:
                self.post_message(self.Loaded(changed, full=False, viz=viz))
                return
        runs = store_runs.list_runs(self.home)
        if not worker.is_cancelled:
            self.post_message(self.Loaded(runs, full=True, viz=viz))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self._loading = False
        self.loads += 1
        if event.full:
            self.snapshot = {r.id: r for r in event.runs}
            self._want_full = False
            self._last_full = time.monotonic()
        structural = event.full
        if not event.full:
            for r in event.runs:
                old = self.snapshot.get(r.id)
                # New runs, queue changes and status changes can reorder others: read everything next tick.
                if old is None or r.status == "queued" or old.status != r.status or old.priority != r.priority:
                    self._want_full = True
                    structural = True
                self.snapshot[r.id] = r
        if event.runs:
            self._watermark = max(self._watermark, max(r.updated_at for r in event.runs))
        self.marks &= set(self.snapshot)
        first = not self.loaded
        viz_moved = event.viz != self.viz_counts
        self.viz_counts = event.viz
        if not event.full and not event.runs and not first:
            if viz_moved:
                self._render_title()
            return  # nothing changed: nothing to repaint
        self.loaded = True
        if not structural and not first and self.sort in STABLE_SORTS and self._update_rows(event.runs):
            return
        self.show()
        if self._select_after_load is not None and self.query_one(RunsTable).select_run(self._select_after_load):
            self._select_after_load = None
        if first and not self.snapshot:
            self.gapp.offer_welcome()

    def _update_rows(self, changed: list[RunView]) -> bool:
        """Progress of runs already shown, in an order it cannot change: rewrite just their rows.
        False when a changed run enters or leaves the filter (then the caller shows everything)."""
        table = self.query_one(RunsTable)
        shown = set(table.run_ids)
        if any((r.id in shown) != self.filter.matches(r) for r in changed):
            return False
        now = time.time()
        for r in changed:
            if r.id in shown:
                table.update_row(r.id, self._cells(r, None, now))
        self._render_title(shown=len(shown))
        return True

    def _cells(self, run: RunView, queue_pos: int | None, now: float) -> tuple:
        """A run's cells, remembered until the row (or the mark, queue place, clock of a running run)
        changes: a tick over 2,000 runs formats only the few that moved."""
        label = (point_label(run) or None) if self.filter.sweeps else None  # a sweep's view: its points
        key = (run.updated_at, run.id in self.marks, queue_pos, int(now) if run.status == "running" else None,
               int(now // 86400), label)
        hit = self._cell_cache.get(run.id)
        if hit is not None and hit[0] == key:
            return hit[1]
        cells = run_cells(run, marked=run.id in self.marks, queue_pos=queue_pos, now=now, label=label)
        self._cell_cache[run.id] = (key, cells)
        return cells

    def show(self) -> None:
        """Filter, sort and hand the rows to the table (which updates only what changed)."""
        runs = [r for r in self.snapshot.values() if self.filter.matches(r)]
        ordered = order_runs(runs, self.sort, self.reverse)
        positions = queue_positions(self.snapshot.values())
        now = time.time()
        rows = [(r.id, self._cells(r, positions.get(r.id), now)) for r in ordered]
        if len(self._cell_cache) > 2 * len(self.snapshot) + 100:
            self._cell_cache = {k: v for k, v in self._cell_cache.items() if k in self.snapshot}
        self.query_one(RunsTable).show(rows)
        empty = self.query_one("#runs-empty", QuietStatic)
        if not self.snapshot:
            empty.show("No runs yet: press n for a new run.")
        elif not rows:
            empty.show("No run matches the filter (esc in the filter clears it).")
        if empty.display != (not rows):
            empty.display = not rows
        self._render_title(shown=len(rows))
        self._render_sweep()

    def _render_sweep(self) -> None:
        """The sweep line: shown while the filter names exactly one sweep."""
        bar = self.query_one("#runs-sweep", QuietStatic)
        names = sorted(self.filter.sweeps)
        if len(names) != 1:
            if bar.display:
                bar.display = False
            return
        summary = sweep_summary(names[0], self.snapshot.values())
        t = Text()
        t.append(f" sweep {summary.name} ", style="bold reverse")
        plural = "s" if summary.runs != 1 else ""
        over = f" over {' × '.join(summary.axes)}" if summary.axes else ""
        t.append(f" {summary.runs} run{plural}{over} ")
        for word in (PENDING, "queued", "running", "completed", "failed", "diverged", "stopped", "killed", "lost",
                     "cancelled"):
            n = summary.counts.get(word)
            if n:
                glyph = PENDING_GLYPH if word == PENDING else STATUS_GLYPHS.get(word, "·")
                style = PENDING_STYLE if word == PENDING else STATUS_STYLES.get(word, "")
                t.append(f" {glyph} {n} {word}", style=style)
        if summary.best is not None:
            b = summary.best
            t.append(f"   best test {fmt_pct(summary.best_acc)}% #{b.id}", style="bold green")
            label = point_label(b)
            if label:
                t.append(f" {label}", style="green")
        bar.show(t)
        if not bar.display:
            bar.display = True

    def _tick_clock(self) -> None:
        """Running durations move every second even when the store did not change."""
        table = self.query_one(RunsTable)
        now = time.time()
        for rid in table.run_ids:
            r = self.snapshot.get(rid)
            if r is not None and r.status == "running":
                table.update_row(rid, self._cells(r, None, now))

    def on_resize(self) -> None:
        self._render_title()

    def _render_title(self, shown: int | None = None) -> None:
        if shown is None:
            shown = len(self.query_one(RunsTable).run_ids)
        counts: dict[str, int] = {}
        for r in self.snapshot.values():
            word = PENDING if is_pending(r) else r.status
            counts[word] = counts.get(word, 0) + 1
        t = header_counts(counts, self.viz_counts)
        if counts.get(PENDING):
            t.append(f"  {PENDING_GLYPH} {counts[PENDING]} pending", style=PENDING_STYLE.replace("bold ", ""))
        t.append(f"  {len(self.snapshot)} runs")
        arrow = "↑" if self.reverse else "↓"
        t.append(f"  sort {self.sort} {arrow}", style="dim")
        if not self.filter.empty:
            t.append(f"  filter: {shown} shown", style="bold magenta")
        if self.marks:
            t.append(f"  {len(self.marks)} marked", style="magenta")
        head = Text()
        head.append(" ganmgr ", style="bold reverse")
        path = f" {short_path(self.home, 32)}  "
        # The path only where it fits beside the counts (they matter more on a narrow terminal).
        if (self.size.width or self.app.size.width) >= 100 and \
                9 + len(path) + t.cell_len <= (self.size.width or self.app.size.width):
            head.append(path, style="dim")
        else:
            head.append(" ")
        t = head + t
        self.query_one("#runs-title", QuietStatic).show(t)

    # -- selection -------------------------------------------------------------------------------------

    def selected_run(self) -> RunView | None:
        rid = self.query_one(RunsTable).current_run_id()
        return self.snapshot.get(rid) if rid is not None else None

    @on(DataTable.RowSelected, "#runs-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_run()

    def action_open_run(self) -> None:
        run = self._need_run()
        if run is not None:
            self.app.push_screen(RunScreen(run))

    def action_samples(self) -> None:
        run = self._need_run()
        if run is not None:
            self.app.push_screen(SamplesScreen([run]))

    def action_new_run(self) -> None:
        self.app.push_screen(NewRunScreen())

    def action_toggle_mark(self) -> None:
        run = self._need_run()
        if run is None:
            return
        self.marks.symmetric_difference_update({run.id})
        self.show()
        table = self.query_one(RunsTable)
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1, animate=False)

    def action_gpus(self) -> None:
        from tui.screens.gpus import GpusScreen

        self.app.push_screen(GpusScreen())

    def action_compare(self) -> None:
        runs = [self.snapshot[i] for i in sorted(self.marks) if i in self.snapshot]
        if len(runs) < 2:
            self.notify("mark two or more runs with space, then press c", severity="warning")
            return
        self.app.push_screen(CompareScreen(runs))

    # -- filter and sort -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter" and self.query_one("#runs-filter", Input).has_focus:
            return False  # a "/" typed into the filter is text
        return True

    def action_filter(self) -> None:
        box = self.query_one("#runs-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        try:
            self.filter = parse_filter(event.value)
        except FilterError as e:
            event.input.set_class(True, "-invalid")
            self.query_one("#runs-empty", QuietStatic).show(str(e))
            return
        event.input.set_class(False, "-invalid")
        self.show()

    @on(FilterInput.Done)
    def _filter_done(self) -> None:
        self.query_one(RunsTable).focus()

    def on_key(self, event: events.Key) -> None:
        """Escape in the table clears a filter that is still applied."""
        box = self.query_one("#runs-filter", FilterInput)
        if event.key == "escape" and not self.filter.empty:
            box.action_clear()
            event.stop()

    def action_sweep(self) -> None:
        """The selected run's sweep alone (again, or on a run of no sweep with a sweep shown: all runs)."""
        box = self.query_one("#runs-filter", FilterInput)
        run = self.selected_run()
        shown = sorted(self.filter.sweeps)
        if run is None or not run.sweep or shown == [run.sweep]:
            if shown:
                box.action_clear()
                return
            sweeps = sorted({r.sweep for r in self.snapshot.values() if r.sweep})
            if run is None:
                self.notify("no run selected", severity="warning")
            elif sweeps:
                names = ", ".join(sweeps[:4]) + (f" and {len(sweeps) - 4} more" if len(sweeps) > 4 else "")
                self.notify(f"run {run.id} is in no sweep; put the cursor on a sweep's run, or filter "
                            f"with /sweep:NAME ({names})", severity="warning", timeout=6)
            else:
                self.notify("no sweeps here yet: ganmgr sweep --recipe R --set key=v1,v2 makes one",
                            severity="warning", timeout=6)
            return
        box.value = sweep_filter(run.sweep)  # the filter line says what is shown; esc clears it
        box.display = True
        self.query_one(RunsTable).focus()

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.show()
        self.notify(f"sorted by {self.sort}", timeout=2)

    def action_reverse_sort(self) -> None:
        self.reverse = not self.reverse
        self.show()

    # -- queue -----------------------------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        run = self._need_run()
        if run is None:
            return
        if run.status != "queued":
            self.notify(f"run {run.id} is {run.status}; only a queued run can be moved", severity="warning")
            return
        self._move(run.id, delta)

    @work(thread=True, exclusive=True, group="queue-move", exit_on_error=False, name="move in queue")
    def _move(self, run_id: int, delta: int) -> None:
        from store import runs as store_runs

        store_runs.move_in_queue(self.home, run_id, delta)

        self.app.post_message(RunsChanged(run_id))

    # -- tags, note, delete ----------------------------------------------------------------------------

    def action_edit_tags(self) -> None:
        run = self._need_run()
        if run is None:
            return
        self.app.push_screen(TagsNotesModal(run),
                             callback=lambda answer: self._save_tags(run, answer) if answer else None)

    @work(thread=True, exclusive=True, group="tags", exit_on_error=False, name="tags and note")
    def _save_tags(self, run: RunView, answer: TagsNotes) -> None:
        from store import runs as store_runs

        if answer.tags != run.tags:
            store_runs.set_tags(self.home, run.id, answer.tags)
        if answer.notes != run.notes:
            store_runs.set_notes(self.home, run.id, answer.notes)
        tags = ", ".join(answer.tags) if answer.tags else "(none)"
        self.app.post_message(RunsChanged(run.id, f"run {run.id} tags: {tags}; note saved"))

    def action_delete_run(self) -> None:
        """`d`: what `ganmgr rm` does (engine.control.remove), after a yes in the confirm dialog."""
        from engine.control.remove import removable_folder
        from engine.control.submit import SubmitError

        run = self._need_run()
        if run is None:
            return
        try:
            folder = removable_folder(self.home, run)
        except SubmitError as e:
            self.notify(e.form_message, title="not deleted", severity="warning")
            return
        where = f"its folder {short_path(folder, 48)}" if folder is not None else "it (it has no folder)"
        self.app.push_screen(
            ConfirmModal(f"Delete run #{run.id} {run.name} ({run.status})?",
                         f"This deletes its row and {where} for good: metrics, samples and checkpoints."),
            callback=lambda yes: self._delete(run, folder) if yes else None,
        )

    @work(thread=True, exclusive=True, group="delete", exit_on_error=False, name="delete run")
    def _delete(self, run: RunView, folder: Path | None) -> None:
        from engine.control.remove import remove_run

        remove_run(self.home, run, folder)  # the store refuses a run that started meanwhile
        self.app.post_message(RunsChanged(note=f"deleted run {run.id} ({run.name})"))

    def visible_runs(self) -> Sequence[int]:
        return self.query_one(RunsTable).run_ids
