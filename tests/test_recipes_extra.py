"""The simpler GAN recipes (mlp-gan, lab5-gan, dcgan) end to end through the real worker, their configs and
data sources, and the mode-collapse signal of every GAN recipe (acgan-wgangp included)."""

from __future__ import annotations

import gzip
import json
import math
import os
import signal
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.compute import data as D
from engine.compute.checkpoint import load_checkpoint
from engine.compute.data import DataError, load_splits, make_synthetic, select_classes
from engine.compute.mode_collapse import batchnorm_stats_kept, class_spread, diversity, mean_pairwise_distance
from engine.compute.recipes.bce_gan import build_gan_models
from engine.control.config import RECIPES, ConfigError, default_run_name, resolve_config
from engine.control.datasets import check_dataset_available, dataset_syntax_error
from tests.conftest import cli_argv
from tests.helpers import ROOT, make_run_dir, records, run_worker, tiny_npz, worker_cmd
from tui.charts.series import RunCharts

BCE_RECIPES = ("mlp-gan", "lab5-gan", "dcgan")
RUN = ("device=cpu", "threads=1", "keep_every=0")


# ----------------------------------------------------------------------------------------------- configs

def test_defaults_come_from_the_texts():
    mlp = resolve_config("mlp-gan")
    assert (mlp["width"], mlp["n_z"], mlp["batch_size"], mlp["betas"], mlp["lr"], mlp["epochs"], mlp["samples"]) \
        == (300, 100, 100, [0.5, 0.999], 2e-4, 20, 16)
    lab5 = resolve_config("lab5-gan")
    assert (lab5["width"], lab5["classes"], lab5["epochs"], lab5["samples"]) == (256, [], 200, 64)
    dc = resolve_config("dcgan")
    assert (dc["width"], dc["n_z"], dc["lr"], dc["betas"], dc["batch_size"], dc["samples"]) \
        == (64, 100, 2e-4, [0.5, 0.999], 128, 64)
    for name in BCE_RECIPES:
        cfg = resolve_config(name)
        assert cfg["augment"] is False  # the texts feed plain ToTensor/Normalize data
        assert RECIPES[name].epoch_metrics == ("diversity",) and RECIPES[name].has_generator
    assert mlp["dataset"] == lab5["dataset"] == "synthetic28" and dc["dataset"] == "synthetic64"
    assert RECIPES["acgan-wgangp"].epoch_metrics == ("class_spread",)
    assert RECIPES["dcgan"].train_metrics == ("d_loss", "g_loss", "d_real", "d_fake", "d_fake_after")


@pytest.mark.parametrize("recipe, sets, message", [
    ("lab5-gan", ["classes=8,8"], "names a label twice"),
    ("lab5-gan", ["classes=-1"], "classes=-1 must be >= 0"),
    ("lab5-gan", ["classes=eight"], "is not a comma-separated list of integers"),
    ("mlp-gan", ["width=2"], "width=2 must be >= 3"),
    ("mlp-gan", ["classes=8"], "unknown field 'classes' for recipe mlp-gan"),
    ("dcgan", ["samples=0"], "samples=0 must be >= 1"),
    ("dcgan", ["dataset=imagefolder"], "not a known data source"),
])
def test_bad_values_are_one_line_errors(recipe, sets, message):
    with pytest.raises(ConfigError) as e:
        resolve_config(recipe, assignments=sets)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_every_field_can_be_overridden():
    cfg = resolve_config("lab5-gan", assignments=["classes=1,7", "width=8", "n_z=12", "leaky_slope=0.1",
                                                  "samples=9", "lr=1e-3", "betas=0.5,0.9", "augment=true"])
    assert cfg["classes"] == [1, 7] and cfg["width"] == 8 and cfg["n_z"] == 12 and cfg["samples"] == 9
    assert cfg["betas"] == [0.5, 0.9] and cfg["augment"] is True


def test_dataset_names():
    for ok in ("synthetic", "synthetic28", "synthetic64", "imagefolder:/data/celeba", "npz:x.npz", "mnist"):
        assert dataset_syntax_error(ok) is None
    assert "imagefolder:PATH" in dataset_syntax_error("celeba")
    assert default_run_name({"recipe": "dcgan", "dataset": "imagefolder:/data/celeba/"}) == "dcgan-celeba"


