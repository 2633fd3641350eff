"""The training side of the science core pinned exactly (issue 19): noise and save-noise, the gradient penalty
(both implementations), the lr schedule and where it is applied, the ACGAN step's bookkeeping and the
mode-collapse signals.

Each value is checked against a transcription of the course text's cells (002: save_noise, the noise of the
training loop, the lr drops at epochs 50 and 75) or against a case whose answer is known in closed form (a
linear critic's input gradient is its weight vector, so the penalty is lam * (|w| - 1)^2), never a loose
"it went down". In-process and tiny, so mutation testing (bench/mutation.py) sees every line they reach.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.compute.mode_collapse import class_spread, diversity, mean_pairwise_distance
from engine.compute.models.acgan import ACGANDConfig, ACGANDiscriminator, ACGANGConfig
from engine.compute.recipes.acgan import (
    ACGANTrainer,
    class_noise,
    gradient_penalty,
    gradient_penalty_func,
    save_noise,
)
from engine.compute.recipes.baseline import BaselineTrainer
from engine.control.config import ACGAN_METRICS, resolve_config
from tests.helpers import course_gradient_penalty, tiny_npz

# ------------------------------------------------------------------------------------------ noise


def course_save_noise(n_z: int, n_classes: int = 10):
    """002's cell, transcribed (its `noise[np.arange(100, :n_classes)` typo read as `noise[np.arange(100), ...]`)."""
    np.random.seed(352)
    label = np.asarray(list(range(10)) * 10)
    noise = np.random.normal(0, 1, (100, n_z))
    label_onehot = np.zeros((100, n_classes))
    label_onehot[np.arange(100), label] = 1
    noise[np.arange(100), :n_classes] = label_onehot[np.arange(100)]
    return noise.astype(np.float32), label


def test_save_noise_is_the_course_cell():
    state = np.random.get_state()
    try:
        expected, labels = course_save_noise(100)
    finally:
        np.random.set_state(state)
    noise, ours = save_noise(100, 10)
    assert noise.dtype == torch.float32 and ours.dtype == torch.int64
    assert np.array_equal(noise.numpy(), expected) and np.array_equal(ours.numpy(), labels)
    other, _ = save_noise(100, 10, seed=353)
    assert not torch.equal(other, noise) and torch.equal(other[:, :10], noise[:, :10])  # the seed is used


def test_class_noise_is_the_course_draw_with_the_one_hot_in_front():
    labels = torch.tensor([3, 0, 9, 9, 5])
    g = torch.Generator().manual_seed(11)
    replay = torch.Generator().manual_seed(11)
    z = class_noise(labels, 16, 10, g)
    expected = torch.randn(5, 16, generator=replay)
    onehot = np.zeros((5, 10), dtype=np.float32)
    onehot[np.arange(5), labels.numpy()] = 1  # the course's label_onehot
    expected[:, :10] = torch.from_numpy(onehot)
    assert torch.equal(z, expected)
    assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=replay))  # one draw, no more


# ------------------------------------------------------------------------------------------ gradient penalty


