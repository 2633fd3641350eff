"""`ganmgr export`: CSV, JSON lines, TensorBoard and GIF round trips on run folders written with the project's
own record writer (no training), the refusals (one line, exit 2, nothing written), and one real tiny run."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import struct
from pathlib import Path

import pytest

from engine.control.records import EPOCH, EVAL, TRAIN, MetricsWriter, read_all
from tests.helpers import ganmgr, make_run_dir, run_worker, tiny_npz
from tests.tui_helpers import make_run, write_png
from tui.cli.main import main

KINDS = (TRAIN, EPOCH, EVAL)


def write_run(run_dir: Path, *, epochs: int, seed: int, grids: bool = True, resumed_epoch: int | None = None) -> None:
    """A run's metrics.jsonl through MetricsWriter (nulls for non-finite values included) and its grids."""
    rng = random.Random(seed)
    w = MetricsWriter(run_dir / "metrics.jsonl")
    w.write({"kind": "start", "time": 1.0, "epoch": 0, "step": 0, "params": {"G": 10}})
    step = 0
    order = list(range(1, epochs + 1)) + ([resumed_epoch] if resumed_epoch else [])
    for e in order:
        for _ in range(3):
            step += 7
            w.write({"kind": TRAIN, "epoch": e, "step": step, "d_loss": rng.uniform(-3, 3), "g_loss": rng.random(),
                     "acc": rng.randrange(100), "gp": math.inf if step == 14 else rng.random() / 3})
        w.write({"kind": "progress", "epoch": e, "step": step, "time": 2.0})
        w.write({"kind": EPOCH, "epoch": e, "step": step, "test_acc": rng.uniform(0, 100), "lr": 1e-4,
                 "seconds": rng.random() * 10, "flag": True, "note": "text"})
        w.write({"kind": EVAL, "epoch": e, "fid": rng.uniform(10, 200), "n": 1000,
                 **({"kid": rng.random()} if e % 2 else {})})
        if grids:
            write_png(run_dir / "samples" / f"epoch_{e:03d}.png", size=24, seed=seed * 100 + e)
    w.end("completed")


@pytest.fixture
def store(tmp_path):
    """Two runs in a real store: `a` (4 epochs with grids, epoch 2 logged twice by a resume), `b` (3, none)."""
    home = tmp_path / "home"
    a = make_run(home, "completed", name="a", recipe="acgan-wgangp", epochs=4)
    b = make_run(home, "completed", name="b", recipe="mlp-gan", epochs=3)
    write_run(Path(a.run_dir), epochs=4, seed=1, resumed_epoch=2)
    write_run(Path(b.run_dir), epochs=3, seed=2, grids=False)
    return home, a, b


def export(home: Path, *args: str) -> int:
    return main(["--home", str(home), "export", *args])


def kind_records(run, kind: str) -> list[dict]:
    return [r for r in read_all(Path(run.run_dir) / "metrics.jsonl") if r.get("kind") == kind]


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@pytest.mark.parametrize("kind", KINDS)
def test_csv_rows_equal_the_records(store, tmp_path, kind):
    home, a, _ = store
    out = tmp_path / f"{kind}.csv"
    assert export(home, "1", "--format", "csv", "--kind", kind, "-o", str(out)) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    recs = kind_records(a, kind)
    assert len(rows) == len(recs) > 0
    numeric = {k for r in recs for k, v in r.items() if is_number(v)}
    assert set(rows[0]) == numeric  # the union of the kind's numeric fields; no text, bool or nested field
    for row, rec in zip(rows, recs, strict=True):
        for col, cell in row.items():
            value = rec.get(col)
            if is_number(value):
                assert type(value)(cell) == value, (col, cell, value)
            else:
                assert cell == "", (col, cell, value)  # null (non-finite when written) or absent: empty
    assert os.stat(out).st_mode & 0o777 == 0o600


