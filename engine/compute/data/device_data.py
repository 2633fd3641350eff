"""Both splits held on the training device as uint8 (4x smaller than float); each step gathers a batch by
index and augments it there, so the training step never waits on the host (no DataLoader, no host sync).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from engine.compute.data.augment import augment_batch
from engine.compute.data.splits import DataError, Splits


def to_unit_range(x_uint8: Tensor) -> Tensor:
    """uint8 images -> float32 in [-1, 1], as the course's Normalize((0.5,)*3, (0.5,)*3) after ToTensor."""
    return x_uint8.float().div_(127.5).sub_(1.0)


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
        """The average test image [C,H,W] in [-1,1]: the course's Part 2 starts its synthetic images there."""
        # float32 sums of uint8 stay exact below 2**24 / 255 images; float64 is missing on some devices (mps)
        total = torch.zeros(self.x_test.shape[1:], dtype=torch.float32, device=self.device)
        for i in range(0, self.num_test, 4096):
            total += self.x_test[i:i + 4096].sum(0, dtype=torch.float32)
        return total / (self.num_test * 127.5) - 1.0
