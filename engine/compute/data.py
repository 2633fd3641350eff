"""Data sources for the workers: load a split pair, hold it on the training device, cut and augment there.

Every source (the embedded `synthetic` set, `npz:PATH`, torchvision's `cifar10` / `mnist` over a data root)
becomes host-side uint8 NCHW arrays (`Splits`), then `DeviceData` moves both splits to the device once as
uint8 (4x smaller than float) and each step gathers a batch by index and augments it there in one
vectorized pass, with every random draw taken from a device generator, so the training step never waits
on the host (no DataLoader, no per-image PIL transforms, no `.item()`).

The augmentation follows the seed's `transform_train` (002, "Train the Discriminator without the
Generator"): RandomResizedCrop(32, scale 0.7-1, ratio 1), small ColorJitter, RandomHorizontalFlip, then
Normalize(0.5, 0.5) to [-1, 1]; the test split is only scaled, never augmented.

This module imports torch: only compute code imports it (never `tui/` or `store/`).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import pickle
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from engine.control.datasets import IMAGE_EXTENSIONS, IMAGEFOLDER, SYNTHETIC_SHAPES, image_files

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
# The synthetic set's classes, in label order; each is a shape a person tells apart at a glance.
SYNTHETIC_CLASSES: tuple[str, ...] = (
    "disc", "ring", "square-outline", "triangle", "cross", "h-stripes", "v-stripes", "checker", "diamond", "two-blobs",
)
# Bump whenever the generator's output changes: it is part of the cache key, so old caches are ignored.
SYNTHETIC_VERSION = "shapes-v3"
SYNTHETIC_TRAIN = 24_000
SYNTHETIC_TEST = 2_000

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                 "test_batch", "batches.meta")
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataError(ValueError):
    """A data source that cannot be used; the message is one line naming the file/folder and the problem."""


@dataclass(frozen=True)
class Splits:
    """Host-side train/test arrays: x uint8 [N, C, H, W], y int64 [N] in [0, num_classes)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        """Side of the (square) images; non-square sources must go through `conform` first."""
        h, w = self.x_train.shape[2:]
        if h != w:
            raise DataError(f"{self.source}: images are {h}x{w}, not square; conform them to a size first")
        return int(h)


# ----------------------------------------------------------------------------------------------- loading

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
        channels, size = SYNTHETIC_SHAPES[spec]
        splits = load_synthetic(SYNTHETIC_TRAIN, SYNTHETIC_TEST, channels=channels, size=size, cache_dir=cache_dir)
        return splits if spec == "synthetic" else dataclasses.replace(splits, source=spec)
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


def _validate(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
              num_classes: int | None, where: str) -> int:
    """Check shapes, dtypes and label ranges; returns the number of classes. `where` names the source."""
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.dtype != np.uint8:
            raise DataError(f"{where}: x_{split} is {x.dtype}, expected uint8 images")
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise DataError(f"{where}: x_{split} has shape {x.shape}, expected N x C x H x W with C 1 or 3")
        if x.shape[0] == 0:
            raise DataError(f"{where}: x_{split} holds no images")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataError(f"{where}: y_{split} has shape {y.shape}, expected ({x.shape[0]},)")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{where}: y_{split} is {y.dtype}, expected integer class ids")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{where}: train images {x_train.shape[1:]} and test images {x_test.shape[1:]} differ")
    lo = int(min(y_train.min(), y_test.min()))
    hi = int(max(y_train.max(), y_test.max()))
    if num_classes is None:
        num_classes = max(1, int(y_train.max()) + 1)
    if lo < 0 or hi >= num_classes:
        raise DataError(f"{where}: labels span {lo}..{hi}, outside the class range 0..{num_classes - 1}")
    return num_classes


