"""`acgan-wgangp`: the course's ACGAN generator and discriminator trained with WGAN-GP (002, Part 1).

Per step: a generator step (every `gen_every` steps) with cost -mean(D_src(G(z))) + CE(D_cls(G(z)), c),
then a discriminator step with the course's five terms

    d_fake_source - d_real_source + d_real_class + d_fake_class + gp

where the `*_source` terms are mean critic scores (fc1), the `*_class` terms cross-entropies of fc10, and
gp = lambda * mean((||grad_x D_src(x_hat)||_2 - 1)^2) on random interpolates x_hat of real and fake images.
The generator's noise carries the one-hot class in its first 10 dimensions. Both Adams use betas (0, 0.9).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.compute.imaging import save_grid
from engine.compute.mode_collapse import class_spread
from engine.compute.models.acgan import ACGANDConfig, ACGANDiscriminator, ACGANGConfig, ACGANGenerator
from engine.compute.recipes.base import Trainer
from engine.control.config import ACGAN_METRICS  # the order of the values train_step returns


def class_noise(labels: torch.Tensor, n_z: int, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise whose first `num_classes` dims are the one-hot of `labels` (the ACGAN scheme)."""
    z = torch.randn(labels.shape[0], n_z, device=labels.device, generator=generator)
    z[:, :num_classes] = F.one_hot(labels, num_classes).to(z.dtype)
    return z


