"""The `lab5-gan` recipe (course text 003) end to end: one MNIST digit, synthetic28, divergence, a label the
data lacks, and the whole `ganmgr run --headless` path on a torchvision-layout MNIST root."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.compute.checkpoint import load_checkpoint
from engine.compute.data.sources import MNIST_FILES
from engine.compute.data.synthetic import make_synthetic
from tests.helpers import (
    CPU_RUN,
    ROOT,
    check_run,
    cli_argv,
    make_run_dir,
    records,
    run_worker,
    tiny_npz,
    write_idx,
)


@pytest.mark.slow
def test_lab5_gan_on_one_mnist_digit(tmp_path, shared_data):
    npz = shared_data / "mnist-subset.npz"
    run_dir = make_run_dir(tmp_path, "lab5-gan", f"dataset=npz:{npz}", "classes=8", "width=8", "batch_size=8",
                           "epochs=2", "log_every=20", *CPU_RUN)
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    eights = int((np.load(npz)["y_train"] == 8).sum())
    start = records(run_dir, "start")[0]
    assert start["train_images"] == eights and start["steps_per_epoch"] == eights // 8
    check_run(run_dir, "lab5-gan", grid=(8, 8), image=28, epochs=2, min_steps=150)


@pytest.mark.slow
def test_lab5_gan_on_synthetic28(tmp_path):
    run_dir = make_run_dir(tmp_path, "lab5-gan", "width=8", "epochs=1", "log_every=40", *CPU_RUN)
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    check_run(run_dir, "lab5-gan", grid=(8, 8), image=28, min_steps=240)


def test_lab5_gan_divergence_keeps_the_last_good_checkpoint(tmp_path):
    npz = tiny_npz(tmp_path / "grey.npz", n_train=128, n_test=32, channels=1, size=28)
    run_dir = make_run_dir(tmp_path, "lab5-gan", f"dataset=npz:{npz}", "width=8", "batch_size=32", "epochs=3",
                           "log_every=2", *CPU_RUN)
    out = run_worker(run_dir, env={"GANMGR_DEBUG_NAN_STEP": "6"})  # epoch 1 is steps 1-4
    assert out.returncode == 3, out.stderr
    end = records(run_dir, "end")[-1]
    assert end["status"] == "diverged" and "non-finite" in end["error"]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 1
    assert not (run_dir / "checkpoints" / "final.pt").exists()


def test_worker_names_a_missing_label(tmp_path):
    """A config written by hand skips the CLI's check; the worker still fails in one line before training."""
    npz = tiny_npz(tmp_path / "grey.npz", n_train=64, n_test=32, channels=1, size=28)
    run_dir = make_run_dir(tmp_path, "lab5-gan", f"dataset=npz:{npz}", "width=8", "batch_size=8", "epochs=1", *CPU_RUN)
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
    for name, arr in zip(MNIST_FILES, (s.x_train[:, 0], s.y_train, s.x_test[:, 0], s.y_test)):
        write_idx(raw / name, arr, compress=True)


@pytest.mark.slow
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
    # the last window's means and the last epoch's collapse signal (the GAN column of `ls` and the table)
    assert set(view["last_metrics"]) == {"d_loss", "g_loss", "d_real", "d_fake", "diversity"}
