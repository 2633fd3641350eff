"""The 64x64 DCGAN of course text 004, layer by layer (engine.compute.models.dcgan): sizes, BatchNorm
placement, one channel and width, weight initialisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.compute.models.dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator, weights_init
from tests.helpers import layer_table


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
