"""Charts at any size (issue 16): the column picker, batched series, the decimation that keeps spikes, the
follower's thinned records, and a run screen that does not redraw for every slice of a backlog."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import pytest

from engine.control.columns import column, keys_of
from engine.control.follow import ProgressFold
from engine.control.records import MetricsTail, MetricsWriter, parse_record, written_prefix
from tests.tui_helpers import drive, make_run, open_run, wait_for
from tui.charts.metric_chart import MetricChart
from tui.charts.series import CompareSeries, RunCharts, Series, decimate, drawable
from tui.follow import MAX_READ, RunFollower, fold_subset


def test_a_column_is_numbers_only() -> None:
    recs = [{"a": 1}, {"a": None}, {}, {"a": True}, {"a": "2"}, {"a": 2.5}, {"a": 10**400}, {"a": [1]}]
    got = column(recs, "a")
    assert got[0] == 1.0 and got[5] == 2.5
    assert np.isnan(got[[1, 2, 3, 4, 6, 7]]).all()
    assert column([{"a": 1}, {"a": 2}], "a").tolist() == [1.0, 2.0]
    assert keys_of([{"kind": "t", "x": 1}, {"y": 2, "x": 3}], frozenset({"kind"})) == ["x", "y"]


def test_parse_record_takes_what_json_takes() -> None:
    assert parse_record(b'{"a": NaN}')["a"] != parse_record(b'{"a": NaN}')["a"]  # NaN, as json reads it
    assert parse_record(b'{"kind": "train", "step": 3}') == {"kind": "train", "step": 3}
    assert parse_record(b"[1]") is None and parse_record(b"\xff{") is None and parse_record(b"{") is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_batch_gives_the_series_one_sample_at_a_time_gives(seed: int) -> None:
    rng = random.Random(seed)
    one, batched = Series(max_points=16), Series(max_points=16)
    xs, ys = [], []
    for i in range(700):
        xs.append(float(i))
        ys.append(rng.choice([rng.random(), rng.random(), math.nan, math.inf]))
    for x, y in zip(xs, ys):
        one.append(x, y)
    i = 0
    while i < len(xs):
        n = rng.randint(1, 90)
        batched.extend(np.array(xs[i:i + n]), np.array(ys[i:i + n]))
        i += n
    assert (one.stride, one.folds, len(one)) == (batched.stride, batched.folds, len(batched))
    assert one.xs == pytest.approx(batched.xs) and one.ys == pytest.approx(batched.ys)


def test_a_spike_survives_folding_and_decimation() -> None:
    s = Series(max_points=64)
    ys = np.zeros(100_000)
    ys[54_321] = 40.0
    ys[777] = -3.0
    s.extend(np.arange(100_000, dtype=float), ys)
    assert s.folds > 5 and max(s.ys) < 1.0  # the means alone have lost it
    dx, dy = drawable(s, 40, smooth=False)
    assert 40.0 in dy and -3.0 in dy and len(dx) <= 42 and dx == sorted(dx)
    x = np.arange(10.0)
    assert decimate(x, x, x, x, 100)[0] is x  # short: untouched


def gan_records(epochs: int) -> list[dict]:
    out: list[dict] = [{"kind": "start", "epoch": 0, "step": 0, "epochs": epochs, "steps_per_epoch": 30}]
    for e in range(1, epochs + 1):
        for w in range(3):
            step = (e - 1) * 30 + (w + 1) * 10
            out.append({"kind": "train", "epoch": e, "step": step, "gp": 0.1 * w, "acc": 10.0 * w})
            out.append({"kind": "progress", "epoch": e, "step": step + 5, "steps_per_epoch": 30,
                        "images_per_s": 100.0 + w})
        out.append({"kind": "epoch", "epoch": e, "step": e * 30, "train_acc": 20.0 * e, "test_acc": 15.0 * e,
                    "mean_gp": 0.1, "class_spread": 0.5})
    out.append({"kind": "train", "epoch": epochs, "step": epochs * 30 + 3, "gp": 0.2, "acc": 50.0})
    return out


def test_folding_the_subset_gives_the_fold_of_everything() -> None:
    recs = gan_records(4)
    whole, part = ProgressFold(), ProgressFold()
    for r in recs:
        whole.fold(r)
    subset = fold_subset(recs)
    assert len(subset) < len(recs)
    for r in subset:
        part.fold(r)
    assert part.fields == whole.fields


def test_the_follower_picks_chart_columns_and_thins_records(tmp_path: Path) -> None:
    import json

    recs = gan_records(3)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    charts = RunCharts(losses=("gp",))
    up = RunFollower(tmp_path, batch=charts.batch).poll()
    assert up.seen == len(recs) and up.records == fold_subset(recs)
    charts.extend(up.chart, up.seen)
    plain = RunCharts(losses=("gp",))
    plain.ingest(recs)
    assert charts.records_seen == plain.records_seen == len(recs)
    for axis in ("step", "epoch"):
        for table in ("loss_series", "acc_series"):
            got, want = getattr(charts, table)[axis], getattr(plain, table)[axis]
            assert {k: v.xs for k, v in got.items()} == {k: v.xs for k, v in want.items()}


def write_with_the_writer(path: Path, recs: list[dict]) -> None:
    writer = MetricsWriter(path)
    for r in recs:
        writer.write(r)
    writer.close()


def test_every_kind_the_writer_writes_begins_with_its_prefix(tmp_path: Path) -> None:
    recs = [{"kind": k, "epoch": 1} for k in ("start", "train", "progress", "epoch", "resources", "end")]
    write_with_the_writer(tmp_path / "m.jsonl", recs)
    lines = (tmp_path / "m.jsonl").read_bytes().splitlines()
    assert [ln.startswith(written_prefix(r["kind"])) for ln, r in zip(lines, recs)] == [True] * len(recs)
    assert not lines[1].startswith(written_prefix("progress"))  # "train" is not a prefix of "training"...
    assert not b'{"kind":"trainer"}'.startswith(written_prefix("train"))  # ...nor of a longer kind


@pytest.mark.parametrize("max_bytes", [300, 1 << 20])
def test_latest_only_returns_every_other_record_and_the_last_progress_of_each_read(
        tmp_path: Path, max_bytes: int) -> None:
    recs = gan_records(12)
    path = tmp_path / "metrics.jsonl"
    write_with_the_writer(path, recs)
    plain, thin = MetricsTail(path), MetricsTail(path, latest_only=("progress",))
    reads = 0
    while True:
        before = plain.offset
        whole = plain.read_new(max_bytes)
        got = thin.read_new(max_bytes)
        assert thin.offset == plain.offset  # the same lines were read
        progress = [r for r in whole if r["kind"] == "progress"]
        assert got == [r for r in whole if r["kind"] != "progress" or r is progress[-1]]
        reads += 1
        if plain.offset == before:
            break
    n_progress = sum(r["kind"] == "progress" for r in recs)
    assert thin.skipped > 0 and thin.skipped <= n_progress - (1 if max_bytes > 1000 else 0)
    assert reads > (10 if max_bytes == 300 else 1)


def test_the_follower_skips_progress_lines_yet_counts_every_record(tmp_path: Path) -> None:
    recs = gan_records(5)
    write_with_the_writer(tmp_path / "metrics.jsonl", recs)
    charts = RunCharts(losses=("gp",))
    follower = RunFollower(tmp_path, batch=charts.batch)
    up = follower.poll()
    assert follower.metrics.skipped == sum(r["kind"] == "progress" for r in recs) - 1
    assert up.seen == len(recs) and up.records == fold_subset(recs)
    charts.extend(up.chart, up.seen)
    plain = RunCharts(losses=("gp",))
    plain.ingest(recs)
    assert charts.records_seen == plain.records_seen == len(recs)
    assert charts.loss_series["step"]["gp"].ys == plain.loss_series["step"]["gp"].ys


def test_compare_series_are_built_slice_by_slice(tmp_path: Path) -> None:
    import json

    recs = gan_records(40)
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    sliced = CompareSeries()
    tail = MetricsTail(path)
    while True:
        before = tail.offset
        sliced.add(tail.read_new(max_bytes=500))
        if tail.offset == before:
            break
    whole = CompareSeries()
    whole.add(recs)
    assert sliced.records == len(recs) and sliced.metric_names() == whole.metric_names()
    for metric in whole.metric_names():
        for axis in ("step", "epoch"):
            assert sliced.series(metric, axis).xs == whole.series(metric, axis).xs
    assert whole.series("acc", "epoch").ys == [20.0 * e for e in range(1, 41)]  # train_acc per epoch
    assert whole.series("test_acc", "step").xs == [30.0 * e for e in range(1, 41)]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "store"


def test_a_backlog_is_drawn_every_half_second_at_most_not_per_slice(home: Path) -> None:
    from tests.tui_helpers import write_metrics

    run = make_run(home, "completed", name="backlog", epochs=1500, epoch=1500)
    n = write_metrics(Path(run.run_dir), epochs=1500, windows_per_epoch=40)  # ~61,500 records, 4 slices
    slices = (Path(run.run_dir) / "metrics.jsonl").stat().st_size / MAX_READ

    async def scenario(app, pilot) -> None:
        t0 = time.perf_counter()
        screen = await open_run(app, pilot, run.id)
        losses = screen.query_one("#loss-chart", MetricChart)
        await wait_for(pilot, lambda: screen.charts_data.records_seen == n and not screen._dirty, timeout=60)
        elapsed = time.perf_counter() - t0
        assert slices > 3 and screen.updates_applied > 3
        # one draw at mount, at most one per DRAW_S while loading, one when done
        assert losses.draws <= 2 + elapsed / 0.5
        gp = screen.charts_data.loss_series["step"]["gp"]
        assert gp.stride * len(gp) == 1500 * 40  # every window charted (folded past 20,000 points)

    drive(home, scenario, size=(120, 40))


def test_the_title_records_give_the_step_and_progress_of_everything() -> None:
    from tui.follow import title_records

    recs = gan_records(4)
    for cut in (len(recs), len(recs) - 1, len(recs) - 3, 7):
        part, whole = ProgressFold(), ProgressFold()
        for r in recs[:cut]:
            whole.fold(r)
        for r in title_records(recs[:cut]):
            part.fold(r)
        assert len(title_records(recs[:cut])) <= 4
        assert (part.fields.get("step"), part.fields.get("progress"), part.fields.get("epoch")) == (
            whole.fields.get("step"), whole.fields.get("progress"), whole.fields.get("epoch"))
