"""The 64x64 DCGAN of the course text 004: generator, discriminator and their weight initialisation.

G: z (n_z x 1 x 1) -> ConvT 4/1/0 to 8w at 4x4 -> ConvT 4/2/1 to 4w (8x8) -> 2w (16x16) -> w (32x32),
each followed by BatchNorm and ReLU -> ConvT 4/2/1 to the image channels (64x64) -> Tanh.
D: Conv 4/2/1 to w (32x32) + LeakyReLU(0.2) -> 2w (16x16) -> 4w (8x8) -> 8w (4x4), each with BatchNorm
before the LeakyReLU (none after the first conv) -> Conv 4/1/0 to 1 -> Sigmoid. No conv has a bias.
`width` is the text's ngf = ndf = 64. Every conv weight starts N(0, 0.02), every BatchNorm weight
N(1, 0.02) with bias 0 (`weights_init`).

`DCGANDiscriminator.logits` runs every layer but the final Sigmoid, so training can use BCE with logits,
equal to the text's `BCELoss(Sigmoid(.))` and safe under bf16 autocast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

IMAGE_SIZE = 64


@dataclass(frozen=True)
class DCGANConfig:
    width: int = 64  # ngf = ndf
    n_z: int = 100
    channels: int = 3  # nc
    leaky_slope: float = 0.2


def weights_init(m: nn.Module) -> None:
    """The text's init: conv (and transposed conv) weights N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.constant_(m.bias, 0.0)


class DCGANGenerator(nn.Module):
    """z [B, n_z] (or [B, n_z, 1, 1]) -> image [B, C, 64, 64] in [-1, 1]."""

    def __init__(self, cfg: DCGANConfig = DCGANConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        chans = [cfg.n_z, 8 * w, 4 * w, 2 * w, w]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(chans, chans[1:])):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers += [nn.ConvTranspose2d(a, b, 4, stride, pad, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(w, cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.apply(weights_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], self.cfg.n_z, 1, 1))


class DCGANDiscriminator(nn.Module):
    """image [B, C, 64, 64] -> P(real) [B]."""

    def __init__(self, cfg: DCGANConfig = DCGANConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        chans = [cfg.channels, w, 2 * w, 4 * w, 8 * w]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(chans, chans[1:])):
            layers.append(nn.Conv2d(a, b, 4, 2, 1, bias=False))
            if i > 0:  # no BatchNorm on the first layer, as in the text
                layers.append(nn.BatchNorm2d(b))
            layers.append(nn.LeakyReLU(cfg.leaky_slope, inplace=True))
        layers += [nn.Conv2d(8 * w, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)
        self.apply(weights_init)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Everything but the final Sigmoid: [B] logits."""
        return self.main[:-1](x).reshape(x.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).reshape(x.shape[0])
