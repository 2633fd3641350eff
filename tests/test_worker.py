"""The worker as a real subprocess on tiny data: outputs, resume equivalence, signals, divergence, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.compute.checkpoint import load_checkpoint
from tests.helpers import ROOT, make_run_dir, records, run_worker, tiny_npz, worker_cmd

GAN_METRICS = {"gp", "d_fake_source", "d_real_source", "d_real_class", "d_fake_class", "gen_source",
               "gen_class", "acc"}


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz", n_train=256, n_test=128)


def gan_dir(tmp_path: Path, npz: Path, *extra: str) -> Path:
    return make_run_dir(tmp_path, "acgan-wgangp", f"dataset=npz:{npz}", "width=8", "batch_size=32",
                        "epochs=2", "log_every=3", "log_seconds=0", "device=cpu", "deterministic=true", "threads=1",
                        *extra)  # windows by steps only: two runs compare them window by window


@pytest.mark.slow
def test_gan_run_writes_the_run_directory_contract(tmp_path, npz):
    run_dir = gan_dir(tmp_path, npz, "keep_every=1")
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    recs = records(run_dir)
    assert recs[0]["kind"] == "start" and recs[-1] == {**recs[-1], "kind": "end", "status": "completed"}
    train = records(run_dir, "train")
    assert train and all(GAN_METRICS <= set(r) for r in train)
    assert [r["step"] for r in train][:2] == [3, 6]
    epochs = records(run_dir, "epoch")
    assert [e["epoch"] for e in epochs] == [1, 2]
    for e in epochs:
        assert {"train_acc", "test_acc", "seconds", "images_per_s", "lr"} <= set(e)
        assert 0 <= e["test_acc"] <= 100 and e["images_per_s"] > 0
    for n in (1, 2):
        png = run_dir / "samples" / f"epoch_{n:03d}.png"
        with Image.open(png) as im:
            assert im.size == (10 * 34 + 2, 10 * 34 + 2)  # 10x10 grid of 32px images, 2px padding
        assert (run_dir / "checkpoints" / f"epoch_{n:03d}.pt").exists()
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert set(last["models"]) == {"D", "G"} and set(last["optimizers"]) == {"D", "G"}
    assert last["epoch"] == 2 and last["step"] == 16 and {"torch", "data", "noise"} <= set(last["rng"])
    final = load_checkpoint(run_dir / "checkpoints" / "final.pt")
    assert final["config"]["recipe"] == "acgan-wgangp" and "optimizers" not in final
    arts = {r["path"] for r in records(run_dir, "artifact")}
    assert {"samples/epoch_001.png", "samples/epoch_002.png", "checkpoints/final.pt"} <= arts


def test_sample_grid_has_one_class_per_column():
    from engine.compute.recipes.acgan import save_noise

    noise, labels = save_noise(100, 10, 352)
    assert noise.shape == (100, 100)
    assert labels.tolist() == list(range(10)) * 10  # image i sits in column i % 10 of a 10-wide grid
    assert torch.equal(noise[:, :10], torch.nn.functional.one_hot(labels, 10).float())
    # the seed draws with numpy's RandomState(352): the same numbers outside the one-hot block
    import numpy as np

    ref = np.random.RandomState(352).normal(0, 1, (100, 100)).astype(np.float32)
    assert np.array_equal(noise[:, 10:].numpy(), ref[:, 10:])


def _numbers(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in ("seconds", "images_per_s", "time")}


@pytest.mark.slow
def test_interrupted_and_resumed_run_logs_the_same_numbers(tmp_path, npz):
    """SIGTERM during epoch 2, then a second worker on the same folder: identical epoch-2 numbers."""
    ref_dir = gan_dir(tmp_path / "ref", npz)
    assert run_worker(ref_dir).returncode == 0
    ref_epochs = records(ref_dir, "epoch")
    ref_train = records(ref_dir, "train")

    run_dir = gan_dir(tmp_path / "cut", npz)
    proc = subprocess.Popen(worker_cmd(run_dir), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline:
        if (run_dir / "metrics.jsonl").exists() and records(run_dir, "epoch"):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, out
    end = records(run_dir, "end")[-1]
    assert end["status"] == "cancelled"
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert ckpt["epoch"] >= 1

    again = run_worker(run_dir)
    assert again.returncode == 0, again.stderr
    starts = records(run_dir, "start")
    assert len(starts) == 2 and starts[1]["resumed"] is True
    assert [_numbers(e) for e in records(run_dir, "epoch")] == [_numbers(e) for e in ref_epochs]
    # every train window the two runs share carries the same values
    cut_train = {r["step"]: r for r in records(run_dir, "train")}
    for r in ref_train:
        if r["step"] in cut_train:
            assert cut_train[r["step"]] == r


@pytest.mark.slow
def test_baseline_resume_after_completed_epoch(tmp_path, npz):
    """Baseline: stopping at an epoch boundary and extending the run gives the uninterrupted numbers."""
    common = (f"dataset=npz:{npz}", "width=8", "batch_size=32", "device=cpu", "deterministic=true",
              "threads=1", "lr_drop_epochs=1", "lr_drop_factors=0.1")
    ref = make_run_dir(tmp_path / "ref", "baseline", *common, "epochs=2")
    assert run_worker(ref).returncode == 0
    cut = make_run_dir(tmp_path / "cut", "baseline", *common, "epochs=1")
    assert run_worker(cut).returncode == 0
    cfg_path = cut / "config.json"
    cfg_path.write_text(cfg_path.read_text().replace('"epochs": 1', '"epochs": 2'))
    assert run_worker(cut).returncode == 0
    ref_e, cut_e = records(ref, "epoch"), records(cut, "epoch")
    assert [_numbers(e) for e in cut_e] == [_numbers(e) for e in ref_e]
    assert ref_e[1]["lr"] == pytest.approx(1e-5)  # the drop applies after the first epoch


@pytest.mark.slow
def test_resume_refuses_a_changed_config(tmp_path, npz):
    run_dir = gan_dir(tmp_path, npz, "epochs=1")
    assert run_worker(run_dir).returncode == 0
    cfg_path = run_dir / "config.json"
    cfg_path.write_text(cfg_path.read_text().replace('"gp_lambda": 10.0', '"gp_lambda": 5.0'))
    out = run_worker(run_dir)
    assert out.returncode == 1
    assert "different config (gp_lambda)" in records(run_dir, "end")[-1]["error"]


@pytest.mark.slow
def test_non_finite_loss_stops_as_diverged_and_keeps_the_good_checkpoint(tmp_path, npz):
    run_dir = gan_dir(tmp_path, npz, "epochs=3")
    # first epoch completes (8 steps), a NaN batch arrives at step 11 in epoch 2
    out = run_worker(run_dir, env={"GANMGR_DEBUG_NAN_STEP": "11"})
    assert out.returncode == 3, out.stderr
    end = records(run_dir, "end")[-1]
    assert end["status"] == "diverged" and "non-finite" in end["error"]
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 8
    for sd in ckpt["models"].values():
        assert all(torch.isfinite(t).all() for t in sd.values() if t.is_floating_point())
    assert not (run_dir / "checkpoints" / "final.pt").exists()


def test_bad_config_file_fails_with_a_clear_error(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"recipe": "baseline", "width": 0}')
    out = run_worker(run_dir)
    assert out.returncode == 2
    assert "width=0 must be >= 1" in out.stderr
    assert records(run_dir, "end")[-1]["status"] == "failed"


def test_missing_run_dir_is_an_error(tmp_path):
    out = run_worker(tmp_path / "nope")
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_batch_larger_than_the_data_is_a_clear_failure(tmp_path, npz):
    run_dir = make_run_dir(tmp_path, "baseline", f"dataset=npz:{npz}", "width=8", "batch_size=4096",
                           "device=cpu", "epochs=1")
    out = run_worker(run_dir)
    assert out.returncode == 2
    assert "256 images, fewer than one batch of 4096" in records(run_dir, "end")[-1]["error"]


def test_sigint_before_training_starts_is_handled(tmp_path, npz):
    run_dir = gan_dir(tmp_path, npz)
    proc = subprocess.Popen(worker_cmd(run_dir), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ})
    deadline = time.time() + 60
    while not (run_dir / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)  # while torch and the data are still loading
    assert proc.wait(timeout=120) == 128 + signal.SIGINT
    end = records(run_dir, "end")[-1]
    assert end["status"] == "cancelled"
    assert not records(run_dir, "epoch")


@pytest.mark.slow
def test_fork_starts_from_the_parents_weights_with_its_own_config(tmp_path, npz):
    import shutil

    parent = gan_dir(tmp_path / "parent", npz, "epochs=1")
    assert run_worker(parent).returncode == 0
    child = gan_dir(tmp_path / "child", npz, "epochs=2", "lr=5e-4")
    shutil.copy(parent / "checkpoints" / "last.pt", child / "checkpoints" / "init.pt")
    out = run_worker(child)
    assert out.returncode == 0, out.stderr
    start = records(child, "start")[0]
    assert start["forked_from"].endswith("init.pt") and start["epoch"] == 1 and start["resumed"] is False
    assert [e["epoch"] for e in records(child, "epoch")] == [2]  # continues the parent's epoch count
    assert records(child, "epoch")[0]["lr"] == 5e-4
    ckpt = load_checkpoint(child / "checkpoints" / "last.pt")
    assert ckpt["optimizers"]["D"]["param_groups"][0]["lr"] == 5e-4


@pytest.mark.slow
def test_fork_refuses_a_checkpoint_of_another_shape(tmp_path, npz):
    import shutil

    parent = gan_dir(tmp_path / "parent", npz, "epochs=1")
    assert run_worker(parent).returncode == 0
    child = gan_dir(tmp_path / "child", npz, "epochs=2", "width=16")
    shutil.copy(parent / "checkpoints" / "last.pt", child / "checkpoints" / "init.pt")
    out = run_worker(child)
    assert out.returncode == 1
    assert "does not fit this run's models" in records(child, "end")[-1]["error"]
