"""Pilot tests of the sample viewer (`i` on the runs table, `i` in compare): two keys to the newest grid, the
epoch scrubber and its wrap, the class labels over the columns, two runs side by side at the same epoch, new
grids followed, the GIF key; and the run screen's image panel: the wrap of ←, and room for a 10x10 grid."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from engine.control.class_names import SYNTHETIC_CLASSES
from tests.tui_helpers import drive, make_run, open_run, plain, wait_for, write_metrics
from tui.screens.compare import CompareScreen
from tui.screens.samples import SamplesScreen, label_line
from tui.widgets.image_panel import ImagePanel
from tui.widgets.runs_table import RunsTable

GRID_PX = 342  # a 10x10 grid of 32-px images with 2-px padding, as the worker writes it


def write_grids(run_dir: Path, epochs, px: int = GRID_PX) -> None:
    """Grids that differ by epoch (the shown one can be told from its pixels)."""
    for e in epochs:
        path = run_dir / "samples" / f"epoch_{e:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (px, px), ((40 * e) % 256, 80, 120)).save(path)


def shown_epochs(screen: SamplesScreen) -> list[int | None]:
    return [None if p.shown is None else int(p.shown.stem.split("_")[1]) for p in screen.panes]


async def open_samples(app, pilot, run_id: int) -> SamplesScreen:
    """The two keys: the run selected in the table, then `i`."""
    table = app.runs_screen.query_one(RunsTable)
    await wait_for(pilot, lambda: run_id in table.run_ids, what="the run in the table")
    table.select_run(run_id)
    await pilot.press("i")
    await wait_for(pilot, lambda: isinstance(app.screen, SamplesScreen) and app.screen.scans > 0,
                   what="the sample viewer")
    return app.screen


def test_two_keys_to_the_newest_grid_then_scrub_and_wrap(home: Path) -> None:
    run = make_run(home, "completed", name="grids", epochs=4, epoch=4)
    write_grids(Path(run.run_dir), range(1, 5))

    async def scenario(app, pilot) -> None:
        screen = await open_samples(app, pilot, run.id)
        pane = screen.panes[0]
        assert screen.epoch == 4 and shown_epochs(screen) == [4]
        view = pane.query_one(".pane-image")
        assert view.image is not None and view.image.getpixel((5, 5))[0] == 160  # epoch 4's pixels
        assert "epoch 4" in plain(screen.query_one("#samples-title"))
        await pilot.press("left")
        assert shown_epochs(screen) == [3]
        await pilot.press("home")
        assert shown_epochs(screen) == [1]
        await pilot.press("left")  # wraps to the newest
        assert shown_epochs(screen) == [4]
        await pilot.press("right")  # and back round to the first
        assert shown_epochs(screen) == [1]
        await pilot.press("end")
        assert shown_epochs(screen) == [4]
        await pilot.press("escape")
        assert app.screen is app.runs_screen

    drive(home, scenario, size=(100, 30))


def test_the_grid_fills_the_terminal(home: Path) -> None:
    run = make_run(home, "completed", name="big", epochs=1, epoch=1)
    write_grids(Path(run.run_dir), [1])

    async def scenario(app, pilot) -> None:
        screen = await open_samples(app, pilot, run.id)
        view = screen.panes[0].query_one(".pane-image")
        await wait_for(pilot, lambda: view.size.height > 0)
        # 45 rows: title, key bar, border, head, labels leave 38 for a square grid, twice as many columns
        assert view.size.height >= 36 and view.size.width >= 2 * view.size.height - 2

    drive(home, scenario, size=(160, 45))


def test_class_labels_over_the_columns(home: Path) -> None:
    acgan = make_run(home, "completed", name="acgan", epochs=1, epoch=1)  # acgan-wgangp on synthetic
    mlp = make_run(home, "completed", name="mlp", recipe="mlp-gan", epochs=1, epoch=1)
    write_grids(Path(acgan.run_dir), [1])
    write_grids(Path(mlp.run_dir), [1], px=242)

    async def scenario(app, pilot) -> None:
        screen = await open_samples(app, pilot, acgan.id)
        pane = screen.panes[0]
        assert pane.labels == SYNTHETIC_CLASSES
        labels = pane.query_one(".pane-labels")
        await wait_for(pilot, lambda: "disc" in plain(labels), what="the labels drawn")
        line = plain(labels)
        width = pane.query_one(".pane-image").size.width
        assert len(line) == width  # exactly over the image
        for i, name in enumerate(SYNTHETIC_CLASSES):  # each label starts inside its own column
            start = round(i * width / 10)
            assert line[start:round((i + 1) * width / 10)].strip()[:2] == name[:2], (i, line)
        await pilot.press("escape")
        screen = await open_samples(app, pilot, mlp.id)
        assert screen.panes[0].labels is None  # an unconditional grid: its columns are not classes
        assert plain(screen.panes[0].query_one(".pane-labels")) == ""

    drive(home, scenario, size=(160, 45))


def test_label_line_fits_any_width() -> None:
    for width in (10, 23, 40, 77, 160):
        line = label_line(SYNTHETIC_CLASSES, width)
        assert len(line.plain) == width
    assert "two-blobs" in label_line(SYNTHETIC_CLASSES, 160).plain
    assert label_line(SYNTHETIC_CLASSES, 40).plain.split() == [n[:3] for n in SYNTHETIC_CLASSES]


def test_two_runs_side_by_side_at_the_same_epoch(home: Path) -> None:
    a = make_run(home, "completed", name="long", epochs=6, epoch=6)
    b = make_run(home, "completed", name="short", epochs=3, epoch=3)
    write_grids(Path(a.run_dir), range(1, 7))
    write_grids(Path(b.run_dir), range(1, 4))
    for r in (a, b):
        write_metrics(Path(r.run_dir), epochs=1)

    async def scenario(app, pilot) -> None:
        table = app.runs_screen.query_one(RunsTable)
        await wait_for(pilot, lambda: {a.id, b.id} <= set(table.run_ids), what="both runs")
        for rid in (a.id, b.id):
            table.select_run(rid)
            await pilot.press("space")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare")
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, SamplesScreen) and app.screen.scans > 0)
        screen = app.screen
        assert [p.run.id for p in screen.panes] == [a.id, b.id]
        assert screen.epochs == [1, 2, 3, 4, 5, 6]
        assert shown_epochs(screen) == [3, 3]  # the newest epoch both have
        await pilot.press("right")
        assert screen.epoch == 4 and shown_epochs(screen) == [4, None]
        assert "no grid at epoch 4" in plain(screen.panes[1].query_one(".pane-head"))
        await pilot.press("home")
        assert shown_epochs(screen) == [1, 1]
        await pilot.press("left")
        assert shown_epochs(screen) == [6, None]
        left, right = (p.query_one(".pane-image") for p in screen.panes)
        assert left.region.right <= screen.panes[1].region.x  # side by side, not stacked
        await pilot.press("escape")
        assert isinstance(app.screen, CompareScreen)

    drive(home, scenario, size=(160, 45))


def test_a_new_grid_is_followed_and_the_gif_key_writes_the_animation(home: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import tui.screens.samples as samples

    monkeypatch.setattr(samples, "RESCAN_S", 0.2)
    run = make_run(home, "running", name="live", epochs=5, epoch=2)
    run_dir = Path(run.run_dir)
    write_grids(run_dir, [1, 2])

    async def scenario(app, pilot) -> None:
        screen = await open_samples(app, pilot, run.id)
        assert shown_epochs(screen) == [2]
        write_grids(run_dir, [3])  # the worker finishes epoch 3 while the newest is shown: followed
        await wait_for(pilot, lambda: shown_epochs(screen) == [3], timeout=5, what="the new grid")
        await pilot.press("home")
        write_grids(run_dir, [4])  # looking at an old epoch: it stays
        await wait_for(pilot, lambda: screen.epochs == [1, 2, 3, 4], timeout=5)
        assert shown_epochs(screen) == [1]
        await pilot.press("g")
        await wait_for(pilot, lambda: screen.last_gif_message is not None, timeout=10, what="the GIF")
        gif = run_dir / "exports" / "samples.gif"
        assert screen.last_gif_message == f"GIF written: {gif}"
        with Image.open(gif) as im:
            assert im.n_frames == 4
        assert os.stat(gif).st_mode & 0o777 == 0o600

    drive(home, scenario, size=(100, 30))


def test_the_gif_key_on_a_run_without_grids_says_why(home: Path) -> None:
    run = make_run(home, "completed", name="baseline", recipe="baseline", epochs=1, epoch=1)

    async def scenario(app, pilot) -> None:
        screen = await open_samples(app, pilot, run.id)
        assert "no sample grids yet" in plain(screen.panes[0].query_one(".pane-head"))
        await pilot.press("left", "home", "end")  # nothing to scrub: nothing breaks
        await pilot.press("g")
        await wait_for(pilot, lambda: screen.last_gif_message is not None, timeout=10)
        assert "no sample grids" in screen.last_gif_message
        assert not (Path(run.run_dir) / "exports").exists()

    drive(home, scenario)


def test_run_screen_left_wraps_and_the_grid_has_room(home: Path) -> None:
    run = make_run(home, "completed", name="panel", epochs=3, epoch=3)
    write_grids(Path(run.run_dir), range(1, 4))
    write_metrics(Path(run.run_dir), epochs=3)

    async def scenario(app, pilot) -> None:
        screen = await open_run(app, pilot, run.id)
        panel = screen.query_one(ImagePanel)
        await wait_for(pilot, lambda: len(panel.paths) == 3, what="the grids")
        assert panel.current.name == "epoch_003.png"
        await pilot.press("left", "left")
        assert panel.current.name == "epoch_001.png"
        await pilot.press("left")  # from the first: the newest
        assert panel.current.name == "epoch_003.png"
        await pilot.press("right")
        assert panel.current.name == "epoch_001.png"
        view = panel.query_one(".image-view")
        await wait_for(pilot, lambda: view.size.height > 0)
        # at 160x45 a 10x10 grid of 32-px images gets about 4.5 cells per image across (was 3, at 30x14)
        assert view.size.width >= 44 and view.size.height >= 22, view.size

    drive(home, scenario, size=(160, 45))