class LinearCritic(nn.Module):
    """score = w . x + c: the input gradient is w for every x, so the penalty is lam * (|w| - 1)^2."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor):
        score = x.flatten(1) @ self.w + 0.5
        return score, torch.stack([score, -score], 1)


@pytest.mark.parametrize("penalty", [gradient_penalty, gradient_penalty_func])
def test_gradient_penalty_of_a_linear_critic_is_known_in_closed_form(penalty):
    g = torch.Generator().manual_seed(2)
    w = torch.randn(12, generator=g) * 0.7
    critic = LinearCritic(w.clone())
    real, fake = torch.randn(5, 3, 2, 2, generator=g), torch.randn(5, 3, 2, 2, generator=g)
    alpha = torch.rand(5, 1, 1, 1, generator=g)
    gp = penalty(critic, real, fake, alpha, 3.0, contextlib.nullcontext)
    assert gp.item() == pytest.approx(3.0 * (w.norm().item() - 1.0) ** 2, rel=1e-5)
    # the penalty is differentiable in the critic's weights: d/dw lam (|w| - 1)^2 = 2 lam (|w| - 1) w / |w|
    (dw,) = torch.autograd.grad(gp, critic.w)
    assert torch.allclose(dw, 2 * 3.0 * (w.norm() - 1) * w / w.norm(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("penalty", [gradient_penalty, gradient_penalty_func])
@pytest.mark.parametrize("lam", [10.0, 2.5])
def test_gradient_penalty_matches_the_course_on_the_discriminator(penalty, lam):
    torch.manual_seed(0)
    D = ACGANDiscriminator(ACGANDConfig(width=8))
    g = torch.Generator().manual_seed(4)
    real, fake = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1, torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    alpha = torch.rand(3, 1, 1, 1, generator=g)
    alpha[0] = 1.0  # one interpolate is the real image itself, another the fake one
    alpha[1] = 0.0
    ours = penalty(D, real, fake, alpha, lam, contextlib.nullcontext)
    theirs = course_gradient_penalty(D, real, fake, alpha, lam=lam)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    # the weights' gradients of the penalty (fc10 and fc1's bias do not reach the input gradient: None)
    ours_grads = torch.autograd.grad(ours, list(D.parameters()), allow_unused=True)
    their_grads = torch.autograd.grad(theirs, list(D.parameters()), allow_unused=True)
    assert [a is None for a in ours_grads] == [b is None for b in their_grads]
    for a, b in zip(ours_grads, their_grads):
        assert a is None or torch.allclose(a, b, rtol=1e-4, atol=1e-7)


# ------------------------------------------------------------------------------------------ lr schedules


def course_lr_by_epoch(epochs: int, learning_rate: float) -> list[float]:
    """002's loop: the lr is set to lr/10 when epoch == 50 and to lr/100 when epoch == 75, and stays."""
    lr, out = learning_rate, []
    for epoch in range(epochs):
        if epoch == 50:
            lr = learning_rate / 10.0
        if epoch == 75:
            lr = learning_rate / 100.0
        out.append(lr)
    return out


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return tiny_npz(tmp_path_factory.mktemp("data") / "d.npz", n_train=32, n_test=16)


def baseline(tmp_path, npz, *extra: str) -> BaselineTrainer:
    cfg = resolve_config("baseline", assignments=[f"dataset=npz:{npz}", "width=8", "batch_size=16",
                                                   "device=cpu", "threads=1", *extra])
    t = BaselineTrainer(cfg, tmp_path / "run")
    t.setup()
    return t


def test_baseline_lr_schedule_is_the_course_loop_epoch_by_epoch(tmp_path, npz):
    t = baseline(tmp_path, npz, "lr=0.002")
    assert [t.lr_for_epoch(e) for e in range(100)] == pytest.approx(course_lr_by_epoch(100, 0.002), rel=1e-12)
    other = baseline(tmp_path, npz, "lr_drop_epochs=[2,5]", "lr_drop_factors=[0.5,0.25]")
    assert [other.lr_for_epoch(e) for e in range(7)] == pytest.approx(
        [1e-4, 1e-4, 5e-5, 5e-5, 5e-5, 2.5e-5, 2.5e-5], rel=1e-12)


def test_begin_epoch_puts_the_schedule_into_every_param_group(tmp_path, npz):
    t = baseline(tmp_path, npz, "lr=0.002")
    for epoch, lr in ((0, 0.002), (50, 0.0002), (80, 0.00002)):
        t.epoch = epoch
        assert t.begin_epoch() == pytest.approx(lr, rel=1e-12)
        assert [g["lr"] for g in t.opt.param_groups] == pytest.approx([lr], rel=1e-12)
    assert t.model.training


