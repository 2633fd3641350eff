"""Torch-free checks that a data source exists and has the right files, run before any row or folder.

The worker's loaders (`engine.compute.data`) do the real reading; these checks only look at names, files and
array headers, so the CLI and the TUI can refuse a bad `--dataset`/`--data-root` at once and say which
file is missing.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.control.errors import ConfigError

# the embedded shapes set in three shapes: CIFAR-like 3x32 (the course's), MNIST-like 1x28, DCGAN-like 3x64
SYNTHETIC_SHAPES: dict[str, tuple[int, int]] = {"synthetic": (3, 32), "synthetic28": (1, 28), "synthetic64": (3, 64)}
BUILTIN = tuple(SYNTHETIC_SHAPES)
SYNTHETIC_CLASS_COUNT = 10
MNIST_CLASS_COUNT = 10
CIFAR10_CLASS_COUNT = 10
IMAGEFOLDER = "imagefolder:"
# what `imagefolder:PATH` reads (Pillow decodes them); matched case-insensitively
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
TORCHVISION = ("cifar10", "mnist")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

CIFAR10_FILES = ("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/data_batch_2",
                 "cifar-10-batches-py/data_batch_3", "cifar-10-batches-py/data_batch_4",
                 "cifar-10-batches-py/data_batch_5", "cifar-10-batches-py/test_batch")
MNIST_FILES = ("MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-labels-idx1-ubyte",
               "MNIST/raw/t10k-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte")


def dataset_syntax_error(spec: str) -> str | None:
    """None when `spec` names a known kind of source, else the reason (used by config validation)."""
    if spec in BUILTIN or spec in TORCHVISION:
        return None
    if spec.startswith("npz:"):
        return None if spec[4:].strip() else "needs a path after 'npz:'"
    if spec.startswith(IMAGEFOLDER):
        return None if spec[len(IMAGEFOLDER):].strip() else "needs a folder after 'imagefolder:'"
    kinds = ", ".join((*BUILTIN, *TORCHVISION, "npz:PATH", "imagefolder:PATH"))
    return f"is not a known data source; use one of: {kinds}"


def check_dataset_available(cfg: dict) -> None:
    """Raise ConfigError (one line) when the config's data cannot be read; cheap, no torch."""
    spec = cfg["dataset"]
    classes = cfg.get("classes") or []
    if spec in BUILTIN:
        _check_class_range(classes, SYNTHETIC_CLASS_COUNT, spec)
        return
    if spec.startswith("npz:"):
        check_npz(spec[4:])
        present = check_npz_labels(spec[4:])
        if classes:
            _check_npz_classes(spec[4:], classes, present)
        return
    if spec.startswith(IMAGEFOLDER):
        check_imagefolder(spec[len(IMAGEFOLDER):])
        return
    if spec in TORCHVISION:
        _check_class_range(classes, MNIST_CLASS_COUNT if spec == "mnist" else CIFAR10_CLASS_COUNT, spec)
    root = cfg.get("data_root")
    if not root:
        raise ConfigError(f"dataset {spec} needs --data-root (the folder holding its files)")
    path = Path(os.path.expanduser(root))
    if cfg.get("download"):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"data root {root} is not a folder")
        return
    if not path.is_dir():
        raise ConfigError(f"data root {root} does not exist; point --data-root at the folder holding "
                          f"the {spec} files, or add --download on a node that is online")
    files = CIFAR10_FILES if spec == "cifar10" else MNIST_FILES
    missing = [f for f in files if not (path / f).exists() and not (path / (f + ".gz")).exists()]
    if missing:
        raise ConfigError(f"data root {root} lacks the {spec} files ({', '.join(missing[:3])}"
                          f"{' ...' if len(missing) > 3 else ''}); expected torchvision's layout, "
                          f"or add --download on a node that is online")


