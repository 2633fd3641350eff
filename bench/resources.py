"""`python -m bench.resources`: what the worker's resources sampler costs the training loop.

One process, one Trainer (`Trainer.run_step`, as its epoch loop drives it), timed in rounds with the sampler off
and on, interleaved (off, on, on, off, ...) so a noisy shared machine slows both alike. The sampler runs as in a
worker: a daemon thread writing `resources` records to the run's metrics.jsonl through the shared MetricsWriter,
psutil over the process tree, NVML for the run's device where there is one. `--every` sets its period; the
default (1 s) is ten times the config default, so the figure is an upper bound of what a run pays. Also printed:
the cost of one sample (median of --samples direct calls), whose ratio to the period is the sampler's share of
one core.

Prints a table and one JSON line (appended to --out when given). The ratio is the median over rounds of
on/off images/s of each adjacent pair.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.train_speed import run_steps as steps


def small_npz(path: Path, n_train: int) -> Path:
    """A slice of the synthetic shapes as an npz: the timed steps need a few batches, not the 24,000-image set."""
    import numpy as np

    from engine.compute.data.synthetic import make_synthetic

    s = make_synthetic(n_train=n_train, n_test=64, seed=0, channels=3, size=32)
    np.savez(path, x_train=s.x_train, y_train=s.y_train.astype(np.uint8), x_test=s.x_test,
             y_test=s.y_test.astype(np.uint8))
    return path


def build_trainer(args: argparse.Namespace, workdir: Path):
    from engine.control.config import recipe_spec, resolve_config
    from engine.control.records import MetricsWriter

    data = f"npz:{small_npz(workdir / 'data.npz', 8 * args.batch_size)}"
    cfg = resolve_config(args.recipe, {"dataset": data, "width": args.width, "batch_size": args.batch_size,
                                       "device": args.device, "threads": args.threads, "epochs": 1,
                                       "log_every": 10**6})
    run_dir = workdir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = importlib.import_module(recipe_spec(args.recipe).module).TRAINER(cfg, run_dir, log=lambda m: None)
    trainer.setup()
    trainer.metrics = MetricsWriter(run_dir / "metrics.jsonl")
    return trainer




def timed(t, n: int, bs: int, sampler) -> tuple[float, float]:
    """(images/s, images per CPU-second of the whole process, every thread) of `n` steps, with `sampler`
    (None: off) running meanwhile. CPU time is what a loaded shared machine disturbs least."""
    steps(t, 2)
    t._log_window()
    t.rt.synchronize()
    if sampler is not None:
        sampler.start()
    start, cpu0 = time.perf_counter(), time.process_time()
    steps(t, n)
    t._log_window()
    t.rt.synchronize()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    if sampler is not None:
        sampler.stop()
    return n * bs / seconds, n * bs / cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.resources", description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="baseline")
    p.add_argument("--device", default="cpu")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--steps", type=int, default=30, help="timed steps per run")
    p.add_argument("--rounds", type=int, default=8, help="off/on pairs (alternating order)")
    p.add_argument("--every", type=float, default=1.0, help="sampler period in seconds (config default 10)")
    p.add_argument("--samples", type=int, default=200, help="direct calls timed for the cost of one sample")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    from engine.compute.resources import ResourceSampler

    with tempfile.TemporaryDirectory() as tmp:
        t = build_trainer(args, Path(tmp))
        device = str(t.rt.device)

        def sampler():
            return ResourceSampler(t.metrics.write, args.every, device=lambda: device, log=lambda m: None)

        probe = sampler()
        probe.record()
        costs = []
        for _ in range(args.samples):
            s0 = time.perf_counter()
            probe.record()
            costs.append(time.perf_counter() - s0)
        sample_ms = statistics.median(costs) * 1000
        gpu = "gpu" in probe.record()

        steps(t, 5)  # warm-up
        off, on, ratios, cpu_ratios = [], [], [], []
        for r in range(args.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            got = {}
            for with_sampler in order:
                got[with_sampler] = timed(t, args.steps, args.batch_size, sampler() if with_sampler else None)
            off.append(got[False][0])
            on.append(got[True][0])
            ratios.append(got[True][0] / got[False][0])
            cpu_ratios.append(got[True][1] / got[False][1])
        records = sum(1 for line in (t.run_dir / "metrics.jsonl").read_text().splitlines()
                      if '"kind":"resources"' in line)
    result = {
        "bench": "resources", "date": time.strftime("%Y-%m-%d"), "commit": _commit(), "host": platform.node(),
        "recipe": args.recipe, "device": device, "width": args.width, "batch_size": args.batch_size,
        "steps": args.steps, "rounds": args.rounds, "every_s": args.every, "gpu_fields": gpu,
        "sample_ms": round(sample_ms, 3), "sampler_share_of_a_core": round(sample_ms / 1000 / args.every, 6),
        "images_per_s_off": round(statistics.median(off), 1), "images_per_s_on": round(statistics.median(on), 1),
        "ratio_on_off": round(statistics.median(ratios), 4), "resources_records": records,
        "pair_ratios": [round(r, 3) for r in ratios],
        "cpu_ratio_on_off": round(statistics.median(cpu_ratios), 4),
        "cpu_pair_ratios": [round(r, 3) for r in cpu_ratios],
    }
    print(f"{'sampler':<10}{'images/s (median)':>20}")
    print(f"{'off':<10}{result['images_per_s_off']:>20.1f}")
    print(f"{'on':<10}{result['images_per_s_on']:>20.1f}   every {args.every:g} s, {records} records written")
    print(f"ratio on/off (median of {args.rounds} interleaved pairs): {result['ratio_on_off']:.4f} "
          f"(cost {(1 - result['ratio_on_off']) * 100:+.2f} %)")
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
    print(f"pair ratios: min {min(ratios):.3f}, quartiles {q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}, max "
          f"{max(ratios):.3f} (the machine's noise)")
    print(f"images per CPU-second (every thread of the process), on/off: {result['cpu_ratio_on_off']:.4f} "
          f"(cost {(1 - result['cpu_ratio_on_off']) * 100:+.2f} %; pairs {min(cpu_ratios):.3f}-{max(cpu_ratios):.3f})")
    print(f"one sample: {sample_ms:.3f} ms ({'with' if gpu else 'without'} NVML); at the config default of 10 s "
          f"that is {sample_ms / 10000 * 100:.4f} % of one core")
    line = json.dumps(result)
    print(line)
    if args.out is not None:
        with open(args.out, "a") as fh:
            fh.write(line + "\n")
    return 0


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


if __name__ == "__main__":
    os.environ.setdefault("GANMGR_CACHE", str(Path(tempfile.gettempdir()) / "ganmgr-bench-cache"))
    raise SystemExit(main())