def test_begin_epoch_draws_a_new_order_at_an_epoch_start_and_keeps_it_inside_one(tmp_path, npz):
    t = baseline(tmp_path, npz)
    replay = torch.Generator()
    replay.set_state(t.data_gen.get_state())
    t.order, t.batch = None, 0
    t.begin_epoch()
    assert torch.equal(t.order, torch.randperm(32, generator=replay)) and t.batch == 0
    t.batch = 0  # the next epoch: a fresh permutation from the same stream
    t.begin_epoch()
    assert torch.equal(t.order, torch.randperm(32, generator=replay)) and t.batch == 0
    kept = t.order.clone()
    t.batch = 1  # resumed inside the epoch: same order, same position
    t.begin_epoch()
    assert torch.equal(t.order, kept) and t.batch == 1


def test_baseline_builds_the_configured_classifier_and_adam(tmp_path, npz):
    t = baseline(tmp_path, npz, "width=12", "leaky_slope=0.3", "lr=0.003", "betas=[0.2,0.7]")
    assert t.model.cfg == ACGANDConfig(width=12, in_channels=3, image_size=32, num_classes=10, leaky_slope=0.3)
    (group,) = t.opt.param_groups
    assert group["lr"] == pytest.approx(0.003) and tuple(group["betas"]) == pytest.approx((0.2, 0.7))
    assert {id(p) for p in group["params"]} == {id(p) for p in t.model.parameters()}


# ------------------------------------------------------------------------------------------ the ACGAN step


@pytest.fixture
def acgan(tmp_path, npz):
    cfg = resolve_config("acgan-wgangp", assignments=[f"dataset=npz:{npz}", "width=8", "batch_size=4",
                                                      "device=cpu", "threads=1", "gen_every=2", "lr=0.0003",
                                                      "n_z=24", "save_noise_seed=7", "betas=[0.1,0.8]",
                                                      "leaky_slope=0.3"])
    t = ACGANTrainer(cfg, tmp_path / "run")
    t.setup()
    return t


def test_acgan_builds_with_the_configured_optimizers_and_the_course_save_noise(acgan):
    t = acgan
    for opt, module in ((t.opt_d, t.D), (t.opt_g, t.G)):
        (group,) = opt.param_groups
        assert group["lr"] == pytest.approx(3e-4) and tuple(group["betas"]) == pytest.approx((0.1, 0.8))
        assert {id(p) for p in group["params"]} == {id(p) for p in module.parameters()}
    noise, labels = save_noise(24, 10, 7)
    assert torch.equal(t.fixed_noise, noise) and torch.equal(t.fixed_labels, labels)
    assert t.D.cfg == ACGANDConfig(width=8, in_channels=3, image_size=32, num_classes=10, leaky_slope=0.3)
    assert t.G.cfg == ACGANGConfig(width=8, n_z=24, out_channels=3)
    t.epoch = 90
    assert t.begin_epoch() == pytest.approx(3e-4)  # the ACGAN recipe keeps a constant lr


def snapshot(t: ACGANTrainer):
    return ({k: v.clone() for k, v in t.D.state_dict().items()}, {k: v.clone() for k, v in t.G.state_dict().items()},
            t.noise_gen.get_state())


def restore(t: ACGANTrainer, snap, opt_d, opt_g) -> None:
    t.D.load_state_dict(snap[0])
    t.G.load_state_dict(snap[1])
    t.noise_gen.set_state(snap[2])
    t.opt_d.load_state_dict(opt_d)
    t.opt_g.load_state_dict(opt_g)


