"""The benchmark's command line at a tiny size: it runs both loops and writes the promised JSON lines.

Speed itself is never asserted (a shared 2-core machine); what is checked is that `make bench` works, the
record carries every field the README promises, and the derived numbers follow from the measured ones.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.train_speed import projected_seconds
from tests.helpers import ROOT

FIELDS = {"recipe", "device", "width", "batch_size", "precision", "compile", "reference_images_per_s",
          "engine_images_per_s", "ratio", "reference_peak_mem_mb", "engine_peak_mem_mb", "torch", "host",
          "num_workers", "threads", "steps", "reference_cpu_ms_per_image", "engine_cpu_ms_per_image"}


def bench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.train_speed", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_bench_runs_both_loops_and_appends_json_lines(tmp_path):
    out = tmp_path / "bench.jsonl"
    out.write_text('{"kept": true}\n')  # appended to, never overwritten
    res = bench("--device", "cpu", "--width", "8", "--batch-size", "32", "--steps", "2", "--warmup", "1",
                "--repeats", "2", "--num-workers", "1", "--threads", "1", "--out", str(out))
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {"kept": True}
    recs = {r["recipe"]: r for r in lines[1:]}
    assert set(recs) == {"acgan-wgangp", "baseline"}
    for r in recs.values():
        assert FIELDS <= set(r), FIELDS - set(r)
        assert (r["device"], r["width"], r["batch_size"], r["precision"], r["compile"]) == ("cpu", 8, 32, "fp32",
                                                                                           False)
        assert r["num_workers"] == 1 and r["threads"] == 1 and r["steps"] == 2
        assert len(r["reference_images_per_s_all"]) == len(r["engine_images_per_s_all"]) == 2
        assert r["reference_images_per_s"] > 0 and r["engine_images_per_s"] > 0
        ratios = sorted(e / f for e, f in zip(r["engine_images_per_s_all"], r["reference_images_per_s_all"]))
        assert r["ratio"] == pytest.approx(sum(ratios) / 2, rel=1e-2)  # the median of two
        assert r["engine_peak_mem_mb"] is None or r["engine_peak_mem_mb"] > 0
    gan = recs["acgan-wgangp"]
    assert gan["projected_500_epochs_s"] == pytest.approx(
        projected_seconds(gan["engine_images_per_s"], 32), rel=1e-2)
    assert "projected_500_epochs_s" not in recs["baseline"]
    table = res.stdout
    assert "acgan-wgangp" in table and "baseline" in table and "500 epochs" in table


def test_projection_is_500_epochs_of_cifar10_whole_batches():
    # 50,000 // 128 = 390 batches of 128 = 49,920 images per epoch
    assert projected_seconds(1000.0, 128) == pytest.approx(500 * 49_920 / 1000.0)
    assert projected_seconds(100.0, 64, epochs=1) == pytest.approx(781 * 64 / 100.0)


@pytest.mark.parametrize("args, message", [
    (["--recipes", "wgan"], "--recipes: unknown wgan"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--device", "cuda:7"], "cuda:7"),
])
def test_bad_options_are_one_line_errors(args, message):
    res = bench(*args, "--width", "8", timeout=120)
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip() and "gpuGetDeviceCount" not in line]
    assert message in lines[-1]
