"""`quality`: how good a GAN's class-conditional samples are, scored offline by a baseline classifier.

Two numbers that need no download, both from a chosen classifier run (normally a `baseline` run on the
same data set):
- its accuracy on `n_per_class` generated images of each class (label = the class in the noise's one-hot
  block), per class and overall: do the samples look like their class to an independent classifier?
- the Fréchet distance between its pooled conv-8 features (width-dim) of the generated images and of the
  real test images: do the samples cover the real distribution? `fd_real_halves` (first half of the test
  split against the second) is the floor a perfect generator would reach with this many images.
With torch-fidelity and its Inception weights present locally, also FID and IS (`fidelity.py`).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from engine.compute.data.device_data import to_unit_range
from engine.compute.recipes.acgan import class_noise
from engine.compute.viz.fidelity import fid_and_is
from engine.compute.viz.frechet import frechet_distance
from engine.compute.viz.job import Job, JobFailed
from engine.compute.viz.loading import LoadedRun, load_run, load_test_data
from engine.compute.viz.render import save_figure, save_image_grid

FEATURE_LAYER = 8
BATCH = 500


@torch.no_grad()
def generate(gan: LoadedRun, n_per_class: int, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """n_per_class images of every class, class-major, from the generator in eval mode (as the sample grids)."""
    nc = gan.num_classes
    labels = torch.arange(nc, device=device).repeat_interleave(n_per_class)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    z = class_noise(labels, int(gan.config["n_z"]), nc, gen)
    images = torch.cat([gan.G(z[i:i + BATCH]).float() for i in range(0, z.shape[0], BATCH)])
    return images, labels


@torch.no_grad()
def score(scorer: LoadedRun, images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """The scorer's predicted classes and its pooled conv-8 features."""
    D = scorer.D
    preds, feats = [], []
    for i in range(0, images.shape[0], BATCH):
        x = images[i:i + BATCH]
        f = D.features(x, FEATURE_LAYER)
        # forward() pools conv8's 4x4 map into these same features and applies fc10: one pass gives both
        logits = D.fc10(f) if D.pool_size == 4 else D(x)[1]
        preds.append(logits.argmax(1))
        feats.append(f.double().cpu())
    return torch.cat(preds), torch.cat(feats).numpy()


def check_pair(gan: LoadedRun, scorer: LoadedRun) -> None:
    if gan.G is None:
        raise JobFailed(f"run {gan.name} is a {gan.recipe} run with no generator; quality scores a GAN run's "
                        f"samples (pick an acgan-wgangp run, with a baseline run as the scorer)")
    if scorer.classes != gan.classes or scorer.data_shape != gan.data_shape:
        raise JobFailed(f"the scorer run {scorer.name} was trained on other data ({len(scorer.classes)} classes, "
                        f"images {scorer.data_shape}) than run {gan.name} ({len(gan.classes)} classes, "
                        f"images {gan.data_shape}); pick a baseline run on the same data set")


def run(job: Job) -> dict[str, Any]:
    gan = load_run(job, job.run_dir, job.checkpoint)
    if job.baseline_run_dir is None:
        raise JobFailed("quality needs a baseline run to score the samples")
    scorer = load_run(job, job.baseline_run_dir, job.baseline_checkpoint or "checkpoints/final.pt")
    check_pair(gan, scorer)
    p = job.params
    nc = gan.num_classes
    images, labels = generate(gan, p["n_per_class"], p["seed"], job.device)
    pred, gen_feats = score(scorer, images)
    data = load_test_data(job, scorer)  # the real images the scorer knows; same classes and shape as the GAN's
    real = torch.cat([to_unit_range(data.x_test[i:i + BATCH]) for i in range(0, data.num_test, BATCH)])
    real_pred, real_feats = score(scorer, real)
    per_class = {gan.classes[c]: 100.0 * (pred[labels == c] == c).float().mean().item() for c in range(nc)}
    half = real_feats.shape[0] // 2
    result: dict[str, Any] = {
        "model": gan.name, "epoch": gan.epoch, "scorer": scorer.name, "scorer_recipe": scorer.recipe,
        "scorer_epoch": scorer.epoch, "n_generated": int(images.shape[0]), "n_real": int(real.shape[0]),
        "accuracy": 100.0 * (pred == labels).float().mean().item(), "per_class_accuracy": per_class,
        "scorer_accuracy_real": 100.0 * (real_pred == data.y_test).float().mean().item(),
        "feature_layer": FEATURE_LAYER, "feature_dim": int(gen_feats.shape[1]),
        "fd": frechet_distance(gen_feats, real_feats),
        "fd_real_halves": frechet_distance(real_feats[:half], real_feats[half:]) if half >= 2 else None,
    }
    if p["fid"]:
        result.update(fid_and_is(images, real, job.device))
    else:
        result.update({"fid": None, "inception_score": None, "inception_score_std": None,
                       "note": "FID/IS skipped: fid=false"})

    shown = min(10, p["n_per_class"])  # one column per class, like the run's sample grids
    order = [c * p["n_per_class"] + r for r in range(shown) for c in range(nc)]
    path = job.path("samples.png")
    save_image_grid(images[order], path, nrow=nc)
    job.artifact(path, "generated samples scored (one column per class)")

    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * nc), 3.8))
    xs = np.arange(nc)
    ax.bar(xs, [per_class[c] for c in gan.classes], color="C0")
    ax.axhline(result["accuracy"], color="C3", lw=1, ls="--", label=f"overall {result['accuracy']:.1f}%")
    ax.axhline(100.0 / nc, color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xticks(xs, gan.classes, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("classified as its class (%)")
    ax.set_title(f"{scorer.name} classifying samples of {gan.name} (FD {result['fd']:.3g})", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = job.path("class_accuracy.png")
    save_figure(fig, path)
    job.artifact(path, "per-class accuracy on generated samples")
    return result
