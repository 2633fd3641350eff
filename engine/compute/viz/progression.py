"""`progression`: the run's fixed-noise sample grids at evenly spaced epochs, side by side and labelled.

The course asks for "5-6 pictures of generated images to show how training progresses". Every GAN epoch
writes `samples/epoch_NNN.png` from the same noise vectors (for the class-conditional ACGAN, one column
per class), so a montage of a few of them shows the generator learning. Reads only those PNGs: no checkpoint, no torch work.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from engine.compute.viz.job import Job, JobFailed
from engine.compute.viz.loading import read_config
from engine.compute.viz.render import save_figure
from engine.control.config import RECIPES
from engine.control.sample_grids import sample_grids


def pick_epochs(available: list[int], count: int) -> list[int]:
    """`count` epochs spread evenly over the available ones, first and last included."""
    if count >= len(available):
        return list(available)
    if count == 1:
        return [available[-1]]
    picks = {available[round(i * (len(available) - 1) / (count - 1))] for i in range(count)}
    return sorted(picks)


def run(job: Job) -> dict[str, Any]:
    grids = sample_grids(job.run_dir)
    if not grids:
        recipe = read_config(job.run_dir)["recipe"]
        spec = RECIPES.get(recipe)
        if spec is not None and not spec.has_generator:
            raise JobFailed(f"run {job.run_dir.name} is a {recipe} run: it has no generator and writes no "
                            f"sample grids; progression needs a GAN run")
        raise JobFailed(f"run {job.run_dir.name} has no samples/epoch_NNN.png yet: no epoch has finished")
    available = sorted(grids)
    wanted = job.params["epochs"]
    if wanted:
        missing = [e for e in wanted if e not in grids]
        if missing:
            have = (f"epochs {available[0]}-{available[-1]}" if len(available) > 1
                    else f"epoch {available[0]} only")
            raise JobFailed(f"run {job.run_dir.name} has no sample grid for epoch {missing[0]}; it has {have}")
        epochs = list(wanted)
    else:
        epochs = pick_epochs(available, job.params["count"])
    panels = []
    for e in epochs:
        try:
            with Image.open(grids[e]) as im:
                panels.append(np.asarray(im.convert("RGB")))
        except OSError as err:
            raise JobFailed(f"{grids[e]} is not a readable PNG ({err})") from None
    ncols = min(3, len(panels))
    nrows = (len(panels) + ncols - 1) // ncols
    aspect = panels[0].shape[0] / panels[0].shape[1]  # a 2x8 grid is wide and short, a 10x10 one square
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, (4.2 * aspect + 0.4) * nrows + 0.4),
                             squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(panels):
            ax.imshow(panels[i], interpolation="nearest")
            ax.set_title(f"epoch {epochs[i]}", fontsize=13)
    spec = RECIPES.get(read_config(job.run_dir).get("recipe") or "")
    conditional = spec is not None and spec.has_generator and spec.has_classifier  # ACGAN: a class per column
    per_class = " (one column per class)" if conditional else ""
    fig.suptitle(f"{job.run_dir.name}: fixed-noise samples{per_class}", fontsize=12)
    path = job.path("progression.png")
    save_figure(fig, path, dpi=110)
    job.artifact(path, "training progression")
    return {"epochs": epochs, "available_epochs": len(available), "last_epoch": available[-1]}
