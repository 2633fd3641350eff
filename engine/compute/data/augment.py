"""The course's train-time augmentation, vectorized over a whole batch on the training device.

It follows the course's `transform_train` (002, "Train the Discriminator without the Generator"):
RandomResizedCrop(32, scale 0.7-1, ratio 1), small ColorJitter, RandomHorizontalFlip, then
Normalize(0.5, 0.5) to [-1, 1]. Every random draw comes from a device generator, so the training step
never waits on the host (no per-image PIL transforms, no `.item()`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_INV = torch.linalg.inv(_YIQ)
_COLOUR_CONSTS: dict[torch.device, tuple[Tensor, Tensor]] = {}


def _yiq_on(dev: torch.device) -> tuple[Tensor, Tensor]:
    """RGB->YIQ and back on `dev`, copied there once (not a host->device copy every step)."""
    if dev not in _COLOUR_CONSTS:
        _COLOUR_CONSTS[dev] = (_YIQ.to(dev), _YIQ_INV.to(dev))
    return _COLOUR_CONSTS[dev]


def augment_batch(x_uint8: Tensor, generator: torch.Generator) -> Tensor:
    """The course's train transform for a whole batch in one vectorized pass; float32 [-1, 1] out.

    Per sample: a random square crop covering 70-100% of the area (RandomResizedCrop, ratio 1) and a
    horizontal flip (p 0.5), both folded into one affine grid, sampled bilinearly; then brightness,
    contrast, saturation factors in [0.9, 1.1] and a hue rotation up to +-0.02 turns in YIQ space
    (grey images get brightness and contrast only). All draws come from `generator`, which must live on
    x's device, so nothing syncs with the host.
    """
    b, ch = x_uint8.shape[0], x_uint8.shape[1]
    dev = x_uint8.device
    u = torch.rand(b, 8, generator=generator, device=dev)
    x = x_uint8.float().div_(255.0)

    side = torch.sqrt(0.7 + 0.3 * u[:, 0])  # crop side as a fraction of the image (area 0.7-1)
    flip = torch.where(u[:, 3] < 0.5, -1.0, 1.0)
    cx = (1.0 - side) * (2.0 * u[:, 1] - 1.0)  # crop centre anywhere that keeps it inside the image
    cy = (1.0 - side) * (2.0 * u[:, 2] - 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = side * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = side
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    bright = (0.9 + 0.2 * u[:, 4]).view(b, 1, 1, 1)
    contrast = (0.9 + 0.2 * u[:, 5]).view(b, 1, 1, 1)
    x = (x * bright).clamp_(0.0, 1.0)  # as ColorJitter clamps after brightness
    if ch == 3:
        yiq, yiq_inv = _yiq_on(dev)
        grey = (x * yiq[0].view(1, 3, 1, 1)).sum(1, keepdim=True)
    else:
        grey = x
    mean = grey.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    if ch == 3:
        sat = (0.9 + 0.2 * u[:, 6]).view(b, 1, 1)
        hue = (2.0 * u[:, 7] - 1.0) * (0.02 * 2.0 * torch.pi)
        cos, sin = torch.cos(hue).view(b, 1, 1), torch.sin(hue).view(b, 1, 1)
        # per-sample 3x3: RGB -> YIQ, scale chroma by saturation and rotate it by the hue, back to RGB
        rot = torch.zeros(b, 3, 3, device=dev)
        rot[:, 0, 0] = 1.0
        rot[:, 1:, 1:] = sat * torch.cat([torch.cat([cos, -sin], 2), torch.cat([sin, cos], 2)], 1)
        m = yiq_inv @ rot @ yiq  # a constant inverse: linalg.inv would check for singularity (a sync)
        x = torch.einsum("bij,bjhw->bihw", m, x)
    return x.clamp_(0.0, 1.0).mul_(2.0).sub_(1.0)

