"""The TUI's pure helpers: chart series, downsampling, smoothing, the filter language, sort orders, the form
rules, the follower, formatting, external viewers and the quick start. No Textual here."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from engine.control.config import RECIPES
from tests.tui_helpers import make_run, runs_in_every_status, write_metrics, write_png
from tui.charts.compare_data import default_metric, differing_keys
from tui.charts.series import (
    TEST_ACC,
    TRAIN_ACC,
    RunCharts,
    Series,
    downsample,
    ema,
    metric_names,
    metric_series,
)
from tui.external import scp_line, viewer_argv
from tui.follow import RunFollower, list_images, natural_key, sample_epoch
from tui.forms.run_form import GENERAL, check_form, error_field, text_values
from tui.present import fmt_duration, fmt_rate, pack_items, progress_bar, short_dataset, status_text
from tui.quickstart import CPU_OVERRIDES, has_gpu, quick_config
from tui.run_query import FilterError, order_runs, parse_filter, queue_positions

# ---------------------------------------------------------------------------------------------- series


def test_series_drops_non_finite_and_folds_when_full() -> None:
    s = Series(max_points=8)
    assert not s.append(1, float("nan"))
    assert not s.append(float("inf"), 1.0)
    assert not s.append(2, "x")
    for i in range(7):
        assert s.append(i, float(i))
    assert len(s) == 7 and s.folds == 0 and s.xs == [0, 1, 2, 3, 4, 5, 6]
    s.append(7, 7.0)  # full: the 8 points fold into 4 pair means; from now on 2 samples per point
    assert s.folds == 1 and s.stride == 2
    assert s.xs == [0.5, 2.5, 4.5, 6.5]
    s.append(8, 8.0)  # half a group: shown provisionally as the last point
    assert s.xs == [0.5, 2.5, 4.5, 6.5, 8.0]
    for i in range(9, 1000):
        s.append(i, float(i))
    assert len(s) <= 8
    # Every stored point covers the same number of samples: evenly spaced means over the whole run.
    assert s.xs[0] == pytest.approx((s.stride - 1) / 2)
    gaps = [b - a for a, b in zip(s.xs, s.xs[1:])]
    assert all(g == pytest.approx(s.stride) for g in gaps[:-1])
    assert s.xs[-1] > 900 and s.ys == s.xs


def test_downsample_keeps_ends_and_spikes() -> None:
    xs = list(range(10_000))
    ys = [0.0] * 10_000
    ys[4321] = 50.0  # one spike
    ys[777] = -3.0
    dx, dy = downsample(xs, ys, 100)
    assert len(dx) <= 102
    assert dx[0] == 0 and dx[-1] == 9999
    assert 50.0 in dy and -3.0 in dy
    assert dx == sorted(dx)
    small = downsample([1, 2, 3], [4, 5, 6], 100)
    assert small == ([1, 2, 3], [4, 5, 6])


def test_ema_is_bias_corrected_and_smooths() -> None:
    assert ema([5.0, 5.0, 5.0], 0.1) == pytest.approx([5.0, 5.0, 5.0])
    noisy = [(-1.0) ** i for i in range(200)]
    sm = ema(noisy, 0.05)
    assert max(abs(v) for v in sm[50:]) < 0.1
    with pytest.raises(ValueError):
        ema([1.0], 0.0)


def gan_records(n_epochs: int = 2) -> list[dict]:
    out: list[dict] = []
    for e in range(1, n_epochs + 1):
        for w in range(3):
            step = (e - 1) * 30 + (w + 1) * 10
            out.append({"kind": "train", "epoch": e, "step": step, "gp": 0.1 * w, "d_fake_source": -1.0,
                        "d_real_source": 1.0, "d_real_class": 2.0, "d_fake_class": 2.1, "gen_source": 1.0,
                        "gen_class": 2.0, "acc": 10.0 * w})
        out.append({"kind": "epoch", "epoch": e, "step": e * 30, "train_acc": 20.0 * e, "test_acc": 15.0 * e,
                    "mean_gp": 0.1, "mean_d_fake_source": -1.0, "mean_d_real_source": 1.0,
                    "mean_d_real_class": 2.0, "mean_d_fake_class": 2.1, "images_per_s": 100.0})
    return out


def test_run_charts_take_the_recipe_metrics_on_both_axes() -> None:
    spec = RECIPES["acgan-wgangp"]
    charts = RunCharts(losses=spec.loss_metrics)
    added = charts.ingest(gan_records(2) + [{"kind": "artifact", "path": "x"}])
    assert added > 0
    assert set(charts.loss_series["step"]) == set(spec.loss_metrics)  # gen_* are not losses of the chart
    assert len(charts.loss_series["step"]["gp"]) == 6
    assert charts.loss_series["epoch"]["d_real_class"].xs == [1.0, 2.0]
    assert charts.acc_series["step"][TRAIN_ACC].ys == [0.0, 10.0, 20.0] * 2
    assert charts.acc_series["step"][TEST_ACC].xs == [30.0, 60.0]  # test acc at its epoch's step
    assert charts.acc_series["epoch"][TRAIN_ACC].ys == [20.0, 40.0]
    assert charts.ingest([{"kind": "train", "step": 99, "gp": float("nan")}]) == 0
    charts.clear()
    assert not charts.loss_series["step"] and charts.records_seen == 0


def test_baseline_and_unknown_recipes_need_no_special_case() -> None:
    base = RunCharts(losses=RECIPES["baseline"].loss_metrics)
    base.ingest([{"kind": "train", "epoch": 1, "step": 5, "loss": 2.3, "acc": 11.0},
                 {"kind": "epoch", "epoch": 1, "step": 5, "train_acc": 11.0, "test_acc": 12.0, "mean_loss": 2.3}])
    assert list(base.loss_series["step"]) == ["loss"] and base.loss_names() == ["loss"]
    unknown = RunCharts(losses=())
    unknown.ingest([{"kind": "train", "epoch": 1, "step": 5, "g_loss": 1.0, "d_loss": 2.0, "acc": 3.0}])
    assert unknown.loss_names() == ["d_loss", "g_loss"]


def test_compare_series_and_metric_names() -> None:
    recs = gan_records(3)
    names = metric_names(recs)
    assert "gp" in names and "test_acc" in names and "mean_gp" not in names
    step_acc = metric_series(recs, "test_acc", "step")
    assert step_acc.xs == [30.0, 60.0, 90.0]
    epoch_gp = metric_series(recs, "gp", "epoch")
    assert epoch_gp.xs == [1.0, 2.0, 3.0] and epoch_gp.ys == pytest.approx([0.1] * 3)
    assert metric_series(recs, "acc", "epoch").ys == [20.0, 40.0, 60.0]
    with pytest.raises(ValueError):
        metric_series(recs, "gp", "time")
    assert default_metric(names) == "test_acc"
    assert default_metric(["loss"]) == "loss" and default_metric([]) is None


def test_differing_keys_lists_only_what_differs() -> None:
    a = RECIPES["acgan-wgangp"].default_config()
    b = {**a, "width": 8, "lr": 0.001}
    c = {**a, "width": 16}
    rows = differing_keys([a, b, c])
    assert [k for k, _ in rows] == ["lr", "width"]
    assert dict(rows)["width"] == [196, 8, 16]
    assert differing_keys([a, dict(a)]) == [] and differing_keys([a]) == []


# --------------------------------------------------------------------------------------- filter / sort


def test_filter_language(home: Path) -> None:
    runs = runs_in_every_status(home)
    views = list(runs.values())
    f = parse_filter("status:failed,lost")
    assert {r.status for r in views if f.matches(r)} == {"failed", "lost"}
    assert {r.status for r in views if parse_filter("running").matches(r)} == {"running"}
    assert all(parse_filter("").matches(r) for r in views) and parse_filter("").empty
    tagged = {r.name for r in views if parse_filter("tag:sweep").matches(r)}
    assert tagged == {r.name for r in views if "sweep" in r.tags} and tagged
    assert {r.name for r in views if parse_filter("COMPLETED run").matches(r)} == {"run-completed"}
    assert not any(parse_filter("recipe:baseline").matches(r) for r in views)
    assert all(parse_filter("r:acgan-wgangp synthetic").matches(r) for r in views)
    with pytest.raises(FilterError, match="unknown status 'runing'"):
        parse_filter("status:runing")
    with pytest.raises(FilterError, match="needs a value"):
        parse_filter("tag:")


def test_sort_orders(home: Path) -> None:
    runs = runs_in_every_status(home)
    q2 = make_run(home, "queued", name="q-urgent", priority=5)
    views = [*runs.values(), q2]
    order = order_runs(views, "queue")
    assert [r.status for r in order[:3]] == ["running", "queued", "queued"]
    assert order[1].name == "q-urgent"  # higher priority starts first
    finished = order[3:]
    assert [r.id for r in finished] == sorted((r.id for r in finished), reverse=True)
    assert queue_positions(views) == {q2.id: 1, runs["queued"].id: 2}
    by_acc = order_runs(views, "test acc")
    accs = [r.last_test_acc for r in by_acc if r.last_test_acc is not None]
    assert accs == sorted(accs, reverse=True) and by_acc[-1].last_test_acc is None
    assert [r.id for r in order_runs(views, "id", reverse=True)] == sorted((r.id for r in views), reverse=True)
    assert order_runs(views, "name")[0].name == "q-urgent"
    with pytest.raises(ValueError):
        order_runs(views, "colour")


# ---------------------------------------------------------------------------------------------- form


def form_values(**changes: str) -> dict[str, str]:
    values = text_values(RECIPES["acgan-wgangp"].default_config())
    values.update({"tags": "", "notes": "", "priority": "", "extra": ""})
    values.update(changes)
    return values


def test_form_defaults_are_valid_and_typed() -> None:
    check = check_form("acgan-wgangp", form_values())
    assert check.ok and check.request is not None
    assert check.request.cfg["width"] == 196 and check.request.cfg["lr"] == pytest.approx(1e-4)
    assert text_values(check.request.cfg)["lr"] == "0.0001"
    good = check_form("acgan-wgangp", form_values(width="8", epochs="1", batch_size="32", tags="a, b",
                                                   priority="3", extra="gp_lambda=5 betas=0.5,0.9"))
    req = good.request
    assert good.ok and req is not None
    assert (req.cfg["width"], req.cfg["gp_lambda"], req.cfg["betas"]) == (8, 5.0, [0.5, 0.9])
    assert req.tags == ("a", "b") and req.priority == 3


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"epochs": "two"}, "epochs", "'two' is not an integer"),
    ({"epochs": "0"}, "epochs", "epochs=0 must be >= 1"),
    ({"width": "-3"}, "width", "width=-3 must be >= 1"),
    ({"lr": "fast"}, "lr", "is not a number"),
    ({"lr": "0"}, "lr", "lr=0.0 must be > 0"),
    ({"batch_size": "1"}, "batch_size", "batch_size=1 must be >= 2"),
    ({"device": "gpu"}, "device", "must be auto, cpu, cuda or cuda:N"),
    ({"dataset": "imagenet"}, "dataset", "not a known data source"),
    ({"dataset": "cifar10"}, "data_root", "needs --data-root"),
    ({"name": "bad name!"}, "name", "must be 1-64 characters"),
    ({"tags": "has space"}, "tags", "bad tag"),
    ({"priority": "high"}, "priority", "is not an integer"),
    ({"extra": "gp_lambda"}, "extra", "must look like key=value"),
    ({"extra": "widht=8"}, "extra", "unknown field 'widht'"),
    ({"extra": "n_z=5"}, "extra", "n_z=5 must be at least"),
])
def test_form_rejects_bad_input_naming_the_field(changes: dict, field: str, words: str) -> None:
    check = check_form("acgan-wgangp", form_values(**changes))
    assert not check.ok and check.request is None
    assert field in check.errors, check.errors
    assert words in check.errors[field]
    assert "\n" not in check.errors[field]


def test_fork_form_keeps_the_parent_and_sends_only_changes() -> None:
    parent = {**RECIPES["acgan-wgangp"].default_config(), "width": 8, "gp_lambda": 3.0, "name": "p"}
    values = {**text_values(parent), "name": "", "epochs": "7", "fork_epoch": "2"}
    check = check_form("acgan-wgangp", values, base=parent, fork=True)
    assert check.ok and check.request is not None
    assert check.request.cfg["gp_lambda"] == 3.0  # a field the form does not show keeps the parent's value
    assert set(check.request.overrides) == {"epochs", "name"}
    assert check.request.fork_epoch == 2
    bad = check_form("acgan-wgangp", {**values, "fork_epoch": "last"}, base=parent, fork=True)
    assert "fork_epoch" in bad.errors


def test_error_field_routing() -> None:
    assert error_field("npz file /x.npz does not exist") == "dataset"
    assert error_field("data root /nope does not exist; point --data-root at it") == "data_root"
    assert error_field("width=0 must be >= 1") == "width"
    assert error_field("gp_lambda=-1 must be >= 0") == "extra"
    assert error_field("something else entirely") == GENERAL
    assert check_form("gan", {}).errors == {GENERAL: check_form("gan", {}).errors[GENERAL]}


# -------------------------------------------------------------------------------------------- follower


def test_follower_reads_whole_lines_logs_and_images(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "samples").mkdir(parents=True)
    f = RunFollower(run_dir)
    assert f.poll().empty is False  # the first poll reports the (empty) image list
    assert f.poll().empty
    n = write_metrics(run_dir, epochs=1)
    with open(run_dir / "metrics.jsonl", "a") as fh:
        fh.write('{"kind": "train", "step": 1')  # half a line: not yet
    up = f.poll()
    assert len(up.records) == n
    with open(run_dir / "metrics.jsonl", "a") as fh:
        fh.write(', "gp": 1.0}\n')
    assert [r["step"] for r in f.poll().records] == [1]
    (run_dir / "log.txt").write_text("line 1\nprogress 10%\rprogress 90%\npartial")
    up = f.poll()
    assert up.log_lines == ["line 1", "progress 90%"]
    write_png(run_dir / "samples" / "epoch_002.png")
    write_png(run_dir / "samples" / "epoch_010.png")
    write_png(run_dir / "viz" / "job1" / "grad.png")
    write_png(run_dir / "checkpoints" / "ignored.png")
    up = f.poll()
    assert up.images == ["samples/epoch_002.png", "samples/epoch_010.png", "viz/job1/grad.png"]
    (run_dir / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 5}) + "\n")  # replaced
    up = f.poll()
    assert up.metrics_reset and [r["step"] for r in up.records] == [5]


def test_follower_starts_a_long_log_near_its_end(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "log.txt").write_text("".join(f"line {i}\n" for i in range(20_000)))
    lines = RunFollower(run_dir).poll().log_lines
    assert lines[-1] == "line 19999" and 100 < len(lines) < 20_000
    assert all(ln.startswith("line ") for ln in lines)  # no half line at the start


def test_image_names_sort_naturally() -> None:
    names = ["samples/epoch_1000.png", "samples/epoch_999.png", "samples/epoch_010.png"]
    assert sorted(names, key=natural_key) == ["samples/epoch_010.png", "samples/epoch_999.png",
                                              "samples/epoch_1000.png"]
    assert sample_epoch("samples/epoch_007.png") == 7 and sample_epoch("viz/a.png") is None
    assert list_images(Path("/nonexistent")) == []


# ------------------------------------------------------------------------------------------ formatting


def test_formatting() -> None:
    assert fmt_duration(5) == "5s" and fmt_duration(185) == "3m05s" and fmt_duration(7500) == "2h05m"
    assert fmt_duration(3 * 86400 + 7200) == "3d02h" and fmt_duration(None) == ""
    assert fmt_rate(812.4) == "812" and fmt_rate(12_345) == "12k" and fmt_rate(1234) == "1.2k"
    assert progress_bar(0.5, width=8).plain == "████░░░░  50%"
    assert progress_bar(None).plain == "" and progress_bar(float("nan")).plain == ""
    assert progress_bar(1.7, width=4).plain.startswith("████")
    assert status_text("queued", 2).plain.endswith("queued #2")
    assert status_text("running", cancelling=True).plain.endswith("stopping")
    assert short_dataset("npz:/a/b/tiny.npz") == "npz:tiny.npz"
    from rich.text import Text

    packed = pack_items([Text("aaaa"), Text("bbbb"), Text("cccc")], width=10)
    assert packed.plain == "aaaa  bbbb\ncccc"


def test_viewer_and_scp_line(tmp_path: Path) -> None:
    png = tmp_path / "my run" / "a.png"
    found = {"xdg-open": "/usr/bin/xdg-open", "open": "/usr/bin/open"}
    assert viewer_argv(png, env={}, platform="linux", which=found.get) is None  # no display: no viewer
    assert viewer_argv(png, env={"DISPLAY": ":0"}, platform="linux", which=found.get) == [
        "/usr/bin/xdg-open", str(png)]
    assert viewer_argv(png, env={"WAYLAND_DISPLAY": "w"}, platform="linux", which=lambda _: None) is None
    assert viewer_argv(png, env={}, platform="darwin", which=found.get) == ["open", str(png)]
    line = scp_line(png, user="ann", host="node7.cluster")
    assert line == f"scp 'ann@node7.cluster:{png.resolve()}' ."
    assert scp_line(tmp_path / "x.png", user="ann", host="h") == f"scp ann@h:{(tmp_path / 'x.png').resolve()} ."


def test_quick_start_fits_the_machine(tmp_path: Path) -> None:
    assert has_gpu(which=lambda name: "/usr/bin/nvidia-smi", proc_gpus=tmp_path / "none") is True
    assert has_gpu(which=lambda name: None, proc_gpus=tmp_path / "none") is False
    cpu = quick_config(gpu=False)
    assert cpu["dataset"] == "synthetic" and cpu["recipe"] == "acgan-wgangp"
    assert (cpu["width"], cpu["epochs"], cpu["batch_size"]) == (CPU_OVERRIDES["width"], 2, 64)
    assert quick_config(gpu=True)["width"] > cpu["width"]


def test_run_view_replace_keeps_filters_pure(home: Path) -> None:
    run = make_run(home, "completed", name="x", test_acc=50.0)
    assert parse_filter("completed").matches(run)
    assert not parse_filter("completed").matches(replace(run, status="failed"))
    assert math.isclose(run.last_test_acc or 0, 50.0)
