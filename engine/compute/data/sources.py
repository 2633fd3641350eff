"""Named data sources read into `Splits`: the dataset spec dispatcher, `npz:PATH` and torchvision's
`cifar10` / `mnist` over a data root (image folders: `imagefolder`; the embedded set: `synthetic`).

Every source becomes host-side uint8 NCHW arrays; nothing is downloaded unless asked, and any unusable
source raises a one-line DataError naming the file or folder.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np

from engine.compute.data.imagefolder import load_imagefolder
from engine.compute.data.splits import DataError, Splits, make_splits, one_line
from engine.compute.data.synthetic import load_synthetic_variant
from engine.control import datasets
from engine.control.class_names import MNIST_CLASSES
from engine.control.datasets import IMAGEFOLDER, NPZ_KEYS, SYNTHETIC_SHAPES

# the files torchvision reads, by name: the torch-free check's list (paths under the data root) plus
# CIFAR-10's class names, which only the loader reads
CIFAR10_FILES = (*(Path(f).name for f in datasets.CIFAR10_FILES), "batches.meta")
MNIST_FILES = tuple(Path(f).name for f in datasets.MNIST_FILES)


def load_splits(dataset: str, data_root: str | None = None, download: bool = False,
                *, cache_dir: Path | None = None, image_size: int | None = None) -> Splits:
    """Read a dataset spec (`synthetic`, `synthetic28`, `synthetic64`, `npz:PATH`, `imagefolder:PATH`,
    `cifar10`, `mnist`) into validated host arrays.

    `image_size` is the recipe's input side: image folders hold pictures of any size, so each is resized
    and centre-cropped to it while decoding (64 when not given). Nothing is downloaded unless `download`
    is true; any unusable source raises a one-line DataError.
    """
    spec = dataset.strip()
    if spec in SYNTHETIC_SHAPES:
        return load_synthetic_variant(spec, cache_dir=cache_dir)
    if spec.startswith(IMAGEFOLDER):
        path_text = spec[len(IMAGEFOLDER):].strip()
        if not path_text:
            raise DataError("dataset imagefolder: needs a folder after 'imagefolder:'")
        return load_imagefolder(Path(os.path.expanduser(path_text)), image_size or 64, source=spec)
    if spec.startswith("npz:"):
        path_text = spec[4:].strip()
        if not path_text:
            raise DataError("dataset npz: needs a path after 'npz:'")
        return _load_npz(Path(os.path.expanduser(path_text)), spec)
    if spec in ("cifar10", "mnist"):
        if not data_root:
            raise DataError(f"dataset {spec} needs a data root (the folder holding its files)")
        root = Path(os.path.expanduser(data_root))
        if root.exists() and not root.is_dir():
            raise DataError(f"data root {root} is not a folder")
        if not download and not root.is_dir():
            raise DataError(f"data root {root} does not exist; point it at the folder holding the {spec} "
                            f"files, or download on a node that is online")
        return _load_cifar10(root, download) if spec == "cifar10" else _load_mnist(root, download)
    raise DataError(f"dataset {dataset!r} is not a known data source; use synthetic, synthetic28, synthetic64, "
                    f"cifar10, mnist, npz:PATH or imagefolder:PATH")


def _load_npz(path: Path, spec: str) -> Splits:
    """An npz with x_train/y_train/x_test/y_test (and optionally `classes`, an array of names)."""
    if not path.exists():
        raise DataError(f"npz file {path} does not exist")
    if not path.is_file():
        raise DataError(f"npz path {path} is not a file")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in NPZ_KEYS if k not in z.files]
            if missing:
                raise DataError(f"npz file {path} lacks the arrays {', '.join(missing)} "
                                f"(needs x_train, y_train, x_test, y_test)")
            arrays = {k: z[k] for k in NPZ_KEYS}
            classes = tuple(str(c) for c in z["classes"].tolist()) if "classes" in z.files else None
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as e:
        raise DataError(f"npz file {path} is unreadable: {type(e).__name__}: {one_line(e)}") from None
    return make_splits(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                       classes, spec, f"npz file {path}")


def _load_cifar10(root: Path, download: bool) -> Splits:
    """torchvision's CIFAR10 (md5-checked pickles under ROOT/cifar-10-batches-py); NHWC -> NCHW."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    folder = root / CIFAR10.base_folder
    if not download:
        missing = [f for f in CIFAR10_FILES if not (folder / f).is_file()]
        if missing:
            raise DataError(f"data root {root} lacks the cifar10 files {', '.join(missing)} in {folder.name}/ "
                            f"(torchvision's layout); download on a node that is online")
    try:
        train = CIFAR10(str(root), train=True, download=download)
        test = CIFAR10(str(root), train=False, download=False)
    except (RuntimeError, OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError) as e:
        expected = {name: md5 for name, md5 in CIFAR10.train_list + CIFAR10.test_list}
        expected[CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
        bad = [n for n, md5 in expected.items() if not check_integrity(str(folder / n), md5)]
        if bad:
            raise DataError(f"cifar10 files in {folder} fail torchvision's md5 check: {', '.join(bad)} "
                            f"(corrupt or not the official files)") from None
        raise DataError(f"cifar10 in {folder} is unreadable: {type(e).__name__}: {one_line(e)}") from None
    x_train = np.asarray(train.data).transpose(0, 3, 1, 2)
    x_test = np.asarray(test.data).transpose(0, 3, 1, 2)
    return make_splits(x_train, np.asarray(train.targets), x_test, np.asarray(test.targets),
                       tuple(train.classes), "cifar10", f"cifar10 in {folder}")


def _load_mnist(root: Path, download: bool) -> Splits:
    """torchvision's MNIST (idx files under ROOT/MNIST/raw, plain or .gz); [N,28,28] -> [N,1,28,28]."""
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    if not download:
        missing = [f for f in MNIST_FILES if not (raw / f).is_file() and not (raw / (f + ".gz")).is_file()]
        if missing:
            raise DataError(f"data root {root} lacks the mnist files {', '.join(missing)} in MNIST/raw/ "
                            f"(torchvision's layout); download on a node that is online")
        for f in MNIST_FILES:  # torchvision reads only the unpacked files; unpack as its download would
            if not (raw / f).is_file():
                _gunzip(raw / (f + ".gz"), raw / f)
    try:
        train = MNIST(str(root), train=True, download=download)
        test = MNIST(str(root), train=False, download=False)
    except (RuntimeError, OSError, AssertionError, TypeError, ValueError, KeyError) as e:
        raise DataError(f"mnist idx files in {raw} are unreadable: {type(e).__name__}: {one_line(e)}") from None
    x_train = train.data.numpy()[:, None]
    x_test = test.data.numpy()[:, None]
    return make_splits(x_train, train.targets.numpy(), x_test, test.targets.numpy(),
                       MNIST_CLASSES, "mnist", f"mnist in {raw}")


def _gunzip(src: Path, dst: Path) -> None:
    try:
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        os.replace(tmp, dst)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot unpack {src} next to it: {type(e).__name__}: {one_line(e)}") from None