def test_csv_columns_are_stable_and_keys_first(store, tmp_path):
    home, *_ = store
    out = tmp_path / "e.csv"
    assert export(home, "a", "--format", "csv", "-o", str(out)) == 0  # default kind: epoch
    header = out.read_text().splitlines()[0].split(",")
    assert header[:2] == ["epoch", "step"] and header[2:] == sorted(header[2:])


def test_wide_csv_joins_runs_on_the_kinds_key(store, tmp_path):
    home, a, b = store
    out = tmp_path / "wide.csv"
    assert export(home, "1", "2", "--format", "csv", "--kind", "epoch", "-o", str(out)) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    for run in (a, b):
        label = f"{run.id}-{run.name}"
        last = {r["epoch"]: r for r in kind_records(run, EPOCH)}  # a resumed epoch: its last record
        for row in rows:
            rec = last.get(int(row["epoch"]))
            for field in ("test_acc", "step", "seconds"):
                cell = row[f"{label}/{field}"]
                assert (cell == "") if rec is None else (type(rec[field])(cell) == rec[field])


def test_jsonl_is_the_records_verbatim(store, tmp_path, capsys):
    home, a, _ = store
    assert export(home, "1", "--format", "jsonl", "--kind", "train") == 0  # standard output
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(ln) for ln in lines] == kind_records(a, TRAIN)