def check_npz(path_text: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """Read only the array headers of an npz and check the four arrays; returns name -> (shape, dtype)."""
    path = Path(os.path.expanduser(path_text.strip()))
    if not path.exists():
        raise ConfigError(f"npz file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"npz path {path} is not a file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"npz file {path} is not readable")
    info: dict[str, tuple[tuple[int, ...], str]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n[:-4] if n.endswith(".npy") else n: n for n in zf.namelist()}
            missing = [k for k in NPZ_KEYS if k not in names]
            if missing:
                raise ConfigError(f"npz file {path} lacks the arrays {', '.join(missing)} "
                                  f"(needs x_train, y_train, x_test, y_test)")
            for key in NPZ_KEYS:
                with zf.open(names[key]) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                    else:
                        shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                    header = fh.tell()
                # a header that promises more bytes than the member holds: truncated (or a lie that would
                # make the worker allocate it); the zip's directory says what the member holds
                if not dtype.hasobject and header + math.prod(shape) * dtype.itemsize > zf.getinfo(names[key]).file_size:
                    raise ConfigError(f"npz file {path}: {key} is truncated (its header says {tuple(shape)} "
                                      f"{dtype}, more than the file holds)")
                info[key] = (tuple(shape), str(dtype))
    except ConfigError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ConfigError(f"npz file {path} is unreadable: {type(e).__name__}: {e}") from None
    for split in ("train", "test"):
        xs, xd = info[f"x_{split}"]
        ys, yd = info[f"y_{split}"]
        if xd != "uint8":
            raise ConfigError(f"npz file {path}: x_{split} is {xd}, expected uint8 images")
        if len(xs) != 4 or xs[1] not in (1, 3):
            raise ConfigError(f"npz file {path}: x_{split} has shape {xs}, expected N x C x H x W with C 1 or 3")
        if len(ys) != 1 or ys[0] != xs[0]:
            raise ConfigError(f"npz file {path}: y_{split} has shape {ys}, expected ({xs[0]},)")
        if np.dtype(yd).kind not in "iu":  # the worker's rule (engine/compute/data/splits.py)
            raise ConfigError(f"npz file {path}: y_{split} is {yd}, expected integer class ids")
        if xs[0] == 0:
            raise ConfigError(f"npz file {path}: x_{split} holds no images")
    if info["x_train"][0][1:] != info["x_test"][0][1:]:
        raise ConfigError(f"npz file {path}: train images {info['x_train'][0][1:]} and test images "
                          f"{info['x_test'][0][1:]} differ in shape")
    return info


def _check_class_range(classes: list[int], count: int, spec: str) -> None:
    bad = [c for c in classes if c >= count]
    if bad:
        raise ConfigError(f"classes={classes}: dataset {spec} has labels 0..{count - 1}, not {bad[0]}")


def check_npz_labels(path_text: str) -> set[int]:
    """The worker's label rule, at queue time: labels in 0..classes-1, where the class count is the length
    of the optional `classes` array (names) or else max(y_train)+1. Reads only the label arrays (N ints)
    and `classes`, never pickles; run after `check_npz`. Returns the labels present in y_train."""
    path = Path(os.path.expanduser(path_text.strip()))
    try:
        with np.load(path, allow_pickle=False) as z:
            y_train, y_test = z["y_train"], z["y_test"]
            names = z["classes"] if "classes" in z.files else None
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as e:
        raise ConfigError(f"npz file {path} is unreadable: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
                          ) from None
    if names is not None and names.ndim != 1:
        raise ConfigError(f"npz file {path}: classes has shape {names.shape}, expected one name per class")
    _count, problem = label_range(y_train, y_test, None if names is None else len(names))
    if problem:
        raise ConfigError(f"npz file {path}: {problem}" + ("" if names is not None else " (max of y_train + 1 classes)"))
    return set(np.unique(y_train).tolist())


def label_range(y_train: np.ndarray, y_test: np.ndarray, num_classes: int | None) -> tuple[int, str | None]:
    """The one label rule (queue-time check and the worker's loader): every label in 0..classes-1, the class
    count given or else max(y_train)+1. Returns (class count, what is wrong or None)."""
    lo = int(min(y_train.min(), y_test.min()))
    hi = int(max(y_train.max(), y_test.max()))
    count = num_classes if num_classes is not None else max(1, int(y_train.max()) + 1)
    if lo < 0 or hi >= count:
        return count, f"labels span {lo}..{hi}, outside the class range 0..{count - 1}"
    return count, None


def _check_npz_classes(path_text: str, classes: list[int], present: set[int]) -> None:
    """Every requested label must have training images."""
    path = Path(os.path.expanduser(path_text.strip()))
    missing = [c for c in classes if c not in present]
    if missing:
        raise ConfigError(f"classes={classes}: npz file {path} has no training images of label {missing[0]} "
                          f"(labels present: {', '.join(str(c) for c in sorted(present))})")


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _walk_image_files(root: Path) -> Iterator[Path]:
    """Image files under `root` (recursive, following no symlinked folders, hidden names skipped)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield from (Path(dirpath) / f for f in filenames if is_image_file(f) and not f.startswith("."))


def image_files(root: Path) -> list[Path]:
    """Every image file under `root`, sorted by path."""
    return sorted(_walk_image_files(root))


def check_imagefolder(path_text: str) -> Path:
    """The folder exists and holds at least one image file (by extension); decoding happens in the worker."""
    path = Path(os.path.expanduser(path_text.strip()))
    if not path.exists():
        raise ConfigError(f"image folder {path} does not exist")
    if not path.is_dir():
        raise ConfigError(f"image folder {path} is not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ConfigError(f"image folder {path} is not readable")
    if next(_walk_image_files(path), None) is not None:
        return path
    raise ConfigError(f"image folder {path} holds no images (looked recursively for "
                      f"{', '.join(IMAGE_EXTENSIONS)})")
