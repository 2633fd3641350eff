"""The networks of the science core pinned exactly (issue 19): 002's ACGAN discriminator (its forward and its
feature extraction) and 004's DCGAN generator and discriminator.

Each model is built tiny, its weights are copied into a transcription of the course text's network (002's
conv / LayerNorm / LeakyReLU stack and `F.max_pool2d(h, 4, 4)`; 004's two nn.Sequential), and the outputs are
compared on inputs where the nonlinearity matters (LayerNorm biases shifted below zero, so most
pre-activations are negative and the LeakyReLU slope shows in every number), for batch sizes that differ
from the channel count. In-process and tiny, so mutation testing (bench/mutation.py) sees every line.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from engine.compute.classifier_score import classify
from engine.compute.models.acgan import ACGANDConfig, ACGANDiscriminator
from engine.compute.models.dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator
from engine.compute.recipes.bce_gan import build_gan_models

# ------------------------------------------------------------------------------------------ ACGAN (002)

# the output size of conv1..conv8 in 002's table (each row's "input" column is the previous row's output)
COURSE_D_SIZES = (32, 16, 16, 8, 8, 8, 8, 4)


def course_d_layers(D: ACGANDiscriminator, x: torch.Tensor, upto: int, slope: float) -> torch.Tensor:
    """002: "Layer Normalization after every convolution operation followed by a Leaky ReLU", conv1..conv`upto`."""
    h = x
    for conv, norm in list(zip(D.convs, D.norms))[:upto]:
        h = F.leaky_relu(norm(conv(h)), slope)
    return h


def course_d_forward(D: ACGANDiscriminator, x: torch.Tensor, slope: float):
    """002's forward: the conv stack, `h = F.max_pool2d(h, 4, 4)`, `h.view(-1, no_of_hidden_units)`, fc1, fc10."""
    h = course_d_layers(D, x, 8, slope)
    h = F.max_pool2d(h, 4, 4)
    h = h.view(-1, D.cfg.width)
    return D.fc1(h), D.fc10(h)


def negative_leaning_d(slope: float = 0.3, width: int = 4, image_size: int = 32) -> ACGANDiscriminator:
    """A tiny discriminator whose LayerNorm biases are shifted below zero: most pre-activations are negative,
    and layer 1's are all negative (its maxima too), so every output depends on the LeakyReLU slope."""
    torch.manual_seed(0)
    D = ACGANDiscriminator(ACGANDConfig(width=width, image_size=image_size, leaky_slope=slope))
    with torch.no_grad():
        for norm in D.norms:
            norm.bias.sub_(1.0)
        D.norms[0].bias.fill_(-20.0)
    return D


@pytest.mark.parametrize("batch", [1, 3])
def test_acgan_forward_is_the_course_forward_with_its_leaky_slope(batch):
    D = negative_leaning_d(slope=0.3)
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch)) * 2 - 1
    critic, logits = D(x)
    fc1, fc10 = course_d_forward(D, x, 0.3)
    assert critic.shape == (batch,) and logits.shape == (batch, 10)
    assert_close(critic, fc1[:, 0])
    assert_close(logits, fc10)
    # the case has the property it needs: the conv8 map is mostly negative, so the slope is in the numbers
    assert (course_d_layers(D, x, 8, 0.3) < 0).float().mean() > 0.5
    other = course_d_forward(D, x, 0.01)  # PyTorch's default slope gives other numbers
    assert not torch.allclose(fc10, other[1])


@pytest.mark.parametrize("layer", range(1, 9))
def test_acgan_features_pool_the_whole_map_after_the_slope(layer):
    D = negative_leaning_d(slope=0.3)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(7)) * 2 - 1
    h = course_d_layers(D, x, layer, 0.3)
    size = COURSE_D_SIZES[layer - 1]
    assert h.shape[-2:] == (size, size)
    # 002: "perform max pooling (based on whatever dimensions the feature map from that particular layer has)"
    expected = F.max_pool2d(h, size, size).view(-1, D.cfg.width)
    assert_close(D.features(x, layer), expected)
    assert_close(D(x, extract_features=layer), expected)
    if layer == 1:  # every pooled value negative: only the slope makes them what they are
        assert (expected < 0).all()
        pre = D.norms[0](D.convs[0](x))
        assert_close(D.features(x, 1), 0.3 * pre.amax(dim=(2, 3)))
    assert not torch.allclose(expected, F.max_pool2d(course_d_layers(D, x, layer, 0.01), size, size).flatten(1))


