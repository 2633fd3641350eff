"""The simpler BCE GANs' build pinned exactly (issue 19): the networks `build_gan_models` makes from a config
(001's MLP GAN, 003's Lab-5 GAN, 004's DCGAN), their Adams, the fixed real images behind the diversity signal
and `eval_images`.

Each network is checked against its config layer by layer and against a forward pass computed by hand
(x @ W^T + b and LeakyReLU as max(x, 0) + slope * min(x, 0)), the Adams against the course texts' lr and betas,
the signal's real images against a replay of the fixed generator's draws, never a loose "it went down".
In-process and tiny, so mutation testing (bench/mutation.py) sees every line they reach.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.compute.mode_collapse import mean_pairwise_distance
from engine.compute.models.dcgan import DCGANConfig
from engine.compute.models.mlp import Lab5Config, MLPConfig, mlp_d_hidden
from engine.compute.recipes.bce_gan import SIGNAL_BATCH, build_gan_models
from engine.control.config import MLP_GAN, resolve_config
from tests.helpers import layer_table, tiny_npz

# ------------------------------------------------------------------------------------------ by hand


def hand_forward(seq: nn.Sequential, x: torch.Tensor, slope: float) -> torch.Tensor:
    """`seq` run layer by layer, its Linear layers and LeakyReLUs written out (LeakyReLU with `slope`, the
    config's, not the module's); any other layer (conv, BatchNorm, Sigmoid, Tanh) is the module itself."""
    for m in seq:
        if isinstance(m, nn.Linear):
            x = x @ m.weight.T + m.bias
        elif isinstance(m, nn.LeakyReLU):
            x = x.clamp(min=0) + slope * x.clamp(max=0)
        else:
            x = m(x)
    return x


def has_negatives_before_each_leaky(seq: nn.Sequential, x: torch.Tensor) -> bool:
    """Whether every LeakyReLU of `seq` sees negative inputs (else its slope would not show in the output)."""
    seen = []
    for m in seq:
        if isinstance(m, nn.LeakyReLU):
            seen.append(bool((x < 0).any()))
        x = m(x)
    return all(seen) and bool(seen)


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ the networks


def test_mlp_gan_networks_follow_the_config():
    """001: G n_z -> width -> LeakyReLU -> C*H*W -> Sigmoid; D C*H*W -> width -> width // 3 -> 1."""
    torch.manual_seed(0)
    cfg = {"width": 9, "n_z": 5, "leaky_slope": 0.35}
    G, D = build_gan_models("mlp-gan", cfg, 2, 4)  # 2 channels of 4x4: 32 pixels
    mc = MLPConfig(width=9, n_z=5, leaky_slope=0.35, channels=2, image_size=4)
    assert G.cfg == mc and D.cfg == mc
    assert layer_table(G.model) == [("linear", 5, 9), ("leaky", 0.35), ("linear", 9, 32), ("sigmoid",)]
    assert layer_table(D.model) == [("linear", 32, 9), ("leaky", 0.35), ("linear", 9, 3), ("leaky", 0.35),
                                    ("linear", 3, 1)]
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, 5, generator=g)
    x = torch.rand(6, 2, 4, 4, generator=g) * 2 - 1
    with torch.no_grad():
        assert has_negatives_before_each_leaky(G.model, z)
        assert has_negatives_before_each_leaky(D.model, x.reshape(6, 32))
        assert close(G(z), hand_forward(G.model, z, 0.35).reshape(6, 2, 4, 4))
        assert close(D(x), hand_forward(D.model, x.reshape(6, 32), 0.35).reshape(6))


