"""Evaluation during training (issue 15): `eval` records every `eval_every` epochs, scored by a baseline run's
classifier (`--eval-baseline`), without changing a single training number; bad inputs refused at enqueue."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from engine.compute.checkpoint import load_checkpoint
from engine.compute.recipes.acgan import ACGANTrainer
from engine.compute.recipes.baseline import BaselineTrainer
from engine.control.config import resolve_config
from engine.control.errors import ConfigError
from engine.control.records import EVAL, MetricsWriter
from tests.helpers import ganmgr, random_inception_weights, records, tiny_npz

TIMING = {"time", "seconds", "images_per_s"}  # wall-clock fields: the only ones two identical runs may differ in


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return tiny_npz(tmp_path_factory.mktemp("eval") / "d.npz", n_train=64, n_test=48)


def train(trainer_cls, run_dir: Path, recipe: str, npz: Path, *assign: str, logs: list[str] | None = None) -> Path:
    """A tiny run trained in this process (the worker's own loop), its records in run_dir/metrics.jsonl."""
    cfg = resolve_config(recipe, assignments=[f"dataset=npz:{npz}", "width=8", "batch_size=16", "device=cpu",
                                              "threads=1", "epochs=2", *assign])
    run_dir.mkdir(parents=True)
    t = trainer_cls(cfg, run_dir, log=(logs.append if logs is not None else lambda m: None))
    metrics = MetricsWriter(run_dir / "metrics.jsonl")
    try:
        assert t.run(metrics) == "completed"
    finally:
        metrics.close()
    return run_dir


@pytest.fixture(scope="module")
def baseline_ckpt(npz, tmp_path_factory) -> Path:
    run_dir = train(BaselineTrainer, tmp_path_factory.mktemp("b") / "run", "baseline", npz, "epochs=1")
    return run_dir / "checkpoints" / "final.pt"


def losses(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records(run_dir)
            if r["kind"] in ("train", "epoch")]


@pytest.mark.slow
def test_eval_every_epoch_writes_classifier_scores_and_trains_identically(npz, baseline_ckpt, tmp_path):
    logs: list[str] = []
    with_eval = train(ACGANTrainer, tmp_path / "eval", "acgan-wgangp", npz, "eval_every=1", "eval_samples=40",
                      "eval_baseline=1", f"eval_baseline_ckpt={baseline_ckpt}", "best_metric=fd_clf", logs=logs)
    without = train(ACGANTrainer, tmp_path / "plain", "acgan-wgangp", npz)
    assert losses(with_eval) == losses(without) and losses(without)  # bit-equal: JSON floats, not approx
    a, b = (load_checkpoint(d / "checkpoints" / "final.pt")["models"] for d in (with_eval, without))
    for net in ("G", "D"):  # weights and BatchNorm running statistics: the eval-mode forward moved nothing
        assert a[net].keys() == b[net].keys()
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    evals = records(with_eval, EVAL)
    assert [r["epoch"] for r in evals] == [1, 2]
    for r in evals:
        assert r["n"] == 40 and r["n_clf"] == 24  # 48 test images: two disjoint real sets of 24
        assert r["fd_clf"] >= 0 and r["fd_clf_floor"] >= 0 and isinstance(r["kid_clf"], float)
        assert 0 <= r["gan_test_acc"] <= 100 and len(r["gan_test_acc_per_class"]) == 10
        assert "fid" not in r and "uncalibrated" not in r  # no Inception weights: absent, never faked
    off = [m for m in logs if "FID/KID/IS skipped" in m]
    assert len(off) == 1 and "no Inception weights" in off[0], logs
    assert records(without, EVAL) == []
    # best.pt kept by fd_clf: the epoch with the lowest value, announced by an artifact record
    best = load_checkpoint(with_eval / "checkpoints" / "best.pt")["best"]
    lowest = min(evals, key=lambda r: (r["fd_clf"], r["epoch"]))
    assert best == {"metric": "fd_clf", "value": lowest["fd_clf"], "epoch": lowest["epoch"], "mode": "min"}
    assert [r["epoch"] for r in records(with_eval, "artifact") if r["what"] == "best"][-1] == lowest["epoch"]


@pytest.mark.slow
def test_eval_with_uncalibrated_inception_weights_writes_marked_fid_kid_is(tmp_path):
    """The Inception path during training, with a randomly initialised network (no real weights in tests):
    FID/KID/IS every epoch, marked uncalibrated, the real set's statistics computed once and cached."""
    small = tiny_npz(tmp_path / "s.npz", n_train=32, n_test=12)
    weights = random_inception_weights(tmp_path / "random-inception.pth")
    logs: list[str] = []
    run_dir = train(ACGANTrainer, tmp_path / "runs" / "r", "acgan-wgangp", small, "eval_every=1", "eval_samples=6",
                    f"inception_weights={weights}", "inception_uncalibrated=true", logs=logs)
    evals = records(run_dir, EVAL)
    assert [r["epoch"] for r in evals] == [1, 2], logs
    for r in evals:
        assert r["uncalibrated"] is True and r["n"] == 6
        assert r["fid"] > 0 and r["is"] >= 1.0 and isinstance(r["kid"], float) and r["kid_std"] >= 0
        assert "fd_clf" not in r  # no eval_baseline: no classifier score, and the log says so once
    assert len([m for m in logs if "no eval_baseline" in m]) == 1
    assert any("(uncalibrated weights)" in m for m in logs if m.startswith("eval epoch"))
    cache = list((tmp_path / "runs" / ".cache" / "inception").iterdir())
    assert len(cache) == 1 and cache[0].suffix == ".npz"  # the test split's statistics, once for both epochs


@pytest.mark.gpu
def test_on_cuda_eval_leaves_the_training_streams_alone(npz, baseline_ckpt, tmp_path):
    """The CUDA path of the RNG save/restore (torch.random.fork_rng over the training device): deterministic
    kernels, so two runs on the GPU compare bit for bit, with and without evaluation every epoch."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cuda = ("device=cuda", "deterministic=true", "precision=fp32")
    with_eval = train(ACGANTrainer, tmp_path / "eval", "acgan-wgangp", npz, *cuda, "eval_every=1",
                      "eval_samples=40", "eval_baseline=1", f"eval_baseline_ckpt={baseline_ckpt}")
    without = train(ACGANTrainer, tmp_path / "plain", "acgan-wgangp", npz, *cuda)
    assert [r["epoch"] for r in records(with_eval, EVAL)] == [1, 2]
    assert losses(with_eval) == losses(without) and losses(without)


def test_eval_with_no_scorer_says_once_why_it_is_off(npz, tmp_path):
    logs: list[str] = []
    run_dir = train(ACGANTrainer, tmp_path / "r", "acgan-wgangp", npz, "eval_every=1", "epochs=2",
                    "eval_samples=8", logs=logs)
    off = [m for m in logs if m.startswith("evaluation off")]
    assert len(off) == 1, logs
    assert "no Inception weights" in off[0] and "no eval_baseline" in off[0]
    assert records(run_dir, EVAL) == []


@pytest.mark.parametrize("assign, words", [
    ("eval_every=-1", "eval_every=-1 must be >= 0"),
    ("eval_samples=1", "eval_samples=1 must be >= 2"),
    ("eval_samples=50001", "eval_samples=50001 must be <= 50000"),
    ("best_metric=fd_clf", "best_metric=fd_clf is an evaluation value"),
])
def test_bad_eval_settings_are_config_errors(assign, words):
    with pytest.raises(ConfigError, match=words):
        resolve_config("acgan-wgangp", assignments=[assign])


def test_best_metric_by_fid_or_fd_clf_is_kept_lowest():
    from engine.control.config import best_direction

    cfg = resolve_config("dcgan", assignments=["eval_every=2", "best_metric=fid"])
    assert cfg["best_metric"] == "fid" and best_direction("fid") == "min" and best_direction("fd_clf") == "min"
    assert best_direction("gan_test_acc") == "max" and best_direction("is") == "max"
    with pytest.raises(ConfigError, match="needs eval_baseline"):
        resolve_config("acgan-wgangp", assignments=["eval_every=1", "best_metric=fd_clf"])
    with pytest.raises(ConfigError, match="fd_clf"):  # an unconditional GAN has no classifier score
        resolve_config("dcgan", assignments=["eval_every=1", "best_metric=fd_clf"])


# ------------------------------------------------------------------ --eval-baseline, through the command


def tiny(npz: Path, recipe: str, name: str, *extra: str) -> list[str]:
    return ["run", "--headless", "--recipe", recipe, "--dataset", f"npz:{npz}", "--epochs", "1", "--width", "8",
            "--batch-size", "16", "--device", "cpu", "--set", "threads=1", "--name", name, *extra]


def store_state(home: Path) -> tuple[list, list]:
    out = ganmgr(home, "ls", "--json")
    assert out.returncode == 0, out.stderr
    runs_dir = home / "runs"
    return json.loads(out.stdout), sorted(os.listdir(runs_dir)) if runs_dir.is_dir() else []


@pytest.mark.slow
def test_eval_baseline_names_a_completed_baseline_run_else_exit_2_and_nothing_created(npz, tmp_path):
    home = tmp_path / "home"
    other = tiny_npz(tmp_path / "other.npz", n_train=32, n_test=16, seed=3)
    assert ganmgr(home, *tiny(npz, "baseline", "clf")).returncode == 0
    assert ganmgr(home, *tiny(other, "baseline", "clf-other")).returncode == 0
    gan = ganmgr(home, *tiny(npz, "acgan-wgangp", "gan"))
    assert gan.returncode == 0
    before = store_state(home)
    for ref, words in (("999", "no run"), ("gan", "is a acgan-wgangp run"), ("clf-other", "was trained on")):
        out = ganmgr(home, *tiny(npz, "acgan-wgangp", "refused", "--eval-baseline", ref, "--set", "eval_every=1"))
        assert out.returncode == 2, (ref, out.stderr)
        line = out.stderr.strip()
        assert "\n" not in line and words in line and "--eval-baseline" in line, line
        assert store_state(home) == before  # nothing created: no row, no folder
    done = ganmgr(home, *tiny(npz, "acgan-wgangp", "scored", "--eval-baseline", "clf", "--set", "eval_every=1",
                              "--set", "eval_samples=20"))
    assert done.returncode == 0, done.stderr
    runs = {r["name"]: r for r in store_state(home)[0]}
    cfg, clf = runs["scored"]["config"], runs["clf"]
    assert cfg["eval_baseline"] == str(clf["id"])
    assert cfg["eval_baseline_ckpt"] == str(Path(clf["run_dir"]).resolve() / "checkpoints" / "final.pt")
    evals = records(Path(runs["scored"]["run_dir"]), EVAL)
    assert [r["epoch"] for r in evals] == [1]
    show = ganmgr(home, "show", "scored").stdout  # the row's summary of the eval records
    line = next(ln for ln in show.splitlines() if ln.strip().startswith("quality"))
    assert f"fd_clf {evals[0]['fd_clf']:.2f}" in line and f"gan_test_acc {evals[0]['gan_test_acc']:.1f}%" in line
    ls = ganmgr(home, "ls").stdout.splitlines()
    assert "QUALITY" in ls[0] and f"fd_clf {evals[0]['fd_clf']:.2f}/{evals[0]['fd_clf']:.2f}" in ls[-1]

    # a run stopped before final.pt is still evaluable: `report` (and every viz job) takes --checkpoint last
    from engine.control.submit import SubmitError
    from engine.control.viz_jobs import cancel_viz, submit_viz

    (Path(runs["gan"]["run_dir"]) / "checkpoints" / "final.pt").unlink()
    with pytest.raises(SubmitError, match="--checkpoint best or last"):
        submit_viz(home, runs["gan"]["id"], "report", baseline_id=clf["id"], start_supervisor=False)
    job = submit_viz(home, runs["gan"]["id"], "report", checkpoint="last", baseline_id=clf["id"],
                     start_supervisor=False)
    cancel_viz(home, job.id)
    assert json.loads((Path(job.job_dir) / "job.json").read_text())["checkpoint"] == "checkpoints/last.pt"


# --------------------------------------------------------------------- seeing it: fold, show, the TUI chart

def eval_rec(epoch: int, fid: float, fd_clf: float, acc: float, uncalibrated: bool = True) -> dict:
    """An eval record as evaluation.py writes it (with Inception weights and a baseline classifier)."""
    return {"kind": EVAL, "epoch": epoch, "n": 1000, "fid": fid, "kid": 0.01 * fid, "kid_std": 0.001, "is": 2.5,
            "is_std": 0.1, "uncalibrated": uncalibrated, "fd_clf": fd_clf, "fd_clf_floor": 0.4,
            "kid_clf": 0.002, "gan_test_acc": acc, "n_clf": 500, "seconds": 1.0}


def test_the_fold_keeps_the_latest_and_the_best_eval_values_beside_the_train_metrics():
    from engine.control.eval_summary import QUALITY_KEY, cell_text, summary_lines
    from engine.control.follow import ProgressFold

    fold = ProgressFold()
    fold.fold({"kind": "train", "epoch": 1, "step": 4, "gp": 0.5})
    for rec in (eval_rec(1, 90.0, 6.0, 20.0), eval_rec(2, 70.0, 7.0, 35.0), eval_rec(3, 80.0, 5.0, 30.0)):
        fold.fold(rec)
    fold.fold({"kind": "train", "epoch": 4, "step": 16, "gp": 0.25})  # a later window keeps the summary
    lm = fold.fields["last_metrics"]
    assert lm["gp"] == 0.25
    q = lm[QUALITY_KEY]
    assert q["epoch"] == 3 and q["latest"]["fid"] == 80.0 and q["latest"]["gan_test_acc"] == 30.0
    assert q["best"]["fid"] == {"value": 70.0, "epoch": 2}  # lower FID wins
    assert q["best"]["fd_clf"] == {"value": 5.0, "epoch": 3}
    assert q["best"]["gan_test_acc"] == {"value": 35.0, "epoch": 2}  # higher accuracy wins
    assert cell_text(q) == "fid 80.00/70.00*"  # '*': uncalibrated weights
    lines = summary_lines(q)
    assert lines[0].startswith("epoch 3: fid 80.00") and "(uncalibrated)" in lines[0] and "n=1000" in lines[0]
    assert "fd_clf 5.00" in lines[0] and "n=500" in lines[0] and "fid 70.00 (epoch 2)" in lines[1]
    resumed = ProgressFold(quality=q)  # an adopted or resumed run's fold starts from the row's summary
    resumed.fold(eval_rec(4, 75.0, 6.5, 31.0))
    assert resumed.quality["best"]["fid"] == {"value": 70.0, "epoch": 2}


def test_the_quality_chart_shows_the_eval_values(home: Path) -> None:
    from tests.tui_helpers import drive, make_run, open_run, plain, wait_for, write_metrics
    from tui.charts.quality_chart import QualityChart

    run = make_run(home, "running", name="evals", epochs=10, epoch=3)
    plain_run = make_run(home, "running", name="no-evals", epochs=10, epoch=3)
    for r in (run, plain_run):
        write_metrics(Path(r.run_dir), epochs=3)
    with open(Path(run.run_dir) / "metrics.jsonl", "a") as f:
        for rec in (eval_rec(1, 90.0, 6.0, 20.0), eval_rec(2, 70.0, 5.5, 35.0)):
            f.write(json.dumps(rec) + "\n")

    async def scenario(app, pilot) -> None:
        screen = await open_run(app, pilot, run.id)
        chart = screen.query_one("#quality-chart", QualityChart)
        await wait_for(pilot, lambda: chart.lines == ["fid", "fd_clf", "fd_clf_floor"], what="the eval lines")
        assert chart.display and chart.series["fid"].ys == [90.0, 70.0] and chart.series["fd_clf"].xs == [1, 2]
        legend = plain(chart.query_one(".chart-legend"))
        assert "fid 70" in legend and "fd_clf 5.5" in legend
        assert "(uncalibrated)" in str(chart.border_title)
        assert "GAN-test acc 35.0%" in str(chart.border_subtitle) and "n=1000" in str(chart.border_subtitle)
        with open(Path(run.run_dir) / "metrics.jsonl", "a") as f:  # the worker's next evaluation
            f.write(json.dumps(eval_rec(3, 60.0, 5.0, 40.0, uncalibrated=False)) + "\n")
        await wait_for(pilot, lambda: chart.series["fid"].ys == [90.0, 70.0, 60.0], timeout=5)
        await wait_for(pilot, lambda: "uncalibrated" not in str(chart.border_title), timeout=5)
        await pilot.press("escape")
        other = await open_run(app, pilot, plain_run.id)
        await pilot.pause(1.0)
        assert not other.query_one("#quality-chart", QualityChart).display  # no eval records: no chart

    drive(home, scenario, size=(160, 48))