def test_classes_are_checked_against_the_data_before_any_work(tmp_path):
    cfg = resolve_config("lab5-gan", assignments=["classes=3,10"])
    with pytest.raises(ConfigError, match="dataset synthetic28 has labels 0..9, not 10"):
        check_dataset_available(cfg)
    npz = tmp_path / "two.npz"
    x = np.zeros((4, 1, 28, 28), np.uint8)
    np.savez(npz, x_train=x, y_train=np.array([1, 1, 2, 2], np.uint8), x_test=x, y_test=np.zeros(4, np.uint8))
    cfg = resolve_config("lab5-gan", assignments=[f"dataset=npz:{npz}", "classes=2,5"])
    with pytest.raises(ConfigError, match="no training images of label 5 .labels present: 1, 2."):
        check_dataset_available(cfg)
    check_dataset_available(resolve_config("lab5-gan", assignments=[f"dataset=npz:{npz}", "classes=2"]))


def test_cli_refuses_bad_data_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    cases = [
        (["--recipe", "dcgan", "--dataset", f"imagefolder:{tmp_path / 'empty'}"], "holds no images"),
        (["--recipe", "lab5-gan", "--set", "classes=12"], "has labels 0..9, not 12"),
        (["--recipe", "mlp-gan", "--dataset", f"npz:{tmp_path / 'missing.npz'}"], "does not exist"),
    ]
    for args, message in cases:
        out = subprocess.run(cli_argv("--home", str(tmp_path / "store"), "run", *args), cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], out.stderr


def test_new_run_form_takes_the_new_recipes():
    from tui.forms.run_form import check_form, text_values

    for name in BCE_RECIPES:
        values = text_values(RECIPES[name].default_config())
        check = check_form(name, values)
        assert check.ok, check.errors
        assert check.request.cfg["recipe"] == name and check.request.cfg["width"] == RECIPES[name].defaults.get(
            "width", RECIPES[name].all_fields()["width"].default)
    bad = check_form("lab5-gan", {**text_values(RECIPES["lab5-gan"].default_config()), "extra": "classes=4,4"})
    assert not bad.ok and "names a label twice" in " ".join(bad.errors.values())


# ----------------------------------------------------------------------------------------------- data

def test_synthetic_variants_have_their_shapes(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "SYNTHETIC_TRAIN", 30)
    monkeypatch.setattr(D, "SYNTHETIC_TEST", 10)
    for name, shape in (("synthetic", (3, 32, 32)), ("synthetic28", (1, 28, 28)), ("synthetic64", (3, 64, 64))):
        s = load_splits(name, cache_dir=tmp_path)
        assert s.x_train.shape == (30, *shape) and s.source == name and s.num_classes == 10
    assert len(list(tmp_path.glob("synthetic-*.npz"))) == 3  # one cache file per shape


def test_select_classes_keeps_only_those_labels():
    s = make_synthetic(100, 40, channels=1, size=28)
    sub = select_classes(s, [8])
    assert set(sub.y_train.tolist()) == {8} and set(sub.y_test.tolist()) == {8}
    assert sub.x_train.shape[0] == 10 and sub.classes == s.classes  # labels keep their names and ids
    two = select_classes(s, [1, 7])
    assert set(two.y_train.tolist()) == {1, 7}
    assert select_classes(s, []) is s
    with pytest.raises(DataError, match="no training images of label 42"):
        select_classes(s, [42])


# ----------------------------------------------------------------------------------------------- signals

def test_class_spread_is_normalised_entropy():
    uniform = torch.eye(10).repeat(5, 1)  # every class five times
    assert class_spread(uniform, 10) == pytest.approx(1.0)
    one = torch.zeros(50, 10)
    one[:, 3] = 1
    assert class_spread(one, 10) == pytest.approx(0.0)
    half = torch.cat([torch.eye(10)[:2]] * 10)  # two classes equally often: log 2 / log 10
    assert class_spread(half, 10) == pytest.approx(math.log(2) / math.log(10))


def test_diversity_is_relative_pairwise_distance():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(64, 1, 28, 28, generator=g) * 2 - 1
    ref = mean_pairwise_distance(real)
    assert diversity(real, ref) == pytest.approx(1.0)
    collapsed = real[:1].repeat(64, 1, 1, 1)
    assert diversity(collapsed, ref) == pytest.approx(0.0, abs=1e-6)
    assert diversity(real * 0.5, ref) == pytest.approx(0.5, rel=1e-5)  # half the spread, half the score
    with pytest.raises(ValueError):
        mean_pairwise_distance(real[:1])


