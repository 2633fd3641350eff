"""`python -m bench.eval_training [--n 1000] [--width 32] [--device cpu] [--weights PATH] [--repeats 2]`:
what one evaluation during training costs (engine/compute/evaluation.py), beside the training it interrupts.

A real acgan-wgangp Trainer on the synthetic set (its models untrained: the cost does not depend on how good
the samples are), a baseline classifier of the same width (random weights, saved as a checkpoint the way a
baseline run's final.pt is), and with `--weights` the Inception network too. Prints one JSON line per phase
and a summary:
- `generate`: n images from G in eval mode;
- `classifier`: `classifier_scores` on them (features of n generated and 2 x n_clf real images, FD, KID);
- `evaluation`: one whole `evaluate_epoch` (generation + every scorer + the record), repeated `--repeats`
  times (the first also loads the scorers and, with weights, caches the real statistics);
- `train_step`: one training step, and `epoch_equiv` = the evaluation in training epochs of this data set.
Interleaved: a few training steps, then an evaluation, `--repeats` times, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from engine.compute.checkpoint import save_checkpoint
from engine.compute.classifier_score import classifier_scores, load_classifier
from engine.compute.data.device_data import to_unit_range
from engine.compute.evaluation import Evaluation, evaluate_epoch
from engine.compute.models.acgan import ACGANDConfig, ACGANDiscriminator
from engine.compute.recipes.acgan import ACGANTrainer
from engine.control.config import resolve_config
from engine.control.records import MetricsWriter

STEPS = 5  # training steps timed between two evaluations


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def emit(phase: str, **fields) -> None:
    print(json.dumps({"phase": phase, **fields}), flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="eval_samples")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--weights", help="Inception weights (the real file, or any file in its format)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    dev = torch.device(args.device)

    clf_path = tmp / "baseline-final.pt"  # written below, once the data's classes are known
    assign = [f"width={args.width}", f"batch_size={args.batch_size}", f"device={args.device}", "epochs=1000",
              "eval_every=1", f"eval_samples={args.n}", "eval_baseline=0", f"eval_baseline_ckpt={clf_path}"]
    if args.weights:
        assign += [f"inception_weights={Path(args.weights).resolve()}", "inception_uncalibrated=true"]
    cfg = resolve_config("acgan-wgangp", assignments=assign)
    run_dir = tmp / "runs" / "run"
    run_dir.mkdir(parents=True)
    t = ACGANTrainer(cfg, run_dir, log=lambda m: None)
    t.setup()
    D = ACGANDiscriminator(ACGANDConfig(width=args.width, in_channels=3, image_size=32, num_classes=10))
    save_checkpoint(clf_path, {"config": {"width": args.width, "leaky_slope": 0.01, "recipe": "baseline"},
                               "models": {"D": D.state_dict()}, "epoch": 0, "data_shape": [3, 32, 32],
                               "classes": [str(c) for c in t.data.classes], "num_classes": 10})
    t.metrics = MetricsWriter(run_dir / "metrics.jsonl")
    t.begin_epoch()

    ev = Evaluation(t)
    sync(dev)
    start = time.perf_counter()
    images, labels = ev._generate()
    sync(dev)
    emit("generate", n=args.n, seconds=round(time.perf_counter() - start, 4))
    clf = load_classifier(clf_path, dev)
    real = to_unit_range(t.data.x_test)
    start = time.perf_counter()
    s = classifier_scores(clf.D, images, labels, real, clf.classes, n=args.n)
    sync(dev)
    emit("classifier", n_clf=s["n"], seconds=round(time.perf_counter() - start, 4))

    step_s, eval_s = [], []
    for rep in range(args.repeats):
        sync(dev)
        start = time.perf_counter()
        for _ in range(STEPS):
            t.run_step()
            if t.batch >= t.steps_per_epoch:
                t.batch = 0
        sync(dev)
        step_s.append((time.perf_counter() - start) / STEPS)
        start = time.perf_counter()
        rec = evaluate_epoch(t, rep + 1)
        sync(dev)
        eval_s.append(time.perf_counter() - start)
        emit("evaluation", repeat=rep, seconds=round(eval_s[-1], 4), first=rep == 0,
             fields=sorted(k for k in rec if k not in ("kind", "epoch")))
    step = statistics.median(step_s)
    later = statistics.median(eval_s[1:] or eval_s)
    emit("train_step", seconds=round(step, 5), steps_per_epoch=t.steps_per_epoch)
    emit("summary", n=args.n, width=args.width, device=str(dev), eval_seconds=round(later, 3),
         epoch_seconds=round(step * t.steps_per_epoch, 3),
         epoch_equiv=round(later / (step * t.steps_per_epoch), 3), torch=torch.__version__)
    t.metrics.close()


if __name__ == "__main__":
    main()
