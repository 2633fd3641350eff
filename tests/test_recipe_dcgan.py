"""The `dcgan` recipe (course text 004) end to end through the real worker: 64x64 images from the MNIST subset
and from synthetic28 (slow: a 64x64 conv GAN on the CPU)."""

from __future__ import annotations

import pytest

from engine.compute.checkpoint import load_checkpoint
from tests.helpers import CPU_RUN, check_run, make_run_dir, records, run_worker


@pytest.mark.slow
def test_dcgan_on_the_mnist_subset(tmp_path, shared_data):
    run_dir = make_run_dir(tmp_path, "dcgan", f"dataset=npz:{shared_data / 'mnist-subset.npz'}", "width=4",
                           "batch_size=64", "epochs=1", "log_every=25", "samples=16", *CPU_RUN)
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
                           "samples=16", *CPU_RUN)
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    check_run(run_dir, "dcgan", grid=(8, 2), image=64, min_steps=180)
