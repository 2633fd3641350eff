"""`mlp-gan`: the fully-connected MNIST GAN of the course text 001.

Per minibatch (the text's loop): one discriminator step on real and fake images together, labels 1 for
real and 0 for fake, `BCEWithLogitsLoss`; then one generator step on fresh noise with label 1 ("fool D").
Adam with betas (0.5, 0.999) for both, batch 100, lr 2e-4 for 20 epochs (the text's suggested call).
Logged per window: `d_loss`, `g_loss`, `d_real` = mean D(x) and `d_fake` = mean D(G(z)) as probabilities,
from the discriminator step, as the text prints them. 16 fixed noise vectors are rendered every epoch.
Images are in [0, 1] (the text's `ToTensor()` data and Sigmoid generator).
"""

from __future__ import annotations

import torch

from engine.compute.recipes.bce_gan import BCEGANTrainer


class MLPGANTrainer(BCEGANTrainer):
    input_channels = 1
    input_size = 28
    unit_interval_images = True

    def train_step(self, x: torch.Tensor, y: torch.Tensor, step_in_epoch: int) -> torch.Tensor:
        b = x.shape[0]
        real = self.to_model_range(x)
        # discriminator: one pass over [real; fake]; the fakes need no graph into G (the text zeroes G's
        # gradients before G's own step, so its update is the same)
        with torch.no_grad(), self.rt.autocast():
            fake = self.G(self.noise(b))
        with self.rt.autocast():
            out = self.D(torch.cat([real, fake.to(real.dtype)])).float()
        d_loss = 0.5 * (self.bce(out[:b], 1.0) + self.bce(out[b:], 0.0))  # the mean over all 2B labels
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        g_loss = self.train_generator(b)  # fresh noise, label "real"
        scores = torch.sigmoid(out.detach())
        return torch.stack([d_loss.detach(), g_loss, scores[:b].mean(), scores[b:].mean()])


TRAINER = MLPGANTrainer
