"""Cheap per-epoch mode-collapse signals for GAN recipes (one small batch of generated images, no extra net).

- `class_spread` (a classifier is at hand, e.g. the ACGAN discriminator's fc10): the normalised entropy of
  the classes it assigns to a fixed batch of generated images. 1.0: every class equally often; 0.0:
  everything lands in one class, the classic collapse. It also drops when the classifier is still poor,
  so read it next to the test accuracy.
- `diversity` (no classifier): the mean pairwise L2 distance between the images generated from a fixed
  noise batch, divided by the same quantity for a fixed batch of real training images. About 1.0: the
  samples differ from each other as much as real images do; towards 0.0: the generator maps different noise
  to near-identical images. Noisy, unconverged generators can score above 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def class_spread(logits: torch.Tensor, num_classes: int) -> float:
    """Normalised entropy (0..1) of the argmax-class histogram of `logits` [N, num_classes]."""
    if num_classes < 2:
        return 1.0
    counts = torch.bincount(logits.argmax(1), minlength=num_classes).double()
    p = counts / counts.sum().clamp_min(1.0)
    p = p[p > 0]
    return float(-(p * p.log()).sum() / math.log(num_classes))


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """Mean L2 distance over all ordered pairs of distinct images in [N, ...] (N >= 2), in float32."""
    n = images.shape[0]
    if n < 2:
        raise ValueError("the pairwise distance needs at least two images")
    flat = images.detach().reshape(n, -1).float()
    dist = torch.cdist(flat, flat, compute_mode="donot_use_mm_for_euclid_dist")  # exact 0 for equal images
    return float(dist.sum() / (n * (n - 1)))


def diversity(fake: torch.Tensor, real_distance: float) -> float:
    """Mean pairwise distance of `fake` relative to the real images' (`real_distance`, same pixel scale)."""
    if real_distance <= 0:
        return float("nan")
    return mean_pairwise_distance(fake) / real_distance


@contextmanager
def batchnorm_stats_kept(module: nn.Module) -> Iterator[None]:
    """Run `module` in train mode (BatchNorm on the batch's own statistics, as the DCGAN text renders its
    fixed noise) without letting that forward pass move the running statistics a checkpoint stores."""
    saved = [(m, {k: v.clone() for k, v in m.named_buffers(recurse=False)})
             for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        yield
    finally:
        for m, buffers in saved:
            for k, v in buffers.items():
                getattr(m, k).copy_(v)
