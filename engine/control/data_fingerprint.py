"""A short key naming one real image set (source, split, count, preprocessing) by what is on disk.

The Inception statistics of a real set (`engine.compute.inception.real_stats`) are cached under this key,
so a later evaluation only generates. The key changes when a file of the source changes (size or mtime),
so a replaced data set never reuses stale statistics; it is torch-free and reads no image.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from engine.control.datasets import CIFAR10_FILES, IMAGEFOLDER, MNIST_FILES, SYNTHETIC_SHAPES, image_files

FINGERPRINT_VERSION = 1  # bump when the way a source is read into images changes


def _stamp(path: Path) -> list[object]:
    try:
        st = path.stat()
    except OSError:
        return [str(path), None, None]
    return [str(path), st.st_size, st.st_mtime_ns]


def source_files(dataset: str, data_root: str | None) -> list[Path]:
    """The files a dataset spec reads (none for the embedded synthetic sets, which are generated)."""
    spec = dataset.strip()
    if spec in SYNTHETIC_SHAPES:
        return []
    if spec.startswith("npz:"):
        return [Path(os.path.expanduser(spec[4:].strip())).resolve()]
    if spec.startswith(IMAGEFOLDER):
        root = Path(os.path.expanduser(spec[len(IMAGEFOLDER):].strip())).resolve()
        return image_files(root) if root.is_dir() else [root]
    root = Path(os.path.expanduser(data_root or "")).resolve()
    files = CIFAR10_FILES if spec == "cifar10" else MNIST_FILES if spec == "mnist" else ()
    return [root / f for f in files]


def data_fingerprint(dataset: str, data_root: str | None, split: str, n: int, **extra: object) -> str:
    """A 24-hex-digit key for `n` images of `split` ("train" / "test") of a dataset spec.

    `extra`: whatever else changes the images (image_size of an image folder, the classes kept, ...);
    values must be JSON-able. Files are named by path, size and mtime, not hashed (a 50k-image folder is
    stat'ed, not read)."""
    parts = {"v": FINGERPRINT_VERSION, "dataset": dataset.strip(), "split": split, "n": int(n),
             "files": [_stamp(p) for p in source_files(dataset, data_root)],
             "extra": {k: extra[k] for k in sorted(extra)}}
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]
