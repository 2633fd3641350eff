"""The Fréchet and kernel distances and the `quality` job pinned exactly (issue 19).

References, never a loose "it went down":
- numpy by hand in float64 (the mean and the unbiased covariance), and cases known in closed form: commuting
  (co-diagonalisable) covariances, for which FD = |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)) over their
  eigenvalues, and a matrix square root read off its eigenvalues;
- a transcription of the unbiased KID (Binkowski et al. 2018) with the cubic kernel (x.y / D + 1)^3 and the
  subsets drawn as torch-fidelity draws them (numpy RandomState(seed), without replacement, x then y);
- the `quality` job on tiny freshly built models whose run and test data sit in the job's cache: its noise
  against a transcription of the ACGAN recipe's draw, its numbers against the same computations by hand.
In-process and small, so mutation testing (bench/mutation.py) sees every line they reach.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from engine.compute.classifier_score import FEATURE_LAYER, SUBSET_SEED
from engine.compute.data.device_data import DeviceData
from engine.compute.data.splits import Splits
from engine.compute.mode_collapse import class_spread
from engine.compute.models.acgan import ACGANDConfig, ACGANDiscriminator, ACGANGConfig, ACGANGenerator
from engine.compute.viz import quality
from engine.compute.viz.fidelity import real_test_fingerprint, skipped
from engine.compute.viz.frechet import (
    _psd_sqrt,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    kernel_distance,
)
from engine.compute.viz.job import Job, JobFailed
from engine.compute.viz.loading import LoadedRun
from engine.compute.viz.render import save_image_grid
from engine.control.records import MetricsWriter, read_all


def rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


# ------------------------------------------------------------------------------------------ gaussian_stats


def test_gaussian_stats_are_the_float64_mean_and_unbiased_covariance_even_of_float32_features():
    rng = np.random.default_rng(0)
    x = (1000.0 + rng.normal(size=(40, 3)) * 1e-2).astype(np.float32)  # float32 sums round at 1000
    xd = x.astype(np.float64)
    mu = xd.sum(0) / 40
    cov = (xd - mu).T @ (xd - mu) / 39  # the unbiased (N - 1) covariance, by hand
    assert not np.allclose(x.mean(0), mu, rtol=1e-10, atol=0)  # a float32 mean would show
    m, s = gaussian_stats(x)
    assert m.dtype == np.float64 and s.dtype == np.float64
    assert np.allclose(m, mu, rtol=1e-15, atol=0) and np.allclose(s, cov, rtol=1e-9, atol=0)


def test_gaussian_stats_accept_two_rows_and_a_single_feature_and_refuse_less():
    a, b = np.array([1.0, 2.0, 5.0]), np.array([3.0, -2.0, 5.0])
    m, s = gaussian_stats(np.stack([a, b]))
    assert np.array_equal(m, (a + b) / 2)
    assert np.allclose(s, np.outer(a - b, a - b) / 2, rtol=1e-15, atol=0)  # two rows: (a - b)(a - b)^T / 2
    col = np.array([[1.0], [2.0], [4.0], [9.0]])  # one feature: [N, 1]
    m, s = gaussian_stats(col)
    assert m.shape == (1,) and m[0] == 4.0 and float(s) == pytest.approx(np.var(col, ddof=1), rel=1e-15)
    assert frechet_distance(col, col + 3.0) == pytest.approx(9.0, rel=1e-12)  # same spread: |dmu|^2
    for bad in (np.ones((1, 3)), np.arange(5.0), np.ones((2, 3, 4))):
        with pytest.raises(ValueError, match="at least 2 feature vectors"):
            gaussian_stats(bad)


# ------------------------------------------------------------------------------------------ FD


def test_psd_sqrt_is_the_root_of_the_eigenvalues_with_rounding_negatives_clipped_to_zero():
    q = rotation(4, 1)
    s = q @ np.diag([4.0, 0.25, 0.01, -1e-12]) @ q.T  # a covariance whose rounding left a tiny negative
    r = _psd_sqrt(s)
    assert np.all(np.isfinite(r))
    assert np.allclose(r, q @ np.diag([2.0, 0.5, 0.1, 0.0]) @ q.T, atol=1e-12)
    assert np.allclose(r @ r, q @ np.diag([4.0, 0.25, 0.01, 0.0]) @ q.T, atol=1e-12)


def closed_form_fd(dmu: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> float:
    """FD of two Gaussians whose covariances share their eigenvectors (eigenvalues e1, e2 paired)."""
    return float(dmu @ dmu + np.sum(e1 + e2 - 2 * np.sqrt(np.clip(e1 * e2, 0, None))))


def test_fd_of_commuting_covariances_is_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 1.0])
    e1, e2 = np.array([0.3, 0.04, 2.0]), np.array([0.09, 0.5, 0.7])  # below 1 too: no floor of 1 anywhere
    assert frechet_distance_from_stats(mu1, np.diag(e1), mu2, np.diag(e2)) == pytest.approx(
        closed_form_fd(mu1 - mu2, e1, e2), rel=1e-12)
    q = rotation(3, 2)
    assert frechet_distance_from_stats(mu1, q @ np.diag(e1) @ q.T, mu2, q @ np.diag(e2) @ q.T) == pytest.approx(
        closed_form_fd(mu1 - mu2, e1, e2), rel=1e-10)


def test_fd_clips_a_slightly_negative_eigenvalue_of_either_covariance_or_their_product():
    q = rotation(4, 3)
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, 0.0, 0.0])
    e1, e2 = np.array([0.5, 0.2, 1.5, 0.3]), np.array([0.4, 0.9, 0.6, -1e-9])  # R S2 R has 0.3 * -1e-9
    fd = frechet_distance_from_stats(mu1, q @ np.diag(e1) @ q.T, mu2, q @ np.diag(e2) @ q.T)
    assert fd == pytest.approx(closed_form_fd(mu1 - mu2, e1, e2), rel=1e-10)
    e1 = np.array([0.5, 0.2, -1e-9, 0.3])  # now S1's own square root meets a negative
    fd = frechet_distance_from_stats(mu1, q @ np.diag(e1) @ q.T, mu2, q @ np.diag(e2) @ q.T)
    assert fd == pytest.approx(closed_form_fd(mu1 - mu2, e1, e2), rel=1e-10)


# ------------------------------------------------------------------------------------------ KID


def course_mmd2(a: np.ndarray, b: np.ndarray) -> float:
    """The unbiased MMD^2 with k(x, y) = (x.y / D + 1)^3: the diagonal left out of k(a, a) and k(b, b)."""
    m, d = a.shape

    def k(p, q):
        return (p @ q.T / d + 1.0) ** 3

    kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
    return float((kaa.sum() - np.trace(kaa) + kbb.sum() - np.trace(kbb)) / (m * (m - 1)) - 2 * kab.sum() / m ** 2)


def course_kid(x: np.ndarray, y: np.ndarray, subsets: int, size: int, seed: int) -> tuple[float, float]:
    """torch-fidelity's draw: RandomState(seed); per subset, size of x then size of y, without replacement."""
    rng = np.random.RandomState(seed)
    vals = [course_mmd2(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
            for _ in range(subsets)]
    return float(np.mean(vals)), float(np.std(vals))


def test_kid_of_the_whole_sets_is_the_unbiased_mmd_in_float64_even_of_float32_features():
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(12, 5)) * 3 + 2).astype(np.float32)
    y = (rng.normal(size=(12, 5)) * 3 + 2.5).astype(np.float32)
    expected = course_mmd2(x.astype(np.float64), y.astype(np.float64))
    assert abs(course_mmd2(x, y) - expected) > 1e-6 * abs(expected)  # float32 arithmetic would show
    mean, std = kernel_distance(x, y, subsets=1, subset_size=12)
    assert mean == pytest.approx(expected, rel=1e-10) and std == 0.0
    mean, std = kernel_distance(x, y, subsets=3, subset_size=1000, seed=11)  # 3 permutations of the whole sets
    assert mean == pytest.approx(expected, rel=1e-10) and std < 1e-9 * abs(expected)