def test_acgan_train_step_trains_g_every_gen_every_steps_and_stacks_the_metric_order(acgan):
    import copy

    t = acgan
    x, y = t.data.train_batch(torch.arange(4), None, False)
    snap, opt_d, opt_g = snapshot(t), copy.deepcopy(t.opt_d.state_dict()), copy.deepcopy(t.opt_g.state_dict())

    step1 = t.train_step(x, y, 1)  # 1 % 2 != 0: no generator step
    assert all(torch.equal(p, snap[1][name]) for name, p in t.G.named_parameters())  # G's weights: untouched
    restore(t, snap, opt_d, opt_g)
    terms = t.train_discriminator(x, y)
    expected = dict(zip(ACGAN_METRICS, [*terms[:5], torch.tensor(0.0), torch.tensor(0.0), terms[5]]))
    assert dict(zip(ACGAN_METRICS, step1)) == {k: pytest.approx(float(v), rel=1e-6) for k, v in expected.items()}

    restore(t, snap, opt_d, opt_g)
    step0 = t.train_step(x, y, 0)  # 0 % 2 == 0: the generator step first, then the critic's
    g_after = {k: v.clone() for k, v in t.G.state_dict().items()}
    restore(t, snap, opt_d, opt_g)
    gen = t.train_generator(4)
    terms = t.train_discriminator(x, y)
    expected = dict(zip(ACGAN_METRICS, [*terms[:5], gen[0], gen[1], terms[5]]))
    assert dict(zip(ACGAN_METRICS, step0)) == {k: pytest.approx(float(v), rel=1e-6) for k, v in expected.items()}
    assert all(not torch.equal(g_after[name], snap[1][name]) for name, _ in t.G.named_parameters())
    for step, trains_g in ((2, True), (3, False)):  # every gen_every-th step, not only the first
        before = [p.clone() for p in t.G.parameters()]
        values = dict(zip(ACGAN_METRICS, t.train_step(x, y, step)))
        assert any(not torch.equal(a, b) for a, b in zip(before, t.G.parameters())) == trains_g
        assert (values["gen_class"] != 0) == trains_g
    assert t.metric_present(0) == tuple(1.0 for _ in ACGAN_METRICS)
    assert t.metric_present(1) == tuple(0.0 if m.startswith("gen_") else 1.0 for m in ACGAN_METRICS)
    assert t.metric_present(3) == t.metric_present(1) and t.metric_present(4) == t.metric_present(0)


def test_acgan_sample_grid_and_class_spread_use_the_fixed_noise_in_eval_mode(acgan):
    t = acgan
    t.G.train()
    t.D.train()
    with torch.no_grad():
        ref_g = t.G.eval()
        images = ref_g(t.fixed_noise)
        logits = t.D.eval()(images)[1]
    t.G.train()
    t.D.train()
    assert torch.equal(t.sample_grid(), images) and t.G.training
    signals = t.epoch_signals()
    assert signals == {"class_spread": pytest.approx(class_spread(logits, 10), abs=1e-12)}
    assert t.G.training and t.D.training
    assert torch.equal(t._grid_images, images)


# ------------------------------------------------------------------------------------------ mode collapse


def test_class_spread_by_hand():
    two = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # p = (3/4, 1/4) over 2 classes
    assert class_spread(two, 2) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2))
    assert class_spread(torch.tensor([[0.0, 2.0, 1.0]]), 3) == pytest.approx(0.0)  # one image: one class
    assert class_spread(torch.zeros(0, 4), 4) == pytest.approx(0.0)  # no images: no spread (and no NaN)
    assert class_spread(torch.tensor([[0.3]]), 1) == 1.0  # one class cannot collapse further
    # 3 classes, counts (2, 1, 1) of 4: -(1/2 ln 1/2 + 2 * 1/4 ln 1/4) / ln 3
    three = F.one_hot(torch.tensor([0, 0, 1, 2]), 3).float()
    assert class_spread(three, 3) == pytest.approx((0.5 * math.log(2) + 0.5 * math.log(4)) / math.log(3))


