"""The course's Part 1 training loops (002), re-implemented faithfully as the benchmark's baseline.

This is how the course trains: a torchvision-style Dataset that turns every image into a PIL image and runs
the per-image transform chain (RandomResizedCrop, ColorJitter, RandomHorizontalFlip, ToTensor, Normalize)
in DataLoader worker processes; numpy noise and labels drawn on the host every step and copied over; two
separate critic passes for fake and real images; the course's `calc_gradient_penalty` (alpha drawn on the
host, expanded to the image shape); `.item()` of every logged value every step; fp32, default memory format,
plain Adam. Only the speed of this code matters here, so nothing in it is "improved": where the course's code
cannot run as written it says so below.

Deviation, forced: the course text writes `ColorJitter(brightness=0.1*torch.randn(1), ...)`, which current
torchvision rejects (a 1-element tensor is neither a number nor a pair, and a negative magnitude is refused
anyway). We use the fixed magnitudes 0.1/0.1/0.1 and hue 0.02, the ranges the engine's own augmentation
draws from; any non-zero hue makes PIL go through HSV, which is the cost that matters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from engine.compute.models.acgan import ACGANDConfig, ACGANDiscriminator, ACGANGConfig, ACGANGenerator

SEED_NUM_WORKERS = 2  # the course's DataLoader(num_workers=2)


def transform_train():
    """The course's `transform_train` (see the module docstring for the ColorJitter magnitudes)."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.RandomResizedCrop(32, scale=(0.7, 1.0), ratio=(1.0, 1.0)),
        transforms.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.02),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])


class ArrayImages(Dataset):
    """Like torchvision's CIFAR10: HWC uint8 arrays, each item made a PIL image and transformed on access."""

    def __init__(self, x_nchw: np.ndarray, labels: np.ndarray, transform):
        self.data = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))  # CIFAR10.data is N x H x W x C
        self.targets = [int(t) for t in labels]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        img = Image.fromarray(self.data[index])
        return self.transform(img), self.targets[index]


def seed_loader(x_nchw: np.ndarray, labels: np.ndarray, batch_size: int, num_workers: int) -> DataLoader:
    """`DataLoader(trainset, batch_size, shuffle=True, num_workers=2)` over the transformed images."""
    return DataLoader(ArrayImages(x_nchw, labels, transform_train()), batch_size=batch_size, shuffle=True,
                      num_workers=num_workers)