def test_kid_draws_its_subsets_as_torch_fidelity_does():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(9, 3)), rng.normal(size=(7, 3)) + 0.3
    mean, std = kernel_distance(x, y, subsets=5, subset_size=4, seed=7)
    exp_mean, exp_std = course_kid(x, y, 5, 4, 7)
    assert mean == pytest.approx(exp_mean, rel=1e-10) and std == pytest.approx(exp_std, rel=1e-8)
    assert std > 0 and kernel_distance(x, y, subsets=5, subset_size=4, seed=8)[0] != pytest.approx(mean)


@pytest.mark.parametrize("nx, ny", [(5, 8), (8, 5)])
def test_kid_subset_size_is_capped_by_the_smaller_set(nx, ny):
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(nx, 3)), rng.normal(size=(ny, 3)) * 1.5  # D = 3 is below every n here
    mean, std = kernel_distance(x, y, subsets=2, seed=3)  # subset_size 1000 by default
    assert (mean, std) == pytest.approx(course_kid(x, y, 2, 5, 3), rel=1e-10)


def test_kid_accepts_two_vectors_and_refuses_one_or_another_dimension():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(2, 3)), rng.normal(size=(6, 3))
    assert kernel_distance(x, y, subsets=2, seed=1) == pytest.approx(course_kid(x, y, 2, 2, 1), rel=1e-10)
    with pytest.raises(ValueError, match="got 1 and 6"):
        kernel_distance(x[:1], y)
    with pytest.raises(ValueError, match="at least 2"):
        kernel_distance(x, y, subset_size=1)
    for a, b in ((x, rng.normal(size=(6, 4))), (x[0], y), (x, y[0]), (x[:, :, None], y), (x, y[:, :, None])):
        with pytest.raises(ValueError, match="of one D"):
            kernel_distance(a, b)


