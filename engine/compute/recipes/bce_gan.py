"""What the course's simpler BCE GANs (001 MLP GAN, 003 Lab 5, 004 DCGAN) share, on top of the Trainer loop.

Each recipe supplies its two networks (`build_models`) and its step (`train_step`, in the order its text
gives); this base adds the Adam pair, the fixed noise rendered to `samples/epoch_NNN.png` after every epoch,
and the per-epoch `diversity` signal (engine.compute.mode_collapse) from a second fixed noise batch of 256 against
256 fixed real training images. These GANs have no classifier, so their epoch records carry no accuracy.

The fixed noise comes from a CPU generator seeded by the run's seed, apart from the training streams, so
the grids of a resumed run use the same vectors and drawing them changes no training number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.compute.data.device_data import to_unit_range
from engine.compute.imaging import save_grid
from engine.compute.mode_collapse import batchnorm_stats_kept, diversity, mean_pairwise_distance
from engine.compute.recipes.base import Trainer

SIGNAL_BATCH = 256  # generated (and real) images behind the diversity signal
GRID_COLUMNS = 8


def build_gan_models(recipe: str, cfg: Mapping[str, Any], channels: int, size: int) -> tuple[nn.Module, nn.Module]:
    """(G, D) of `mlp-gan`, `lab5-gan` or `dcgan` for a config and a data shape.

    The trainers build their networks here, and anything holding a checkpoint (its `config` and
    `data_shape`) rebuilds the same ones, e.g. to load `models["G"]` and draw samples.
    """
    if recipe == "mlp-gan":
        from engine.compute.models.mlp import MLPConfig, MLPDiscriminator, MLPGenerator

        mc = MLPConfig(width=cfg["width"], n_z=cfg["n_z"], leaky_slope=cfg["leaky_slope"], channels=channels,
                       image_size=size)
        return MLPGenerator(mc), MLPDiscriminator(mc)
    if recipe == "lab5-gan":
        from engine.compute.models.mlp import Lab5Config, Lab5Discriminator, Lab5Generator

        lc = Lab5Config(width=cfg["width"], n_z=cfg["n_z"], leaky_slope=cfg["leaky_slope"], channels=channels,
                        image_size=size)
        return Lab5Generator(lc), Lab5Discriminator(lc)
    if recipe == "dcgan":
        from engine.compute.models.dcgan import IMAGE_SIZE, DCGANConfig, DCGANDiscriminator, DCGANGenerator

        if size != IMAGE_SIZE:
            raise ValueError(f"dcgan makes {IMAGE_SIZE}x{IMAGE_SIZE} images, not {size}x{size}")
        dc = DCGANConfig(width=cfg["width"], n_z=cfg["n_z"], channels=channels, leaky_slope=cfg["leaky_slope"])
        return DCGANGenerator(dc), DCGANDiscriminator(dc)
    raise ValueError(f"recipe {recipe!r} is not one of the BCE GANs (mlp-gan, lab5-gan, dcgan)")


class BCEGANTrainer(Trainer):
    # True when G ends in a Sigmoid and trains on [0, 1] images (001); False: Tanh and [-1, 1]
    unit_interval_images: bool = False

    # --- to be provided by each recipe ---------------------------------------------------------------
    def build_models(self) -> tuple[nn.Module, nn.Module]:
        """(generator, discriminator) for self.data's channels and size."""
        return build_gan_models(self.spec.name, self.cfg, self.data.channels, self.data.image_size)

    def d_logits(self, x: torch.Tensor) -> torch.Tensor:
        """D's pre-sigmoid output [B]; BCE with logits equals the texts' BCE of a sigmoid, stably."""
        return self.D(x)

    # --- shared parts ----------------------------------------------------------------------------------
    def build(self) -> None:
        cfg = self.cfg
        g, d = self.build_models()
        self.G = self.rt.prepare_model(g)
        self.D = self.rt.prepare_model(d)
        kw = self.rt.optimizer_kwargs()
        betas = tuple(cfg["betas"])
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg["lr"], betas=betas, **kw)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg["lr"], betas=betas, **kw)
        dev = self.rt.device
        fixed = torch.Generator().manual_seed(cfg["seed"])
        self.fixed_noise = torch.randn(cfg["samples"], cfg["n_z"], generator=fixed).to(dev)
        self.signal_noise = torch.randn(SIGNAL_BATCH, cfg["n_z"], generator=fixed).to(dev)
        n_real = min(SIGNAL_BATCH, self.data.num_train)
        idx = torch.randperm(self.data.num_train, generator=fixed)[:n_real].to(dev)
        self.real_distance = mean_pairwise_distance(to_unit_range(self.data.x_train.index_select(0, idx)))

    def modules(self):
        return {"D": self.D, "G": self.G}

    def optimizers(self):
        return {"D": self.opt_d, "G": self.opt_g}

    def classifier(self):
        raise NotImplementedError(f"{self.spec.name} has no classifier head")

    def noise(self, batch: int) -> torch.Tensor:
        return torch.randn(batch, self.cfg["n_z"], device=self.rt.device, generator=self.noise_gen)

    def to_model_range(self, x: torch.Tensor) -> torch.Tensor:
        """Real batches arrive in [-1, 1]; 001's sigmoid generator and its data live in [0, 1]."""
        return (x + 1.0) * 0.5 if self.unit_interval_images else x

    def to_image_range(self, g_out: torch.Tensor) -> torch.Tensor:
        return g_out * 2.0 - 1.0 if self.unit_interval_images else g_out

    @staticmethod
    def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
        """BCE of sigmoid(logits) against a constant label (1 real, 0 fake), in fp32 outside autocast."""
        logits = logits.float()
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    def train_generator(self, batch: int) -> torch.Tensor:
        """The step 001 and 003 share: fresh noise -> G -> D, BCE against "real", one step of G only."""
        self.D.requires_grad_(False)
        with self.rt.autocast():
            out = self.d_logits(self.G(self.noise(batch))).float()
        loss = self.bce(out, 1.0)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return loss.detach()

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) as images in [-1, 1], without gradients and without moving BatchNorm running statistics."""
        with torch.no_grad(), batchnorm_stats_kept(self.G), self.rt.autocast():
            return self.to_image_range(self.G(z).float())

    def eval_images(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """G's images in [-1, 1], one per entry of `labels` (unconditional: only their number counts), noise
        from `generator` (engine/compute/evaluation.py sets eval mode and no_grad, and batches)."""
        z = torch.randn(labels.shape[0], self.cfg["n_z"], device=labels.device, generator=generator)
        return self.to_image_range(self.G(z).float())

    def epoch_signals(self) -> dict[str, float]:
        return {"diversity": diversity(self.generate(self.signal_noise), self.real_distance)}

    def on_epoch_end(self, epoch: int) -> None:
        path = self.samples_dir / f"epoch_{epoch:03d}.png"
        save_grid(self.generate(self.fixed_noise), path, nrow=min(GRID_COLUMNS, self.cfg["samples"]))
        self.artifact(path, "samples", epoch)