def test_lab5_gan_networks_follow_the_config():
    """003: G n_z -> w -> 2w -> 4w (LeakyReLU) -> C*H*W -> Tanh; D C*H*W -> 4w -> 2w -> w -> 1 -> Sigmoid."""
    torch.manual_seed(0)
    cfg = {"width": 3, "n_z": 5, "leaky_slope": 0.35}
    G, D = build_gan_models("lab5-gan", cfg, 2, 3)  # 2 channels of 3x3: 18 pixels
    lc = Lab5Config(width=3, n_z=5, leaky_slope=0.35, channels=2, image_size=3)
    assert G.cfg == lc and D.cfg == lc
    assert layer_table(G.model) == [("linear", 5, 3), ("leaky", 0.35), ("linear", 3, 6), ("leaky", 0.35),
                                    ("linear", 6, 12), ("leaky", 0.35), ("linear", 12, 18), ("tanh",)]
    assert layer_table(D.model) == [("linear", 18, 12), ("leaky", 0.35), ("linear", 12, 6), ("leaky", 0.35),
                                    ("linear", 6, 3), ("leaky", 0.35), ("linear", 3, 1), ("sigmoid",)]
    g = torch.Generator().manual_seed(1)
    z = torch.randn(8, 5, generator=g)
    x = torch.rand(8, 2, 3, 3, generator=g) * 2 - 1
    with torch.no_grad():
        assert has_negatives_before_each_leaky(G.model, z)
        assert has_negatives_before_each_leaky(D.model, x.reshape(8, 18))
        assert close(G(z), hand_forward(G.model, z, 0.35).reshape(8, 2, 3, 3))
        assert close(D(x), hand_forward(D.model, x.reshape(8, 18), 0.35).reshape(8))
        assert close(D.logits(x), hand_forward(D.model[:-1], x.reshape(8, 18), 0.35).reshape(8))


def test_dcgan_networks_follow_the_config():
    """004: G ends in a ConvT to the image channels at 64x64; D starts from them, LeakyReLU(slope) throughout."""
    torch.manual_seed(0)
    cfg = {"width": 2, "n_z": 5, "leaky_slope": 0.35}
    G, D = build_gan_models("dcgan", cfg, 1, 64)  # one channel: not DCGANConfig's default 3
    dc = DCGANConfig(width=2, n_z=5, channels=1, leaky_slope=0.35)
    assert G.cfg == dc and D.cfg == dc
    d_layers = layer_table(D.main)
    assert d_layers[0] == ("conv", 1, 2, 4, 2, 1, False)
    assert [row for row in d_layers if row[0] == "leaky"] == [("leaky", 0.35)] * 4
    assert layer_table(G.main)[-2:] == [("convT", 2, 1, 4, 2, 1, False), ("tanh",)]
    g = torch.Generator().manual_seed(1)
    z = torch.randn(3, 5, generator=g)
    x = torch.rand(3, 1, 64, 64, generator=g) * 2 - 1
    G.eval()
    D.eval()
    with torch.no_grad():
        assert tuple(G(z).shape) == (3, 1, 64, 64)
        assert has_negatives_before_each_leaky(D.main, x)
        assert close(D.logits(x), hand_forward(D.main[:-1], x, 0.35).reshape(3))
    with pytest.raises(ValueError):
        build_gan_models("dcgan", cfg, 1, 32)  # 004's networks make 64x64 images only
    with pytest.raises(ValueError):
        build_gan_models("acgan-wgangp", cfg, 1, 64)


def test_mlp_discriminator_second_layer_is_a_third_of_the_width_and_at_least_one():
    assert mlp_d_hidden(300) == (300, 100)  # 001: 784 -> 300 -> 100 -> 1
    assert mlp_d_hidden(3) == (3, 1) and mlp_d_hidden(5) == (5, 1) and mlp_d_hidden(6) == (6, 2)
    # width 3 is the smallest the mlp-gan config accepts: D is pixels -> 3 -> 1 -> 1
    (width_field,) = [f for f in MLP_GAN if f.name == "width"]
    assert width_field.min == 3
    _, D = build_gan_models("mlp-gan", {"width": 3, "n_z": 4, "leaky_slope": 0.2}, 1, 2)
    assert layer_table(D.model) == [("linear", 4, 3), ("leaky", 0.2), ("linear", 3, 1), ("leaky", 0.2),
                                    ("linear", 1, 1)]


# ------------------------------------------------------------------------------------------ the trainers


def trainer(tmp_path, recipe: str, *extra: str, n_train: int = 16):
    from engine.compute.recipes.dcgan import DCGANTrainer
    from engine.compute.recipes.lab5_gan import Lab5GANTrainer
    from engine.compute.recipes.mlp_gan import MLPGANTrainer

    size, ch = (64, 3) if recipe == "dcgan" else (28, 1)
    tmp_path.mkdir(parents=True, exist_ok=True)
    npz = tiny_npz(tmp_path / "d.npz", n_train=n_train, n_test=8, channels=ch, size=size)
    cfg = resolve_config(recipe, assignments=[f"dataset=npz:{npz}", "width=4", "batch_size=4", "n_z=6",
                                              "device=cpu", "threads=1", "samples=4", *extra])
    cls = {"mlp-gan": MLPGANTrainer, "lab5-gan": Lab5GANTrainer, "dcgan": DCGANTrainer}[recipe]
    t = cls(cfg, tmp_path / "run")
    t.setup()
    return t


