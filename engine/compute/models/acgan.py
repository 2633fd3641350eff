"""The ACGAN of the course text 002 (Part 1) for 32x32 images, built from its layer tables; pure modules, no I/O.

The discriminator (also the `baseline` recipe's classifier, and the network the visualizations load):
8 conv3x3 layers (strides 1,2,1,2,1,1,1,2, padding 1), each followed by LayerNorm over
[C, H, W] and LeakyReLU; max-pool 4; two linear heads on the pooled features: `fc1` (the critic score)
and `fc10` (the auxiliary classifier). The generator: `fc1` noise -> C*4*4, then convT4/s2 (8x8), three
conv3x3, convT4/s2 (16x16), conv3x3, convT4/s2 (32x32), conv3x3 to the image channels; BatchNorm + ReLU
after every layer but the last, tanh out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# (kernel, padding, stride) of the discriminator's conv1..conv8, from the course's table
D_TABLE: tuple[tuple[int, int, int], ...] = (
    (3, 1, 1), (3, 1, 2), (3, 1, 1), (3, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 1, 2),
)
# (type, kernel, padding, stride) of the generator's conv1..conv8, from the course's table
G_TABLE: tuple[tuple[str, int, int, int], ...] = (
    ("convT", 4, 1, 2), ("conv", 3, 1, 1), ("conv", 3, 1, 1), ("conv", 3, 1, 1),
    ("convT", 4, 1, 2), ("conv", 3, 1, 1), ("convT", 4, 1, 2), ("conv", 3, 1, 1),
)
FEATURE_LAYERS = (1, 2, 3, 4, 5, 6, 7, 8)


@dataclass(frozen=True)
class ACGANDConfig:
    """The discriminator's sizes; the defaults are the text's (width 196, CIFAR-10's 3x32x32, 10 classes)."""

    width: int = 196
    in_channels: int = 3
    image_size: int = 32
    num_classes: int = 10
    leaky_slope: float = 0.01


@dataclass(frozen=True)
class ACGANGConfig:
    """The generator's sizes; the defaults are the text's (width 196, 100 noise dimensions, RGB out)."""

    width: int = 196
    n_z: int = 100
    out_channels: int = 3


class ACGANDiscriminator(nn.Module):
    """The critic with an auxiliary classifier; `forward(x)` returns (fc1 score [B], fc10 logits [B,10])."""

    def __init__(self, cfg: ACGANDConfig = ACGANDConfig()):
        super().__init__()
        self.cfg = cfg
        convs, norms = [], []
        c_in, size = cfg.in_channels, cfg.image_size
        for k, p, s in D_TABLE:
            convs.append(nn.Conv2d(c_in, cfg.width, k, stride=s, padding=p))
            size = (size + 2 * p - k) // s + 1
            norms.append(nn.LayerNorm([cfg.width, size, size]))
            c_in = cfg.width
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)
        self.pool_size = size  # 4 for 32x32 inputs: max-pool 4 leaves 1x1
        self.fc1 = nn.Linear(cfg.width, 1)
        self.fc10 = nn.Linear(cfg.width, cfg.num_classes)

    def features(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Max-pooled, flattened activations after conv layer `layer` (1..8): [B, width]."""
        if layer not in FEATURE_LAYERS:
            raise ValueError(f"layer {layer} is not a conv layer of the discriminator (1-8)")
        h = x
        for i in range(layer):
            h = F.leaky_relu(self.norms[i](self.convs[i](h)), self.cfg.leaky_slope)
        return F.max_pool2d(h, kernel_size=h.shape[-1]).flatten(1)

    def forward(self, x: torch.Tensor, extract_features: int = 0):
        if extract_features:
            return self.features(x, extract_features)
        h = x
        for conv, norm in zip(self.convs, self.norms):
            h = F.leaky_relu(norm(conv(h)), self.cfg.leaky_slope)
        h = F.max_pool2d(h, kernel_size=4, stride=4).flatten(1)
        return self.fc1(h).squeeze(1), self.fc10(h)


class ACGANGenerator(nn.Module):
    """Noise [B, n_z] -> image [B, C, 32, 32] in [-1, 1]."""

    def __init__(self, cfg: ACGANGConfig = ACGANGConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.fc1 = nn.Linear(cfg.n_z, w * 4 * 4)
        self.bn0 = nn.BatchNorm2d(w)
        layers, norms = [], []
        for i, (kind, k, p, s) in enumerate(G_TABLE):
            c_out = cfg.out_channels if i == len(G_TABLE) - 1 else w
            cls = nn.ConvTranspose2d if kind == "convT" else nn.Conv2d
            layers.append(cls(w, c_out, k, stride=s, padding=p))
            if i < len(G_TABLE) - 1:
                norms.append(nn.BatchNorm2d(c_out))
        self.convs = nn.ModuleList(layers)
        self.norms = nn.ModuleList(norms)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc1(z).view(z.shape[0], self.cfg.width, 4, 4)
        h = F.relu(self.bn0(h))
        for conv, norm in zip(self.convs[:-1], self.norms):
            h = F.relu(norm(conv(h)))
        return torch.tanh(self.convs[-1](h))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
