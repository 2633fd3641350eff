"""Image grids written as PNG, atomically (a reader never opens half a file)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.control.paths import write_bytes_atomic


def grid_array(images: torch.Tensor, nrow: int = 10, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> uint8 HxWx3 grid, row-major (image i at row i // nrow, column i % nrow)."""
    x = images.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    n, c, h, w = x.shape
    rows = (n + nrow - 1) // nrow
    grid = torch.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)


def save_png(array: np.ndarray, path: Path, scale: int = 1) -> None:
    img = Image.fromarray(array)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())


def save_grid(images: torch.Tensor, path: Path, nrow: int = 10, scale: int = 1) -> None:
    save_png(grid_array(images, nrow=nrow), path, scale=scale)
