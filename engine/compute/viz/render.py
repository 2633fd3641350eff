"""Drawing for the visualizations; every file is written atomically (temp file, fsync, rename).

Plain image grids go through `engine.compute.imaging` (the same 10-wide layout as the run's sample grids, blown up
with nearest-neighbour so each pixel stays visible); labelled figures and plots go through matplotlib on
the Agg backend (no display needed), rendered to memory and then written like any other file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.compute.imaging import save_grid  # noqa: E402
from engine.control.paths import write_bytes_atomic  # noqa: E402

GRID_SCALE = 2  # a 10x10 grid of 32px images becomes 684x684 px (the course's plot() is 10x10 inches)


def save_image_grid(images: torch.Tensor, path: Path, nrow: int = 10) -> None:
    """[N, C, H, W] in [-1, 1] as a grid PNG, row-major (image i at row i // nrow, column i % nrow)."""
    save_grid(images, path, nrow=nrow, scale=GRID_SCALE)


def to_hwc(image: torch.Tensor) -> np.ndarray:
    """[C, H, W] in [-1, 1] -> H x W x 3 floats in [0, 1] for imshow."""
    x = image.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    if x.shape[0] == 1:
        x = x.repeat(3, 1, 1)
    return x.permute(1, 2, 0).numpy()


def save_figure(fig: matplotlib.figure.Figure, path: Path, dpi: int = 100) -> None:
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def labelled_images(images: torch.Tensor, titles: Sequence[str], path: Path, ncols: int = 5,
                    suptitle: str | None = None) -> None:
    """A few images, each under its title (class names, confidences), at 4x their pixel size."""
    n = images.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.0 * ncols, 2.5 * nrows + 0.4), squeeze=False,
                             layout="constrained")  # keeps titles off the row above (tight_layout does not)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(to_hwc(images[i]), interpolation="nearest")
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    save_figure(fig, path)