def test_kid_prints_nothing(capfd):
    """The job's and the worker's logs stay clean: torch-fidelity's progress bar and line are off."""
    rng = np.random.default_rng(8)
    kernel_distance(rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), subsets=3, subset_size=4)
    assert capfd.readouterr() == ("", "")


# ------------------------------------------------------------------------------------------ the quality job

CLASSES = ["cat", "dog", "owl"]
N_Z = 8


def gan_run(tmp_path: Path, seed: int = 0, G: bool = True, classes: list[str] = CLASSES,
            shape: list[int] | None = None) -> LoadedRun:
    torch.manual_seed(seed)
    gen = ACGANGenerator(ACGANGConfig(width=8, n_z=N_Z)).eval().requires_grad_(False) if G else None
    if gen is not None:  # freshly built, it draws nearly one image whatever the noise; tripled, they differ
        with torch.no_grad():
            for m in gen.modules():
                if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                    m.weight.mul_(3.0)
    D = ACGANDiscriminator(ACGANDConfig(width=8, num_classes=len(classes))).eval().requires_grad_(False)
    cfg = {"recipe": "acgan-wgangp" if G else "baseline", "dataset": "synthetic", "data_root": None, "width": 8,
           "n_z": N_Z}
    return LoadedRun(tmp_path / ("gan" if G else "clf"), "checkpoints/final.pt", cfg, 3 if G else 5, list(classes),
                     shape or [3, 32, 32], D, gen)


