"""Sample quality measured in the worker between epochs (`eval_every`), written as `eval` records.

Every `eval_every` epochs the trainer's generator draws `eval_samples` images (default by device: 10,000 on
CUDA, 1,000 on CPU) from a fixed noise seed, so successive evaluations score the same noise, and this module
measures them:
- with the Inception weights in the config (`inception_weights`, resolved at enqueue): FID, KID (mean and
  std), IS (mean and std) through torch-fidelity (engine/compute/inception.py) against the test split
  (as the `quality` job), whose statistics are cached once per data set; `uncalibrated: true` when the file is not the real one;
- with a baseline classifier (`eval_baseline_ckpt`, resolved at enqueue from `--eval-baseline`): fd_clf,
  kid_clf and gan_test_acc (engine/compute/classifier_score.py) against the test split, floor at the same n.
A value that cannot be computed is absent from the record, never faked; if neither scorer is available the
log says once why evaluation is off.

It runs on the training device, without gradients, with the generator in eval mode (restored afterwards),
and it does not move the training RNG: its draws use their own generators, and the global CPU and CUDA RNG
states are saved and restored around it (`torch.random.fork_rng`), so a run trains identically with and
without evaluation. The classifier scores need classes, so they apply to the class-conditional recipe
(acgan-wgangp); the unconditional GANs get the Inception metrics only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from engine.compute.classifier_score import Classifier, classifier_scores, load_classifier
from engine.compute.data.device_data import to_unit_range
from engine.control.config import EVAL_SAMPLES_BY_DEVICE
from engine.control.records import EVAL

GEN_BATCH = 500
NOISE_SALT = 7_919  # the evaluation noise seed is the run's seed + this: its own stream, the same every time


class _TrainerLike(Protocol):
    """What the evaluation reads of a Trainer (engine/compute/recipes/base.py), named here to avoid a cycle."""

    cfg: dict[str, Any]
    run_dir: Path
    rt: Any  # engine.compute.device.Runtime
    data: Any  # engine.compute.data.device_data.DeviceData
    metrics: Any  # a MetricsWriter
    log: Callable[[str], None]

    def modules(self) -> dict[str, torch.nn.Module]: ...

    def eval_images(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


class Evaluation:
    """The scorers of one run, prepared at the first evaluation (weights loaded, real statistics cached)."""

    def __init__(self, trainer: _TrainerLike) -> None:
        self.t = trainer
        cfg = trainer.cfg
        self.every = int(cfg.get("eval_every") or 0)
        default_n = EVAL_SAMPLES_BY_DEVICE["cuda" if trainer.rt.is_cuda else "cpu"]
        self.n = int(cfg.get("eval_samples") or default_n)
        self.inception: Any = None  # engine.compute.inception.Inception
        self.real_stats: Any = None
        self.classifier: Classifier | None = None
        self.prepared = False
        self.skipped: list[str] = []  # why a scorer is not used, said once

    def due(self, epoch: int) -> bool:
        return self.every > 0 and epoch % self.every == 0

    @property
    def active(self) -> bool:
        return self.inception is not None or self.classifier is not None

    # --- preparing the scorers (once) ----------------------------------------------------------------
    def prepare(self) -> None:
        self.prepared = True
        self._prepare_inception()
        self._prepare_classifier()
        if not self.active:
            self.t.log(f"evaluation off (eval_every={self.every}): {'; '.join(self.skipped)}")
        elif self.skipped:
            self.t.log(f"evaluation every {self.every} epochs on {self.n} samples; {'; '.join(self.skipped)}")

    def _prepare_inception(self) -> None:
        cfg = self.t.cfg
        weights = cfg.get("inception_weights")
        if not weights:
            self.skipped.append("FID/KID/IS skipped: no Inception weights (`ganmgr settings --inception-weights "
                                "PATH`, see `ganmgr doctor`)")
            return
        from engine.compute.inception import Inception, InceptionWeightsError, inception_cache_dir, real_stats
        from engine.compute.viz.fidelity import real_test_fingerprint

        try:
            inc = Inception.load(weights, bool(cfg.get("inception_uncalibrated")), self.t.rt.device)
            data = self.t.data
            # the test split, as the `quality` job scores against: one cache entry, comparable numbers
            fingerprint = real_test_fingerprint(cfg, data.num_test,
                                                [data.channels, data.image_size, data.image_size])
            self.real_stats = real_stats(inc, fingerprint, lambda: to_unit_range(data.x_test),
                                         inception_cache_dir(self.t.run_dir.parent))
            self.inception = inc
        except (InceptionWeightsError, OSError, ValueError, RuntimeError) as e:
            self.skipped.append(f"FID/KID/IS skipped: {_one_line(e)}")

    def _prepare_classifier(self) -> None:
        cfg = self.t.cfg
        if "eval_baseline" not in cfg:
            return  # an unconditional GAN: no classes to score
        ckpt = cfg.get("eval_baseline_ckpt")
        if not ckpt:
            self.skipped.append("classifier scores skipped: no eval_baseline (`ganmgr run --eval-baseline ID`)")
            return
        data = self.t.data
        try:
            clf = load_classifier(Path(ckpt), self.t.rt.device)
        except Exception as e:  # a checkpoint deleted or damaged since enqueue: the run trains on without it
            self.skipped.append(f"classifier scores skipped: baseline checkpoint {ckpt}: {_one_line(e)}")
            return
        shape = [data.channels, data.image_size, data.image_size]
        if clf.data_shape != shape or clf.classes != [str(c) for c in data.classes]:
            self.skipped.append(f"classifier scores skipped: the baseline {ckpt} was trained on other data "
                                f"({len(clf.classes)} classes, images {clf.data_shape}; this run {shape})")
            return
        self.classifier = clf

    # --- one evaluation --------------------------------------------------------------------------------
    def evaluate(self, epoch: int) -> dict[str, Any]:
        """Measure, write the `eval` record and return it ({} when nothing could be measured)."""
        t = self.t
        start = time.perf_counter()
        device = t.rt.device
        cuda = [device.index if device.index is not None else torch.cuda.current_device()] if t.rt.is_cuda else []
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            images, labels = self._generate()
            rec: dict[str, Any] = {"kind": EVAL, "epoch": epoch, "n": int(images.shape[0])}
            if self.inception is not None:
                m = _inception_metrics(self.inception, images, self.real_stats)
                rec.update({k: m[k] for k in ("fid", "kid", "kid_std", "is", "is_std", "precision", "recall")
                            if k in m})
                rec["uncalibrated"] = bool(m.get("uncalibrated"))
            if self.classifier is not None:
                real = to_unit_range(t.data.x_test)
                s = classifier_scores(self.classifier.D, images, labels, real, self.classifier.classes, n=self.n)
                rec["gan_test_acc"] = s["accuracy"]
                rec["gan_test_acc_per_class"] = s["per_class_accuracy"]
                rec["n_clf"] = s["n"]
                for src, dst in (("fd", "fd_clf"), ("fd_floor", "fd_clf_floor"), ("kid", "kid_clf"),
                                 ("kid_std", "kid_clf_std"), ("kid_floor", "kid_clf_floor")):
                    if src in s:
                        rec[dst] = s[src]
            t.rt.synchronize()
        rec["seconds"] = round(time.perf_counter() - start, 3)
        t.metrics.write(rec)
        t.log(eval_line(rec))
        return rec

    def _generate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """n images from the fixed evaluation noise, classes in turn (0, 1, ..., 0, 1, ...), G in eval mode."""
        t = self.t
        device = t.rt.device
        G = t.modules()["G"]
        was_training = G.training
        gen = torch.Generator(device=device)
        gen.manual_seed(int(t.cfg["seed"]) + NOISE_SALT)
        labels = torch.arange(self.n, device=device) % max(1, int(t.data.num_classes))
        G.eval()
        try:
            with torch.autocast(device.type, enabled=False):
                images = torch.cat([t.eval_images(labels[i:i + GEN_BATCH], gen)
                                    for i in range(0, self.n, GEN_BATCH)])
        finally:
            G.train(was_training)
        return images.float(), labels


def _inception_metrics(inc: Any, images: torch.Tensor, real: Any) -> dict[str, Any]:
    from engine.compute.inception import inception_metrics

    return inception_metrics(inc, images, real)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


def _fmt(v: Any, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def eval_line(rec: dict[str, Any]) -> str:
    """The log line of an eval record: what was measured, with n, marked when uncalibrated."""
    parts = [f"eval epoch {rec.get('epoch')}:"]
    if "fid" in rec:
        mark = " (uncalibrated weights)" if rec.get("uncalibrated") else ""
        parts.append(f"FID {_fmt(rec['fid'], '.3f')}  KID {_fmt(rec.get('kid'), '.5f')} ± "
                     f"{_fmt(rec.get('kid_std'), '.5f')}  IS {_fmt(rec.get('is'), '.3f')} ± "
                     f"{_fmt(rec.get('is_std'), '.3f')}  n {rec.get('n')}{mark}")
    if "gan_test_acc" in rec:
        parts.append(f"fd_clf {_fmt(rec.get('fd_clf'), '.4g')} (floor {_fmt(rec.get('fd_clf_floor'), '.4g')})  "
                     f"kid_clf {_fmt(rec.get('kid_clf'), '.4g')}  n {rec.get('n_clf')}  "
                     f"gan_test_acc {_fmt(rec['gan_test_acc'], '.1f')}% of {rec.get('n')}")
    parts.append(f"({rec.get('seconds', 0):.1f} s)")
    return "  ".join(parts)


def evaluate_epoch(trainer: _TrainerLike, epoch: int) -> dict[str, Any]:
    """The trainer's epoch-end hook: the eval record when epoch is a multiple of eval_every, else {}.

    A failure inside the evaluation (out of memory, a scorer's error) is one log line; training goes on."""
    ev = trainer.__dict__.get("_evaluation")
    if ev is None:
        ev = trainer.__dict__["_evaluation"] = Evaluation(trainer)
    if not ev.due(epoch):
        return {}
    if not ev.prepared:
        ev.prepare()
    if not ev.active:
        return {}
    try:
        return ev.evaluate(epoch)
    except (RuntimeError, ValueError, OSError) as e:
        trainer.log(f"eval epoch {epoch} failed: {_one_line(e)}; training goes on")
        return {}