def test_mean_pairwise_distance_by_hand():
    points = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])  # distances 3, 4, 5 -> mean 12 / 3
    assert mean_pairwise_distance(points) == pytest.approx(4.0)
    assert mean_pairwise_distance(points[:2]) == pytest.approx(3.0)
    assert mean_pairwise_distance(points.view(3, 1, 2, 1)) == pytest.approx(4.0)  # any image shape
    with pytest.raises(ValueError, match="^the pairwise distance needs at least two images$"):
        mean_pairwise_distance(points[:1])
    assert diversity(points, 2.0) == pytest.approx(2.0) and diversity(points, 0.5) == pytest.approx(8.0)
    # a collapsed generator: 40 identical images are exactly 0 apart (no |a|^2 + |b|^2 - 2ab rounding)
    same = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)).repeat(40, 1, 1, 1)
    assert mean_pairwise_distance(same) == 0.0 and diversity(same, 1.0) == 0.0
    assert math.isnan(diversity(points, 0.0)) and math.isnan(diversity(points, -1.0))


# ------------------------------------------------------------------------------------------ augmentation

RAMP = (145, 8, 6, 4)  # value = 145 + 8 w + 6 h + 4 c: at most 251 on an 8x8 RGB image
YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])  # NTSC


def ramp_images(b: int, ch: int, size: int = 8) -> torch.Tensor:
    """uint8 images linear in both coordinates (RAMP: offset, per column, per row, per channel): bilinear
    sampling of a linear image is exact, so every output pixel of a crop/flip is known in closed form. Bright
    enough (up to 251 / 255) that a brightness factor above ~1.02 has pixels to clamp."""
    h, w = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    a, bw, bh, bc = RAMP
    a += 5 * (3 - ch)  # grey images as bright as RGB ones (at most 253)
    base = np.stack([a + bw * w + bh * h + bc * c for c in range(ch)])
    return torch.from_numpy(np.repeat(base[None], b, 0).astype(np.uint8))


def expected_augment(ch: int, size: int, u: np.ndarray, clamp_brightness: bool = True) -> np.ndarray:
    """The documented transform on ramp_images, sample by sample in float64: crop of area 0.7-1 (ratio 1)
    centred anywhere inside, flip when u3 < 0.5, brightness then contrast (about the grey mean), and for
    RGB saturation and hue (a rotation of the YIQ chroma by up to 0.02 turns); [0, 1] -> [-1, 1]."""
    out = []
    centres = (2 * np.arange(size) + 1) / size - 1  # align_corners=False pixel centres in [-1, 1]
    for s in u.astype(np.float64):
        side = np.sqrt(0.7 + 0.3 * s[0])
        flip = -1.0 if s[3] < 0.5 else 1.0
        cx, cy = (1 - side) * (2 * s[1] - 1), (1 - side) * (2 * s[2] - 1)
        xs = side * flip * centres + cx  # where output column w samples the input, normalised
        ys = side * centres + cy
        ix = np.clip(((xs + 1) * size - 1) / 2, 0, size - 1)  # border padding: clamp to the edge pixels
        iy = np.clip(((ys + 1) * size - 1) / 2, 0, size - 1)
        a, bw, bh, bc = RAMP
        a += 5 * (3 - ch)
        img = np.stack([a + bw * ix[None, :] + bh * iy[:, None] + bc * c for c in range(ch)]) / 255.0
        img = img * (0.9 + 0.2 * s[4])
        img = np.clip(img, 0, 1) if clamp_brightness else img
        grey = np.tensordot(YIQ[0], img, 1) if ch == 3 else img[0]
        mean = grey.mean()
        img = (img - mean) * (0.9 + 0.2 * s[5]) + mean
        if ch == 3:
            yiq = np.tensordot(YIQ, img, 1)
            sat, hue = 0.9 + 0.2 * s[6], (2 * s[7] - 1) * 0.02 * 2 * np.pi
            i, q = yiq[1].copy(), yiq[2].copy()
            yiq[1] = sat * (np.cos(hue) * i - np.sin(hue) * q)
            yiq[2] = sat * (np.sin(hue) * i + np.cos(hue) * q)
            img = np.tensordot(np.linalg.inv(YIQ), yiq, 1)
        out.append(np.clip(img, 0, 1) * 2 - 1)
    return np.stack(out)


