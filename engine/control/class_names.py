"""The class names of a data set, by label, torch-free: what the sample viewer writes over the columns of a
class-conditional grid, and what the loaders (engine/compute/data) give their `Splits`.

The built-in sets have fixed names (the embedded shapes, CIFAR-10's, MNIST's digits); an `npz:` file may
carry a `classes` array, and without one its classes are named by their ids, counted by the loaders' label
rule (`label_range`); an image folder's classes are its top-level subfolders, sorted (the loader's rule).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from engine.control.datasets import IMAGEFOLDER, SYNTHETIC_SHAPES, label_range

# The synthetic set's classes, in label order; each is a shape a person tells apart at a glance.
SYNTHETIC_CLASSES: tuple[str, ...] = (
    "disc", "ring", "square-outline", "triangle", "cross", "h-stripes", "v-stripes", "checker", "diamond", "two-blobs",
)
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))


def dataset_class_names(dataset: str) -> tuple[str, ...] | None:
    """The names of `dataset`'s classes in label order; None when they cannot be known without loading the
    data (an npz that cannot be read, a folder that is gone)."""
    spec = dataset.strip()
    if spec in SYNTHETIC_SHAPES:
        return SYNTHETIC_CLASSES
    if spec == "cifar10":
        return CIFAR10_CLASSES
    if spec == "mnist":
        return MNIST_CLASSES
    if spec.startswith("npz:"):
        return _npz_class_names(Path(os.path.expanduser(spec[4:].strip())))
    if spec.startswith(IMAGEFOLDER):
        return _folder_class_names(Path(os.path.expanduser(spec[len(IMAGEFOLDER):].strip())))
    return None


def _npz_class_names(path: Path) -> tuple[str, ...] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if "classes" in z.files:
                return tuple(str(c) for c in z["classes"].tolist())
            count, _ = label_range(z["y_train"], z["y_test"], None)  # the labels only, not the images
            return tuple(str(i) for i in range(count))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None


def _folder_class_names(root: Path) -> tuple[str, ...] | None:
    """The top-level subfolders, sorted; a folder with its images at the top is one class, its own name (the
    loader counts images; this looks only at names, which is what a caption needs)."""
    try:
        subs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return None
    return tuple(subs) if subs else (root.name,)
