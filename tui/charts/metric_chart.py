"""One chart: a legend line and a plotext plot with its own plotext instance (`PlotextPlot.plt`).

The owner decides when to draw (throttled, and skipped while its screen is hidden); `draw()` hands
plotext at most four points per terminal column, whatever the series hold. The legend is a separate
wrapping line rather than plotext's own, which disappears when a small terminal leaves the plot too few
rows for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from tui.charts.series import Series, drawable
from tui.present import pack_items

# Points handed to plotext per terminal column at most (decimated, each bucket's low and high kept): a line
# is drawn with the "hd" marker (2 dots across a cell), so 4 per column draw every spike at next to no cost.
DRAW_POINTS_PER_COLUMN = 4
# Line colours by series position (hex for Rich, RGB for plotext), readable on dark and light themes.
PALETTE: tuple[str, ...] = ("#4fc3f7", "#ffa726", "#9ccc65", "#ec6fcf", "#fff176", "#7986cb", "#ef5350",
                            "#bdbdbd")


def _rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


class MetricChart(Vertical):
    """A chart of named series; `border_title` names it, `border_subtitle` says the axis/smoothing."""

    DEFAULT_CSS = """
    MetricChart {
        height: 1fr;
        width: 1fr;
    }
    MetricChart > .chart-legend {
        height: auto;
        max-height: 3;
    }
    MetricChart > PlotextPlot {
        height: 1fr;
    }
    """

    def __init__(self, title: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.chart_title = title
        self.border_title = title
        self.draws = 0  # how many times the chart was drawn (tests read it)
        self.drawn_points = 0  # points handed to plotext on the last draw, over all lines
        self.lines: list[str] = []  # series names drawn last time

    def compose(self) -> ComposeResult:
        yield Static("", classes="chart-legend")
        yield PlotextPlot()

    @property
    def plt(self):  # noqa: ANN201 - textual_plotext's Plot
        return self.query_one(PlotextPlot).plt

    def draw(self, series: Mapping[str, Series], *, order: Sequence[str] | None = None, xlabel: str = "",
             smooth: bool = False, colors: Mapping[str, str] | None = None, note: str = "",
             empty: str = "waiting for metrics") -> None:
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        width = max(plot.size.width, 20)
        names = [n for n in (order or list(series)) if n in series and len(series[n])]
        legend: list[tuple[str, str, float]] = []  # (name, colour, latest value)
        total = 0
        drawn: list[str] = []
        for i, name in enumerate(names):
            xs, ys = drawable(series[name], DRAW_POINTS_PER_COLUMN * width, smooth)
            if not xs:
                continue
            color = (colors or {}).get(name) or PALETTE[i % len(PALETTE)]
            if len(xs) == 1:
                plt.scatter(xs, ys, color=_rgb(color), marker="dot")
            else:
                plt.plot(xs, ys, color=_rgb(color), marker="hd")
            total += len(xs)
            drawn.append(name)
            legend.append((name, color, series[name].last_y))
        self.query_one(".chart-legend", Static).update(self._legend(legend))
        self.drawn_points = total
        self.lines = drawn
        subtitle = " · ".join(p for p in (xlabel and f"x: {xlabel}", "smoothed" if smooth else "", note) if p)
        self.border_subtitle = subtitle if total else (note or empty)
        self.draws += 1
        plot.refresh()

    def _legend(self, entries: list[tuple[str, str, float]]) -> Text:
        """Names with their latest values; names only when the values would need a third line."""
        width = max(self.size.width, 20)
        for with_values in (True, False):
            items = []
            for name, color, value in entries:
                item = Text()
                item.append("━ ", style=color)
                item.append(f"{name} {value:.3g}" if with_values else name)
                items.append(item)
            text = pack_items(items, width)
            if text.plain.count("\n") < 2:
                break
        return text