def course_noise(n_per_class: int, nc: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ACGAN recipe's noise: labels class-major, randn from a generator seeded `seed`, one-hot in front."""
    labels = torch.tensor([c for c in range(nc) for _ in range(n_per_class)])
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(nc * n_per_class, N_Z, generator=g)
    onehot = torch.zeros(nc * n_per_class, nc)
    onehot[torch.arange(nc * n_per_class), labels] = 1
    z[:, :nc] = onehot
    return z, labels


def test_generate_draws_n_per_class_of_each_class_in_order_from_the_recipes_noise(tmp_path):
    gan = gan_run(tmp_path)
    n = 170  # 510 images: more than one batch of 500
    images, labels = quality.generate(gan, n, 9, torch.device("cpu"))
    z, expected_labels = course_noise(n, 3, 9)
    assert torch.equal(labels, expected_labels)
    with torch.no_grad():
        expected = gan.G(z)
    assert images.shape == (510, 3, 32, 32) and images.dtype == torch.float32
    assert torch.allclose(images, expected, atol=1e-6)
    again, _ = quality.generate(gan, n, 9, torch.device("cpu"))
    other, _ = quality.generate(gan, 2, 10, torch.device("cpu"))
    assert torch.equal(again, images) and not torch.allclose(other[:2], images[:2], atol=1e-3)


def test_own_class_spread_is_class_spread_of_the_gans_discriminator(tmp_path):
    gan = gan_run(tmp_path, seed=1)
    g = torch.Generator().manual_seed(2)
    images = torch.rand(505, 3, 32, 32, generator=g) * 2 - 1  # more than one batch of 500
    images[500:] = images[500:] * 0.1 + 0.8  # the last five: another class mix
    with torch.no_grad():
        logits = gan.D(images)[1]
    expected = class_spread(logits, 3)
    assert 0.0 < expected < 1.0
    assert class_spread(logits[:500], 3) != pytest.approx(expected, rel=1e-9, abs=0)  # the last batch counts
    assert quality.own_class_spread(gan, images) == pytest.approx(expected, rel=1e-12)


def test_check_pair_refuses_a_run_without_generator_and_a_scorer_of_other_data(tmp_path):
    gan, scorer = gan_run(tmp_path), gan_run(tmp_path, G=False)
    assert quality.check_pair(gan, scorer) is None
    with pytest.raises(JobFailed, match="no generator"):
        quality.check_pair(scorer, scorer)
    with pytest.raises(JobFailed, match="other data"):
        quality.check_pair(gan, gan_run(tmp_path, G=False, classes=["cat", "dog", "cow"]))
    with pytest.raises(JobFailed, match="other data"):
        quality.check_pair(gan, gan_run(tmp_path, G=False, shape=[1, 32, 32]))


def quality_job(tmp_path: Path, params: dict, x_test: np.ndarray, y_test: np.ndarray,
                baseline: bool = True) -> tuple[Job, LoadedRun, LoadedRun]:
    """A quality job whose two runs and test data are already in its cache (as a report shares them)."""
    gan, scorer = gan_run(tmp_path, seed=3), gan_run(tmp_path, seed=4, G=False)
    out = tmp_path / "job"
    out.mkdir(exist_ok=True)
    job = Job("quality", {"device": "cpu", **params}, gan.run_dir, "checkpoints/final.pt",
              scorer.run_dir if baseline else None, None, out, out, MetricsWriter(out / "metrics.jsonl", who="viz"),
              log=lambda _line: None)
    splits = Splits(x_test, y_test, x_test, y_test, tuple(CLASSES), "test")
    job.cache.update({"device": torch.device("cpu"), f"run:{gan.run_dir}:checkpoints/final.pt": gan,
                      f"run:{scorer.run_dir}:checkpoints/final.pt": scorer,
                      f"data:synthetic:None:{[3, 32, 32]}": DeviceData(splits, "cpu")})
    return job, gan, scorer


def png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_quality_job_reports_the_scores_computed_by_hand(tmp_path):
    rng = np.random.default_rng(9)
    x_test = rng.integers(0, 256, size=(66, 3, 32, 32), dtype=np.uint8)
    real = torch.from_numpy(x_test).float() / 127.5 - 1.0
    with torch.no_grad():
        real_pred = gan_run(tmp_path, seed=4, G=False).D(real)[1].argmax(1)  # the scorer quality_job builds
    y_test = real_pred.clone()
    y_test[::3] = (y_test[::3] + 1) % 3  # the scorer is right on exactly 44 of the 66: 66.7 %
    job, gan, scorer = quality_job(tmp_path, {"n_per_class": 11, "seed": 5, "fid": False}, x_test,
                                   y_test.numpy())
    result = quality.run(job)

    z, labels = course_noise(11, 3, 5)
    with torch.no_grad():
        images = gan.G(z)
        pred = scorer.D(images)[1].argmax(1)
        own = gan.D(images)[1]

        def feats(x):
            return scorer.D.features(x, 8).double().numpy()

        perm = torch.randperm(66, generator=torch.Generator().manual_seed(SUBSET_SEED))  # the two real sets
        gen_f, a_f, b_f = feats(images), feats(real[perm[:33]]), feats(real[perm[33:]])
    hits = (pred == labels).float()
    expected = {
        "model": "gan", "epoch": 3, "scorer": "clf", "scorer_recipe": "baseline", "scorer_epoch": 5,
        "n_generated": 33, "n_real": 66, "n": 33, "accuracy": pytest.approx(100.0 * hits.mean().item()),
        "per_class_accuracy": {c: pytest.approx(100.0 * hits[labels == i].mean().item())
                               for i, c in enumerate(CLASSES)},
        "class_spread": pytest.approx(class_spread(own, 3), rel=1e-12),
        "scorer_accuracy_real": pytest.approx(100.0 * 44 / 66),
        "feature_layer": 8, "feature_dim": 8,
        "fd": pytest.approx(frechet_distance(gen_f, a_f), rel=1e-6),
        "fd_real_halves": pytest.approx(frechet_distance(b_f, a_f), rel=1e-6),
        "kid": pytest.approx(course_mmd2(gen_f, a_f), rel=1e-6), "kid_std": pytest.approx(0.0, abs=1e-9),
        "kid_floor": pytest.approx(course_mmd2(b_f, a_f), rel=1e-6),
        **skipped("fid=false"),
    }
    assert FEATURE_LAYER == 8
    assert result == expected
    assert 0 < result["accuracy"] < 100 and result["fd"] > result["fd_real_halves"] > 0

    # the grid: the first 10 of each class, one column per class (row r: sample r of every class)
    order = images.view(3, 11, 3, 32, 32)[:, :10].transpose(0, 1).reshape(30, 3, 32, 32)
    save_image_grid(order, tmp_path / "course.png", nrow=3)
    assert np.array_equal(png(job.out_dir / "samples.png"), png(tmp_path / "course.png"))
    artifacts = [(r["path"], r["what"]) for r in read_all(job.out_dir / "metrics.jsonl") if r["kind"] == "artifact"]
    assert [p for p, _ in artifacts] == ["samples.png", "class_accuracy.png"] and all(w for _, w in artifacts)
    assert (job.out_dir / "class_accuracy.png").stat().st_size > 0


def test_quality_job_with_too_few_real_images_notes_why_and_without_weights_skips_fid(tmp_path):
    x_test = np.random.default_rng(10).integers(0, 256, size=(3, 3, 32, 32), dtype=np.uint8)
    job, _, _ = quality_job(tmp_path, {"n_per_class": 1, "seed": 0, "fid": True}, x_test, np.arange(3))
    result = quality.run(job)
    assert (result["n_generated"], result["n_real"], result["n"]) == (3, 3, 1)
    assert result["fd"] is None and result["kid"] is None and result["fd_real_halves"] is None
    assert result["fd_note"].startswith("FD/KID skipped: 3 real test images")
    assert result["fid"] is None and result["note"].startswith("FID/IS skipped") and "ganmgr doctor" in result["note"]
    job, _, _ = quality_job(tmp_path, {"n_per_class": 1, "seed": 0, "fid": False}, x_test, np.arange(3),
                            baseline=False)
    with pytest.raises(JobFailed, match="needs a baseline run"):
        quality.run(job)


def test_quality_job_scores_fid_on_its_samples_against_the_test_set_under_evaluations_cache_key(tmp_path,
                                                                                                  monkeypatch):
    """With fid on, the Inception scorer gets the generated images, the real test images and the cache key
    training's evaluation uses for the same test split (one cache entry, comparable FIDs). Without weights
    here, the real `inception_scores` still runs and skips; it is watched, not replaced."""
    seen: list[tuple] = []
    real_scores = quality.inception_scores

    def watched(job, generated, real_images, key):
        seen.append((generated.clone(), real_images(), key))
        return real_scores(job, generated, real_images, key)

    monkeypatch.setattr(quality, "inception_scores", watched)
    x_test = np.random.default_rng(11).integers(0, 256, size=(5, 3, 32, 32), dtype=np.uint8)  # 5: not C
    job, gan, scorer = quality_job(tmp_path, {"n_per_class": 2, "seed": 4, "fid": True}, x_test, np.arange(5) % 3)
    result = quality.run(job)
    assert result["fid"] is None and result["note"].startswith("FID/IS skipped")
    [(generated, real, key)] = seen
    z, _ = course_noise(2, 3, 4)
    with torch.no_grad():
        assert torch.allclose(generated, gan.G(z), atol=1e-6)
    assert torch.equal(real, torch.from_numpy(x_test).float() / 127.5 - 1.0)
    assert key == real_test_fingerprint({"dataset": "synthetic", "data_root": None}, 5, [3, 32, 32])
    assert key != real_test_fingerprint({"dataset": "synthetic", "data_root": None}, 3, [3, 32, 32])


def test_class_accuracy_figure_shows_each_class_bar_the_overall_and_chance_lines_and_the_fd():
    result = {"per_class_accuracy": {"owl": 90.0, "cat": 20.0, "dog": 55.5}, "accuracy": 55.17, "fd": 12.345,
              "n": 33}
    fig = quality.class_accuracy_figure(result, CLASSES, "clf classifying samples of gan")
    try:
        [ax] = fig.axes
        bars = ax.patches
        assert [b.get_height() for b in bars] == [20.0, 55.5, 90.0]  # in the classes' order, not the dict's
        assert [b.get_x() + b.get_width() / 2 for b in bars] == pytest.approx([0, 1, 2])
        assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
        lines = {ln.get_label(): ln.get_ydata() for ln in ax.get_lines()}
        assert set(lines) == {"overall 55.2%", "chance"}
        assert list(lines["overall 55.2%"]) == [55.17, 55.17] and list(lines["chance"]) == [100 / 3, 100 / 3]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["overall 55.2%", "chance"]
        assert ax.get_ylim() == (0.0, 100.0) and ax.get_ylabel() == "classified as its class (%)"
        assert ax.get_title() == "clf classifying samples of gan (FD 12.3 at n=33)"
    finally:
        plt.close(fig)
    fig = quality.class_accuracy_figure({**result, "fd": None}, CLASSES, "x")
    try:
        assert fig.axes[0].get_title() == "x (no FD)"
    finally:
        plt.close(fig)
