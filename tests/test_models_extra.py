"""The course texts' simpler GANs, layer by layer: 001 MLP GAN, 003 Lab-5 GAN, 004 DCGAN (sizes, activations,
BatchNorm placement, weight init, output ranges)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.compute.models.dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator, weights_init
from engine.compute.models.mlp import (
    Lab5Config,
    Lab5Discriminator,
    Lab5Generator,
    MLPConfig,
    MLPDiscriminator,
    MLPGenerator,
)


def layer_table(seq: nn.Sequential) -> list[tuple]:
    """(kind, sizes...) per layer: Linear in/out, conv in/out/kernel/stride/padding/bias, activation slopes."""
    out: list[tuple] = []
    for m in seq:
        if isinstance(m, nn.Linear):
            out.append(("linear", m.in_features, m.out_features))
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            kind = "convT" if isinstance(m, nn.ConvTranspose2d) else "conv"
            out.append((kind, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0],
                        m.bias is not None))
        elif isinstance(m, nn.LeakyReLU):
            out.append(("leaky", m.negative_slope))
        elif isinstance(m, nn.BatchNorm2d):
            out.append(("bn", m.num_features))
        else:
            out.append((type(m).__name__.lower(),))
    return out


def test_mlp_gan_matches_text_001():
    g, d = MLPGenerator(), MLPDiscriminator()
    assert layer_table(g.model) == [("linear", 100, 300), ("leaky", 0.2), ("linear", 300, 784), ("sigmoid",)]
    assert layer_table(d.model) == [("linear", 784, 300), ("leaky", 0.2), ("linear", 300, 100), ("leaky", 0.2),
                                    ("linear", 100, 1)]
    z = torch.randn(5, 100)
    img = g(z)
    assert img.shape == (5, 1, 28, 28) and img.min() >= 0 and img.max() <= 1  # sigmoid: ToTensor's [0, 1]
    logits = d(img)
    assert logits.shape == (5,)
    with torch.no_grad():  # raw logits: nothing squashes the last Linear's output
        d.model[-1].weight.zero_()
        d.model[-1].bias.fill_(5.0)
    assert torch.equal(d(img), torch.full((5,), 5.0))


def test_mlp_gan_width_scales_the_hidden_layers():
    g, d = MLPGenerator(MLPConfig(width=30)), MLPDiscriminator(MLPConfig(width=30))
    assert [t for t in layer_table(g.model) if t[0] == "linear"] == [("linear", 100, 30), ("linear", 30, 784)]
    assert [t for t in layer_table(d.model) if t[0] == "linear"] == [("linear", 784, 30), ("linear", 30, 10),
                                                                     ("linear", 10, 1)]


def test_lab5_gan_matches_text_003():
    g, d = Lab5Generator(), Lab5Discriminator()
    assert layer_table(g.model) == [("linear", 100, 256), ("leaky", 0.2), ("linear", 256, 512), ("leaky", 0.2),
                                    ("linear", 512, 1024), ("leaky", 0.2), ("linear", 1024, 784), ("tanh",)]
    assert layer_table(d.model) == [("linear", 784, 1024), ("leaky", 0.2), ("linear", 1024, 512), ("leaky", 0.2),
                                    ("linear", 512, 256), ("leaky", 0.2), ("linear", 256, 1), ("sigmoid",)]
    img = g(torch.randn(4, 100))
    assert img.shape == (4, 1, 28, 28) and img.min() >= -1 and img.max() <= 1
    p = d(img)
    assert p.shape == (4,) and ((p > 0) & (p < 1)).all()
    assert torch.allclose(torch.sigmoid(d.logits(img)), p)  # logits = everything but the final Sigmoid


def test_lab5_width_grows_in_g_and_shrinks_in_d():
    cfg = Lab5Config(width=8)
    g_sizes = [t[2] for t in layer_table(Lab5Generator(cfg).model) if t[0] == "linear"]
    d_sizes = [t[2] for t in layer_table(Lab5Discriminator(cfg).model) if t[0] == "linear"]
    assert g_sizes == [8, 16, 32, 784] and d_sizes == [32, 16, 8, 1]


def test_dcgan_generator_matches_text_004():
    g = DCGANGenerator()
    assert layer_table(g.main) == [
        ("convT", 100, 512, 4, 1, 0, False), ("bn", 512), ("relu",),
        ("convT", 512, 256, 4, 2, 1, False), ("bn", 256), ("relu",),
        ("convT", 256, 128, 4, 2, 1, False), ("bn", 128), ("relu",),
        ("convT", 128, 64, 4, 2, 1, False), ("bn", 64), ("relu",),
        ("convT", 64, 3, 4, 2, 1, False), ("tanh",),
    ]
    sizes = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
             for m in g.main if isinstance(m, nn.ConvTranspose2d)]
    out = g(torch.randn(2, 100))
    for h in hooks:
        h.remove()
    assert sizes == [4, 8, 16, 32, 64] and out.shape == (2, 3, 64, 64)
    assert g(torch.randn(2, 100, 1, 1)).shape == (2, 3, 64, 64)  # the text's z shape works too


def test_dcgan_discriminator_matches_text_004():
    d = DCGANDiscriminator()
    assert layer_table(d.main) == [
        ("conv", 3, 64, 4, 2, 1, False), ("leaky", 0.2),  # no BatchNorm on the first layer
        ("conv", 64, 128, 4, 2, 1, False), ("bn", 128), ("leaky", 0.2),
        ("conv", 128, 256, 4, 2, 1, False), ("bn", 256), ("leaky", 0.2),
        ("conv", 256, 512, 4, 2, 1, False), ("bn", 512), ("leaky", 0.2),
        ("conv", 512, 1, 4, 1, 0, False), ("sigmoid",),
    ]
    x = torch.randn(3, 3, 64, 64)
    p = d(x)
    assert p.shape == (3,) and ((p > 0) & (p < 1)).all()
    assert torch.allclose(torch.sigmoid(d.logits(x)), p, atol=1e-6)


def test_dcgan_one_channel_and_width():
    cfg = DCGANConfig(width=8, channels=1)
    assert DCGANGenerator(cfg)(torch.randn(2, 100)).shape == (2, 1, 64, 64)
    assert DCGANDiscriminator(cfg).main[0].in_channels == 1
    assert [t[2] for t in layer_table(DCGANGenerator(cfg).main) if t[0] == "convT"] == [64, 32, 16, 8, 1]


def test_dcgan_weight_init_follows_the_text():
    torch.manual_seed(0)
    g, d = DCGANGenerator(), DCGANDiscriminator()
    convs = [m for net in (g, d) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    weights = torch.cat([m.weight.detach().flatten() for m in convs])
    assert weights.mean().abs() < 1e-3 and float(weights.std()) == pytest.approx(0.02, rel=0.02)
    bns = [m for net in (g, d) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    gammas = torch.cat([m.weight.detach().flatten() for m in bns])
    assert float(gammas.mean()) == pytest.approx(1.0, abs=2e-3)
    assert float(gammas.std()) == pytest.approx(0.02, rel=0.1)
    assert all((m.bias == 0).all() for m in bns)
    # weights_init leaves other modules alone and re-draws only what the text names
    lin = nn.Linear(4, 4)
    before = lin.weight.clone()
    weights_init(lin)
    assert torch.equal(lin.weight, before)
