"""`max_features`: images that maximize the first 100 pooled features of one conv layer (002, Part 2).

Image i starts as the mean test image and ascends feature i of `D.features(x, layer)` (the max-pooled
activations after conv layer `layer`) with the course's step. Early layers see small patches, so their
images show small repeated textures; layer 8 sees the whole image. A model narrower than 100 channels
has fewer features; the grid then has fewer rows (the result says how many).
"""

from __future__ import annotations

from typing import Any

import torch

from engine.compute.viz.ascent import ascend
from engine.compute.viz.job import Job
from engine.compute.viz.loading import load_run, load_test_data
from engine.compute.viz.render import save_image_grid


def run(job: Job) -> dict[str, Any]:
    model = load_run(job, job.run_dir, job.checkpoint)
    data = load_test_data(job, model)
    p = job.params
    layer = p["layer"]
    n = min(p["features"], model.D.cfg.width)
    idx = torch.arange(n, device=job.device)
    start = data.mean_test_image().unsqueeze(0).repeat(n, 1, 1, 1)

    def feature(x: torch.Tensor) -> torch.Tensor:
        return model.D.features(x, layer)[idx, idx]

    with torch.no_grad():
        before = feature(start)
    images = ascend(feature, start, p["lr"], p["weight_decay"], p["iterations"],
                    on_step=lambda done, total: job.progress(done, total, "ascent iterations"))
    with torch.no_grad():
        after = feature(images)
    path = job.path(f"max_features_layer{layer}.png")
    save_image_grid(images, path, nrow=10)
    job.artifact(path, f"images maximizing layer {layer} features")
    return {
        "model": model.name, "recipe": model.recipe, "epoch": model.epoch, "layer": layer, "features": n,
        "grid": [(n + 9) // 10, min(n, 10)],
        "mean_activation_start": before.mean().item(), "mean_activation_end": after.mean().item(),
        "increased": int((after > before).sum().item()),
    }
