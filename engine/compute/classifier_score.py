"""Scoring generated images with an independent classifier: a `baseline` run's discriminator (no download).

Used by the `quality` viz job and by the worker's evaluation during training (eval_baseline), so both report
the same numbers the same way:

- `fd` / `kid`: the Fréchet distance and the kernel distance (KID, unbiased) between the classifier's pooled
  conv-8 features of n generated images and of n real test images: do the samples cover the real
  distribution, as this classifier sees it?
- `fd_floor` / `kid_floor`: the same distances between two DISJOINT sets of n real test images each: what a
  perfect generator would score at this n. FD is biased upward at small n (its bias roughly doubles when n
  halves), so a floor is only a floor at the same n as the score: both use exactly n, and n is reported.
  n = min(requested, generated, real // 2): the two real sets never share an image.
- `accuracy` (GAN-test accuracy) and `per_class_accuracy`: how often the classifier names the class each
  sample was generated for (the one-hot in its noise), over all generated images. Per class, this is the
  "is it the requested class" rate; `class_spread` (the training signal, from the GAN's own discriminator)
  only says how evenly predictions spread over the classes, not whether each sample is its class.

Every random choice (which real and generated images form the sets) uses its own seeded generator, never the
global or training RNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.compute.checkpoint import load_checkpoint
from engine.compute.models.acgan import ACGANDConfig, ACGANDiscriminator
from engine.compute.viz.frechet import frechet_distance, kernel_distance

FEATURE_LAYER = 8
BATCH = 500
SUBSET_SEED = 1729  # which real/generated images form the sets of n: fixed, so repeated scores compare


@dataclass
class Classifier:
    """A baseline run's discriminator in eval mode, with the classes and image shape it was trained on."""

    D: ACGANDiscriminator
    classes: list[str]
    data_shape: list[int]  # [C, H, W]
    path: Path
    epoch: int


def load_classifier(path: Path, device: torch.device) -> Classifier:
    """The discriminator of checkpoint `path` (weights only), frozen, on `device`. CheckpointError, KeyError
    or RuntimeError when the file is not a checkpoint of the course's discriminator."""
    state = load_checkpoint(Path(path), map_location="cpu")
    cfg = state["config"]
    channels, size = (int(v) for v in state.get("data_shape", [3, 32, 32])[:2])
    classes = [str(c) for c in state.get("classes", [])] or [str(i) for i in range(state.get("num_classes", 10))]
    D = ACGANDiscriminator(ACGANDConfig(width=cfg["width"], in_channels=channels, image_size=size,
                                        num_classes=len(classes), leaky_slope=cfg.get("leaky_slope", 0.01)))
    D.load_state_dict(state["models"]["D"])
    D = D.to(device).eval().requires_grad_(False)
    return Classifier(D, classes, [channels, size, size], Path(path), int(state.get("epoch", 0)))


@torch.no_grad()
def classify(D: ACGANDiscriminator, images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """The classifier's predicted classes and its pooled conv-8 features (float64, CPU) of `images` in
    [-1, 1], batch by batch, in fp32 (autocast off: features for a distance want full precision)."""
    preds, feats = [], []
    device = next(D.parameters()).device
    with torch.autocast(device.type, enabled=False):
        for i in range(0, images.shape[0], BATCH):
            x = images[i:i + BATCH].to(device).float()
            f = D.features(x, FEATURE_LAYER)
            # forward() pools conv8's 4x4 map into these same features and applies fc10: one pass gives both
            logits = D.fc10(f) if D.pool_size == 4 else D(x)[1]
            preds.append(logits.argmax(1))
            feats.append(f.double().cpu())
    if not preds:
        return torch.zeros(0, dtype=torch.int64), np.zeros((0, 0))
    return torch.cat(preds), torch.cat(feats).numpy()


def subset_sizes(requested: int, generated: int, real: int) -> int:
    """The n both the score and the floor use: two disjoint real sets of n and n generated images."""
    return min(int(requested), int(generated), int(real) // 2)


def _perm(n: int, salt: int) -> torch.Tensor:
    g = torch.Generator()  # CPU, its own seed: the global and the training streams are left alone
    g.manual_seed(SUBSET_SEED + salt)
    return torch.randperm(n, generator=g)


def classifier_scores(D: ACGANDiscriminator, generated: torch.Tensor, labels: torch.Tensor,
                      real: torch.Tensor, classes: list[str], n: int | None = None) -> dict[str, Any]:
    """fd, fd_floor, kid, kid_std, kid_floor at one n, GAN-test accuracy overall and per class.

    `generated` [G, C, H, W] in [-1, 1] with `labels` [G] (the requested classes); `real` [R, C, H, W] in
    [-1, 1] (the test split). `n` caps the sets (default: as large as the data allows). Distances are absent
    (not faked) when fewer than 2 real images per set exist."""
    pred, gen_feats = classify(D, generated)
    labels = labels.to(pred.device)
    nc = len(classes)
    out: dict[str, Any] = {
        "accuracy": 100.0 * (pred == labels).float().mean().item(),
        "per_class_accuracy": {classes[c]: 100.0 * (pred[labels == c] == c).float().mean().item()
                               for c in range(nc) if bool((labels == c).any())},
        "n_generated": int(generated.shape[0]), "n_real": int(real.shape[0]),
    }
    size = subset_sizes(n if n is not None else generated.shape[0], generated.shape[0], real.shape[0])
    out["n"] = size
    if size < 2:
        out["note"] = (f"FD/KID skipped: {real.shape[0]} real test images give no two disjoint sets of 2 "
                       f"or more")
        return out
    real_idx = _perm(real.shape[0], 0)
    a_idx, b_idx = real_idx[:size], real_idx[size:2 * size]
    _, feats_a = classify(D, real[a_idx.to(real.device)])
    _, feats_b = classify(D, real[b_idx.to(real.device)])
    gen_feats = gen_feats[_perm(generated.shape[0], 1)[:size].numpy()]
    kid, kid_std = kernel_distance(gen_feats, feats_a)
    out.update({
        "fd": frechet_distance(gen_feats, feats_a), "fd_floor": frechet_distance(feats_b, feats_a),
        "kid": kid, "kid_std": kid_std, "kid_floor": kernel_distance(feats_b, feats_a)[0],
        "feature_layer": FEATURE_LAYER, "feature_dim": int(gen_feats.shape[1]),
    })
    return out
