"""`perturb`: fool a classifier with a one-step sign perturbation (002, Part 2: "Perturb Real Images").

The first test batch; the alternative label (y + 1) mod classes; the input gradient of that label's
per-sample cross-entropy; every pixel moved `gain / 127.5` against the gradient's sign (toward the
alternative class) and clamped to [-1, 1]. Writes the real, gradient (min-max scaled over the batch) and
perturbed ("jittered") 10x10 grids, and the accuracy on the batch before and after.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from engine.compute.viz.job import Job
from engine.compute.viz.loading import first_test_batch, load_run, load_test_data
from engine.compute.viz.render import save_image_grid

SHOWN = 100  # the course plots samples[0:100]


def perturb_batch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                  step: float) -> dict[str, torch.Tensor]:
    """The course's computation; returns the gradient, the perturbed batch and both predictions."""
    x = x.detach().clone().requires_grad_(True)
    _, logits = model(x)
    alternative = (y + 1) % num_classes
    loss = F.cross_entropy(logits.float(), alternative, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)  # per-sample gradients: each loss depends on its own image
    perturbed = (x.detach() - step * torch.sign(grad)).clamp_(-1.0, 1.0)
    with torch.no_grad():
        _, after = model(perturbed)
    return {"grad": grad, "perturbed": perturbed, "before": logits.detach().argmax(1),
            "after": after.argmax(1), "alternative": alternative}


def run(job: Job) -> dict[str, Any]:
    model = load_run(job, job.run_dir, job.checkpoint)
    data = load_test_data(job, model)
    x, y = first_test_batch(data, job.params["batch_size"])
    step = job.params["gain"] / 127.5
    out = perturb_batch(model.D, x, y, model.num_classes, step)
    g = out["grad"]
    lo, hi = g.min(), g.max()
    scaled = (g - lo) / (hi - lo) if hi > lo else torch.full_like(g, 0.5)
    for name, images, what in (("real_images.png", x, "real images"),
                               ("gradient_image.png", scaled * 2 - 1, "gradient (min-max scaled)"),
                               ("jittered_images.png", out["perturbed"], "perturbed images")):
        path = job.path(name)
        save_image_grid(images[:SHOWN], path)
        job.artifact(path, what)
    n = y.shape[0]
    return {
        "model": model.name, "recipe": model.recipe, "epoch": model.epoch, "batch_size": n, "gain": job.params["gain"],
        "step": step,
        "accuracy_before": 100.0 * (out["before"] == y).sum().item() / n,
        "accuracy_after": 100.0 * (out["after"] == y).sum().item() / n,
        "to_alternative": 100.0 * (out["after"] == out["alternative"]).sum().item() / n,
    }