@pytest.mark.parametrize("ch", [1, 3])
def test_augmentation_of_a_linear_image_is_known_in_closed_form(ch):
    from engine.compute.data.augment import augment_batch

    b, size = 12, 8
    u = torch.rand(b, 8, generator=torch.Generator().manual_seed(21))  # the function's one draw, replayed
    assert (u[:, 3] < 0.5).any() and (u[:, 3] >= 0.5).any()  # both flipped and unflipped samples
    out = augment_batch(ramp_images(b, ch, size), torch.Generator().manual_seed(21))
    assert out.dtype == torch.float32 and out.shape == (b, ch, size, size)
    expected = expected_augment(ch, size, u.numpy())
    assert np.allclose(out.numpy(), expected, atol=2e-5)
    # the clamp after brightness (as ColorJitter's) changes this case's answer
    assert not np.allclose(expected, expected_augment(ch, size, u.numpy(), clamp_brightness=False), atol=1e-4)


# ------------------------------------------------------------------------------------------ the BCE GANs' steps


def bce_trainer(tmp_path, recipe: str, *extra: str):
    from engine.compute.recipes.dcgan import DCGANTrainer
    from engine.compute.recipes.lab5_gan import Lab5GANTrainer
    from engine.compute.recipes.mlp_gan import MLPGANTrainer

    size, ch = (64, 3) if recipe == "dcgan" else (28, 1)
    npz = tiny_npz(tmp_path / "d.npz", n_train=16, n_test=8, channels=ch, size=size)
    cfg = resolve_config(recipe, assignments=[f"dataset=npz:{npz}", "width=8", "batch_size=4", "n_z=6", "device=cpu",
                                              "threads=1", "samples=4", "lr=0.001", "betas=[0.3,0.9]", *extra])
    cls = {"mlp-gan": MLPGANTrainer, "lab5-gan": Lab5GANTrainer, "dcgan": DCGANTrainer}[recipe]
    t = cls(cfg, tmp_path / "run")
    t.setup()
    return t