def test_batchnorm_stats_kept_restores_running_statistics():
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad(), batchnorm_stats_kept(net):
        net(torch.randn(32, 4) * 5 + 3)
        assert not torch.equal(net[1].running_mean, before["1.running_mean"])  # it did move inside
    after = net.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_run_charts_draw_probes_and_signals_where_the_accuracies_would_be():
    """A GAN without a classifier: losses on the first chart; D(x), D(G(z)) and its signal on the second."""
    spec = RECIPES["mlp-gan"]
    assert spec.probe_metrics() == ("d_real", "d_fake", "diversity") and not spec.has_classifier
    charts = RunCharts(losses=spec.loss_metrics, probes=spec.probe_metrics())
    charts.ingest([
        {"kind": "train", "epoch": 1, "step": 10, "d_loss": 1.0, "g_loss": 2.0, "d_real": 0.6, "d_fake": 0.3},
        {"kind": "epoch", "epoch": 1, "step": 10, "mean_d_loss": 1.0, "mean_d_real": 0.6, "diversity": 0.4},
        {"kind": "epoch", "epoch": 2, "step": 20, "mean_d_loss": 0.9, "mean_d_real": 0.7, "diversity": 0.7},
    ])
    assert charts.loss_names() == ["d_loss", "g_loss"]
    assert charts.second_names() == ["d_real", "d_fake", "diversity"]
    assert charts.acc_series["step"]["diversity"].xs == [10.0, 20.0]
    assert charts.acc_series["epoch"]["diversity"].ys == [0.4, 0.7]
    assert charts.acc_series["step"]["d_real"].ys == [0.6] and charts.acc_series["epoch"]["d_real"].ys == [0.6, 0.7]
    assert "diversity" not in charts.loss_series["step"]
    acgan = RunCharts(losses=RECIPES["acgan-wgangp"].loss_metrics, probes=RECIPES["acgan-wgangp"].probe_metrics())
    acgan.ingest([{"kind": "epoch", "epoch": 1, "step": 5, "test_acc": 10.0, "class_spread": 0.9}])
    assert acgan.loss_names()[-1] == "class_spread" and acgan.second_names() == ["train acc", "test acc"]
    quiet = RunCharts(losses=RECIPES["acgan-wgangp"].loss_metrics)
    quiet.ingest([{"kind": "epoch", "epoch": 1, "step": 5, "mean_gp": 1.0}])
    assert quiet.loss_names() == list(RECIPES["acgan-wgangp"].loss_metrics)  # a signal shows only with data


# ----------------------------------------------------------------------------------------------- training runs

def check_run(run_dir: Path, recipe: str, *, grid: tuple[int, int], image: int, epochs: int = 1,
              min_steps: int = 100) -> list[dict]:
    """The run directory contract for a BCE GAN run; returns its epoch records."""
    recs = records(run_dir)
    assert recs[0]["kind"] == "start" and recs[-1]["kind"] == "end" and recs[-1]["status"] == "completed"
    metrics = set(RECIPES[recipe].train_metrics)
    train = records(run_dir, "train")
    assert train and all(metrics <= set(r) for r in train)
    for r in train:
        assert 0 <= r["d_real"] <= 1 and 0 <= r["d_fake"] <= 1 and r["d_loss"] > 0 and r["g_loss"] > 0
    eps = records(run_dir, "epoch")
    assert [e["epoch"] for e in eps] == list(range(1, epochs + 1))
    assert eps[-1]["step"] >= min_steps
    for e in eps:
        assert "test_acc" not in e and "train_acc" not in e  # no classifier, no accuracy
        assert {f"mean_{m}" for m in metrics} <= set(e)
        assert 0 < e["diversity"] < 5
    cols, rows = grid
    for n in range(1, epochs + 1):
        with Image.open(run_dir / "samples" / f"epoch_{n:03d}.png") as im:
            assert im.size == (cols * (image + 2) + 2, rows * (image + 2) + 2)
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert set(last["models"]) == {"D", "G"} and set(last["optimizers"]) == {"D", "G"}
    final = load_checkpoint(run_dir / "checkpoints" / "final.pt")
    assert final["recipe"] == recipe and final["data_shape"][1:] == [image, image]
    # the networks rebuild from the checkpoint alone and draw images of the data's shape
    g, d = build_gan_models(recipe, final["config"], final["data_shape"][0], image)
    g.load_state_dict(final["models"]["G"])
    d.load_state_dict(final["models"]["D"])
    with torch.no_grad():
        assert tuple(g.eval()(torch.randn(2, final["config"]["n_z"])).shape) == (2, *final["data_shape"])
    arts = {r["path"] for r in records(run_dir, "artifact")}
    assert {f"samples/epoch_{epochs:03d}.png", "checkpoints/final.pt"} <= arts
    return eps


