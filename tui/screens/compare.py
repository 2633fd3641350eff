"""Compare (`c` on marked runs): one metric of every marked run on one chart, and the config keys on
which they differ. `m`/`M` step through the metrics the runs have; `e` and `s` as on the run screen.

A thread worker reads each run's metrics.jsonl slice by slice into bounded series of every metric on both
axes (`tui.charts.series.CompareSeries`): no record is kept, and a key only picks series already built
(issue 16: a million-line run took 1.5 GB and 5 s per key when every record was kept and rescanned)."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.control.records import PROGRESS, MetricsTail
from store.views import RunView
from tui.charts.compare_data import default_metric, differing_keys
from tui.charts.metric_chart import PALETTE, MetricChart
from tui.charts.series import AXES, CompareSeries, Series
from tui.present import one_line
from tui.screens.base import GanmgrScreen
from tui.screens.samples import MAX_RUNS, SamplesScreen
from tui.widgets.key_bar import KeyBar


class CompareScreen(GanmgrScreen[None]):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", id="compare-back"),
        Binding("m", "metric(1)", "Next metric", id="compare-metric-next"),
        Binding("M", "metric(-1)", "Prev metric", id="compare-metric-prev"),
        Binding("e", "toggle_axis", "Step/epoch", id="compare-axis"),
        Binding("s", "toggle_smooth", "Smooth", id="compare-smooth"),
        Binding("i", "samples", "Samples", id="compare-samples",
                tooltip="the first two runs' sample grids side by side at the same epoch"),
        Binding("question_mark", "app.help", "Help", id="compare-help"),
        Binding("q", "app.quit", "Quit", id="compare-quit"),
    ]

    class Loaded(Message):
        def __init__(self, data: dict[int, CompareSeries]) -> None:
            super().__init__()
            self.data = data

    def __init__(self, runs: list[RunView]) -> None:
        super().__init__()
        self.runs = runs
        self.data: dict[int, CompareSeries] = {}
        self.metrics: list[str] = []
        self.metric: str | None = None
        self.axis = "epoch"
        self.smooth = False

    def compose(self) -> ComposeResult:
        names = ", ".join(f"#{r.id} {r.name}" for r in self.runs)
        yield Static(one_line(f" Compare {len(self.runs)} runs: {names}", 300), id="compare-title")
        with Vertical(id="compare-body"):
            yield MetricChart("metric", id="compare-chart")
            yield DataTable(id="compare-diff", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one("#compare-diff", DataTable)
        table.border_title = "config: keys that differ"
        table.add_column("key", key="key")
        for r in self.runs:
            table.add_column(f"#{r.id} {r.name}"[:24], key=str(r.id))
        rows = differing_keys([r.config for r in self.runs])
        for key, values in rows:
            table.add_row(key, *[one_line(str(v), 40) for v in values])
        if not rows:
            table.add_row("(identical configs)", *["" for _ in self.runs])
        self.load()

    @work(thread=True, exclusive=True, group="compare-load", exit_on_error=False, name="load metrics")
    def load(self) -> None:
        out: dict[int, CompareSeries] = {}
        for r in self.runs:
            out[r.id] = data = CompareSeries()
            if r.run_dir:
                # the series are train and epoch records: progress lines (a third) are skipped unparsed
                tail = MetricsTail(Path(r.run_dir) / "metrics.jsonl", latest_only=(PROGRESS,))
                while True:  # slice by slice: never the whole file's records at once
                    before = tail.offset
                    records = tail.read_new()
                    data.add(records)
                    if tail.offset == before:
                        break
        self.post_message(self.Loaded(out))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.data = event.data
        seen: dict[str, None] = {}
        for data in self.data.values():
            seen.update(dict.fromkeys(data.metric_names()))
        self.metrics = list(seen)
        self.metric = default_metric(self.metrics)
        self.draw()

    def series(self) -> dict[str, Series]:
        out: dict[str, Series] = {}
        if self.metric is None:
            return out
        for r in self.runs:
            data = self.data.get(r.id)
            out[f"#{r.id} {r.name}"[:28]] = data.series(self.metric, self.axis) if data else Series()
        return out

    def draw(self) -> None:
        chart = self.query_one("#compare-chart", MetricChart)
        chart.border_title = f"{self.metric or 'no metrics yet'}  (m: next metric)"
        data = self.series()
        colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(data)}
        chart.draw(data, xlabel=self.axis, smooth=self.smooth, colors=colors,
                   note="" if data else "no metrics recorded")

    def action_metric(self, delta: int) -> None:
        if not self.metrics:
            return
        i = self.metrics.index(self.metric) if self.metric in self.metrics else 0
        self.metric = self.metrics[(i + delta) % len(self.metrics)]
        self.draw()

    def action_toggle_axis(self) -> None:
        self.axis = AXES[(AXES.index(self.axis) + 1) % len(AXES)]
        self.draw()

    def action_toggle_smooth(self) -> None:
        self.smooth = not self.smooth
        self.draw()

    def action_samples(self) -> None:
        if len(self.runs) > MAX_RUNS:
            self.notify(f"showing the first {MAX_RUNS} of the {len(self.runs)} runs side by side", timeout=4)
        self.app.push_screen(SamplesScreen(self.runs[:MAX_RUNS]))

    def action_back(self) -> None:
        self.dismiss(None)