def copies(t):
    """Independent copies of G, D and both Adams (same lr, betas and state), and a replay of the noise stream."""
    import copy

    G, D = copy.deepcopy(t.G), copy.deepcopy(t.D)
    opt_g = torch.optim.Adam(G.parameters(), lr=0.001, betas=(0.3, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=0.001, betas=(0.3, 0.9))
    opt_g.load_state_dict(t.opt_g.state_dict())
    opt_d.load_state_dict(t.opt_d.state_dict())
    g = torch.Generator()
    g.set_state(t.noise_gen.get_state())
    return G, D, opt_g, opt_d, g


def assert_same(t, G, D, values, expected) -> None:
    assert torch.allclose(values, torch.stack([torch.as_tensor(v).float() for v in expected]), rtol=1e-5, atol=1e-6)
    for ours, theirs in ((t.G, G), (t.D, D)):
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            assert torch.allclose(p, q, rtol=1e-5, atol=1e-6), name


def test_mlp_gan_step_is_the_001_training_loop(tmp_path):
    """001: D on cat([real, fake]) against labels [1]*B + [0]*B (one BCE), then G on fresh noise against 1."""
    t = bce_trainer(tmp_path, "mlp-gan")
    x, y = t.data.train_batch(torch.arange(4), None, False)
    G, D, opt_g, opt_d, g = copies(t)
    values = t.train_step(x, y, 0)

    criterion = nn.BCEWithLogitsLoss()
    images = (x + 1) / 2  # 001's data are in [0, 1]
    noise = torch.randn(4, 6, generator=g)
    fake_images = G(noise)
    inputs = torch.cat([images, fake_images])
    labels = torch.cat([torch.ones(4), torch.zeros(4)])
    d_outputs = D(inputs)
    d_loss = criterion(d_outputs, labels)
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    noise = torch.randn(4, 6, generator=g)
    outputs = D(G(noise))
    g_loss = criterion(outputs, torch.ones(4))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    scores = torch.sigmoid(d_outputs.detach())
    assert_same(t, G, D, values, [d_loss.detach(), g_loss.detach(), scores[:4].mean(), scores[4:].mean()])
    assert all(p.requires_grad for p in t.D.parameters())


def test_lab5_gan_step_is_the_003_training_loop(tmp_path):
    """003: fakes without a graph; D: BCE(real, 1) and BCE(fake, 0), two backward passes, one step; then G."""
    t = bce_trainer(tmp_path, "lab5-gan")
    x, y = t.data.train_batch(torch.arange(4), None, False)
    G, D, opt_g, opt_d, g = copies(t)
    values = t.train_step(x, y, 0)

    criterion = nn.BCELoss()
    with torch.no_grad():
        fake = G(torch.randn(4, 6, generator=g))
    opt_d.zero_grad()
    d_real = torch.sigmoid(D.logits(x))
    loss_real = criterion(d_real, torch.ones_like(d_real))
    loss_real.backward()
    d_fake = torch.sigmoid(D.logits(fake))
    loss_fake = criterion(d_fake, torch.zeros_like(d_fake))
    loss_fake.backward()
    opt_d.step()
    opt_g.zero_grad()
    out = torch.sigmoid(D.logits(G(torch.randn(4, 6, generator=g))))
    g_loss = criterion(out, torch.ones_like(out))
    g_loss.backward()
    opt_g.step()
    assert_same(t, G, D, values, [(loss_real + loss_fake).detach(), g_loss.detach(), d_real.detach().mean(),
                                  d_fake.detach().mean()])
    assert all(p.requires_grad for p in t.D.parameters())


def test_dcgan_step_is_the_004_training_loop(tmp_path):
    """004: D on a real batch (label 1) and on fake.detach() (label 0), one step; G on the same fakes through
    the updated D (label 1); returns errD, errG, D(x), D(G(z)) before and after D's step."""
    t = bce_trainer(tmp_path, "dcgan")
    x, y = t.data.train_batch(torch.arange(4), None, False)
    G, D, opt_g, opt_d, g = copies(t)
    values = t.train_step(x, y, 0)

    criterion = nn.BCELoss()
    D.zero_grad()
    output = torch.sigmoid(D.logits(x)).view(-1)
    errD_real = criterion(output, torch.full((4,), 1.0))
    errD_real.backward()
    D_x = output.mean().item()
    fake = G(torch.randn(4, 6, generator=g))
    output = torch.sigmoid(D.logits(fake.detach())).view(-1)
    errD_fake = criterion(output, torch.full((4,), 0.0))
    errD_fake.backward()
    D_G_z1 = output.mean().item()
    opt_d.step()
    G.zero_grad()
    output = torch.sigmoid(D.logits(fake)).view(-1)
    errG = criterion(output, torch.full((4,), 1.0))
    errG.backward()
    D_G_z2 = output.mean().item()
    opt_g.step()
    assert_same(t, G, D, values, [(errD_real + errD_fake).detach(), errG.detach(), D_x, D_G_z1, D_G_z2])
    assert all(p.requires_grad for p in t.D.parameters())


@pytest.mark.parametrize("recipe", ["mlp-gan", "lab5-gan"])
def test_bce_gan_noise_ranges_and_diversity_signal(tmp_path, recipe):
    t = bce_trainer(tmp_path, recipe, "seed=5")
    fixed = torch.Generator().manual_seed(5)
    assert torch.equal(t.fixed_noise, torch.randn(4, 6, generator=fixed))
    assert torch.equal(t.signal_noise, torch.randn(256, 6, generator=fixed))
    idx = torch.randperm(16, generator=fixed)
    real = t.data.x_train.index_select(0, idx).float() / 127.5 - 1
    assert t.real_distance == pytest.approx(mean_pairwise_distance(real), rel=1e-6)
    g = torch.Generator()
    g.set_state(t.noise_gen.get_state())
    assert torch.equal(t.noise(3), torch.randn(3, 6, generator=g))
    x = torch.tensor([-1.0, 0.0, 1.0])
    unit = recipe == "mlp-gan"  # 001's sigmoid generator works in [0, 1]
    assert torch.equal(t.to_model_range(x), torch.tensor([0.0, 0.5, 1.0]) if unit else x)
    assert torch.equal(t.to_image_range(torch.tensor([0.0, 0.5, 1.0])),
                       torch.tensor([-1.0, 0.0, 1.0]) if unit else torch.tensor([0.0, 0.5, 1.0]))
    t.G.train()
    with torch.no_grad():
        out = t.G(t.signal_noise)
    images = out * 2 - 1 if unit else out
    assert t.epoch_signals() == {"diversity": pytest.approx(mean_pairwise_distance(images) / t.real_distance,
                                                            rel=1e-5)}
    assert t.generate(t.fixed_noise).min() >= -1.0
    for opt in (t.opt_d, t.opt_g):
        assert tuple(opt.param_groups[0]["betas"]) == pytest.approx((0.3, 0.9))
        assert opt.param_groups[0]["lr"] == pytest.approx(0.001)


def test_lab5_gan_trains_on_the_chosen_digits_only(tmp_path):
    t = bce_trainer(tmp_path, "lab5-gan", "classes=[3,5]", "batch_size=2")
    assert set(t.data.y_train.tolist()) == {3, 5} and t.data.num_train == 4  # 2 of each in the 16


def test_the_classifier_heads_of_baseline_and_acgan_follow_the_data_s_classes(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(24, 3, 32, 32), dtype=np.uint8)
    y = (np.arange(24) % 4).astype(np.uint8)  # four classes
    np.savez(tmp_path / "four.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    t = baseline(tmp_path, tmp_path / "four.npz", "batch_size=8")
    assert t.data.num_classes == 4 and t.model.cfg.num_classes == 4 and t.model.fc10.out_features == 4
    cfg = resolve_config("acgan-wgangp", assignments=[f"dataset=npz:{tmp_path / 'four.npz'}", "width=8",
                                                      "batch_size=8", "device=cpu", "threads=1"])
    a = ACGANTrainer(cfg, tmp_path / "acgan")
    a.setup()
    assert a.D.cfg.num_classes == 4 and a.D.fc10.out_features == 4


def test_the_course_s_two_critic_passes_give_the_joint_pass_s_terms(acgan):
    t = acgan
    x, y = t.data.train_batch(torch.arange(4), None, False)
    g = torch.Generator().manual_seed(3)
    fake = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    fake_labels, alpha = torch.tensor([1, 7, 7, 0]), torch.rand(4, 1, 1, 1, generator=g)
    joint = t.critic_terms(x, y, fake, fake_labels, alpha)
    t.joint_critic_pass = False
    try:
        two = t.critic_terms(x, y, fake, fake_labels, alpha)
    finally:
        t.joint_critic_pass = True
    for a, b in zip(joint, two):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_acgan_eval_images_are_g_of_the_class_noise(acgan):
    t = acgan
    labels = torch.tensor([0, 4, 9])
    replay = torch.Generator().manual_seed(8)
    t.G.eval()
    with torch.no_grad():
        images = t.eval_images(labels, torch.Generator().manual_seed(8))
        expected = t.G(class_noise(labels, 24, 10, replay))
    assert torch.equal(images, expected) and images.shape == (3, 3, 32, 32)
