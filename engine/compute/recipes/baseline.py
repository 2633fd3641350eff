"""`baseline`: the course's discriminator trained alone as a classifier (002, Part 1).

Cross-entropy on the fc10 head, Adam lr 1e-4, batch 128, 100 epochs; the lr drops to lr/10 after 50
epochs and lr/100 after 75 (the course's `if epoch == 50` / `if epoch == 75` on a 0-based epoch counter).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.compute.models.acgan import ACGANDConfig, ACGANDiscriminator
from engine.compute.recipes.base import Trainer


class BaselineTrainer(Trainer):
    def build(self) -> None:
        cfg = self.cfg
        self.model = self.rt.prepare_model(ACGANDiscriminator(ACGANDConfig(
            width=cfg["width"], in_channels=self.data.channels, image_size=self.data.image_size,
            num_classes=self.data.num_classes, leaky_slope=cfg["leaky_slope"])))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]),
                                    **self.rt.optimizer_kwargs())
        self._loss_terms = self.loss_terms  # compile_step swaps in the compiled version

    def modules(self):
        return {"D": self.model}

    def optimizers(self):
        return {"D": self.opt}

    def classifier(self):
        return self.model

    def lr_for_epoch(self, epoch_index: int) -> float:
        """epoch_index = epochs completed so far (the course's 0-based epoch)."""
        lr = self.cfg["lr"]
        for after, factor in zip(self.cfg["lr_drop_epochs"], self.cfg["lr_drop_factors"]):
            if epoch_index >= after:
                lr = self.cfg["lr"] * factor
        return lr

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy of fc10, accuracy in percent) on one batch; compiled when compile=true."""
        with self.rt.autocast():
            _, logits = self.model(x)
            loss = F.cross_entropy(logits.float(), y)
        acc = (logits.detach().argmax(1) == y).float().mean() * 100.0
        return loss, acc

    def compile_step(self, compile_fn) -> list[str]:
        self._loss_terms = compile_fn(self.loss_terms, "classifier loss (D forward)")
        return ["classifier loss"]

    def train_step(self, x: torch.Tensor, y: torch.Tensor, step_in_epoch: int) -> torch.Tensor:
        loss, acc = self._loss_terms(x, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return torch.stack([loss.detach().float(), acc])


TRAINER = BaselineTrainer