@pytest.mark.parametrize("image_size,conv8_map", [(32, 4), (16, 2)])
def test_acgan_pool_size_is_the_conv8_map(image_size, conv8_map):
    D = ACGANDiscriminator(ACGANDConfig(width=4, image_size=image_size))
    assert D.pool_size == conv8_map
    h = course_d_layers(D, torch.zeros(1, 3, image_size, image_size), 8, 0.01)
    assert h.shape == (1, 4, conv8_map, conv8_map)


def test_classify_reads_pool_size_and_runs_the_stack_once():
    """classifier_score.classify: for the course's 4x4 conv8 map, forward()'s max-pool 4 equals the features
    of layer 8, so one pass gives the features and fc10's logits (conv1 runs once per batch)."""
    D = negative_leaning_d(slope=0.2).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    calls = []
    hook = D.convs[0].register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    try:
        preds, feats = classify(D, x)
    finally:
        hook.remove()
    assert calls == [3]
    fc1, fc10 = course_d_forward(D, x, 0.2)
    assert torch.equal(preds, fc10.argmax(1))
    assert_close(torch.from_numpy(feats), F.max_pool2d(course_d_layers(D, x, 8, 0.2), 4, 4).flatten(1).double())


def test_acgan_forward_pools_4x4_windows_with_stride_4():
    """002's pool is max2d 4 / padding 0 / stride 4 on conv8's 4x4 map. On a 64x64 model (an 8x8 conv8 map)
    it leaves a 2x2 map, 4 * width features that fc1 (width inputs) refuses; a stride of 5 would keep only the
    top-left window and run. The features path pools the whole map instead."""
    D = ACGANDiscriminator(ACGANDConfig(width=4, image_size=64))
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5)) * 2 - 1
    h = course_d_layers(D, x, 8, 0.01)
    assert h.shape == (2, 4, 8, 8) and F.max_pool2d(h, 4, 4).shape == (2, 4, 2, 2)
    with pytest.raises(RuntimeError):
        D(x)
    assert_close(D.features(x, 8), h.amax(dim=(2, 3)))


# ------------------------------------------------------------------------------------------ DCGAN (004)


def course_dcgan_discriminator(ndf: int, nc: int) -> nn.Sequential:
    """004's Discriminator.main, with its 64 (ndf) and 3 (nc) as parameters."""
    return nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ndf * 2),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ndf * 4),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ndf * 8),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
        nn.Sigmoid(),
    )


def course_dcgan_generator(nz: int, ngf: int, nc: int) -> nn.Sequential:
    """004's Generator.main, with its 100 (nz), 64 (ngf) and 3 (nc) as parameters."""
    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
        nn.BatchNorm2d(ngf * 8),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
        nn.Tanh(),
    )


def conv_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_dcgan_discriminator_is_the_course_network(batch):
    torch.manual_seed(1)
    D = DCGANDiscriminator(DCGANConfig(width=4, channels=3))
    theirs = course_dcgan_discriminator(4, 3)
    theirs.load_state_dict(D.main.state_dict())  # strict: the same layers, no bias anywhere
    x = torch.rand(batch, 3, 64, 64, generator=torch.Generator().manual_seed(batch)) * 2 - 1
    p = D(x)
    expected = theirs(x).view(-1, 1).squeeze(1)  # 004's `output.view(-1, 1).squeeze(1)`
    assert p.shape == (batch,)
    assert_close(p, expected)
    assert_close(torch.sigmoid(D.logits(x)), expected)
    # no conv has a bias: the parameters are the conv weights and the BatchNorm pairs
    assert sum(q.numel() for q in D.parameters()) == conv_weights(D) + 2 * (8 + 16 + 32)
    assert all(m.bias is None for m in D.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("batch", [1, 3])
def test_dcgan_generator_is_the_course_network(batch):
    torch.manual_seed(2)
    G = DCGANGenerator(DCGANConfig(width=4, n_z=10, channels=3))
    theirs = course_dcgan_generator(10, 4, 3)
    theirs.load_state_dict(G.main.state_dict())
    z = torch.randn(batch, 10, generator=torch.Generator().manual_seed(batch))
    out = G(z)
    assert out.shape == (batch, 3, 64, 64)
    assert_close(out, theirs(z.view(batch, 10, 1, 1)))
    assert sum(q.numel() for q in G.parameters()) == conv_weights(G) + 2 * (32 + 16 + 8 + 4)
    assert all(m.bias is None for m in G.modules() if isinstance(m, nn.ConvTranspose2d))


def test_dcgan_models_record_their_config():
    cfg = {"width": 4, "n_z": 12, "leaky_slope": 0.2}
    G, D = build_gan_models("dcgan", cfg, 1, 64)
    expected = DCGANConfig(width=4, n_z=12, channels=1, leaky_slope=0.2)
    assert G.cfg == expected and D.cfg == expected