def test_mlp_gan_on_the_mnist_subset(tmp_path, shared_data):
    run_dir = make_run_dir(tmp_path, "mlp-gan", f"dataset=npz:{shared_data / 'mnist-subset.npz'}", "width=30",
                           "batch_size=32", "epochs=1", "log_every=25", *RUN)
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    check_run(run_dir, "mlp-gan", grid=(8, 2), image=28, min_steps=250)
    assert "diversity" in out.stdout  # the epoch table prints the signal


def test_mlp_gan_on_synthetic28(tmp_path):
    run_dir = make_run_dir(tmp_path, "mlp-gan", "width=30", "epochs=1", "log_every=40", *RUN)
    assert resolve_config("mlp-gan")["dataset"] == "synthetic28"
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    check_run(run_dir, "mlp-gan", grid=(8, 2), image=28, min_steps=240)


def test_lab5_gan_on_one_mnist_digit(tmp_path, shared_data):
    npz = shared_data / "mnist-subset.npz"
    run_dir = make_run_dir(tmp_path, "lab5-gan", f"dataset=npz:{npz}", "classes=8", "width=8", "batch_size=8",
                           "epochs=2", "log_every=20", *RUN)
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    eights = int((np.load(npz)["y_train"] == 8).sum())
    start = records(run_dir, "start")[0]
    assert start["train_images"] == eights and start["steps_per_epoch"] == eights // 8
    check_run(run_dir, "lab5-gan", grid=(8, 8), image=28, epochs=2, min_steps=150)


def test_lab5_gan_on_synthetic28(tmp_path):
    run_dir = make_run_dir(tmp_path, "lab5-gan", "width=8", "epochs=1", "log_every=40", *RUN)
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    check_run(run_dir, "lab5-gan", grid=(8, 8), image=28, min_steps=240)


@pytest.mark.slow
def test_dcgan_on_the_mnist_subset(tmp_path, shared_data):
    run_dir = make_run_dir(tmp_path, "dcgan", f"dataset=npz:{shared_data / 'mnist-subset.npz'}", "width=4",
                           "batch_size=64", "epochs=1", "log_every=25", "samples=16", *RUN)
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    check_run(run_dir, "dcgan", grid=(8, 2), image=64, min_steps=125)
    for r in records(run_dir, "train"):
        assert 0 <= r["d_fake_after"] <= 1
    final = load_checkpoint(run_dir / "checkpoints" / "final.pt")
    assert final["data_shape"] == [1, 64, 64]  # grey digits stay one channel, resized to 64x64


@pytest.mark.slow
def test_dcgan_on_synthetic28(tmp_path):
    run_dir = make_run_dir(tmp_path, "dcgan", "dataset=synthetic28", "width=4", "epochs=1", "log_every=40",
                           "samples=16", *RUN)
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    check_run(run_dir, "dcgan", grid=(8, 2), image=64, min_steps=180)


def test_acgan_logs_the_class_spread_every_epoch(tmp_path):
    npz = tiny_npz(tmp_path / "tiny.npz", n_train=128, n_test=64)
    run_dir = make_run_dir(tmp_path, "acgan-wgangp", f"dataset=npz:{npz}", "width=8", "batch_size=32", "epochs=2",
                           "log_every=2", *RUN)
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    eps = records(run_dir, "epoch")
    assert len(eps) == 2
    for e in eps:
        assert 0 <= e["class_spread"] <= 1 and 0 <= e["test_acc"] <= 100  # the accuracy is still there


def _numbers(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in ("seconds", "images_per_s", "time")}


