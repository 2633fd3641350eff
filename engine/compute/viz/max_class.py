"""`max_class`: one synthetic image per class that maximizes its fc10 output (002, Part 2).

Starts from the mean test image (one copy per class) and ascends each copy's own class logit with the
course's step (lr 0.1, weight decay 0.001, 200 iterations, clamped). The result says how the model itself
classifies the final images: the accuracy (target class = argmax) and the softmax confidence per class.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.compute.viz.ascent import ascend
from engine.compute.viz.job import Job
from engine.compute.viz.loading import load_run, load_test_data
from engine.compute.viz.render import labelled_images


def run(job: Job) -> dict[str, Any]:
    model = load_run(job, job.run_dir, job.checkpoint)
    data = load_test_data(job, model)
    n = model.num_classes
    targets = torch.arange(n, device=job.device)
    start = data.mean_test_image().unsqueeze(0).repeat(n, 1, 1, 1)

    def class_logit(x: torch.Tensor) -> torch.Tensor:
        return model.D(x)[1][targets, targets]

    p = job.params
    images = ascend(class_logit, start, p["lr"], p["weight_decay"], p["iterations"],
                    on_step=lambda done, total: job.progress(done, total, "ascent iterations"))
    with torch.no_grad():
        probs = torch.softmax(model.D(images)[1].float(), dim=1)
    pred = probs.argmax(1)
    conf = probs[targets, targets]
    titles = [f"{model.classes[i]}\np={conf[i].item():.2f}"
              + ("" if pred[i] == i else f" (as {model.classes[int(pred[i])]})") for i in range(n)]
    path = job.path("max_class.png")
    labelled_images(images, titles, path, ncols=5,
                    suptitle=f"max class output: {model.name} ({model.recipe}, epoch {model.epoch})")
    job.artifact(path, "images maximizing each class output")
    return {
        "model": model.name, "recipe": model.recipe, "epoch": model.epoch,
        "accuracy": 100.0 * (pred == targets).sum().item() / n,
        "classified_as_target": int((pred == targets).sum().item()),
        "per_class_confidence": {model.classes[i]: round(conf[i].item(), 6) for i in range(n)},
        "predicted": [model.classes[int(c)] for c in pred.tolist()],
    }