def _make_splits(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 classes: tuple[str, ...] | None, source: str, where: str) -> Splits:
    n = _validate(x_train, y_train, x_test, y_test, None if classes is None else len(classes), where)
    if classes is None:
        classes = tuple(str(i) for i in range(n))
    return Splits(np.ascontiguousarray(x_train), y_train.astype(np.int64), np.ascontiguousarray(x_test),
                  y_test.astype(np.int64), tuple(classes), source)


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
        raise DataError(f"npz file {path} is unreadable: {type(e).__name__}: {_one_line(e)}") from None
    return _make_splits(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
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
        raise DataError(f"cifar10 in {folder} is unreadable: {type(e).__name__}: {_one_line(e)}") from None
    x_train = np.asarray(train.data).transpose(0, 3, 1, 2)
    x_test = np.asarray(test.data).transpose(0, 3, 1, 2)
    return _make_splits(x_train, np.asarray(train.targets), x_test, np.asarray(test.targets),
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
        raise DataError(f"mnist idx files in {raw} are unreadable: {type(e).__name__}: {_one_line(e)}") from None
    x_train = train.data.numpy()[:, None]
    x_test = test.data.numpy()[:, None]
    return _make_splits(x_train, train.targets.numpy(), x_test, test.targets.numpy(),
                        MNIST_CLASSES, "mnist", f"mnist in {raw}")


def _gunzip(src: Path, dst: Path) -> None:
    try:
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        os.replace(tmp, dst)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot unpack {src} next to it: {type(e).__name__}: {_one_line(e)}") from None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or "no detail"


# ----------------------------------------------------------------------------------------------- image folders

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
            errors.append((files[i], f"{type(e).__name__}: {_one_line(e)[:80]}"))

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
    return _make_splits(x_train, y_train, x_test, y_test, classes, source or f"imagefolder:{root}", where)


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


def select_classes(splits: Splits, classes: list[int] | tuple[int, ...]) -> Splits:
    """Keep only images whose label is in `classes` (both splits); labels and class names stay as they were.

    A label with no training images is a DataError naming it (a typo must not train on nothing).
    """
    if not classes:
        return splits
    wanted = np.asarray(sorted(set(classes)), np.int64)
    present = set(np.unique(splits.y_train).tolist())
    missing = [int(c) for c in wanted if int(c) not in present]
    if missing:
        raise DataError(f"{splits.source}: no training images of label {missing[0]} (classes={list(classes)}; "
                        f"labels 0..{splits.num_classes - 1})")
    tr = np.isin(splits.y_train, wanted)
    te = np.isin(splits.y_test, wanted)
    if not te.any():  # keep the split non-empty: a test split is only a diversity reference for GANs
        te = np.ones_like(te)
    return Splits(np.ascontiguousarray(splits.x_train[tr]), splits.y_train[tr], np.ascontiguousarray(splits.x_test[te]),
                  splits.y_test[te], splits.classes, splits.source)


# ----------------------------------------------------------------------------------------------- conform

def conform(splits: Splits, channels: int | None, size: int | None) -> Splits:
    """Make images fit a recipe's input (None keeps that property).

    28 -> 32 is zero padding (black borders, as MNIST digits already have, so nothing is distorted);
    other sizes: bilinear resize of the shorter side, then centre crop. Channels 1 -> 3 repeat the grey
    plane; 3 -> 1 take the luminance (ITU-R 601 weights).
    """
    x_train, x_test = splits.x_train, splits.x_test
    if channels is not None and channels != splits.channels:
        if channels not in (1, 3):
            raise DataError(f"{splits.source}: cannot make {channels}-channel images (only 1 or 3)")
        x_train, x_test = _convert_channels(x_train, channels), _convert_channels(x_test, channels)
    if size is not None and tuple(x_train.shape[2:]) != (size, size):
        x_train, x_test = _resize(x_train, size), _resize(x_test, size)
    if x_train is splits.x_train and x_test is splits.x_test:
        return splits
    return Splits(x_train, splits.y_train, x_test, splits.y_test, splits.classes, splits.source)


def _convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
    if channels == 3:
        return np.ascontiguousarray(np.repeat(x, 3, axis=1))
    y = (0.299 * x[:, 0].astype(np.float32) + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    n, c, h, w = x.shape
    if (h, w, size) == (28, 28, 32):  # MNIST into a 32x32 net: a black border, as the digits already have
        return np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    out = np.empty((n, c, size, size), np.uint8)
    top, left = (nh - size) // 2, (nw - size) // 2
    for i in range(0, n, 4096):  # chunks bound the float copy
        t = torch.from_numpy(x[i:i + 4096]).float()
        t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)
        t = t[:, :, top:top + size, left:left + size]
        out[i:i + 4096] = t.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


# ----------------------------------------------------------------------------------------------- synthetic

def synthetic_cache_dir() -> Path:
    """$GANMGR_CACHE if set, else ~/.cache/ganmgr (so every run on a node shares one generated set)."""
    env = os.environ.get("GANMGR_CACHE")
    return Path(os.path.expanduser(env)) if env else Path.home() / ".cache" / "ganmgr"


def synthetic_cache_path(n_train: int = SYNTHETIC_TRAIN, n_test: int = SYNTHETIC_TEST, seed: int = 0,
                         channels: int = 3, size: int = 32, cache_dir: Path | None = None) -> Path:
    """The cache file for these parameters; the name carries the version and every parameter."""
    key = f"{SYNTHETIC_VERSION}-n{n_train}-t{n_test}-s{seed}-c{channels}-z{size}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return (cache_dir or synthetic_cache_dir()) / f"synthetic-{key}-{digest}.npz"


def load_synthetic(n_train: int = SYNTHETIC_TRAIN, n_test: int = SYNTHETIC_TEST, seed: int = 0,
                   channels: int = 3, size: int = 32, *, cache_dir: Path | None = None) -> Splits:
    """`make_synthetic` through an on-disk cache: generated once per node, later loads take milliseconds.

    An unreadable or inconsistent cache file is regenerated; an unwritable cache folder only costs time.
    """
    path = synthetic_cache_path(n_train, n_test, seed, channels, size, cache_dir)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in NPZ_KEYS}
        want = {"x_train": (n_train, channels, size, size), "x_test": (n_test, channels, size, size),
                "y_train": (n_train,), "y_test": (n_test,)}
        if all(arrays[k].shape == s for k, s in want.items()) and arrays["x_train"].dtype == np.uint8:
            return _make_splits(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                                SYNTHETIC_CLASSES, "synthetic", f"synthetic cache {path}")
    except (FileNotFoundError, zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError):
        pass  # missing or corrupt: rebuild below
    splits = make_synthetic(n_train, n_test, seed, channels, size)
    try:
        _atomic_savez(path, **{k: getattr(splits, k) for k in NPZ_KEYS})
    except OSError:
        pass  # a read-only home still trains, it just regenerates next time
    return splits


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    """tmp file in the same folder + fsync + os.replace: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_synthetic(n_train: int = SYNTHETIC_TRAIN, n_test: int = SYNTHETIC_TEST, seed: int = 0,
                   channels: int = 3, size: int = 32) -> Splits:
    """Generate the embedded shapes set (deterministic by seed; train and test from independent streams).

    Ten shape classes, balanced, each drawn with a random position, scale, rotation (where it does not
    change the class), foreground and background colour (the class never depends on colour), background
    gradient and noise, anti-aliased edges and sometimes a small distractor stroke. `channels=1, size=28`
    gives the MNIST-shaped variant.
    """
    if channels not in (1, 3):
        raise ValueError(f"synthetic images have 1 or 3 channels, not {channels}")
    if size < 8:
        raise ValueError(f"synthetic images need a size of at least 8, not {size}")
    if n_train < 1 or n_test < 1:
        raise ValueError("synthetic splits need at least one image each")
    parts = []
    for stream, n in ((0, n_train), (1, n_test)):
        rng = np.random.default_rng([seed, stream])
        y = rng.permutation(np.arange(n) % len(SYNTHETIC_CLASSES)).astype(np.int64)
        parts.append((_render(y, rng, channels, size), y))
    (x_train, y_train), (x_test, y_test) = parts
    return Splits(x_train, y_train, x_test, y_test, SYNTHETIC_CLASSES, "synthetic")


def _smooth_cover(d_px: np.ndarray) -> np.ndarray:
    """Coverage of a pixel by a shape from its signed distance in pixels (inside < 0): smoothstep AA."""
    a = np.clip(0.5 - d_px, 0.0, 1.0)
    return a * a * (3.0 - 2.0 * a)


def _bands(t: np.ndarray, period: np.ndarray, phase: float) -> np.ndarray:
    """Signed distance (local units) to a set of parallel bands half a period wide."""
    f = (t / period + phase) % 1.0
    return (np.abs(f - 0.5) - 0.25) * period


def _render(labels: np.ndarray, rng: np.random.Generator, channels: int, size: int) -> np.ndarray:
    """Draw one image per label, in chunks that keep the float intermediates small and in cache."""
    out = np.empty((labels.shape[0], channels, size, size), np.uint8)
    for i in range(0, labels.shape[0], _CHUNK):
        out[i:i + _CHUNK] = _render_chunk(labels[i:i + _CHUNK], rng, channels, size)
    return out


_CHUNK = 1024


def _render_chunk(labels: np.ndarray, rng: np.random.Generator, channels: int, size: int) -> np.ndarray:
    """Draw one image per label; vectorized over all images of a class at once."""
    n = labels.shape[0]
    px = 2.0 / size  # one pixel in normalized coordinates ([-1, 1] across the image)
    coords = (np.arange(size, dtype=np.float32) + 0.5) * px - 1.0
    gx = coords[None, None, :]
    gy = coords[None, :, None]

    # background: a colour, a linear gradient in a random direction, fine noise
    bg = rng.random((n, 3), dtype=np.float32)
    fg = _contrasting_colours(bg, rng)
    ang = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    amp = rng.uniform(0.0, 0.25, (n, 1)).astype(np.float32) * rng.uniform(0.5, 1.0, (n, 3)).astype(np.float32)
    ramp = (np.cos(ang)[:, None, None] * gx + np.sin(ang)[:, None, None] * gy) * 0.5  # [n, H, W] in +-0.7
    img = np.multiply(amp[:, :, None, None], ramp[:, None])  # in-place from here: fewer passes over memory
    img += bg[:, :, None, None]

    cover = np.zeros((n, size, size), np.float32)
    for k in range(len(SYNTHETIC_CLASSES)):
        sel = np.flatnonzero(labels == k)
        if sel.size:
            cover[sel] = _shape_cover(k, sel.size, rng, gx, gy, px)
    # foreground with a slight shading across the object so it is not a flat stencil
    shade = 1.0 + rng.uniform(-0.12, 0.12, (n, 1, 1)).astype(np.float32) * ramp
    fgimg = np.multiply(fg[:, :, None, None], shade[:, None])
    np.clip(fgimg, 0.0, 1.0, out=fgimg)
    fgimg -= img
    fgimg *= cover[:, None]
    img += fgimg  # img * (1 - cover) + fg * cover
    del fgimg

    # distractor: a short thin stroke of a random colour in half of the images
    has = rng.random(n) < 0.5
    m = int(has.sum())
    if m:
        idx = np.flatnonzero(has)
        c = rng.uniform(-0.85, 0.85, (m, 2)).astype(np.float32)
        th = rng.uniform(0, np.pi, m).astype(np.float32)
        half = rng.uniform(1.5, 3.0, m).astype(np.float32) * px
        d = _capsule(gx - c[:, 0, None, None], gy - c[:, 1, None, None], th, half) - 0.5 * px
        a = _smooth_cover(d / px)
        col = rng.random((m, 3), dtype=np.float32)
        sub = img[idx]
        img[idx] = sub + (col[:, :, None, None] - sub) * a[:, None]

    # pixel noise, uniform with a standard deviation up to 0.05 (uniform draws are ~3x cheaper than normal)
    sigma = rng.uniform(0.0, 0.05 * np.sqrt(12.0), (n, 1, 1, 1)).astype(np.float32)
    noise = rng.random(img.shape, dtype=np.float32)
    noise -= 0.5
    noise *= sigma
    img += noise
    del noise
    if channels == 1:
        img = 0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]
    img *= 255.0
    img += 0.5
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)


def _contrasting_colours(bg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random foreground colours whose luminance differs from the background's by at least 0.4."""
    w = np.array([0.299, 0.587, 0.114], np.float32)
    n = bg.shape[0]
    cand = rng.random((n, 32, 3), dtype=np.float32)
    ok = np.abs(cand @ w - (bg @ w)[:, None]) >= 0.4
    first = np.argmax(ok, axis=1)
    fg = cand[np.arange(n), first]
    none = ~ok.any(axis=1)
    fg[none] = np.where((bg[none] @ w)[:, None] > 0.5, 0.05, 0.95)  # mid-grey background: go dark or light
    return fg


def _capsule(x: np.ndarray, y: np.ndarray, theta: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Distance to a segment through the origin at angle theta with half-length `half`."""
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    t = np.clip(x * c + y * s, -half[:, None, None], half[:, None, None])
    return np.hypot(x - t * c, y - t * s)


def _shape_cover(k: int, m: int, rng: np.random.Generator, gx: np.ndarray, gy: np.ndarray,
                 px: float) -> np.ndarray:
    """Coverage [m, H, W] of `m` random instances of class k; local units are multiples of the scale."""
    big = k in (5, 6, 7)  # pattern classes need room for their bands
    s = rng.uniform(0.5, 0.75, m) if big else rng.uniform(0.45, 0.72, m)
    s = s.astype(np.float32)
    lim = np.maximum(0.92 - s, 0.0)
    cx = rng.uniform(-1, 1, m).astype(np.float32) * lim
    cy = rng.uniform(-1, 1, m).astype(np.float32) * lim
    if k in (0, 1, 9):  # rotation never changes these classes
        th = rng.uniform(0, 2 * np.pi, m)
    elif k == 3:  # triangles point up or down (tilted a little); any angle would make them much harder
        th = rng.uniform(-0.25, 0.25, m) + np.pi * rng.integers(0, 2, m)
    else:  # keep squares square, pluses upright, stripes horizontal/vertical and diamonds upright
        th = rng.uniform(-0.25, 0.25, m)
    th = th.astype(np.float32)
    c, sn = np.cos(th)[:, None, None], np.sin(th)[:, None, None]
    dx = (gx - cx[:, None, None]) / s[:, None, None]
    dy = (gy - cy[:, None, None]) / s[:, None, None]
    u = c * dx + sn * dy  # rotate into the shape's frame
    v = -sn * dx + c * dy

    def r(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, (m, 1, 1)).astype(np.float32)

    if k == 0:  # filled disc
        d = np.hypot(u, v) - 0.9
    elif k == 1:  # ring
        d = np.abs(np.hypot(u, v) - r(0.7, 0.8)) - r(0.16, 0.26)
    elif k == 2:  # square outline (a filled square is too close to a disc for a small net to learn fast)
        d = np.abs(np.maximum(np.abs(u), np.abs(v)) - r(0.65, 0.75)) - r(0.14, 0.22)
    elif k == 3:  # equilateral triangle
        d = _triangle(u, v)
    elif k == 4:  # plus / cross (a plus turned 45 degrees is an x: same class)
        w = r(0.2, 0.3)
        d = np.minimum(np.maximum(np.abs(u) - 1.0, np.abs(v) - w), np.maximum(np.abs(v) - 1.0, np.abs(u) - w))
    elif k in (5, 6, 7):  # stripes / checkerboard inside a square patch
        nb = rng.integers(3, 5, (m, 1, 1)).astype(np.float32)  # 3 or 4 periods across the patch
        period = 1.8 / nb
        patch = np.maximum(np.abs(u), np.abs(v)) - 0.9
        if k == 5:
            d = np.maximum(patch, _bands(v, period, 0.25))
        elif k == 6:
            d = np.maximum(patch, _bands(u, period, 0.25))
        else:
            au = _smooth_cover(_bands(u, period, 0.25) * (s[:, None, None] / px))
            av = _smooth_cover(_bands(v, period, 0.25) * (s[:, None, None] / px))
            inside = _smooth_cover(patch * (s[:, None, None] / px))
            return inside * (au * (1 - av) + av * (1 - au))
    elif k == 8:  # upright diamond (rhombus taller than wide)
        a, b = r(0.5, 0.65), 1.0
        d = (np.abs(u) / a + np.abs(v) / b - 1.0) * (a * b / np.sqrt(a * a + b * b))
    else:  # two blobs
        rb = r(0.32, 0.42)
        sep = r(0.55, 0.7)
        d = np.minimum(np.hypot(u - sep, v), np.hypot(u + sep, v)) - rb
    return _smooth_cover(d * (s[:, None, None] / px))


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance to an equilateral triangle of circumradius 1.1 centred at the origin (exact on edges)."""
    # three half-planes at distance 0.55 (the inradius) with outward normals 120 degrees apart
    d = None
    for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
        h = u * np.float32(np.cos(a)) + v * np.float32(np.sin(a)) - 0.55
        d = h if d is None else np.maximum(d, h)
    return d


# ----------------------------------------------------------------------------------------------- tensors

def to_unit_range(x_uint8: Tensor) -> Tensor:
    """uint8 images -> float32 in [-1, 1], as the seed's Normalize((0.5,)*3, (0.5,)*3) after ToTensor."""
    return x_uint8.float().div_(127.5).sub_(1.0)


_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_INV = torch.linalg.inv(_YIQ)
_COLOUR_CONSTS: dict[torch.device, tuple[Tensor, Tensor]] = {}


def _yiq_on(dev: torch.device) -> tuple[Tensor, Tensor]:
    """RGB->YIQ and back on `dev`, copied there once (not a host->device copy every step)."""
    if dev not in _COLOUR_CONSTS:
        _COLOUR_CONSTS[dev] = (_YIQ.to(dev), _YIQ_INV.to(dev))
    return _COLOUR_CONSTS[dev]


def augment_batch(x_uint8: Tensor, generator: torch.Generator) -> Tensor:
    """The seed's train transform for a whole batch in one vectorized pass; float32 [-1, 1] out.

    Per sample: a random square crop covering 70-100% of the area (RandomResizedCrop, ratio 1) and a
    horizontal flip (p 0.5), both folded into one affine grid, sampled bilinearly; then brightness,
    contrast, saturation factors in [0.9, 1.1] and a hue rotation up to +-0.02 turns in YIQ space
    (grey images get brightness and contrast only). All draws come from `generator`, which must live on
    x's device, so nothing syncs with the host.
    """
    b, ch = x_uint8.shape[0], x_uint8.shape[1]
    dev = x_uint8.device
    u = torch.rand(b, 8, generator=generator, device=dev)
    x = x_uint8.float().div_(255.0)

    side = torch.sqrt(0.7 + 0.3 * u[:, 0])  # crop side as a fraction of the image (area 0.7-1)
    flip = torch.where(u[:, 3] < 0.5, -1.0, 1.0)
    cx = (1.0 - side) * (2.0 * u[:, 1] - 1.0)  # crop centre anywhere that keeps it inside the image
    cy = (1.0 - side) * (2.0 * u[:, 2] - 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = side * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = side
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    bright = (0.9 + 0.2 * u[:, 4]).view(b, 1, 1, 1)
    contrast = (0.9 + 0.2 * u[:, 5]).view(b, 1, 1, 1)
    x = (x * bright).clamp_(0.0, 1.0)  # as ColorJitter clamps after brightness
    if ch == 3:
        yiq, yiq_inv = _yiq_on(dev)
        grey = (x * yiq[0].view(1, 3, 1, 1)).sum(1, keepdim=True)
    else:
        grey = x
    mean = grey.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    if ch == 3:
        sat = (0.9 + 0.2 * u[:, 6]).view(b, 1, 1)
        hue = (2.0 * u[:, 7] - 1.0) * (0.02 * 2.0 * torch.pi)
        cos, sin = torch.cos(hue).view(b, 1, 1), torch.sin(hue).view(b, 1, 1)
        # per-sample 3x3: RGB -> YIQ, scale chroma by saturation and rotate it by the hue, back to RGB
        rot = torch.zeros(b, 3, 3, device=dev)
        rot[:, 0, 0] = 1.0
        rot[:, 1:, 1:] = sat * torch.cat([torch.cat([cos, -sin], 2), torch.cat([sin, cos], 2)], 1)
        m = yiq_inv @ rot @ yiq  # a constant inverse: linalg.inv would check for singularity (a sync)
        x = torch.einsum("bij,bjhw->bihw", m, x)
    return x.clamp_(0.0, 1.0).mul_(2.0).sub_(1.0)


class DeviceData:
    """Both splits held as uint8 tensors on `device`; batches are cut and augmented there."""

    def __init__(self, splits: Splits, device: torch.device | str):
        self.device = torch.device(device)
        self.classes = splits.classes
        self.num_classes = splits.num_classes
        self.channels = splits.channels
        self.image_size = splits.image_size
        self.x_train = torch.from_numpy(np.ascontiguousarray(splits.x_train)).to(self.device)
        self.y_train = torch.from_numpy(splits.y_train.astype(np.int64)).to(self.device)
        self.x_test = torch.from_numpy(np.ascontiguousarray(splits.x_test)).to(self.device)
        self.y_test = torch.from_numpy(splits.y_test.astype(np.int64)).to(self.device)
        self.num_train = int(self.x_train.shape[0])
        self.num_test = int(self.x_test.shape[0])

    def steps_per_epoch(self, batch_size: int) -> int:
        """Whole batches per epoch; the incomplete last one is dropped (fixed shapes, no tiny noisy step)."""
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, not {batch_size}")
        if batch_size > self.num_train:
            raise DataError(f"the training split has {self.num_train} images, fewer than one batch of "
                            f"{batch_size}")
        return self.num_train // batch_size

    def epoch_order(self, generator: torch.Generator) -> Tensor:
        """A random permutation of the train indices, drawn on the device."""
        return torch.randperm(self.num_train, generator=generator, device=self.device)

    def train_batch(self, idx: Tensor, generator: torch.Generator | None, augment: bool) -> tuple[Tensor, Tensor]:
        """Images float32 [B,C,H,W] in [-1,1] and labels int64 [B] for train indices `idx`; no host sync."""
        x = self.x_train.index_select(0, idx)
        y = self.y_train.index_select(0, idx)
        if augment:
            if generator is None:
                raise ValueError("augment=True needs a generator on the data device")
            return augment_batch(x, generator), y
        return to_unit_range(x), y

    def test_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Every test image exactly once, in order, never augmented (the last batch may be short)."""
        for i in range(0, self.num_test, batch_size):
            yield to_unit_range(self.x_test[i:i + batch_size]), self.y_test[i:i + batch_size]

    def mean_test_image(self) -> Tensor:
        """The average test image [C,H,W] in [-1,1]: the seed's Part 2 starts its synthetic images there."""
        # float32 sums of uint8 stay exact below 2**24 / 255 images; float64 is missing on some devices (mps)
        total = torch.zeros(self.x_test.shape[1:], dtype=torch.float32, device=self.device)
        for i in range(0, self.num_test, 4096):
            total += self.x_test[i:i + 4096].sum(0, dtype=torch.float32)
        return total / (self.num_test * 127.5) - 1.0
