"""The course's image-space gradient ascent (002, Part 2: "Synthetic Images Maximizing ...").

Start from the mean test image, and per iteration move every image along the gradient of its own target
(a class logit, or one pooled feature), shrink it toward grey with the course's weight decay
`X -= weight_decay * X * |X|`, and clamp it to the valid range [-1, 1]. The course writes the loss as the
negated target and steps `X - lr * grad(loss)`; adding `lr * grad(target)` is the same step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def ascend(objective: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, lr: float,
           weight_decay: float, iterations: int,
           on_step: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """`objective(x)` returns one value per image ([N]) to maximize; returns the final images [N, C, H, W].

    `on_step(done, total)` is called after each iteration (a job's progress; it rate-limits itself)."""
    x = start.detach().clone()
    for i in range(iterations):
        if on_step is not None:
            on_step(i, iterations)
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x).sum(), x)
        with torch.no_grad():
            x = x.detach()
            x = x + lr * grad - weight_decay * x * x.abs()
            x.clamp_(-1.0, 1.0)
    return x.detach()