def adam_settings(opt: torch.optim.Optimizer, module: nn.Module, kw: dict) -> tuple[float, tuple]:
    (group,) = opt.param_groups
    assert {id(p) for p in group["params"]} == {id(p) for p in module.parameters()}
    assert all(group[k] == v for k, v in kw.items())  # the runtime's Adam implementation (foreach/fused)
    return group["lr"], tuple(group["betas"])


# the texts' Adams: 001 `Adam(..., lr=lr, betas=(0.5, 0.999))` called with lr=0.0002; 003 "use Adam" (the
# recipe: lr 2e-4, Adam's default betas); 004 `Adam(..., lr=0.0002, betas=(opt.beta1, 0.999))`, beta1 0.5 as
# in the PyTorch DCGAN example the text follows
TEXT_ADAM = {"mlp-gan": (2e-4, (0.5, 0.999)), "lab5-gan": (2e-4, (0.9, 0.999)), "dcgan": (2e-4, (0.5, 0.999))}


@pytest.mark.parametrize("recipe", ["mlp-gan", "lab5-gan", "dcgan"])
def test_adam_pair_has_the_texts_and_the_configs_lr_and_betas(tmp_path, recipe):
    t = trainer(tmp_path / "text", recipe)
    kw = t.rt.optimizer_kwargs()
    for opt, module in ((t.opt_d, t.D), (t.opt_g, t.G)):
        lr, betas = adam_settings(opt, module, kw)
        assert lr == pytest.approx(TEXT_ADAM[recipe][0], rel=1e-12)
        assert betas == pytest.approx(TEXT_ADAM[recipe][1], rel=1e-12)
    t = trainer(tmp_path / "set", recipe, "lr=0.003", "betas=[0.2,0.7]")
    for opt, module in ((t.opt_d, t.D), (t.opt_g, t.G)):
        lr, betas = adam_settings(opt, module, kw)
        assert lr == pytest.approx(0.003, rel=1e-12) and betas == pytest.approx((0.2, 0.7), rel=1e-12)


def test_signal_real_images_are_256_drawn_by_the_fixed_generator(tmp_path):
    """More training images than the signal's 256: which 256 is the fixed generator's permutation after the
    fixed and signal noise, the same for the same seed whatever else the run draws."""
    n = SIGNAL_BATCH + 44
    t = trainer(tmp_path / "a", "mlp-gan", "seed=7", n_train=n)
    fixed = torch.Generator().manual_seed(7)
    assert torch.equal(t.fixed_noise, torch.randn(4, 6, generator=fixed))
    assert torch.equal(t.signal_noise, torch.randn(SIGNAL_BATCH, 6, generator=fixed))
    idx = torch.randperm(n, generator=fixed)[:SIGNAL_BATCH]
    real = t.data.x_train.index_select(0, idx).float() / 127.5 - 1
    assert t.real_distance == pytest.approx(mean_pairwise_distance(real), rel=1e-6)
    every = t.data.x_train.float() / 127.5 - 1
    assert t.real_distance != pytest.approx(mean_pairwise_distance(every), rel=1e-6)  # the subset matters
    # a wider G and D draw more of the global stream at their init: the choice does not change
    again = trainer(tmp_path / "b", "mlp-gan", "seed=7", "width=5", n_train=n)
    assert again.real_distance == t.real_distance


@pytest.mark.parametrize("recipe", ["mlp-gan", "lab5-gan"])
def test_eval_images_are_g_of_the_generators_noise_in_the_image_range(tmp_path, recipe):
    t = trainer(tmp_path, recipe)
    labels = torch.tensor([7, 0, 3, 3, 9])  # unconditional: only their number counts
    t.G.eval()
    with torch.no_grad():
        images = t.eval_images(labels, torch.Generator().manual_seed(21))
        out = t.G(torch.randn(5, 6, generator=torch.Generator().manual_seed(21)))
    expected = out * 2 - 1 if recipe == "mlp-gan" else out  # 001's sigmoid output is in [0, 1]
    assert images.dtype == torch.float32 and torch.equal(images, expected)
    assert images.min() >= -1 and images.max() <= 1 and images.min() < 0