def test_mlp_gan_resumes_after_sigterm_with_the_same_numbers(tmp_path):
    npz = tiny_npz(tmp_path / "grey.npz", n_train=640, n_test=64, channels=1, size=28)
    common = (f"dataset=npz:{npz}", "width=12", "batch_size=16", "epochs=3", "log_every=5", "deterministic=true",
              *RUN)
    ref = make_run_dir(tmp_path / "ref", "mlp-gan", *common)
    assert run_worker(ref).returncode == 0
    cut = make_run_dir(tmp_path / "cut", "mlp-gan", *common)
    proc = subprocess.Popen(worker_cmd(cut), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline:
        if (cut / "metrics.jsonl").exists() and records(cut, "epoch"):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM
    assert records(cut, "end")[-1]["status"] == "cancelled"
    again = run_worker(cut)
    assert again.returncode == 0, again.stderr
    assert records(cut, "start")[1]["resumed"] is True
    assert [_numbers(e) for e in records(cut, "epoch")] == [_numbers(e) for e in records(ref, "epoch")]
    with Image.open(ref / "samples" / "epoch_003.png") as a, Image.open(cut / "samples" / "epoch_003.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))  # the fixed noise is the same after a resume


def test_lab5_gan_divergence_keeps_the_last_good_checkpoint(tmp_path):
    npz = tiny_npz(tmp_path / "grey.npz", n_train=128, n_test=32, channels=1, size=28)
    run_dir = make_run_dir(tmp_path, "lab5-gan", f"dataset=npz:{npz}", "width=8", "batch_size=32", "epochs=3",
                           "log_every=2", *RUN)
    out = run_worker(run_dir, env={"GANMGR_DEBUG_NAN_STEP": "6"})  # epoch 1 is steps 1-4
    assert out.returncode == 3, out.stderr
    end = records(run_dir, "end")[-1]
    assert end["status"] == "diverged" and "non-finite" in end["error"]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 1
    assert not (run_dir / "checkpoints" / "final.pt").exists()


def test_worker_names_a_missing_label(tmp_path):
    """A config written by hand skips the CLI's check; the worker still fails in one line before training."""
    npz = tiny_npz(tmp_path / "grey.npz", n_train=64, n_test=32, channels=1, size=28)
    run_dir = make_run_dir(tmp_path, "lab5-gan", f"dataset=npz:{npz}", "width=8", "batch_size=8", "epochs=1", *RUN)
    cfg_path = run_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["classes"] = [11]
    cfg_path.write_text(json.dumps(cfg))
    out = run_worker(run_dir, env={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    assert out.returncode == 2
    end = records(run_dir, "end")[-1]
    assert end["status"] == "failed" and "no training images of label 11" in end["error"]
    assert not records(run_dir, "epoch")


def write_mnist_root(root: Path, n_train: int = 400, n_test: int = 100) -> None:
    """A torchvision-layout MNIST root (gzipped idx files) holding MNIST-shaped synthetic images."""
    s = make_synthetic(n_train, n_test, channels=1, size=28)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, arr in zip(D.MNIST_FILES, (s.x_train[:, 0], s.y_train, s.x_test[:, 0], s.y_test)):
        header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
        (raw / f"{name}.gz").write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


def test_cli_headless_lab5_on_torchvision_mnist_then_ls_and_show(tmp_path):
    """`ganmgr run --recipe lab5-gan --dataset mnist --data-root ...` through the real CLI, store and worker."""
    write_mnist_root(tmp_path / "mnist")
    home = str(tmp_path / "store")
    out = subprocess.run(cli_argv("--home", home, "run", "--headless", "--recipe", "lab5-gan", "--dataset", "mnist",
                                  "--data-root", str(tmp_path / "mnist"), "--set", "classes=3", "--epochs", "2",
                                  "--width", "8", "--batch-size", "8", "--device", "cpu", "--set", "log_every=2"),
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    run_dir = next((tmp_path / "store").glob("1-*"))
    assert run_dir.name == "1-lab5-gan-mnist"
    start = records(run_dir, "start")[0]
    assert start["train_images"] == 40 and start["steps_per_epoch"] == 5  # ten per class, label 3 only
    assert [e["epoch"] for e in records(run_dir, "epoch")] == [1, 2]
    epoch_lines = [ln for ln in out.stdout.splitlines() if ln.startswith("epoch ")]
    assert len(epoch_lines) == 2 and all("diversity " in ln and "test_acc" not in ln for ln in epoch_lines)
    listing = subprocess.run(cli_argv("--home", home, "ls"), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and "lab5-gan" in listing.stdout and "completed" in listing.stdout
    shown = subprocess.run(cli_argv("--home", home, "show", "--json", "1"), cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)["run"]
    assert view["recipe"] == "lab5-gan" and view["status"] == "completed" and view["config"]["classes"] == [3]
    assert set(view["last_metrics"]) == {"d_loss", "g_loss", "d_real", "d_fake"}


def test_build_gan_models_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="not one of the BCE GANs"):
        build_gan_models("acgan-wgangp", resolve_config("acgan-wgangp"), 3, 32)
    with pytest.raises(ValueError, match="64x64 images, not 32x32"):
        build_gan_models("dcgan", resolve_config("dcgan"), 3, 32)
    g, _d = build_gan_models("lab5-gan", resolve_config("lab5-gan", assignments=["width=4"]), 1, 28)
    assert g(torch.randn(3, 100)).shape == (3, 1, 28, 28)
