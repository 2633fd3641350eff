"""The classifier score of `quality` and of evaluation during training (issue 15, item 3): its floor and its
score at the same n, KID beside FD, and the per-class "is it the requested class" accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.compute.classifier_score import _perm, classifier_scores, classify, subset_sizes
from engine.compute.data.device_data import to_unit_range
from engine.compute.data.synthetic import make_synthetic
from engine.compute.models.acgan import ACGANDConfig, ACGANDiscriminator
from engine.compute.viz.frechet import frechet_distance, kernel_distance

CLASSES = [str(i) for i in range(10)]


def discriminator(width: int = 8, seed: int = 0) -> ACGANDiscriminator:
    torch.manual_seed(seed)
    return ACGANDiscriminator(ACGANDConfig(width=width, in_channels=3, image_size=32, num_classes=10)).eval()


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two samples of one distribution: 'generated' (the train split) and 'real' (the test split)."""
    s = make_synthetic(n_train=150, n_test=120, seed=0)
    return (to_unit_range(torch.from_numpy(s.x_train)), torch.from_numpy(s.y_train.astype(np.int64)),
            to_unit_range(torch.from_numpy(s.x_test)))


def test_the_floor_and_the_score_use_the_same_n(data):
    gen, labels, real = data
    D = discriminator()
    r = classifier_scores(D, gen, labels, real, CLASSES)
    n = r["n"]
    assert n == subset_sizes(150, 150, 120) == 60  # real // 2: two disjoint real sets of n
    assert r["n_generated"] == 150 and r["n_real"] == 120
    # the same sets again, by the module's own seeded choice: n generated vs real set A, real set B vs A
    idx = _perm(120, 0)
    a, b = idx[:n], idx[n:2 * n]
    assert len(set(a.tolist()) & set(b.tolist())) == 0  # disjoint: the floor never compares an image to itself
    _, fa = classify(D, real[a])
    _, fb = classify(D, real[b])
    _, fg = classify(D, gen)
    fg = fg[_perm(150, 1)[:n].numpy()]
    assert fa.shape[0] == fb.shape[0] == fg.shape[0] == n
    assert r["fd"] == pytest.approx(frechet_distance(fg, fa), rel=1e-9)
    assert r["fd_floor"] == pytest.approx(frechet_distance(fb, fa), rel=1e-9)
    assert r["kid"] == pytest.approx(kernel_distance(fg, fa)[0], rel=1e-9, abs=1e-12)
    assert r["kid_floor"] == pytest.approx(kernel_distance(fb, fa)[0], rel=1e-9, abs=1e-12)
    assert classifier_scores(D, gen, labels, real, CLASSES, n=25)["n"] == 25  # a smaller request is honoured


def test_too_few_real_images_give_no_distance_rather_than_a_fake_one(data):
    gen, labels, real = data
    r = classifier_scores(discriminator(), gen[:20], labels[:20], real[:3], CLASSES)
    assert r["n"] == 1 and "fd" not in r and "kid" not in r and r["note"].startswith("FD/KID skipped")
    assert 0 <= r["accuracy"] <= 100  # the accuracy needs no real set


@pytest.mark.slow
def test_a_perfect_generator_scores_its_floor():
    """Samples of the real distribution itself score about the floor; the old floor (two halves) against a
    score at twice its n put a perfect generator near half of it (issue 15's measurement)."""
    s = make_synthetic(n_train=400, n_test=400, seed=1)
    gen, real = to_unit_range(torch.from_numpy(s.x_train)), to_unit_range(torch.from_numpy(s.x_test))
    labels = torch.from_numpy(s.y_train.astype(np.int64))
    ratios, old = [], []
    for seed in range(3):
        D = discriminator(width=16, seed=seed)
        r = classifier_scores(D, gen, labels, real, CLASSES)
        ratios.append(r["fd"] / r["fd_floor"])
        _, fg = classify(D, gen)
        _, fr = classify(D, real)
        old.append(frechet_distance(fg, fr) / frechet_distance(fr[:200], fr[200:]))
    assert 0.7 < float(np.mean(ratios)) < 1.4, ratios
    assert float(np.mean(old)) < 0.7, old  # what the same n fixes


def test_kid_is_unbiased_and_symmetric():
    rng = np.random.RandomState(0)
    a, b, shifted = rng.randn(200, 16), rng.randn(200, 16), rng.randn(200, 16) + 0.5
    same, same_ba = kernel_distance(a, b), kernel_distance(b, a)
    assert same[0] == pytest.approx(same_ba[0], rel=1e-9, abs=1e-12)
    assert abs(same[0]) < 0.05 < kernel_distance(a, shifted)[0]  # about 0 for one distribution, at n=200
    with pytest.raises(ValueError, match="at least 2"):
        kernel_distance(a[:1], b)


def test_per_class_accuracy_is_whether_each_sample_is_its_requested_class(data):
    gen, _, real = data
    D = discriminator()
    with torch.no_grad():  # a classifier that calls everything class 3
        D.fc10.weight.zero_()
        D.fc10.bias.copy_(torch.arange(10) == 3)
    labels = torch.arange(150) % 10  # each class asked for 15 times
    r = classifier_scores(D, gen, labels, real, CLASSES)
    assert r["per_class_accuracy"] == {c: (100.0 if c == "3" else 0.0) for c in CLASSES}
    assert r["accuracy"] == pytest.approx(10.0)
