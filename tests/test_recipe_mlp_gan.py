"""The `mlp-gan` recipe (course text 001) end to end through the real worker: MNIST subset, synthetic28, and a
resume after SIGTERM that reproduces every number."""

from __future__ import annotations

import signal
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from engine.control.config import resolve_config
from tests.helpers import CPU_RUN, ROOT, check_run, make_run_dir, records, run_worker, tiny_npz, worker_cmd


@pytest.mark.slow
def test_mlp_gan_on_the_mnist_subset(tmp_path, shared_data):
    run_dir = make_run_dir(tmp_path, "mlp-gan", f"dataset=npz:{shared_data / 'mnist-subset.npz'}", "width=30",
                           "batch_size=32", "epochs=1", "log_every=25", *CPU_RUN)
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    check_run(run_dir, "mlp-gan", grid=(8, 2), image=28, min_steps=250)
    assert "diversity" in out.stdout  # the epoch table prints the signal


@pytest.mark.slow
def test_mlp_gan_on_synthetic28(tmp_path):
    run_dir = make_run_dir(tmp_path, "mlp-gan", "width=30", "epochs=1", "log_every=40", *CPU_RUN)
    assert resolve_config("mlp-gan")["dataset"] == "synthetic28"
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    check_run(run_dir, "mlp-gan", grid=(8, 2), image=28, min_steps=240)


def _numbers(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in ("seconds", "images_per_s", "time")}


@pytest.mark.slow
def test_mlp_gan_resumes_after_sigterm_with_the_same_numbers(tmp_path):
    npz = tiny_npz(tmp_path / "grey.npz", n_train=640, n_test=64, channels=1, size=28)
    common = (f"dataset=npz:{npz}", "width=12", "batch_size=16", "epochs=3", "log_every=5", "deterministic=true",
              *CPU_RUN)
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
