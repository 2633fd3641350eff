"""`python -m bench.switches`: what each fast-path switch is worth, one switch at a time, on this device.

The engine as configured (`engine`) is timed against variants that differ in one switch: the course's data
pipeline feeding the engine's step (DataLoader workers + per-image PIL transforms instead of uint8 data on
the device with one vectorized augmentation), the course's two critic passes instead of one joint pass, a
read-back of every metric every step (the course's `.item()`s), single-tensor instead of foreach/fused Adam,
channels-last, fp32 instead of bf16 (CUDA), and `torch.compile`. All variants live in one process and
take turns (round robin, `--repeats` rounds), so a noisy shared machine slows them alike; images/s are
medians, `vs engine` the median of each round's ratio, and CPU ms per image (all threads and processes,
the course loader's workers included) is the cost that the machine's load does not change. Options as
`bench.train_speed`; `--variants` picks a subset.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.train_speed import RECIPES, EngineSide, Timing, _fill_defaults, cpu_ms_per_image


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    recipes: tuple[str, ...] = RECIPES
    attrs: tuple[tuple[str, Any], ...] = ()
    overrides: tuple[tuple[str, Any], ...] = ()
    cuda_only: bool = False


VARIANTS: tuple[Variant, ...] = (
    Variant("engine", "the engine as configured (the row every other one is compared with)"),
    Variant("course-data", "the course's DataLoader (2 workers, per-image PIL transforms) feeds the step"),
    Variant("two-critic-passes", "the course's separate critic passes for fake and real images",
            recipes=("acgan-wgangp",), attrs=(("joint_critic_pass", False),)),
    Variant("read-every-step", "every metric read back to the host after every step (the course's .item())"),
    Variant("single-tensor-adam", "Adam one parameter at a time (no foreach / fused)",
            attrs=(("runtime_overrides", {"optimizer": "single"}),)),
    Variant("channels-last", "channels-last weights and inputs",
            attrs=(("runtime_overrides", {"channels_last": True}),)),
    Variant("no-channels-last", "default (NCHW) memory format", cuda_only=True,
            attrs=(("runtime_overrides", {"channels_last": False}),)),
    Variant("fp32", "fp32 instead of bf16 autocast", cuda_only=True, overrides=(("precision", "fp32"),)),
    Variant("compile", "torch.compile of the loss computations (inductor)", overrides=(("compile", True),)),
)


def _course_feed(side: EngineSide, num_workers: int, splits) -> None:
    """Replace the engine's on-device batches with the course's DataLoader pipeline (fresh workers per run)."""
    from bench import reference

    t = side.trainer
    loader = reference.seed_loader(splits.x_train, splits.y_train, side.batch_size, num_workers)
    state: dict[str, Any] = {}

    def before_run() -> None:
        state["it"] = reference.SeedBatches(loader, side.batch_size)

    def after_run() -> None:
        state.pop("it").close()

    def train_batch(idx, generator, augment):
        x, y = next(state["it"])
        return x.to(t.rt.device), y.to(t.rt.device)

    side.before_run, side.after_run = before_run, after_run
    side.worker_pids = lambda: state["it"].worker_pids() if "it" in state else []
    t.data.train_batch = train_batch


def build_side(variant: Variant, recipe: str, args: argparse.Namespace, workdir: Path, splits,
               log: Callable[[str], None]) -> EngineSide:
    side = EngineSide(recipe, args, workdir, log, attrs=dict(variant.attrs), overrides=dict(variant.overrides),
                      name=variant.name)
    if variant.name == "course-data":
        _course_feed(side, args.num_workers, splits)
    elif variant.name == "read-every-step":
        trainer = side.trainer
        original = trainer.train_step

        def chatty_step(x, y, i):
            vals = original(x, y, i)
            vals.tolist()  # one read of all the step's metrics (the course reads each with .item())
            return vals

        trainer.train_step = chatty_step
    return side


def measure(recipe: str, variants: list[Variant], args: argparse.Namespace, workdir: Path, splits,
            log: Callable[[str], None]) -> list[dict[str, Any]]:
    sides = {v.name: build_side(v, recipe, args, workdir, splits, log=lambda m: log("    " + m))
             for v in variants}
    timings: dict[str, list[Timing]] = {name: [] for name in sides}
    for r in range(args.repeats):
        for name, side in sides.items():
            timings[name].append(side.run(args.warmup, args.steps))
        log(f"  {recipe} round {r + 1}/{args.repeats}: " + ", ".join(
            f"{n} {ts[-1].images_per_s:.1f}" for n, ts in timings.items()))
    out = []
    for v in variants:
        ips = statistics.median(t.images_per_s for t in timings[v.name])
        # per-round ratios: the rounds' neighbours ran under the same machine load
        rel = statistics.median(t.images_per_s / e.images_per_s for t, e in zip(timings[v.name], timings["engine"]))
        side = sides[v.name]
        out.append({
            "kind": "switch", "recipe": recipe, "variant": v.name, "what": v.what,
            "device": str(side.device), "width": args.width, "batch_size": args.batch_size,
            "precision": side.trainer.rt.precision, "compiled": bool(side.trainer.compiled),
            "images_per_s": round(ips, 2), "relative_to_engine": round(rel, 3),
            "images_per_s_all": [round(t.images_per_s, 2) for t in timings[v.name]],
            "cpu_ms_per_image": cpu_ms_per_image(timings[v.name]),
            "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "threads": args.threads,
            "host": socket.gethostname(), "time": time.time(),
        })
    return out


def main(argv: list[str] | None = None) -> int:
    from bench.train_speed import build_parser

    parser = build_parser()
    parser.prog = "python -m bench.switches"
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--variants", default=None,
                        help="comma-separated subset of: " + ", ".join(v.name for v in VARIANTS))
    args = parser.parse_args(argv)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    if any(r not in RECIPES for r in recipes) or not recipes:
        parser.error(f"--recipes: choose from {', '.join(RECIPES)}")
    wanted = None if args.variants is None else {v.strip() for v in args.variants.split(",") if v.strip()}
    known = {v.name for v in VARIANTS}
    if wanted is not None and wanted - known:
        parser.error(f"--variants: unknown {', '.join(sorted(wanted - known))}; choose from {', '.join(known)}")

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench.train_speed
    import torch

    from engine.compute.data.sources import load_splits
    from engine.compute.device import DeviceError, resolve_device

    try:
        device = resolve_device(args.device)
    except DeviceError as e:
        print(f"switches: error: {e}", file=sys.stderr)
        return 2
    _fill_defaults(args, device.type == "cuda")
    args.device = str(device)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    splits = load_splits("synthetic")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ganmgr-switches-") as tmp:
        for recipe in recipes:
            variants = [v for v in VARIANTS if recipe in v.recipes and (device.type == "cuda" or not v.cuda_only)
                        and (wanted is None or v.name in wanted or v.name == "engine")]
            log(f"switches: {recipe} on {device}, width {args.width}, batch {args.batch_size}: "
                f"{', '.join(v.name for v in variants)}")
            res = measure(recipe, variants, args, Path(tmp), splits, log)
            rows.extend(res)
            if args.out is not None:
                with open(args.out, "a", encoding="utf-8") as fh:
                    fh.writelines(json.dumps(r) + "\n" for r in res)
    print(f"{'recipe':<14}{'variant':<20}{'img/s':>9}{'vs engine':>11}{'CPU ms/img':>12}  what")
    for r in rows:
        cpu = "-" if r["cpu_ms_per_image"] is None else f"{r['cpu_ms_per_image']:.1f}"
        print(f"{r['recipe']:<14}{r['variant']:<20}{r['images_per_s']:>9.1f}{r['relative_to_engine']:>10.2f}x"
              f"{cpu:>12}  {r['what']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