def save_noise(n_z: int, num_classes: int, seed: int = 352) -> tuple[torch.Tensor, torch.Tensor]:
    """The course's fixed 100 sample vectors: numpy seed 352, label i % 10, one-hot in the first 10 dims.

    Drawn with numpy's legacy RandomState exactly as the course code does, so the grid of epoch N shows the
    same noise a student's script would have used.
    """
    rs = np.random.RandomState(seed)
    labels = np.asarray(list(range(num_classes)) * (100 // num_classes))
    noise = rs.normal(0, 1, (len(labels), n_z))
    onehot = np.zeros((len(labels), num_classes))
    onehot[np.arange(len(labels)), labels] = 1
    noise[:, :num_classes] = onehot
    return torch.from_numpy(noise.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))


def gradient_penalty(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor,
                     lam: float, autocast) -> torch.Tensor:
    """lambda * mean((||d critic(x_hat) / d x_hat||_2 - 1)^2), x_hat = alpha*real + (1-alpha)*fake.

    The input gradient is taken in fp32 even when the critic runs under bf16 autocast: the norm of a bf16
    gradient loses the precision the penalty's (norm - 1)^2 needs.
    """
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    with autocast():
        score, _ = critic(x_hat)
    (grad,) = torch.autograd.grad(score.float().sum(), x_hat, create_graph=True)
    norms = grad.float().flatten(1).norm(2, dim=1)
    return ((norms - 1) ** 2).mean() * lam


def gradient_penalty_func(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor,
                          lam: float, autocast) -> torch.Tensor:
    """The same penalty with the input gradient taken by `torch.func.grad` instead of `autograd.grad`.

    torch.compile cannot differentiate a compiled `autograd.grad(..., create_graph=True)` (double backward),
    but it traces `torch.func.grad` into the forward graph, whose ordinary backward then gives the
    parameters' gradients of the penalty. The critic's samples are independent (LayerNorm is per sample), so
    the gradient of the summed scores is each sample's own input gradient: no vmap needed.
    """
    x_hat = alpha * real.detach() + (1 - alpha) * fake.detach()

    def summed_score(x: torch.Tensor) -> torch.Tensor:
        with autocast():
            score, _ = critic(x)
        return score.float().sum()

    grad = torch.func.grad(summed_score)(x_hat)
    norms = grad.float().flatten(1).norm(2, dim=1)
    return ((norms - 1) ** 2).mean() * lam


class ACGANTrainer(Trainer):
    # one critic pass over fakes and reals together: D has no batch-coupled layers (LayerNorm is per
    # sample), so this equals the course's two passes with half the kernel launches
    joint_critic_pass: bool = True

    def build(self) -> None:
        cfg = self.cfg
        nc = self.data.num_classes
        self.D = self.rt.prepare_model(ACGANDiscriminator(ACGANDConfig(
            width=cfg["width"], in_channels=self.data.channels, image_size=self.data.image_size,
            num_classes=nc, leaky_slope=cfg["leaky_slope"])))
        self.G = self.rt.prepare_model(ACGANGenerator(ACGANGConfig(width=cfg["width"], n_z=cfg["n_z"],
                                                                   out_channels=self.data.channels)))
        kw = self.rt.optimizer_kwargs()
        betas = tuple(cfg["betas"])
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg["lr"], betas=betas, **kw)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg["lr"], betas=betas, **kw)
        noise, labels = save_noise(cfg["n_z"], nc, cfg["save_noise_seed"])
        self.fixed_noise = noise.to(self.rt.device)
        self.fixed_labels = labels.to(self.rt.device)
        self.zero = torch.zeros((), device=self.rt.device)
        # the loss computations, swapped for compiled versions by compile_step (compile=true)
        self._generator_terms = self.generator_terms
        self._fake_images = self.fake_images
        self._critic_terms = self.critic_terms

    def compile_step(self, compile_fn) -> list[str]:
        self._generator_terms = compile_fn(self.generator_terms, "generator loss (G and D forward)")
        self._fake_images = compile_fn(self.fake_images, "generator forward (no grad)")
        self._critic_terms = compile_fn(partial(self.critic_terms, penalty=gradient_penalty_func),
                                        "critic loss with the gradient penalty via torch.func")
        return ["generator loss", "generator forward", "critic loss + gradient penalty (torch.func)"]

    def modules(self):
        return {"D": self.D, "G": self.G}

    def optimizers(self):
        return {"D": self.opt_d, "G": self.opt_g}

    def classifier(self):
        return self.D

    def metric_present(self, step_in_epoch: int) -> tuple[float, ...]:
        gen = 1.0 if step_in_epoch % self.cfg["gen_every"] == 0 else 0.0  # G's terms on its steps only
        return tuple(gen if m.startswith("gen_") else 1.0 for m in ACGAN_METRICS)

    def _draw(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        nc = self.data.num_classes
        labels = torch.randint(0, nc, (batch,), device=self.rt.device, generator=self.noise_gen)
        return class_noise(labels, self.cfg["n_z"], nc, self.noise_gen), labels

    # --- loss computations: pure functions of their inputs (random draws stay outside, so eager and
    # --- compiled versions see the same numbers) ---------------------------------------------------
    def generator_terms(self, z: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(cost, gen_source, gen_class) of the generator step; D's weights are frozen by the caller."""
        with self.rt.autocast():
            fake = self.G(z)
            source, logits = self.D(self.rt.prepare_input(fake))
            gen_source = source.float().mean()
            gen_class = F.cross_entropy(logits.float(), labels)
            cost = -gen_source + gen_class
        return cost, gen_source, gen_class

    def fake_images(self, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), self.rt.autocast():
            return self.G(z)

    def critic_terms(self, real: torch.Tensor, real_labels: torch.Tensor, fake: torch.Tensor,
                     fake_labels: torch.Tensor, alpha: torch.Tensor,
                     penalty=gradient_penalty) -> tuple[torch.Tensor, ...]:
        """(cost, gp, d_fake_source, d_real_source, d_real_class, d_fake_class, acc) of the critic step."""
        b = real.shape[0]
        with self.rt.autocast():
            if self.joint_critic_pass:
                source, logits = self.D(torch.cat([fake, real]))
            else:  # the course's two passes (kept for the switch benchmark and its equality test)
                (fs, fl), (rs, rl) = self.D(fake), self.D(real)
                source, logits = torch.cat([fs, rs]), torch.cat([fl, rl])
        source, logits = source.float(), logits.float()
        d_fake_source = source[:b].mean()
        d_real_source = source[b:].mean()
        d_fake_class = F.cross_entropy(logits[:b], fake_labels)
        d_real_class = F.cross_entropy(logits[b:], real_labels)
        gp = penalty(self.D, real, fake, alpha, self.cfg["gp_lambda"], self.rt.autocast)
        cost = d_fake_source - d_real_source + d_real_class + d_fake_class + gp
        acc = (logits[b:].detach().argmax(1) == real_labels).float().mean() * 100.0
        return cost, gp, d_fake_source, d_real_source, d_real_class, d_fake_class, acc

    # --- the two optimisation steps ------------------------------------------------------------------
    def train_generator(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.D.requires_grad_(False)
        z, labels = self._draw(batch)
        cost, gen_source, gen_class = self._generator_terms(z, labels)
        self.opt_g.zero_grad(set_to_none=True)
        cost.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return gen_source.detach(), gen_class.detach()

    def train_discriminator(self, real: torch.Tensor, real_labels: torch.Tensor) -> list[torch.Tensor]:
        b = real.shape[0]
        z, fake_labels = self._draw(b)
        fake = self.rt.prepare_input(self._fake_images(z).to(real.dtype))
        alpha = torch.rand(b, 1, 1, 1, device=real.device, generator=self.noise_gen)
        cost, *terms = self._critic_terms(real, real_labels, fake, fake_labels, alpha)
        self.opt_d.zero_grad(set_to_none=True)
        cost.backward()
        self.opt_d.step()
        return [t.detach() for t in terms]

    def train_step(self, x: torch.Tensor, y: torch.Tensor, step_in_epoch: int) -> torch.Tensor:
        if step_in_epoch % self.cfg["gen_every"] == 0:
            gen_source, gen_class = self.train_generator(x.shape[0])
        else:
            gen_source = gen_class = self.zero
        gp, dfs, drs, drc, dfc, acc = self.train_discriminator(x, y)
        return torch.stack([gp, dfs, drs, drc, dfc, gen_source, gen_class, acc])

    def eval_images(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """G's images in [-1, 1] for the requested `labels`, noise from `generator` (engine/compute/evaluation.py
        sets eval mode and no_grad, and batches)."""
        return self.G(class_noise(labels, self.cfg["n_z"], self.data.num_classes, generator)).float()

    def sample_grid(self) -> torch.Tensor:
        self.G.eval()
        with torch.no_grad(), self.rt.autocast():
            images = self.G(self.fixed_noise).float()
        self.G.train()
        return images

    def epoch_signals(self) -> dict[str, float]:
        """`class_spread`: how evenly D's fc10 spreads the fixed sample grid over the classes (mode collapse).

        The grid asks for every class equally often, so 1.0 is the healthy value; the images are kept for
        the grid that on_epoch_end writes next.
        """
        self._grid_images = self.sample_grid()
        self.D.eval()
        with torch.no_grad(), self.rt.autocast():
            _, logits = self.D(self.rt.prepare_input(self._grid_images))
        self.D.train()
        return {"class_spread": class_spread(logits.float(), self.data.num_classes)}

    def on_epoch_end(self, epoch: int) -> None:
        path = self.samples_dir / f"epoch_{epoch:03d}.png"
        images = getattr(self, "_grid_images", None)
        self._grid_images = None
        save_grid(images if images is not None else self.sample_grid(), path, nrow=10)
        self.artifact(path, "samples", epoch)

    def extra_state(self) -> dict[str, Any]:
        return {}


TRAINER = ACGANTrainer
