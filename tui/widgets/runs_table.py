"""The runs table: history and queue in one DataTable, updated cell by cell.

`show()` is given the rows to display in order. When the same runs are shown in the same order (the
common case: a tick where only progress moved) it rewrites just the cells whose text changed, so the
table never flickers and the cursor and scroll position stay put; only a change of membership or order
(a run starting, a new filter) rebuilds the rows, keeping the cursor on the same run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from store.views import RunView
from tui.present import (
    PENDING_STYLE,
    STATUS_STYLES,
    cluster_reason,
    fmt_duration,
    fmt_epoch,
    fmt_gan,
    fmt_pct,
    fmt_rate,
    fmt_started,
    fmt_tags,
    progress_bar,
    run_status_text,
    run_status_word,
    short_dataset,
    wait_reason,
)

# (key, label, width)
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("mark", "", 1),
    ("id", "id", 4),
    ("name", "name", 18),
    ("status", "status", 11),
    ("progress", "progress", 13),
    ("epoch", "epoch", 7),
    ("acc", "test%", 5),
    ("gan", "gan", 24),
    ("ips", "img/s", 5),
    ("recipe", "recipe", 12),
    ("tags", "tags", 14),
    ("dataset", "dataset", 14),
    ("started", "started", 11),
    ("duration", "time", 6),
    ("job", "slurm job", 10),
)
COLUMN_KEYS = tuple(c[0] for c in COLUMNS)
MARK = "●"


def run_cells(run: RunView, *, marked: bool, queue_pos: int | None, now: float | None = None,
              label: str | None = None) -> tuple[Any, ...]:
    """The table cells of one run, in COLUMNS order. A Slurm job waiting on the cluster shows Slurm's
    reason where the progress bar would be; `label` replaces the name (a sweep's point, e.g. `lr=0.0002`).
    `gan`: a recipe without a classifier's last collapse signal and losses, where `test%` stays empty."""
    pending = run_status_word(run) == "pending"
    if pending:
        bar = Text(cluster_reason(run) or "waiting", style=PENDING_STYLE.replace("bold ", "italic "),
                   overflow="ellipsis", no_wrap=True)
    elif run.status == "running":
        bar = progress_bar(run.progress, style="cyan")
    elif run.status == "completed":
        bar = progress_bar(1.0, style="green", thin=True)
    elif run.status == "queued":  # held back by the supervisor's packing by GPU memory: why
        bar = Text(wait_reason(run).removeprefix("waiting: "), style="italic yellow", overflow="ellipsis",
                   no_wrap=True)
    else:
        bar = progress_bar(run.progress, style=STATUS_STYLES.get(run.status, ""), thin=True) if run.progress \
            else Text("")
    duration = None
    if run.started_at is not None:
        end = run.ended_at if run.ended_at is not None else (now if now is not None else time.time())
        duration = max(0.0, end - run.started_at)
    return (
        Text(MARK, style="bold magenta") if marked else "",
        str(run.id),
        run.name if label is None else label,
        run_status_text(run, queue_pos),
        bar,
        fmt_epoch(run.epoch, run.epochs),
        fmt_pct(run.last_test_acc),
        fmt_gan(run),
        fmt_rate(run.images_per_s),
        run.recipe,
        fmt_tags(run.tags),
        short_dataset(run.dataset),
        fmt_started(run.started_at, now),
        fmt_duration(duration),
        job_cell(run),
    )


def job_cell(run: RunView) -> Text | str:
    """The run's Slurm job id (dim once the run ended: its last job); `slurm` before the first submission;
    empty for a local run."""
    if run.backend != "slurm":
        return ""
    if not run.cluster_job_id:
        return Text("slurm", style="dim")
    return Text(run.cluster_job_id, style="dim" if run.is_terminal else "")


def _signature(value: Any) -> Any:
    """What decides whether a cell must be rewritten (Text equality ignores the base style)."""
    if isinstance(value, Text):
        return (value.plain, str(value.style), tuple(value.spans))
    return value


class RunsTable(DataTable):
    # Enter is the table's own key (it selects the row); shown in the footer as what it does here.
    BINDINGS = [Binding("enter", "select_cursor", "Open", key_display="⏎", id="runs-table-open")]

    DEFAULT_CSS = """
    RunsTable {
        height: 1fr;
        scrollbar-size-horizontal: 0;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._order: list[int] = []
        self._cells: dict[int, tuple[Any, ...]] = {}
        self.rebuilds = 0  # how many times rows were rebuilt (tests and benchmarks read it)
        self.cell_updates = 0

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, width=width, key=key)

    @property
    def run_ids(self) -> list[int]:
        return list(self._order)

    def current_run_id(self) -> int | None:
        if not self._order or self.cursor_row < 0 or self.cursor_row >= len(self._order):
            return None
        return self._order[self.cursor_row]

    def show(self, rows: Sequence[tuple[int, tuple[Any, ...]]]) -> None:
        """Display `rows` = [(run id, cells)] in this order, touching as little as possible."""
        order = [rid for rid, _ in rows]
        if order == self._order:
            for rid, cells in rows:
                self.update_row(rid, cells)
            return
        keep = self.current_run_id()
        self.clear()
        for rid, cells in rows:
            self.add_row(*cells, key=str(rid))
        self._order = order
        self._cells = {rid: cells for rid, cells in rows}
        self.rebuilds += 1
        if keep is not None and keep in self._cells:
            self.move_cursor(row=order.index(keep), animate=False)

    def update_row(self, rid: int, cells: tuple[Any, ...]) -> None:
        """Rewrite the changed cells of one shown run (e.g. its duration ticking)."""
        old = self._cells.get(rid)
        if old is None or old is cells:
            return
        for key, new_v, old_v in zip(COLUMN_KEYS, cells, old):
            if _signature(new_v) != _signature(old_v):
                self.update_cell(str(rid), key, new_v)
                self.cell_updates += 1
        self._cells[rid] = cells

    def select_run(self, rid: int) -> bool:
        if rid in self._cells:
            self.move_cursor(row=self._order.index(rid), animate=False)
            return True
        return False