def test_tensorboard_reads_every_scalar_back(store, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    home, a, b = store
    out = tmp_path / "tb"
    assert export(home, "1", "2", "--format", "tensorboard", "-o", str(out)) == 0
    assert os.stat(out).st_mode & 0o777 == 0o700
    for run, grids in ((a, 4), (b, 0)):
        folder = out / f"{run.id}-{run.name}"
        (event_file,) = folder.iterdir()
        assert os.stat(event_file).st_mode & 0o777 == 0o600
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
        acc.Reload()
        expected: dict[str, list[tuple[int, float]]] = {}
        for kind in KINDS:
            for rec in kind_records(run, kind):
                for field, value in rec.items():
                    if field not in ("epoch", "step", "time") and is_number(value):
                        step = rec.get("step", rec["epoch"])
                        expected.setdefault(f"{kind}/{field}", []).append((step, value))
        assert set(acc.Tags()["scalars"]) == set(expected)
        for tag, points in expected.items():
            got = [(e.step, e.value) for e in acc.Scalars(tag)]
            want = [(s, struct.unpack("f", struct.pack("f", v))[0]) for s, v in points]  # stored as float32
            assert got == want, tag
        if grids:
            images = acc.Images("samples")
            assert len(images) == grids  # one per grid file (the resumed epoch 2 rewrote its one file)
            steps = {r["epoch"]: r["step"] for r in kind_records(run, EPOCH)}
            assert [i.step for i in images] == [steps[e] for e in (1, 2, 3, 4)]
            assert images[0].encoded_image_string == (Path(run.run_dir) / "samples/epoch_001.png").read_bytes()
        else:
            assert "samples" not in acc.Tags()["images"]


def test_gif_has_one_frame_per_sample_epoch(store, tmp_path):
    from PIL import Image, ImageChops

    home, a, _ = store
    out = tmp_path / "a.gif"
    assert export(home, "a", "--format", "gif", "-o", str(out)) == 0
    with Image.open(out) as im:
        assert im.n_frames == len(list((Path(a.run_dir) / "samples").glob("epoch_*.png"))) == 4
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(im.convert("RGB"))
    band = [f.crop((0, 0, f.width, 14)) for f in frames]  # the "epoch N" label differs frame to frame
    assert all(ImageChops.difference(band[0], b).getbbox() for b in band[1:])
    assert os.stat(out).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("args, why", [
    (["9", "--format", "csv"], "no run"),
    (["2", "--format", "csv", "--kind", "eval", "-o", "{tmp}/e.csv"], "no eval records"),
    (["1", "--format", "csv", "-o", "{tmp}/missing/x.csv"], "does not exist"),
    (["1", "--format", "csv", "-o", "{tmp}"], "is a folder"),
    (["1", "--format", "csv", "-o", "{run1}/metrics.jsonl"], "inside run"),
    (["2", "--format", "gif", "-o", "{tmp}/b.gif"], "no sample grids"),
    (["1", "--format", "gif"], "needs -o"),
    (["1", "--format", "gif", "--kind", "train", "-o", "{tmp}/a.gif"], "does not apply"),
    (["1", "2", "--format", "jsonl", "-o", "{tmp}/a.jsonl"], "takes one run"),
    (["1", "--format", "tensorboard", "-o", "{tmp}/x.csv"], "is a file"),
    (["1", "--format", "xml"], "invalid choice"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(store, tmp_path, capsys, args, why):
    home, a, b = store
    (tmp_path / "x.csv").write_text("keep")
    b_dir = Path(b.run_dir)
    # run 2 without eval records: a kind it never logged
    lines = [ln for ln in (b_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' not in ln]
    (b_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    args = [x.format(tmp=tmp_path, run1=a.run_dir) for x in args]

    def snapshot() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in tmp_path.rglob("*")  # the store's own files aside
                if p.is_file() and not p.name.startswith("ganmgr.db")}

    before = snapshot()
    try:
        code = export(home, *args)
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and why in err, err
    assert snapshot() == before


def test_refused_as_a_real_command(store, tmp_path):
    home, *_ = store
    out = ganmgr(home, "export", "2", "--format", "gif", "-o", str(tmp_path / "b.gif"))
    assert out.returncode == 2 and "no sample grids" in out.stderr and len(out.stderr.splitlines()) == 1
    assert not (tmp_path / "b.gif").exists()


@pytest.mark.slow
def test_a_real_tiny_run_exports(tmp_path):
    """A real `mlp-gan` worker (2 tiny epochs): every format round-trips on what it really writes."""
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from engine.control.export.runs import RunSource, csv_export, gif_export, tensorboard_export

    data = tiny_npz(tmp_path / "d.npz", n_train=128, n_test=64, channels=1, size=28)
    run_dir = make_run_dir(tmp_path, "mlp-gan", f"dataset=npz:{data}", "epochs=2", "width=12",
                           "batch_size=32", "device=cpu", "threads=1", "samples=16", "log_every=2")
    done = run_worker(run_dir, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    src = RunSource("real", run_dir)
    rows = list(csv.DictReader(io.StringIO(csv_export([src], TRAIN).decode())))
    recs = [r for r in read_all(run_dir / "metrics.jsonl") if r["kind"] == TRAIN]
    assert len(rows) == len(recs) > 0
    assert all(float(row["d_loss"]) == rec["d_loss"] for row, rec in zip(rows, recs, strict=True))
    with Image.open(io.BytesIO(gif_export(src))) as im:
        assert im.n_frames == 2
    (folder, scalars, images), = tensorboard_export([src], KINDS, tmp_path / "tb")
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    assert sum(len(acc.Scalars(t)) for t in acc.Tags()["scalars"]) == scalars > 0
    assert len(acc.Images("samples")) == images == 2


def test_the_report_embeds_the_animation(tmp_path, monkeypatch):
    """The HTML report's progression section carries the GIF (every epoch, or evenly spaced ones up to a cap)."""
    import base64

    from PIL import Image

    from engine.compute.viz import report

    for e in (1, 2, 3, 5):
        write_png(tmp_path / "samples" / f"epoch_{e:03d}.png", size=20, seed=e)

    def embedded(page) -> tuple[int, str]:
        (html,) = page.parts
        data = html.split("data:image/gif;base64,", 1)[1].split('"', 1)[0]
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            return im.n_frames, html

    page = report.Page()
    report.animation(page, tmp_path)
    frames, html = embedded(page)
    assert frames == 4 and "all 4 epochs" in html
    monkeypatch.setattr(report, "REPORT_GIF_FRAMES", 3)
    page = report.Page()
    report.animation(page, tmp_path)
    frames, html = embedded(page)
    assert frames == 3 and "3 of 4 epochs" in html
    page = report.Page()
    report.animation(page, tmp_path / "no-such-run")
    assert page.parts == []  # no grids: no animation, no error
