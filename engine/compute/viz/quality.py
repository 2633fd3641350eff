"""`quality`: how good a GAN's class-conditional samples are, scored offline by a baseline classifier.

Numbers that need no download, from a chosen classifier run (normally a `baseline` run on the same data
set), computed by engine/compute/classifier_score.py (the worker's evaluation during training uses it too):
- `accuracy` / `per_class_accuracy` (GAN-test accuracy): how often the classifier names the class each of
  the `n_per_class` generated images per class was asked for. Per class this is "is it the requested class";
  beside it `class_spread` (the GAN's own discriminator on the same samples, as the training signal) says
  only how evenly predictions spread over the classes.
- `fd` and `kid`: the Fréchet and kernel distances between the classifier's pooled conv-8 features of n
  generated images and n real test images; `fd_real_halves` and `kid_floor`: the same between two disjoint
  sets of n real test images each, the floor a perfect generator would reach AT THIS n (FD's bias grows as n
  shrinks, so a floor is only one at the same n). n = min(generated, real test images // 2), reported.
With Inception weights in job.json (resolved from the settings at submit), also FID, KID and IS by
torch-fidelity against the same test images (`fidelity.py`: `inception_kid`, as `kid` here is the
classifier's), else `fid: null` and a `note` saying why.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from engine.compute.classifier_score import FEATURE_LAYER, classifier_scores, classify
from engine.compute.data.device_data import to_unit_range
from engine.compute.mode_collapse import class_spread
from engine.compute.recipes.acgan import class_noise
from engine.compute.viz.fidelity import inception_scores, real_test_fingerprint, skipped
from engine.compute.viz.job import Job, JobFailed
from engine.compute.viz.loading import LoadedRun, load_run, load_test_data
from engine.compute.viz.render import save_figure, save_image_grid

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
def own_class_spread(gan: LoadedRun, images: torch.Tensor) -> float:
    """The training signal `class_spread` on these samples: how evenly the GAN's own discriminator spreads
    its predicted classes (1.0: all classes equally often), whatever the classes asked for."""
    logits = torch.cat([gan.D(images[i:i + BATCH])[1].float() for i in range(0, images.shape[0], BATCH)])
    return class_spread(logits, gan.num_classes)


def check_pair(gan: LoadedRun, scorer: LoadedRun) -> None:
    if gan.G is None:
        raise JobFailed(f"run {gan.name} is a {gan.recipe} run with no generator; quality scores a GAN run's "
                        f"samples (pick an acgan-wgangp run, with a baseline run as the scorer)")
    if scorer.classes != gan.classes or scorer.data_shape != gan.data_shape:
        raise JobFailed(f"the scorer run {scorer.name} was trained on other data ({len(scorer.classes)} classes, "
                        f"images {scorer.data_shape}) than run {gan.name} ({len(gan.classes)} classes, "
                        f"images {gan.data_shape}); pick a baseline run on the same data set")


def class_accuracy_figure(result: dict[str, Any], classes: list[str], what: str) -> Figure:
    """The per-class GAN-test accuracy as bars (in `classes` order, 0-100 %), the overall accuracy and
    chance (100 / classes) as lines, the FD and its n in the title: what class_accuracy.png shows."""
    nc = len(classes)
    per_class = result["per_class_accuracy"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * nc), 3.8))
    xs = np.arange(nc)
    ax.bar(xs, [per_class[c] for c in classes], color="C0")
    ax.axhline(result["accuracy"], color="C3", lw=1, ls="--", label=f"overall {result['accuracy']:.1f}%")
    ax.axhline(100.0 / nc, color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xticks(xs, classes, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("classified as its class (%)")
    fd = f"FD {result['fd']:.3g} at n={result['n']}" if result["fd"] is not None else "no FD"
    ax.set_title(f"{what} ({fd})", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def run(job: Job) -> dict[str, Any]:
    gan = load_run(job, job.run_dir, job.checkpoint)
    if job.baseline_run_dir is None:
        raise JobFailed("quality needs a baseline run to score the samples")
    scorer = load_run(job, job.baseline_run_dir, job.baseline_checkpoint or "checkpoints/final.pt")
    check_pair(gan, scorer)
    p = job.params
    nc = gan.num_classes
    images, labels = generate(gan, p["n_per_class"], p["seed"], job.device)
    data = load_test_data(job, scorer)  # the real images the scorer knows; same classes and shape as the GAN's
    real = torch.cat([to_unit_range(data.x_test[i:i + BATCH]) for i in range(0, data.num_test, BATCH)])
    real_pred, _ = classify(scorer.D, real)
    scores = classifier_scores(scorer.D, images, labels, real, gan.classes)
    result: dict[str, Any] = {
        "model": gan.name, "epoch": gan.epoch, "scorer": scorer.name, "scorer_recipe": scorer.recipe,
        "scorer_epoch": scorer.epoch, "n_generated": scores["n_generated"], "n_real": scores["n_real"],
        "n": scores["n"], "accuracy": scores["accuracy"], "per_class_accuracy": scores["per_class_accuracy"],
        "class_spread": own_class_spread(gan, images),
        "scorer_accuracy_real": 100.0 * (real_pred == data.y_test).float().mean().item(),
        "feature_layer": FEATURE_LAYER, "feature_dim": scores.get("feature_dim"),
        "fd": scores.get("fd"), "fd_real_halves": scores.get("fd_floor"),
        "kid": scores.get("kid"), "kid_std": scores.get("kid_std"), "kid_floor": scores.get("kid_floor"),
    }
    if "note" in scores:
        result["fd_note"] = scores["note"]
    if p["fid"]:
        key = real_test_fingerprint(scorer.config, int(real.shape[0]), scorer.data_shape)
        result.update(inception_scores(job, images, lambda: real, key))  # FID/KID/IS, or None and why
    else:
        result.update(skipped("fid=false"))

    shown = min(10, p["n_per_class"])  # one column per class, like the run's sample grids
    order = [c * p["n_per_class"] + r for r in range(shown) for c in range(nc)]
    path = job.path("samples.png")
    save_image_grid(images[order], path, nrow=nc)
    job.artifact(path, "generated samples scored (one column per class)")

    fig = class_accuracy_figure(result, gan.classes, f"{scorer.name} classifying samples of {gan.name}")
    path = job.path("class_accuracy.png")
    save_figure(fig, path)
    job.artifact(path, "per-class accuracy on generated samples")
    return result