class SeedBatches:
    """Epoch after epoch a fresh `enumerate(trainloader)` (new workers, as the course's loop), short batch skipped."""

    def __init__(self, loader: DataLoader, batch_size: int):
        self.loader = loader
        self.batch_size = batch_size
        self.iterator = iter(loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        while True:
            try:
                x, y = next(self.iterator)
            except StopIteration:
                self.iterator = iter(self.loader)
                continue
            if y.shape[0] < self.batch_size:  # the course's `if(Y_train_batch.shape[0] < batch_size): continue`
                continue
            return x, y

    def worker_pids(self) -> list[int]:
        return [w.pid for w in getattr(self.iterator, "_workers", []) if w.pid]

    def close(self) -> None:
        """Stop the workers now (they would otherwise prefetch while the engine is being timed)."""
        shutdown = getattr(self.iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self.iterator = iter(())


def onehot_noise(batch_size: int, n_z: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The course's host-side draw: numpy labels and normal noise with the one-hot in the first dims."""
    label = np.random.randint(0, n_classes, batch_size)
    noise = np.random.normal(0, 1, (batch_size, n_z))
    label_onehot = np.zeros((batch_size, n_classes))
    label_onehot[np.arange(batch_size), label] = 1
    noise[np.arange(batch_size), :n_classes] = label_onehot[np.arange(batch_size)]
    return noise.astype(np.float32), label


def calc_gradient_penalty(netD: nn.Module, real_data: torch.Tensor, fake_data: torch.Tensor,
                          lam: float = 10.0) -> torch.Tensor:
    """The course's function: alpha drawn on the host and expanded, grad_outputs of ones, create_graph."""
    batch_size = real_data.shape[0]
    c, h, w = real_data.shape[1:]
    alpha = torch.rand(batch_size, 1)
    alpha = alpha.expand(batch_size, int(real_data.nelement() / batch_size)).contiguous()
    alpha = alpha.view(batch_size, c, h, w).to(real_data.device)
    fake_data = fake_data.view(batch_size, c, h, w)
    interpolates = alpha * real_data.detach() + ((1 - alpha) * fake_data.detach())
    interpolates.requires_grad_(True)
    disc_interpolates, _ = netD(interpolates)
    gradients = torch.autograd.grad(outputs=disc_interpolates, inputs=interpolates,
                                    grad_outputs=torch.ones(disc_interpolates.size(), device=real_data.device),
                                    create_graph=True, retain_graph=True, only_inputs=True)[0]
    gradients = gradients.view(gradients.size(0), -1)
    return ((gradients.norm(2, dim=1) - 1) ** 2).mean() * lam


@dataclass
class SeedGAN:
    """The course's aD/aG, their Adams (betas (0, 0.9)) and the per-step logging lists."""

    aD: nn.Module
    aG: nn.Module
    optimizer_d: torch.optim.Optimizer
    optimizer_g: torch.optim.Optimizer
    device: torch.device
    n_z: int = 100
    n_classes: int = 10
    gen_train: int = 1

    @classmethod
    def build(cls, width: int, device: torch.device, lr: float = 1e-4) -> SeedGAN:
        aD = ACGANDiscriminator(ACGANDConfig(width=width)).to(device)
        aG = ACGANGenerator(ACGANGConfig(width=width)).to(device)
        return cls(aD, aG, torch.optim.Adam(aD.parameters(), lr=lr, betas=(0.0, 0.9)),
                   torch.optim.Adam(aG.parameters(), lr=lr, betas=(0.0, 0.9)), device)

    def reset_logs(self) -> None:
        self.loss1, self.loss2, self.loss3, self.loss4, self.loss5, self.acc1 = [], [], [], [], [], []

    def step(self, batch_idx: int, X_train_batch: torch.Tensor, Y_train_batch: torch.Tensor) -> None:
        aD, aG, dev = self.aD, self.aG, self.device
        batch_size = X_train_batch.shape[0]
        # train G
        if (batch_idx % self.gen_train) == 0:
            for p in aD.parameters():
                p.requires_grad_(False)
            aG.zero_grad()
            noise, label = onehot_noise(batch_size, self.n_z, self.n_classes)
            noise_t = torch.from_numpy(noise).to(dev)
            fake_label = torch.from_numpy(label).to(dev)
            fake_data = aG(noise_t)
            gen_source, gen_class = aD(fake_data)
            gen_source = gen_source.mean()
            gen_class = F.cross_entropy(gen_class, fake_label)
            gen_cost = -gen_source + gen_class
            gen_cost.backward()
            self.optimizer_g.step()
        # train D
        for p in aD.parameters():
            p.requires_grad_(True)
        aD.zero_grad()
        noise, label = onehot_noise(batch_size, self.n_z, self.n_classes)
        noise_t = torch.from_numpy(noise).to(dev)
        fake_label = torch.from_numpy(label).to(dev)
        with torch.no_grad():
            fake_data = aG(noise_t)
        disc_fake_source, disc_fake_class = aD(fake_data)
        disc_fake_source = disc_fake_source.mean()
        disc_fake_class = F.cross_entropy(disc_fake_class, fake_label)
        real_data = X_train_batch.to(dev)
        real_label = Y_train_batch.to(dev)
        disc_real_source, disc_real_class = aD(real_data)
        prediction = disc_real_class.data.max(1)[1]
        accuracy = (float(prediction.eq(real_label.data).sum()) / float(batch_size)) * 100.0
        disc_real_source = disc_real_source.mean()
        disc_real_class = F.cross_entropy(disc_real_class, real_label)
        gradient_penalty = calc_gradient_penalty(aD, real_data, fake_data)
        disc_cost = disc_fake_source - disc_real_source + disc_real_class + disc_fake_class + gradient_penalty
        disc_cost.backward()
        self.optimizer_d.step()
        # within the training loop: every logged value read back every step
        self.loss1.append(gradient_penalty.item())
        self.loss2.append(disc_fake_source.item())
        self.loss3.append(disc_real_source.item())
        self.loss4.append(disc_real_class.item())
        self.loss5.append(disc_fake_class.item())
        self.acc1.append(accuracy)


@dataclass
class SeedBaseline:
    """The course's discriminator-only classifier loop (homework-3 style: loss and accuracy read every step)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device

    @classmethod
    def build(cls, width: int, device: torch.device, lr: float = 1e-4) -> SeedBaseline:
        model = ACGANDiscriminator(ACGANDConfig(width=width)).to(device)
        return cls(model, torch.optim.Adam(model.parameters(), lr=lr), device)

    def reset_logs(self) -> None:
        self.losses, self.accs = [], []

    def step(self, batch_idx: int, X_train_batch: torch.Tensor, Y_train_batch: torch.Tensor) -> None:
        X_train_batch = X_train_batch.to(self.device)
        Y_train_batch = Y_train_batch.to(self.device)
        _, output = self.model(X_train_batch)
        loss = F.cross_entropy(output, Y_train_batch)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        prediction = output.data.max(1)[1]
        self.accs.append(float(prediction.eq(Y_train_batch.data).sum()) / float(X_train_batch.shape[0]) * 100.0)
        self.losses.append(loss.item())
