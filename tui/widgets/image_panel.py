"""The run's PNGs inside the terminal: sample grids by epoch first, then any other image of the run.

Rendering is textual-image's: Kitty graphics or Sixel where the terminal answers for them, coloured
Unicode half blocks everywhere else. Inside tmux (and screen) the half-block renderer is chosen outright:
tmux may claim Sixel support that the terminal behind it lacks, and graphics escapes do not survive a
reattach. GANMGR_IMAGES=auto|sixel|tgp|halfcell|unicode overrides the choice.

textual-image asks the terminal about its abilities when it is first imported, which only works before
Textual owns stdin: `run_app` calls `image_widget_class()` before the app starts. When the half-block
renderer is chosen anyway, it is imported with the terminal hidden, so no queries are sent at all (each
unanswered one costs 0.1 s of startup, and tmux answers none of the graphics ones). A terminal that answers
no queries (or cannot be asked: stdin not a terminal, a 0x0 size) gets half blocks, quietly: textual-image's
warning and traceback about the unanswered probe are kept from the screen.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

from engine.control.sample_grids import sample_epoch

IMAGE_KINDS = ("auto", "sixel", "tgp", "halfcell", "unicode")
CELL_ASPECT = 2.0  # a terminal cell's height / width


def choose_image_kind(env: dict[str, str] | None = None, is_tty: bool | None = None) -> str:
    """Which renderer to use: the override, else half blocks in multiplexers and off a tty, else auto."""
    env = dict(os.environ) if env is None else env
    wanted = env.get("GANMGR_IMAGES", "").strip().lower()
    if wanted in IMAGE_KINDS:
        return wanted
    if is_tty is None:
        is_tty = bool(sys.__stdout__ and sys.__stdout__.isatty())
    if not is_tty or env.get("TMUX") or env.get("STY") or env.get("TERM", "").startswith(("screen", "tmux")):
        return "halfcell"
    return "auto"


_IMAGE_CLASS: type[Widget] | None = None


class _NotATerminal:
    """Stands in for sys.__stdout__ while textual-image is imported: `isatty()` is False, so it neither
    writes terminal queries nor waits for their answers."""

    def __init__(self, real: object) -> None:
        self._real = real

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


@contextlib.contextmanager
def _terminal_hidden() -> Iterator[None]:
    real = sys.__stdout__
    sys.__stdout__ = _NotATerminal(real)  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        sys.__stdout__ = real  # type: ignore[misc]


class _KeepRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _probe_log_kept() -> Iterator[list[logging.LogRecord]]:
    """textual-image logs an unanswered terminal query as a warning with its traceback (`TimeoutError`);
    with no logging configured, Python's last-resort handler prints that into the screen. Keep the records
    here instead: they only tell us that the terminal did not answer."""
    logger = logging.getLogger("textual_image")
    handler = _KeepRecords()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def image_widget_class(kind: str | None = None) -> type[Widget]:
    """The textual-image widget class for `kind` (default: `choose_image_kind()`); cached per process."""
    global _IMAGE_CLASS
    if _IMAGE_CLASS is not None and kind is None:
        return _IMAGE_CLASS
    kind = kind or choose_image_kind()
    if kind in ("halfcell", "unicode"):
        with _terminal_hidden():  # no graphics queries (and their 0.1 s timeouts) for a renderer we skip
            import textual_image.widget as tiw
    else:
        try:
            with _probe_log_kept() as failures:
                import textual_image.widget as tiw
        except Exception:  # noqa: BLE001 - a terminal that cannot be asked at all (stdin no terminal:
            # termios.error; a size of 0x0: ZeroDivisionError): half blocks, asking nothing more
            kind = "halfcell"
            with _terminal_hidden(), _probe_log_kept():
                import textual_image.widget as tiw
        else:
            if failures and kind == "auto":  # a terminal that does not answer queries does no graphics either
                kind = "halfcell"

    cls = {
        "auto": tiw.Image,
        "sixel": tiw.SixelImage,
        "tgp": tiw.TGPImage,
        "halfcell": tiw.HalfcellImage,
        "unicode": tiw.UnicodeImage,
    }[kind]
    _IMAGE_CLASS = cls
    return cls


def fit_cells(avail_w: int, avail_h: int, aspect: float) -> tuple[int, int]:
    """The largest (width, height) in cells within (avail_w, avail_h) for an image of `aspect` (its height
    / width), a cell being about CELL_ASPECT times as tall as wide: a 2x8 grid stays wide and short instead
    of being stretched to the space's height."""
    w = max(1, avail_w)
    h = max(1, round(w * aspect / CELL_ASPECT))
    if h > avail_h:
        h = max(1, avail_h)
        w = max(1, min(avail_w, round(h * CELL_ASPECT / aspect)))
    return w, h


