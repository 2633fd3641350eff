"""The fully-connected GANs of the course texts, layer by layer (engine.compute.models.mlp): 001's MLP GAN and
003's Lab-5 GAN (sizes, activations, output ranges, width)."""

from __future__ import annotations

import torch

from engine.compute.models.mlp import (
    Lab5Config,
    Lab5Discriminator,
    Lab5Generator,
    MLPConfig,
    MLPDiscriminator,
    MLPGenerator,
)
from tests.helpers import layer_table


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
