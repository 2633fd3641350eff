"""`imagefolder:PATH`: every image under a folder, decoded once into uint8 arrays of one size."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.compute.data.splits import DataError, Splits, make_splits, one_line
from engine.control.datasets import IMAGE_EXTENSIONS, image_files

# Pillow modes without colour: a folder of only these becomes 1-channel images
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def load_imagefolder(root: Path, size: int, *, source: str | None = None, workers: int | None = None) -> Splits:
    """Every image under `root` (recursive), resized (shorter side to `size`) and centre-cropped to size x size.

    As torchvision's `Resize(size)` + `CenterCrop(size)` in the DCGAN text, decoded once into uint8 arrays.
    Labels are the first-level subfolders (ImageFolder's convention; images directly in `root` form a class
    named after it). Grey images stay 1-channel when every image is grey, else everything is RGB. One image
    in ten (sorted by path) is held out as the test split, or all of them are reused when fewer than ten.
    Any file that does not decode fails the whole load, naming the files.
    """
    from concurrent.futures import ThreadPoolExecutor

    where = f"image folder {root}"
    if not root.exists():
        raise DataError(f"{where} does not exist")
    if not root.is_dir():
        raise DataError(f"{where} is not a folder")
    files = image_files(root)
    if not files:
        raise DataError(f"{where} holds no images (looked recursively for {', '.join(IMAGE_EXTENSIONS)})")
    out = np.empty((len(files), size, size, 3), np.uint8)
    grey = np.zeros(len(files), bool)
    errors: list[tuple[Path, str]] = []

    def decode(i: int) -> None:
        try:
            out[i], grey[i] = _decode_image(files[i], size)
        except Exception as e:  # noqa: BLE001 - any decoder failure names the file
            errors.append((files[i], f"{type(e).__name__}: {one_line(e)[:80]}"))

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(decode, range(len(files))))
    if errors:
        errors.sort()
        names = "; ".join(f"{p.relative_to(root)} ({why})" for p, why in errors[:3])
        more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
        raise DataError(f"{where}: {len(errors)} of {len(files)} image files are unreadable: {names}{more}")
    x = out.transpose(0, 3, 1, 2)
    x = np.ascontiguousarray(x[:, :1] if grey.all() else x)
    tops = [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else root.name for p in files]
    classes = tuple(sorted(set(tops)))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[t] for t in tops], np.int64)
    if len(files) >= 10:
        test = np.arange(len(files)) % 10 == 9
        x_train, y_train, x_test, y_test = x[~test], y[~test], x[test], y[test]
    else:
        x_train, y_train, x_test, y_test = x, y, x.copy(), y.copy()
    return make_splits(x_train, y_train, x_test, y_test, classes, source or f"imagefolder:{root}", where)


def _decode_image(path: Path, size: int) -> tuple[np.ndarray, bool]:
    """One file -> (size x size x 3 uint8, was it grey); shorter side resized to `size`, centre crop."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        was_grey = im.mode in GREY_MODES
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # wide greys: scale to 8 bits first
            a = np.asarray(im, dtype=np.float64)
            hi = a.max() if a.size else 1.0
            im = Image.fromarray(np.clip(a * (255.0 / (hi if hi > 255 else 255.0)), 0, 255).astype(np.uint8))
        rgb = im.convert("RGB")
    w, h = rgb.size
    if w < 1 or h < 1:
        raise ValueError("empty image")
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        rgb = rgb.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    rgb = rgb.crop((left, top, left + size, top + size))
    return np.asarray(rgb, dtype=np.uint8), was_grey

