"""`lab5-gan`: the GAN of the course text 003 ("Lab 5").

G and D are LeakyReLU MLPs (G 100 -> 256 -> 512 -> 1024 -> 784, Tanh; D 784 -> 1024 -> 512 -> 256 -> 1,
Sigmoid) trained with binary cross-entropy and Adam. Per minibatch, as the text structures it:
`train_discriminator(real, fake)` scores the real and the (detached) fake images separately, one BCE loss
each (labels 1 and 0), two backward passes whose gradients add up, one optimizer step; then
`train_generator(batch)` samples fresh noise, generates, and asks D to call the fakes real.

The text names Adam without settings: lr 2e-4 as in the article it points to, torch's default betas;
batch 100 (not given by the text); "a couple hundred epochs": 200. `classes` (e.g. `--set classes=8`)
trains on a subset of labels, the text's advice to start with a single digit.
"""

from __future__ import annotations

import torch

from engine.compute.data.splits import Splits, select_classes
from engine.compute.recipes.bce_gan import BCEGANTrainer


class Lab5GANTrainer(BCEGANTrainer):
    input_channels = 1
    input_size = 28

    def select_data(self, splits: Splits) -> Splits:
        return select_classes(splits, self.cfg["classes"])

    def d_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.D.logits(x)

    def train_discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Two BCE terms, two backward passes (gradients accumulate), one step: (loss, D(x), D(G(z)))."""
        self.opt_d.zero_grad(set_to_none=True)
        with self.rt.autocast():
            out_real = self.d_logits(real).float()
        loss_real = self.bce(out_real, 1.0)
        loss_real.backward()
        with self.rt.autocast():
            out_fake = self.d_logits(fake.detach()).float()
        loss_fake = self.bce(out_fake, 0.0)
        loss_fake.backward()
        self.opt_d.step()
        return (loss_real + loss_fake).detach(), torch.sigmoid(out_real.detach()).mean(), \
            torch.sigmoid(out_fake.detach()).mean()

    def train_step(self, x: torch.Tensor, y: torch.Tensor, step_in_epoch: int) -> torch.Tensor:
        b = x.shape[0]
        with torch.no_grad(), self.rt.autocast():
            fake = self.G(self.noise(b)).to(x.dtype)
        d_loss, d_real, d_fake = self.train_discriminator(x, fake)
        g_loss = self.train_generator(b)
        return torch.stack([d_loss, g_loss, d_real, d_fake])


TRAINER = Lab5GANTrainer