def load_image(path: Path):  # noqa: ANN201 - a PIL image
    """The decoded image, held in memory: the widget renders again on every resize, and the file may be
    gone by then (a deleted run) — a render must never touch the disk."""
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        im.load()
        return im.copy()


class ImagePanel(Vertical):
    """A caption line and the image; `step(±1)` walks the list, new sample grids are followed."""

    ALLOW_MAXIMIZE = True

    DEFAULT_CSS = """
    ImagePanel {
        height: 1fr;
    }
    ImagePanel > #image-caption {
        height: 1;
    }
    ImagePanel > .image-view {
        width: auto;
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.base: Path | None = None
        self.paths: list[str] = []
        self.index: int = -1
        self.wanted: str | None = None  # a file to show as soon as it is listed (a job's output)
        self._aspect: float | None = None  # height / width of the shown image
        self.border_title = "images"

    def compose(self) -> ComposeResult:
        yield Static("no images yet", id="image-caption")
        yield image_widget_class()(classes="image-view")

    @property
    def current(self) -> Path | None:
        if self.base is None or not 0 <= self.index < len(self.paths):
            return None
        return self.base / self.paths[self.index]

    def set_images(self, base: Path, paths: list[str]) -> None:
        """New list of PNGs; stays on the shown file unless it was the newest grid (then follows)."""
        old = self.paths[self.index] if 0 <= self.index < len(self.paths) else None
        newest_old = self._newest_sample(self.paths)
        self.base = base
        self.paths = list(paths)
        if self.wanted in self.paths:
            self.index = self.paths.index(self.wanted)
            self.wanted = None
        elif not self.paths:
            self.index = -1
        elif old is None or old == newest_old or old not in self.paths:
            newest = self._newest_sample(self.paths)
            self.index = self.paths.index(newest) if newest else 0
        else:
            self.index = self.paths.index(old)
        self._show()

    def select(self, rel: str) -> bool:
        """Show `rel` (relative to the run folder) now if listed, else as soon as it is; True if shown now."""
        if rel in self.paths:
            self.index = self.paths.index(rel)
            self.wanted = None
            self._show()
            return True
        self.wanted = rel
        return False

    def step(self, delta: int) -> bool:
        """Walk the list, wrapping at both ends (← on the first image shows the last, the newest)."""
        if not self.paths:
            return False
        new = (self.index + delta) % len(self.paths)
        if new == self.index:
            return False
        self.index = new
        self._show()
        return True

    @staticmethod
    def _newest_sample(paths: list[str]) -> str | None:
        samples = [p for p in paths if sample_epoch(p) is not None]
        return samples[-1] if samples else None

    def _show(self) -> None:
        caption = self.query_one("#image-caption", Static)
        view = self.query_one(".image-view")
        path = self.current
        if path is None:
            caption.update("no images yet")
            view.image = None  # type: ignore[attr-defined]
            self.border_title = "images"
            return
        rel = self.paths[self.index]
        epoch = sample_epoch(rel)
        self.border_title = f"samples · epoch {epoch}" if epoch is not None else (
            "visualization" if rel.startswith("viz/") else "image")
        caption.update(f"{rel}  ({self.index + 1}/{len(self.paths)})  ←/→")
        try:
            image = load_image(path)
        except (OSError, ValueError, SyntaxError) as e:  # gone, or not a PNG after all
            caption.update(f"{rel}: cannot show ({type(e).__name__})")
            view.image = None  # type: ignore[attr-defined]
            return
        self._aspect = image.height / max(image.width, 1)
        self._fit()
        view.image = image  # type: ignore[attr-defined]

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        """Size the view in cells to the image's aspect within the panel: a 2x8 sample grid stays wide and
        short instead of being stretched to the panel's height (a cell is about twice as tall as wide)."""
        if self._aspect is None:
            return
        avail_w, avail_h = self.content_size.width, self.content_size.height - 1  # the caption line
        if avail_w <= 0 or avail_h <= 0:
            return
        w, h = fit_cells(avail_w, avail_h, self._aspect)
        view = self.query_one(".image-view")
        view.styles.width = w
        view.styles.height = h
