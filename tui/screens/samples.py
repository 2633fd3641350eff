"""The sample viewer (`i` on a run in the runs table, `i` in compare): a run's sample grid as large as the
terminal allows, an epoch scrubber, the class of each column, and two runs side by side at the same epoch.

←/→ step through the epochs that have a grid (wrapping at both ends), Home/End jump to the first and the
newest; with two runs the epochs are those of either run, and a run without a grid at the shown epoch says
so. New grids of a running run are picked up every couple of seconds (the viewer follows them while it shows
the newest). `g` writes the animation of the grids over the epochs to RUN_DIR/exports/samples.gif (the
export's own code: engine/control/export). Rendering is the image panel's: Kitty or Sixel where the
terminal has them, half blocks elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Static

from engine.control.sample_grids import column_labels, sample_grids
from store.views import RunView
from tui.present import one_line
from tui.screens.base import GanmgrScreen
from tui.widgets.image_panel import fit_cells, image_widget_class, load_image
from tui.widgets.key_bar import KeyBar
from tui.widgets.quiet_static import QuietStatic

RESCAN_S = 2.0  # how often the runs' samples folders are listed again (a running run adds a grid per epoch)
MAX_RUNS = 2  # side by side


@dataclass(frozen=True)
class RunGrids:
    """What the viewer knows of one run: its grids by epoch and the class of each column (or None)."""

    run: RunView
    grids: dict[int, Path]
    labels: tuple[str, ...] | None


def read_grids(run: RunView, labels: bool = True) -> RunGrids:
    """The run's grids (a folder listing) and, when asked, its column labels (may open an npz's names)."""
    folder = Path(run.run_dir) if run.run_dir else None
    grids = sample_grids(folder) if folder else {}
    return RunGrids(run, grids, column_labels(run.config) if labels else None)


def label_line(labels: tuple[str, ...], width: int) -> Text:
    """The column labels centred over `width` cells split into len(labels) equal columns (each cut to fit)."""
    n = len(labels)
    text = Text(no_wrap=True, overflow="crop")
    edges = [round(i * width / n) for i in range(n + 1)]
    for i, name in enumerate(labels):
        room = edges[i + 1] - edges[i]
        if len(name) < room:
            shown = name
        elif room <= 5:  # narrow columns: the first letters ("air aut bir cat") read better than "a…"
            shown = name[: max(room - 1, 1)]
        else:
            shown = name[: room - 2] + "…"
        text.append(shown.center(room)[:room], style="bold" if i % 2 else "")
    return text


class SamplePane(Vertical):
    """One run: a header line, the column labels and the grid, sized to the pane keeping its aspect."""

    DEFAULT_CSS = """
    SamplePane { width: 1fr; height: 1fr; padding: 0 1; }
    SamplePane > .pane-head { height: 1; width: 1fr; }
    SamplePane > .pane-labels { height: 1; width: auto; }
    SamplePane > .pane-image { width: auto; height: 1fr; }
    """

    def __init__(self, run: RunView) -> None:
        super().__init__(classes="panel samples-pane")
        self.run = run
        self.grids: dict[int, Path] = {}
        self.labels: tuple[str, ...] | None = None
        self.epoch: int | None = None
        self.shown: Path | None = None
        self._aspect: float | None = None
        self.border_title = f"#{run.id} {run.name}"

    def compose(self) -> ComposeResult:
        yield Static("", classes="pane-head")
        yield Static("", classes="pane-labels")
        yield image_widget_class()(classes="pane-image")

    def show_epoch(self, epoch: int | None) -> None:
        """Show the grid of `epoch` (or say why there is none)."""
        self.epoch = epoch
        head = self.query_one(".pane-head", Static)
        view = self.query_one(".pane-image")
        path = self.grids.get(epoch) if epoch is not None else None
        if path is None:
            self.shown = None
            self._aspect = None
            view.image = None  # type: ignore[attr-defined]
            self.query_one(".pane-labels", Static).update("")
            if not self.grids:
                head.update(Text("no sample grids yet (a GAN run writes one per epoch)", style="dim"))
            else:
                first, last = min(self.grids), max(self.grids)
                head.update(Text(f"no grid at epoch {epoch} (this run has epochs {first}–{last})", style="dim"))
            return
        try:
            image = load_image(path)
        except (OSError, ValueError, SyntaxError) as e:  # gone, or not a PNG after all
            head.update(Text(f"{path.name}: cannot show ({type(e).__name__})", style="red"))
            view.image = None  # type: ignore[attr-defined]
            self.shown = None
            return
        self.shown = path
        epochs = sorted(self.grids)
        head.update(Text.assemble(("epoch ", "dim"), (str(epoch), "bold"),
                                  (f"   {epochs.index(epoch) + 1} of {len(epochs)} grids · {image.width}×{image.height} px",
                                   "dim")))
        self._aspect = image.height / max(image.width, 1)
        self._fit()
        view.image = image  # type: ignore[attr-defined]

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        if self._aspect is None:
            return
        avail_w, avail_h = self.content_size.width, self.content_size.height - 2  # head and labels
        if avail_w <= 0 or avail_h <= 0:
            return
        w, h = fit_cells(avail_w, avail_h, self._aspect)
        left = (avail_w - w) // 2  # centred; the labels sit exactly over the image's columns
        view = self.query_one(".pane-image")
        view.styles.width = w
        view.styles.height = h
        view.styles.margin = (0, 0, 0, left)
        labels = self.query_one(".pane-labels", Static)
        labels.styles.width = w
        labels.styles.margin = (0, 0, 0, left)
        labels.update(label_line(self.labels, w) if self.labels else "")


class SamplesScreen(GanmgrScreen[None]):
    DEFAULT_CSS = """
    SamplesScreen > #samples-title { height: 1; background: $boost; }
    SamplesScreen > #samples-body { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", id="samples-back"),
        Binding("left", "step(-1)", "Prev epoch", id="samples-prev", tooltip="the previous epoch's grid (wraps)"),
        Binding("right", "step(1)", "Next epoch", id="samples-next", tooltip="the next epoch's grid (wraps)"),
        Binding("home", "jump(0)", "First", id="samples-first", tooltip="the first epoch's grid"),
        Binding("end", "jump(-1)", "Newest", id="samples-newest", tooltip="the newest grid"),
        Binding("g", "gif", "GIF", id="samples-gif",
                tooltip="write the grids over the epochs as an animated GIF: RUN_DIR/exports/samples.gif"),
        Binding("question_mark", "app.help", "Help", id="samples-help"),
        Binding("q", "app.quit", "Quit", id="samples-quit"),
    ]

    class Scanned(Message):
        def __init__(self, found: list[RunGrids]) -> None:
            super().__init__()
            self.found = found

    class GifWritten(Message):
        def __init__(self, text: str, error: bool) -> None:
            super().__init__()
            self.text = text
            self.error = error

    def __init__(self, runs: list[RunView], epoch: int | None = None) -> None:
        super().__init__()
        self.runs = runs[:MAX_RUNS]
        self.epoch = epoch  # None: the newest
        self.epochs: list[int] = []
        self.scans = 0
        self._labels_read = False
        self.last_gif_message: str | None = None

    @property
    def panes(self) -> list[SamplePane]:
        return list(self.query(SamplePane))

    def compose(self) -> ComposeResult:
        yield QuietStatic(id="samples-title")
        with Horizontal(id="samples-body"):
            for run in self.runs:
                yield SamplePane(run)
        yield KeyBar()

    def on_mount(self) -> None:
        self._title()
        self.scan()
        self.set_interval(RESCAN_S, self._rescan)

    def _rescan(self) -> None:
        if self.visible:
            self.scan()

    @work(thread=True, exclusive=True, group="samples-scan", exit_on_error=False, name="list sample grids")
    def scan(self) -> None:
        labels = not self._labels_read
        self.post_message(self.Scanned([read_grids(r, labels=labels) for r in self.runs]))

    @on(Scanned)
    def _scanned(self, event: Scanned) -> None:
        following = self.epoch is None or (bool(self.epochs) and self.epoch == self._newest())
        for pane, found in zip(self.panes, event.found, strict=True):
            pane.grids = found.grids
            if not self._labels_read:
                pane.labels = found.labels
        self._labels_read = True
        epochs = sorted({e for pane in self.panes for e in pane.grids})
        changed = epochs != self.epochs
        self.epochs = epochs
        if epochs and (following or self.epoch not in epochs):
            self.epoch = self._newest() if following or self.epoch is None else self._nearest(self.epoch)
        if changed or self.scans == 0:
            self._show(force=self.scans == 0)
        self.scans += 1

    def _newest(self) -> int:
        """The newest epoch every run has a grid of (side by side, both show one), else the newest of any."""
        common = set.intersection(*(set(p.grids) for p in self.panes)) if self.panes else set()
        return max(common) if common else self.epochs[-1]

    def _nearest(self, epoch: int) -> int:
        earlier = [e for e in self.epochs if e <= epoch]
        return earlier[-1] if earlier else self.epochs[0]

    def _show(self, force: bool = False) -> None:
        for pane in self.panes:
            if force or pane.epoch != self.epoch or pane.shown != pane.grids.get(self.epoch):  # type: ignore[arg-type]
                pane.show_epoch(self.epoch)
        self._title()

    def _title(self) -> None:
        names = " vs ".join(f"#{r.id} {r.name}" for r in self.runs)
        t = Text()
        t.append(f" samples · {one_line(names, 100)}", style="bold")
        if self.epochs and self.epoch is not None:
            t.append(f" · epoch {self.epoch}", style="bold")
            t.append(f" ({self.epochs.index(self.epoch) + 1} of {len(self.epochs)}: "
                     f"{self.epochs[0]}–{self.epochs[-1]})")
        elif self.scans:
            t.append("   no sample grids yet", style="dim")
        self.query_one("#samples-title", QuietStatic).show(t)

    # -- keys ----------------------------------------------------------------------------------------

    def action_step(self, delta: int) -> None:
        if not self.epochs:
            return
        i = self.epochs.index(self.epoch) if self.epoch in self.epochs else len(self.epochs) - 1
        self.epoch = self.epochs[(i + delta) % len(self.epochs)]
        self._show()

    def action_jump(self, index: int) -> None:
        if not self.epochs:
            return
        self.epoch = self.epochs[index]
        self._show()

    def action_gif(self) -> None:
        run = self.runs[0]
        if not run.run_dir:
            self.notify("this run has no folder", severity="warning")
            return
        self.notify(f"writing the GIF of #{run.id} {run.name}'s grids…", timeout=3)
        self.write_gif(run)

    @work(thread=True, exclusive=True, group="samples-gif", exit_on_error=False, name="GIF")
    def write_gif(self, run: RunView) -> None:
        from engine.control.export.runs import ExportError, write_viewer_gif

        try:
            path = write_viewer_gif(Path(run.run_dir or ""), f"{run.id}-{run.name}")
        except (ExportError, OSError) as e:
            self.post_message(self.GifWritten(one_line(str(e), 200), True))
            return
        self.post_message(self.GifWritten(f"GIF written: {path}", False))

    @on(GifWritten)
    def _gif_written(self, event: GifWritten) -> None:
        self.last_gif_message = event.text
        self.notify(event.text, severity="error" if event.error else "information", timeout=10)

    def action_back(self) -> None:
        self.dismiss(None)
