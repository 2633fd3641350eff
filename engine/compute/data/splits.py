"""Host-side split pairs (`Splits`): the one validation every source goes through, and the host-side
reshaping a recipe asks for (`select_classes`, `conform`) before the arrays move to the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.control.datasets import label_range


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
    num_classes, problem = label_range(y_train, y_test, num_classes)
    if problem:
        raise DataError(f"{where}: {problem}")
    return num_classes


def make_splits(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                classes: tuple[str, ...] | None, source: str, where: str) -> Splits:
    """Validated `Splits` with int64 labels; `classes` None names the classes by their ids."""
    n = _validate(x_train, y_train, x_test, y_test, None if classes is None else len(classes), where)
    if classes is None:
        classes = tuple(str(i) for i in range(n))
    return Splits(np.ascontiguousarray(x_train), y_train.astype(np.int64), np.ascontiguousarray(x_test),
                  y_test.astype(np.int64), tuple(classes), source)


def one_line(e: BaseException) -> str:
    """An exception's text on one line of at most 200 characters, for a DataError message."""
    return " ".join(str(e).split())[:200] or "no detail"


# ----------------------------------------------------------------------------------------------- reshaping

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

