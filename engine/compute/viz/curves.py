"""`curves`: PNG plots of a run's metrics.jsonl: the loss terms, the generator terms and the accuracies.

Which series to draw comes from the recipe's declaration (`RECIPES[recipe].loss_metrics`,
`train_metrics` and `epoch_metrics`), so a new recipe gets its plots without a change here; a recipe
without a classifier gets no accuracy plot. The x axis is in epochs
(train windows at step / steps_per_epoch); a resumed run logs some steps twice and the later record wins.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from engine.compute.viz.job import Job, JobFailed
from engine.compute.viz.loading import read_config, read_metrics
from engine.compute.viz.render import save_figure
from engine.control import records as kinds
from engine.control.config import RECIPES

LABELS = {  # the course's names for the GAN terms (its loss1..loss5)
    "gp": "gradient penalty (loss1)", "d_fake_source": "D fake source (loss2)",
    "d_real_source": "D real source (loss3)", "d_real_class": "D real class (loss4)",
    "d_fake_class": "D fake class (loss5)", "gen_source": "G source", "gen_class": "G class",
    "loss": "cross-entropy", "class_spread": "class spread of the fixed samples (1: every class)",
    "diversity": "sample diversity (pairwise distance / real)", "d_real": "D(x)", "d_fake": "D(G(z))",
    "d_fake_after": "D(G(z)) after the D step",
}


def point_marker(xs) -> dict[str, Any]:
    """A marker for a series of one point (a one-epoch run): a line through one point draws nothing."""
    return {"marker": "o", "ms": 5} if len(xs) == 1 else {}


def series(records: list[dict[str, Any]]) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]], int]:
    """(train records by step, epoch records by epoch, steps per epoch), later duplicates winning."""
    train: dict[int, dict[str, Any]] = {}
    epochs: dict[int, dict[str, Any]] = {}
    spe = 0
    for r in records:
        kind = r.get("kind")
        if kind == kinds.START and isinstance(r.get("steps_per_epoch"), int):
            spe = r["steps_per_epoch"]
        elif kind == kinds.TRAIN and isinstance(r.get("step"), int):
            train[r["step"]] = r
        elif kind == kinds.EPOCH and isinstance(r.get("epoch"), int):
            epochs[r["epoch"]] = r
    return train, epochs, spe


def _panels(train: dict[int, dict[str, Any]], names: list[str], spe: int, title: str, path, job: Job,
            what: str) -> dict[str, int]:
    steps = sorted(train)
    ncols = min(3, len(names))
    nrows = (len(names) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.2 * nrows + 0.3), squeeze=False,
                             layout="constrained")
    counts = {}
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.axis("off")
            continue
        name = names[i]
        pts = [(s / spe if spe else s, train[s][name]) for s in steps if train[s].get(name) is not None]
        counts[name] = len(pts)
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, lw=1.0, color=f"C{i}", **point_marker(xs))
        ax.set_title(LABELS.get(name, name), fontsize=10)
        ax.set_xlabel("epoch" if spe else "step", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)
    job.artifact(path, what)
    return counts


def run(job: Job) -> dict[str, Any]:
    cfg = read_config(job.run_dir)
    spec = RECIPES.get(cfg["recipe"])
    if spec is None:
        raise JobFailed(f"run {job.run_dir.name} has recipe {cfg['recipe']!r}, unknown to this ganmgr")
    train, epochs, spe = series(read_metrics(job.run_dir))
    if not train and not epochs:
        raise JobFailed(f"run {job.run_dir.name} has no train or epoch records in metrics.jsonl yet")
    name = job.run_dir.name
    result: dict[str, Any] = {"recipe": spec.name, "train_records": len(train), "epochs": len(epochs)}
    losses = list(spec.loss_metrics)
    result["losses"] = _panels(train, losses, spe, f"{name}: loss terms ({spec.name})", job.path("losses.png"),
                               job, "loss curves")
    gen = [m for m in spec.train_metrics if m not in spec.loss_metrics and m != "acc"]
    if gen:
        what = "generator terms" if all(m.startswith("gen_") for m in gen) else "discriminator outputs"
        result["generator"] = _panels(train, gen, spe, f"{name}: {what}", job.path("generator.png"),
                                      job, f"{what} curves")
    signals = [m for m in spec.epoch_metrics if any(r.get(m) is not None for r in epochs.values())]
    if signals:  # per-epoch signals (the mode-collapse signal), one point per epoch
        per_epoch = {e * spe if spe else e: r for e, r in epochs.items()}
        result["signals"] = _panels(per_epoch, signals, spe, f"{name}: per-epoch signals",
                                    job.path("signals.png"), job, "per-epoch signal curves")
    has_acc = "acc" in spec.train_metrics or any(r.get("test_acc") is not None for r in epochs.values())
    if not has_acc:  # a GAN without a classifier (mlp-gan, dcgan...): no accuracy to plot
        return result
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = sorted(train)
    if "acc" in spec.train_metrics:
        pts = [(s / spe if spe else s, train[s]["acc"]) for s in steps if train[s].get("acc") is not None]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, lw=0.8, alpha=0.7, label="train accuracy (per window)", **point_marker(xs))
    test = [(e, r["test_acc"]) for e, r in sorted(epochs.items()) if r.get("test_acc") is not None]
    if test:
        xs, ys = zip(*test)
        ax.plot(xs, ys, "o-", lw=1.5, ms=3, label="test accuracy (per epoch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    ax.set_title(f"{name}: accuracy", fontsize=11)
    fig.tight_layout()
    path = job.path("accuracy.png")
    save_figure(fig, path)
    job.artifact(path, "accuracy curves")
    if test:
        result["last_test_acc"] = test[-1][1]
        result["best_test_acc"] = max(v for _, v in test)
    return result
