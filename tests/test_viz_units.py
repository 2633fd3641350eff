"""Fast checks of the visualization worker that need no trained model: bad job files, the Fréchet
distance, the choice of progression epochs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import ROOT, records


def run_subprocess(job_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.compute.viz", str(job_dir)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("params, words", [
    ({"lr": 0.1, "bogus": 1}, "unknown parameter 'bogus' for max_features"),
    ({"layer": 5}, "layer=5 is not a visualized layer; choose one of 2, 3, 4, 6, 8"),
    ({"lr": -0.5}, "lr=-0.5 must be > 0"),
    ({"iterations": "many"}, "iterations='many' is not an integer"),
])
def test_bad_params_exit_2_with_one_line(tmp_path, params, words):
    """The job file is refused before any run is read or torch imported, so no model is needed here."""
    job = {"kind": "max_features", "params": params, "run_dir": str(tmp_path / "run"),
           "checkpoint": "checkpoints/final.pt", "baseline_run_dir": None, "baseline_checkpoint": None}
    (tmp_path / "job.json").write_text(json.dumps(job))
    out = run_subprocess(tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], out.stderr
    end = records(tmp_path)[-1]
    assert end["kind"] == "end" and end["status"] == "failed" and words in end["error"]


def test_an_unreadable_or_missing_job_file_exits_2(tmp_path):
    (tmp_path / "job.json").write_text('{"kind": "perturb", ')
    out = run_subprocess(tmp_path)
    assert out.returncode == 2 and "job.json is unreadable" in out.stderr
    out = run_subprocess(tmp_path / "missing")
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_a_missing_run_folder_fails_the_job(tmp_path):
    job = {"kind": "perturb", "params": {"device": "cpu"}, "run_dir": str(tmp_path / "gone"),
           "checkpoint": "checkpoints/final.pt"}
    (tmp_path / "job.json").write_text(json.dumps(job))
    out = run_subprocess(tmp_path)
    assert out.returncode == 1 and f"run folder {tmp_path / 'gone'} does not exist" in out.stderr
    assert records(tmp_path)[-1]["status"] == "failed"


def test_frechet_distance_matches_the_closed_form():
    from engine.compute.viz.frechet import frechet_distance, frechet_distance_from_stats

    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # diagonal covariances commute: FD = |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance_from_stats(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)
    # full (non-commuting) covariances: FD is invariant under a common rotation of both sets
    b = rng.normal(size=(4000, 6)) @ rng.normal(size=(6, 6)) + 0.5
    a2 = a @ rng.normal(size=(6, 6))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    fd = frechet_distance(a2, b)
    assert fd > 1.0
    assert frechet_distance(a2 @ q, b @ q) == pytest.approx(fd, rel=1e-9)
    # and it grows as one set moves away
    assert frechet_distance(a2, b + 1.0) > fd


def test_frechet_distance_of_rank_deficient_features():
    """Dead features (constant columns) give singular covariances; the eigh route stays finite."""
    from engine.compute.viz.frechet import frechet_distance

    rng = np.random.default_rng(1)
    a = np.concatenate([rng.normal(size=(50, 3)), np.zeros((50, 5))], axis=1)
    b = np.concatenate([rng.normal(size=(60, 3)) + 2.0, np.zeros((60, 5))], axis=1)
    fd = frechet_distance(a, b)
    assert np.isfinite(fd) and fd > 3 * 2.0 ** 2 * 0.5


def test_progression_picks_evenly_spaced_epochs():
    from engine.compute.viz.progression import pick_epochs

    assert pick_epochs(list(range(1, 501)), 6) == [1, 101, 201, 300, 400, 500]
    assert pick_epochs([1, 2, 3], 6) == [1, 2, 3]
    assert pick_epochs([1, 2, 3, 4], 1) == [4]
    assert pick_epochs(list(range(1, 11)), 2) == [1, 10]


def test_quality_scores_with_one_pass_what_forward_gives():
    """`quality` reads the logits off the pooled conv-8 features (fc10 of them) to halve its work."""
    import torch

    from engine.compute.classifier_score import classify
    from engine.compute.models.acgan import ACGANDConfig, ACGANDiscriminator

    torch.manual_seed(0)
    D = ACGANDiscriminator(ACGANDConfig(width=12)).eval()
    x = torch.randn(9, 3, 32, 32)
    pred, feats = classify(D, x)
    with torch.no_grad():
        assert torch.equal(pred, D(x)[1].argmax(1))
        assert np.allclose(feats, D.features(x, 8).double().numpy())
    assert feats.shape == (9, 12)
