"""The fully-connected GANs of the course texts: the MNIST MLP GAN (001) and the Lab-5 GAN (003).

Both are plain `nn.Sequential` stacks so their layers can be read off and checked against the texts:

- `MLPGenerator` / `MLPDiscriminator` (001): G is noise 100 -> 300 -> LeakyReLU(0.2) -> 784 -> Sigmoid,
  reshaped to 1x28x28 (images in [0, 1], as the text feeds `ToTensor()` data without normalising); D is
  784 -> 300 -> LeakyReLU(0.2) -> 100 -> LeakyReLU(0.2) -> 1 and returns logits (the text trains it with
  `BCEWithLogitsLoss`). `width` scales the hidden layers (text: 300; D's second layer is width // 3 = 100).
- `Lab5Generator` / `Lab5Discriminator` (003): three hidden LeakyReLU layers growing width, 2w, 4w
  (256-512-1024) in G with a Tanh output, shrinking 4w, 2w, w in D with a Sigmoid output.

`Lab5Discriminator.logits` runs every layer but the final Sigmoid, so training can use the numerically
stable BCE-with-logits, which equals the text's `BCELoss(Sigmoid(.))` (and is safe under bf16 autocast).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MNIST_PIXELS = 28 * 28


@dataclass(frozen=True)
class MLPConfig:
    width: int = 300  # hidden units (001: 300)
    n_z: int = 100
    leaky_slope: float = 0.2
    channels: int = 1
    image_size: int = 28

    @property
    def pixels(self) -> int:
        """Both texts flatten the image: the MLPs see C*H*W inputs (784 for MNIST)."""
        return self.channels * self.image_size * self.image_size


class MLPGenerator(nn.Module):
    """001's generator: z [B, n_z] -> image [B, C, H, W] in [0, 1] (Sigmoid output)."""

    def __init__(self, cfg: MLPConfig = MLPConfig()):
        super().__init__()
        self.cfg = cfg
        self.model = nn.Sequential(
            nn.Linear(cfg.n_z, cfg.width),
            nn.LeakyReLU(cfg.leaky_slope),
            nn.Linear(cfg.width, cfg.pixels),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        return self.model(z).view(z.shape[0], c.channels, c.image_size, c.image_size)


def mlp_d_hidden(width: int) -> tuple[int, int]:
    """001's discriminator hidden sizes for a width: (300, 100) at the text's 300."""
    return width, max(1, width // 3)


class MLPDiscriminator(nn.Module):
    """001's discriminator: image [B, C, H, W] -> logit [B] (no output activation)."""

    def __init__(self, cfg: MLPConfig = MLPConfig()):
        super().__init__()
        self.cfg = cfg
        h1, h2 = mlp_d_hidden(cfg.width)
        self.model = nn.Sequential(
            nn.Linear(cfg.pixels, h1),
            nn.LeakyReLU(cfg.leaky_slope),
            nn.Linear(h1, h2),
            nn.LeakyReLU(cfg.leaky_slope),
            nn.Linear(h2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.reshape(x.shape[0], -1)).view(x.shape[0])


@dataclass(frozen=True)
class Lab5Config(MLPConfig):
    width: int = 256  # G's first hidden layer; the others are 2x and 4x (003: 256, 512, 1024)

    @property
    def hidden(self) -> tuple[int, int, int]:
        return self.width, 2 * self.width, 4 * self.width


def _stack(sizes: list[int], slope: float) -> list[nn.Module]:
    """Linear + LeakyReLU for every consecutive pair of `sizes`."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(slope)]
    return layers


class Lab5Generator(nn.Module):
    """003's generator: z -> w -> 2w -> 4w (LeakyReLU) -> image (Tanh, [-1, 1])."""

    def __init__(self, cfg: Lab5Config = Lab5Config()):
        super().__init__()
        self.cfg = cfg
        h = list(cfg.hidden)
        self.model = nn.Sequential(*_stack([cfg.n_z, *h], cfg.leaky_slope), nn.Linear(h[-1], cfg.pixels), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        return self.model(z).view(z.shape[0], c.channels, c.image_size, c.image_size)


class Lab5Discriminator(nn.Module):
    """003's discriminator: image -> 4w -> 2w -> w (LeakyReLU) -> 1 (Sigmoid): P(real) [B]."""

    def __init__(self, cfg: Lab5Config = Lab5Config()):
        super().__init__()
        self.cfg = cfg
        h = list(reversed(cfg.hidden))
        self.model = nn.Sequential(*_stack([cfg.pixels, *h], cfg.leaky_slope), nn.Linear(h[-1], 1), nn.Sigmoid())

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Everything but the final Sigmoid: [B] logits (training uses BCE with logits)."""
        return self.model[:-1](x.reshape(x.shape[0], -1)).view(x.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.reshape(x.shape[0], -1)).view(x.shape[0])
