"""The course's layer tables (002, Part 1): shapes after every layer, strides, norms, parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.compute.models.acgan import (
    D_TABLE,
    G_TABLE,
    ACGANDConfig,
    ACGANDiscriminator,
    ACGANGConfig,
    ACGANGenerator,
    count_parameters,
)

# the course's discriminator table: (in, out, k, pad, stride, input size)
COURSE_D = [(3, 196, 3, 1, 1, 32), (196, 196, 3, 1, 2, 32), (196, 196, 3, 1, 1, 16), (196, 196, 3, 1, 2, 16),
          (196, 196, 3, 1, 1, 8), (196, 196, 3, 1, 1, 8), (196, 196, 3, 1, 1, 8), (196, 196, 3, 1, 2, 8)]
# the course's generator table: (type, in, out, k, pad, stride)
COURSE_G = [("convT", 196, 196, 4, 1, 2), ("conv", 196, 196, 3, 1, 1), ("conv", 196, 196, 3, 1, 1),
          ("conv", 196, 196, 3, 1, 1), ("convT", 196, 196, 4, 1, 2), ("conv", 196, 196, 3, 1, 1),
          ("convT", 196, 196, 4, 1, 2), ("conv", 196, 3, 3, 1, 1)]


def test_discriminator_convs_match_the_course_table():
    d = ACGANDiscriminator()
    assert len(d.convs) == 8 and len(D_TABLE) == 8
    for conv, (cin, cout, k, p, s, _size) in zip(d.convs, COURSE_D):
        assert isinstance(conv, nn.Conv2d)
        assert (conv.in_channels, conv.out_channels) == (cin, cout)
        assert conv.kernel_size == (k, k) and conv.padding == (p, p) and conv.stride == (s, s)


def test_discriminator_shapes_and_layernorm_after_every_conv():
    d = ACGANDiscriminator(ACGANDConfig(width=196))
    seen = []
    hooks = [n.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape))) for n in d.norms]
    critic, logits = d(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    out_sizes = [32, 16, 16, 8, 8, 8, 8, 4]  # each row's input size of the next row; conv8 gives 4x4
    assert seen == [(2, 196, s, s) for s in out_sizes]
    for norm, s in zip(d.norms, out_sizes):
        assert isinstance(norm, nn.LayerNorm) and tuple(norm.normalized_shape) == (196, s, s)
    assert critic.shape == (2,) and logits.shape == (2, 10)
    assert d.fc1.in_features == 196 and d.fc1.out_features == 1
    assert d.fc10.in_features == 196 and d.fc10.out_features == 10


def test_discriminator_uses_leaky_relu_not_relu():
    d = ACGANDiscriminator(ACGANDConfig(width=8, leaky_slope=0.2))
    x = torch.randn(1, 3, 32, 32)
    h = d.norms[0](d.convs[0](x))
    # the features after layer 1, before pooling, keep negative values scaled by the slope
    feats = torch.nn.functional.leaky_relu(h, 0.2)
    assert (feats < 0).any()
    pooled = d.features(x, 1)
    assert torch.allclose(pooled, feats.amax(dim=(2, 3)))


def test_parameter_counts_follow_from_the_tables():
    w = 196
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    d_expected = sum(conv(cin, cout, k) for cin, cout, k, *_ in COURSE_D)
    d_expected += sum(2 * w * s * s for s in (32, 16, 16, 8, 8, 8, 8, 4))  # LayerNorm weight+bias over C,H,W
    d_expected += (w + 1) + (w * 10 + 10)  # fc1, fc10
    assert count_parameters(ACGANDiscriminator()) == d_expected

    g_expected = 100 * w * 16 + w * 16 + 2 * w  # fc1 and its BatchNorm over the 196 channels
    g_expected += sum(conv(cin, cout, k) for _t, cin, cout, k, *_ in COURSE_G)
    g_expected += 7 * 2 * w  # BatchNorm after conv1..conv7
    assert count_parameters(ACGANGenerator()) == g_expected


def test_generator_shapes_norms_and_tanh():
    g = ACGANGenerator(ACGANGConfig(width=196))
    assert [(type(c).__name__, c.kernel_size[0], c.padding[0], c.stride[0]) for c in g.convs] == [
        ("ConvTranspose2d" if t == "convT" else "Conv2d", k, p, s) for t, k, p, s in G_TABLE]
    sizes = []
    hooks = [c.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:]))) for c in g.convs]
    out = g(torch.randn(4, 100))
    for h in hooks:
        h.remove()
    assert sizes == [(196, 8, 8), (196, 8, 8), (196, 8, 8), (196, 8, 8), (196, 16, 16), (196, 16, 16),
                     (196, 32, 32), (3, 32, 32)]
    assert all(isinstance(n, nn.BatchNorm2d) for n in g.norms) and len(g.norms) == 7
    assert out.shape == (4, 3, 32, 32)
    assert out.min() >= -1 and out.max() <= 1  # tanh out


@pytest.mark.parametrize("layer,size", [(2, 16), (3, 16), (4, 8), (6, 8), (8, 4)])
def test_feature_extraction_pools_the_whole_map(layer, size):
    d = ACGANDiscriminator(ACGANDConfig(width=16))
    x = torch.randn(3, 3, 32, 32)
    f = d(x, extract_features=layer)
    assert f.shape == (3, 16)
    h = x
    for i in range(layer):
        h = torch.nn.functional.leaky_relu(d.norms[i](d.convs[i](h)), 0.01)
    assert h.shape[-1] == size
    assert torch.allclose(f, h.amax(dim=(2, 3)))


def test_feature_layer_out_of_range_is_refused():
    with pytest.raises(ValueError, match="layer 9"):
        ACGANDiscriminator(ACGANDConfig(width=8)).features(torch.randn(1, 3, 32, 32), 9)


def test_width_is_a_parameter():
    d = ACGANDiscriminator(ACGANDConfig(width=128))
    assert all(c.out_channels == 128 for c in d.convs)
    g = ACGANGenerator(ACGANGConfig(width=128))
    assert g.fc1.out_features == 128 * 16
