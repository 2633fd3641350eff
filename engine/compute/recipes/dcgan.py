"""`dcgan`: the 64x64 DCGAN of the course text 004 (engine.compute.models.dcgan), trained as that text does.

Per minibatch: (1) D step: the all-real batch against label 1 (backward; D(x) is its mean output), a fake
batch from fresh noise, detached, against label 0 (backward; D(G(z)) before the D update), the two
gradients summed into one Adam step; (2) G step: the same fake batch through the updated D against label 1
(D(G(z)) after the D update), one Adam step. BCE, Adam lr 2e-4 betas (0.5, 0.999), batch 128; 64 fixed
noise vectors are rendered every epoch. Logged: `d_loss` (errD_real + errD_fake), `g_loss`, `d_real`,
`d_fake` (before the D update, the text's D_G_z1) and `d_fake_after` (its D_G_z2).

Images are 64x64 (Resize + CenterCrop of the source, as the text's transform); the channel count follows
the data (3 for colour folders as in the text's CelebA, 1 for MNIST-like sources).
"""

from __future__ import annotations

import torch

from engine.compute.models.dcgan import IMAGE_SIZE
from engine.compute.recipes.bce_gan import BCEGANTrainer


class DCGANTrainer(BCEGANTrainer):
    input_channels = None  # follow the data
    input_size = IMAGE_SIZE

    def d_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.D.logits(x)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, step_in_epoch: int) -> torch.Tensor:
        b = x.shape[0]
        # (1) update D: maximize log(D(x)) + log(1 - D(G(z)))
        self.opt_d.zero_grad(set_to_none=True)
        with self.rt.autocast():
            out_real = self.d_logits(x).float()
        err_real = self.bce(out_real, 1.0)
        err_real.backward()
        with self.rt.autocast():
            fake = self.G(self.noise(b))
            out_fake = self.d_logits(self.rt.prepare_input(fake.detach())).float()
        err_fake = self.bce(out_fake, 0.0)
        err_fake.backward()
        self.opt_d.step()
        # (2) update G: maximize log(D(G(z))) with the same fakes through the updated D
        self.D.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self.rt.autocast():
            out_after = self.d_logits(self.rt.prepare_input(fake)).float()
        err_g = self.bce(out_after, 1.0)
        err_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return torch.stack([(err_real + err_fake).detach(), err_g.detach(), torch.sigmoid(out_real.detach()).mean(),
                            torch.sigmoid(out_fake.detach()).mean(), torch.sigmoid(out_after.detach()).mean()])


TRAINER = DCGANTrainer
