"""`python -m bench.train_speed`: training images/s of ganmgr's engine against the course's own loop.

In one process, on one device, for each recipe: (a) the course's Part 1 loop (`bench.reference`: DataLoader
workers running per-image PIL transforms, numpy noise, two critic passes, `.item()` every step, fp32) and
(b) ganmgr's real Trainer (`Trainer.run_step`: uint8 data on the device, vectorized augmentation, no host
sync inside the step, the configured precision and compile switches), same models, same batch size, same
number of timed steps after a warm-up. The two sides alternate (a, b, a, b, ...) so a noisy shared machine
slows both alike; images/s are medians over the repeats, the ratio the median of per-repeat ratios.

One JSON line per recipe is appended to `--out`; the table is printed to stdout.

`--liveness` prices what keeps a run visible while it trains instead: the engine as it runs (train windows
closed by `log_every` steps or `log_seconds` seconds, a `progress` record about once a second between them,
the device-side counter that names a divergence's exact step) against the same engine with all three off
(windows by steps only, no progress records, no counter), interleaved (quiet, live, live, quiet, ...);
the ratio is the median of each round's live/quiet images/s, and `--log-seconds` sets the live side's
window length (default 2, the config default; smaller stresses it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECIPES = ("acgan-wgangp", "baseline")
CIFAR10_TRAIN = 50_000  # the projection is for the course's data set, not the synthetic one
PROJECT_EPOCHS = 500


# ----------------------------------------------------------------------------------------------- memory

def _proc_status_kb(field: str, pid: int | str = "self") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _private_kb(pid: int) -> int | None:
    """Private (unshared) resident memory of a process: a forked worker's own cost, not the parent's pages."""
    try:
        total = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
        return total
    except (OSError, ValueError, IndexError):
        return None


def tensor_bytes(tensors: Iterable[Any]) -> int:
    import torch

    seen: set[int] = set()
    total = 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            key = t.untyped_storage().data_ptr()
            if key not in seen:
                seen.add(key)
                total += t.untyped_storage().nbytes()
    return total


def state_tensors(modules: Iterable[Any], optimizers: Iterable[Any]) -> list[Any]:
    """Parameters, gradients, buffers and optimizer moments: what a side keeps between steps."""
    out: list[Any] = []
    for m in modules:
        for p in m.parameters():
            out.append(p)
            if p.grad is not None:
                out.append(p.grad)
        out.extend(m.buffers())
    for o in optimizers:
        for st in o.state.values():
            out.extend(v for v in st.values() if hasattr(v, "untyped_storage"))
    return out


def _malloc_trim() -> None:
    """Return glibc's cached free heap pages to the OS (no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of a timed run: resident state + the peak working set above it.

    CUDA: torch's max_memory_allocated (reset before the run). CPU: the process's peak RSS (VmHWM, reset
    through /proc/self/clear_refs) above its RSS at the start, after glibc was asked to hand its cached
    free memory back (malloc_trim), so the step's temporaries show up as growth; without /proc, `None`.
    """

    def __init__(self, device):
        self.device = device
        self.start = 0
        self.ok = True

    def __enter__(self) -> PeakMemory:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            _malloc_trim()
            try:
                Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            except OSError:
                self.ok = False
            self.start = (_proc_status_kb("VmRSS") or 0) * 1024
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.peak = (_proc_status_kb("VmHWM") or 0) * 1024

    def working_bytes(self) -> int | None:
        return max(self.peak - self.start, 0) if self.ok else None


# ----------------------------------------------------------------------------------------------- sides

@dataclass
class Timing:
    seconds: float
    images: int
    peak_mb: float | None
    workers_mb: float | None = None
    cpu_seconds: float | None = None  # CPU time of this process (and the reference's workers) in the run

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def _mb(n: int | None) -> float | None:
    return None if n is None else round(n / 2**20, 1)



def run_steps(t, n: int) -> None:
    """`n` training steps of trainer `t`, starting a new epoch (its order and lr) whenever one is used up."""
    for _ in range(n):
        if t.order is None or t.batch >= t.steps_per_epoch:
            t.batch = 0
            t.order = None
            t.begin_epoch()
        t.run_step()


class EngineSide:
    """ganmgr's Trainer, driven through `run_step` exactly as its epoch loop drives it.

    `attrs` are set on the trainer before its setup (e.g. `runtime_overrides`, `compile_mode`): the switch
    benchmark builds its variants that way, and hooks `before_run`/`after_run` around each timed run.
    """

    def __init__(self, recipe: str, args: argparse.Namespace, workdir: Path, log: Callable[[str], None],
                 *, attrs: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
                 name: str = "engine"):
        import importlib

        from engine.control.config import recipe_spec, resolve_config
        from engine.control.records import MetricsWriter

        cfg_over = {"dataset": "synthetic", "width": args.width, "batch_size": args.batch_size,
                    "device": args.device, "precision": args.precision, "compile": args.compile,
                    "threads": args.threads, "log_every": args.log_every, "seed": args.seed, "epochs": 1}
        cfg_over.update(overrides or {})
        cfg = resolve_config(recipe, cfg_over)
        run_dir = workdir / f"{name}-{recipe}"
        run_dir.mkdir(parents=True, exist_ok=True)
        module = importlib.import_module(recipe_spec(recipe).module)
        self.trainer = module.TRAINER(cfg, run_dir, log=log)
        for k, v in (attrs or {}).items():
            setattr(self.trainer, k, v)
        if getattr(args, "compile_mode", None):
            self.trainer.compile_mode = args.compile_mode
        self.trainer.setup()
        self.trainer.metrics = MetricsWriter(run_dir / "metrics.jsonl")
        self.batch_size = args.batch_size
        self.device = self.trainer.rt.device
        self.before_run: Callable[[], None] | None = None
        self.after_run: Callable[[], None] | None = None
        self.worker_pids: Callable[[], list[int]] = list  # processes whose CPU time counts (a variant's loader)

    def _steps(self, n: int) -> None:
        run_steps(self.trainer, n)

    def run(self, warmup: int, steps: int) -> Timing:
        t = self.trainer
        if self.before_run is not None:
            self.before_run()
        self._steps(warmup)
        t._log_window()  # read back what the warm-up accumulated: the timed steps start with no queue
        t.rt.synchronize()
        with PeakMemory(self.device) as mem:
            start = time.perf_counter()
            cpu0 = time.process_time() + _cpu_seconds(self.worker_pids())
            self._steps(steps)
            t._log_window()  # the log boundary read that ends a window (one host sync)
            t.rt.synchronize()
            seconds = time.perf_counter() - start
            cpu = time.process_time() + _cpu_seconds(self.worker_pids()) - cpu0
        if self.after_run is not None:
            self.after_run()
        work = mem.working_bytes()
        resident = tensor_bytes(state_tensors(t.modules().values(), t.optimizers().values())
                                + [t.data.x_train, t.data.y_train, t.data.x_test, t.data.y_test])
        return Timing(seconds, steps * self.batch_size, _mb(None if work is None else work + resident),
                      cpu_seconds=cpu)


class ReferenceSide:
    """The course's loop (bench.reference); a fresh DataLoader iterator, with its workers, per timed run."""

    def __init__(self, recipe: str, args: argparse.Namespace, splits, device, init_from: EngineSide | None):
        from bench import reference

        self.batch_size = args.batch_size
        self.num_workers = args.num_workers
        self.device = device
        self.loader = reference.seed_loader(splits.x_train, splits.y_train, args.batch_size, args.num_workers)
        if recipe == "baseline":
            self.loop = reference.SeedBaseline.build(args.width, device)
            self.modules, self.optimizers = [self.loop.model], [self.loop.optimizer]
        else:
            self.loop = reference.SeedGAN.build(args.width, device)
            self.modules, self.optimizers = [self.loop.aD, self.loop.aG], [self.loop.optimizer_d,
                                                                          self.loop.optimizer_g]
        if init_from is not None:  # same starting weights as the engine: same numbers flow through both
            for ours, theirs in zip(self.modules, init_from.trainer.modules().values()):
                ours.load_state_dict(theirs.state_dict())
        self.step_index = 0

    def run(self, warmup: int, steps: int) -> Timing:
        import numpy as np
        import torch

        from bench import reference

        it = reference.SeedBatches(self.loader, self.batch_size)
        self.loop.reset_logs()
        for _ in range(warmup):
            x, y = next(it)
            self.loop.step(self.step_index, x, y)
            self.step_index += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        with PeakMemory(self.device) as mem:
            start = time.perf_counter()
            cpu0 = time.process_time() + _cpu_seconds(it.worker_pids())
            for _ in range(steps):
                x, y = next(it)
                self.loop.step(self.step_index, x, y)
                self.step_index += 1
            float(np.mean(self.loop.acc1 if hasattr(self.loop, "acc1") else self.loop.accs))  # the print
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - start
            cpu = time.process_time() + _cpu_seconds(it.worker_pids()) - cpu0
        workers = _workers_private_mb(it.worker_pids())
        it.close()  # shuts the workers down: they must not compete with the engine's run
        work = mem.working_bytes()
        resident = tensor_bytes(state_tensors(self.modules, self.optimizers))
        return Timing(seconds, steps * self.batch_size, _mb(None if work is None else work + resident), workers,
                      cpu_seconds=cpu)


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of other processes (the DataLoader workers), from /proc/PID/stat."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14, 15)
        except (OSError, ValueError, IndexError):
            pass
    return total


def _workers_private_mb(pids: list[int]) -> float | None:
    """Private memory of the live DataLoader workers (what the per-image transforms cost on the host)."""
    sizes = [_private_kb(pid) for pid in pids]
    if not sizes or any(s is None for s in sizes):
        return None
    return round(sum(sizes) / 1024, 1)


# ----------------------------------------------------------------------------------------------- report

def projected_seconds(images_per_s: float, batch_size: int, epochs: int = PROJECT_EPOCHS,
                      train_images: int = CIFAR10_TRAIN) -> float:
    """Wall time of `epochs` epochs over CIFAR-10's 50,000 training images, incomplete last batch dropped."""
    return epochs * (train_images // batch_size) * batch_size / images_per_s


def _fmt_duration(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.0f} s"


def bench_recipe(recipe: str, args: argparse.Namespace, splits, workdir: Path,
                 log: Callable[[str], None]) -> dict[str, Any]:
    import torch

    engine = EngineSide(recipe, args, workdir, log=lambda m: log(f"  {recipe}: {m}"))
    rt = engine.trainer.rt
    reference = ReferenceSide(recipe, args, splits, rt.device, engine)
    ref_t: list[Timing] = []
    eng_t: list[Timing] = []
    for r in range(args.repeats):
        ref_t.append(reference.run(args.warmup, args.steps))
        eng_t.append(engine.run(args.warmup, args.steps))
        log(f"  {recipe} repeat {r + 1}/{args.repeats}: reference {ref_t[-1].images_per_s:8.1f} img/s, "
            f"engine {eng_t[-1].images_per_s:8.1f} img/s")
    ref_ips = statistics.median(t.images_per_s for t in ref_t)
    eng_ips = statistics.median(t.images_per_s for t in eng_t)
    ratio = statistics.median(e.images_per_s / r.images_per_s for r, e in zip(ref_t, eng_t))

    def peak(ts: list[Timing]) -> float | None:
        vals = [t.peak_mb for t in ts if t.peak_mb is not None]
        return max(vals) if vals else None

    rec: dict[str, Any] = {
        "recipe": recipe, "device": str(rt.device),
        "device_name": torch.cuda.get_device_name(rt.device) if rt.is_cuda else platform.processor() or "cpu",
        "width": args.width, "batch_size": args.batch_size, "precision": rt.precision,
        "compile": bool(getattr(engine.trainer, "compiled", False)), "compile_requested": args.compile,
        "channels_last": rt.channels_last,
        "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "threads": torch.get_num_threads(),
        "num_workers": args.num_workers,
        "reference_images_per_s": round(ref_ips, 2), "engine_images_per_s": round(eng_ips, 2),
        "ratio": round(ratio, 3),
        "reference_images_per_s_all": [round(t.images_per_s, 2) for t in ref_t],
        "engine_images_per_s_all": [round(t.images_per_s, 2) for t in eng_t],
        "reference_peak_mem_mb": peak(ref_t), "engine_peak_mem_mb": peak(eng_t),
        "reference_workers_mem_mb": max((t.workers_mb for t in ref_t if t.workers_mb is not None), default=None),
        "reference_cpu_ms_per_image": cpu_ms_per_image(ref_t), "engine_cpu_ms_per_image": cpu_ms_per_image(eng_t),
        "compile_mode": args.compile_mode, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch": torch.__version__, "host": socket.gethostname(), "time": time.time(),
    }
    if recipe != "baseline":
        rec["projected_500_epochs_s"] = round(projected_seconds(eng_ips, args.batch_size), 1)
        rec["reference_projected_500_epochs_s"] = round(projected_seconds(ref_ips, args.batch_size), 1)
    return rec


def bench_liveness(recipe: str, args: argparse.Namespace, workdir: Path,
                   log: Callable[[str], None]) -> dict[str, Any]:
    """Live (time-bounded windows, progress records, the first-bad-step counter) against quiet, interleaved."""
    import torch

    quiet = EngineSide(recipe, args, workdir, log=lambda m: log(f"  {recipe} quiet: {m}"), name="quiet",
                       attrs={"progress_seconds": 0.0, "watch_steps": False}, overrides={"log_seconds": 0.0})
    live = EngineSide(recipe, args, workdir, log=lambda m: log(f"  {recipe} live: {m}"), name="live",
                      overrides={"log_seconds": args.log_seconds})
    timings: dict[str, list[Timing]] = {"quiet": [], "live": []}
    written = []  # train + progress records the live side wrote per timed run
    metrics = live.trainer.run_dir / "metrics.jsonl"
    for r in range(args.repeats):
        order = (("quiet", quiet), ("live", live)) if r % 2 == 0 else (("live", live), ("quiet", quiet))
        for name, side in order:
            before = _count_lines(metrics) if name == "live" else 0
            timings[name].append(side.run(args.warmup, args.steps))
            if name == "live":
                written.append(_count_lines(metrics) - before)
        log(f"  {recipe} round {r + 1}/{args.repeats}: quiet {timings['quiet'][-1].images_per_s:8.1f} img/s, "
            f"live {timings['live'][-1].images_per_s:8.1f} img/s")
    ratio = statistics.median(lv.images_per_s / q.images_per_s for q, lv in zip(timings["quiet"], timings["live"]))
    rt = live.trainer.rt
    return {
        "kind": "liveness", "recipe": recipe, "device": str(rt.device),
        "device_name": torch.cuda.get_device_name(rt.device) if rt.is_cuda else platform.processor() or "cpu",
        "width": args.width, "batch_size": args.batch_size, "precision": rt.precision,
        "log_every": args.log_every, "log_seconds": args.log_seconds,
        "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "threads": torch.get_num_threads(),
        "quiet_images_per_s": round(statistics.median(t.images_per_s for t in timings["quiet"]), 2),
        "live_images_per_s": round(statistics.median(t.images_per_s for t in timings["live"]), 2),
        "ratio": round(ratio, 4),
        "quiet_images_per_s_all": [round(t.images_per_s, 2) for t in timings["quiet"]],
        "live_images_per_s_all": [round(t.images_per_s, 2) for t in timings["live"]],
        "live_records_per_run": written,
        "torch": torch.__version__, "host": socket.gethostname(), "time": time.time(),
    }


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 16), b""))
    except FileNotFoundError:
        return 0


def print_liveness(records: list[dict[str, Any]], out=sys.stdout) -> None:
    print(f"{'recipe':<14}{'device':<8}{'width':>6}{'batch':>6}{'log_s':>6}{'quiet img/s':>13}{'live img/s':>12}"
          f"{'live/quiet':>12}  records/run", file=out)
    for r in records:
        print(f"{r['recipe']:<14}{r['device']:<8}{r['width']:>6}{r['batch_size']:>6}{r['log_seconds']:>6g}"
              f"{r['quiet_images_per_s']:>13.1f}{r['live_images_per_s']:>12.1f}{r['ratio']:>11.3f}x  "
              f"{min(r['live_records_per_run'])}-{max(r['live_records_per_run'])}", file=out)


def cpu_ms_per_image(ts: list[Timing]) -> float | None:
    """Median CPU milliseconds per image (all threads; the reference's workers included): a load-proof cost."""
    vals = [1000 * t.cpu_seconds / t.images for t in ts if t.cpu_seconds is not None]
    return round(statistics.median(vals), 2) if vals else None


def print_table(records: list[dict[str, Any]], out=sys.stdout) -> None:
    head = f"{'recipe':<14}{'device':<8}{'width':>6}{'batch':>6}  {'prec':<5}{'compile':<8}" \
           f"{'reference img/s':>16}{'engine img/s':>14}{'ratio':>8}{'ref MB':>9}{'eng MB':>9}  500 epochs (CIFAR-10)"
    print(head, file=out)
    for r in records:
        proj = ""
        if "projected_500_epochs_s" in r:
            proj = (f"{_fmt_duration(r['projected_500_epochs_s'])} "
                    f"(reference {_fmt_duration(r['reference_projected_500_epochs_s'])})")

        def mb(v):
            return "-" if v is None else f"{v:.0f}"

        print(f"{r['recipe']:<14}{r['device']:<8}{r['width']:>6}{r['batch_size']:>6}  {r['precision']:<5}"
              f"{str(r['compile']).lower():<8}{r['reference_images_per_s']:>16.1f}{r['engine_images_per_s']:>14.1f}"
              f"{r['ratio']:>7.2f}x{mb(r['reference_peak_mem_mb']):>9}{mb(r['engine_peak_mem_mb']):>9}  {proj}",
              file=out)


# ----------------------------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.train_speed", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--width", type=int, default=None, help="model width (default: 196 on CUDA, 64 on CPU)")
    p.add_argument("--batch-size", type=int, default=None, help="images per step (default: 128 on CUDA, 64 on CPU)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per repeat (default: 50 on CUDA, 8 on CPU)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps before each timed run (default: 10 on CUDA, 2 on CPU)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved reference/engine repeats (median)")
    p.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, from {', '.join(RECIPES)}")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "tf32", "bf16"),
                   help="the engine's precision (the reference is always fp32, as the course)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                   help="the engine's compiled step (config field `compile`)")
    p.add_argument("--compile-mode", default=None,
                   help="torch.compile mode for --compile (e.g. reduce-overhead: CUDA graphs; default: inductor's)")
    p.add_argument("--num-workers", type=int, default=2, help="the reference's DataLoader workers (course: 2)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads for both sides (0: torch's default on this machine)")
    p.add_argument("--log-every", type=int, default=50, help="the engine's metric window (config log_every)")
    p.add_argument("--liveness", action="store_true",
                   help="instead of the course's loop: the engine with its time-bounded windows, progress "
                        "records and divergence counter against the engine without them (interleaved)")
    p.add_argument("--log-seconds", type=float, default=2.0,
                   help="--liveness: the live side's window length in seconds (config log_seconds)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="append one JSON line per recipe to this file")
    return p


def _fill_defaults(args: argparse.Namespace, cuda: bool) -> None:
    for name, gpu, cpu in (("width", 196, 64), ("batch_size", 128, 64), ("steps", 50, 8), ("warmup", 10, 2)):
        if getattr(args, name) is None:
            setattr(args, name, gpu if cuda else cpu)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    bad = [r for r in recipes if r not in RECIPES]
    if bad or not recipes:
        parser.error(f"--recipes: unknown {', '.join(bad) or '(none)'}; choose from {', '.join(RECIPES)}")
    for name in ("width", "batch_size", "steps", "repeats"):
        v = getattr(args, name)
        if v is not None and v < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, not {v}")
    if (args.warmup is not None and args.warmup < 0) or args.num_workers < 0 or args.threads < 0:
        parser.error("--warmup, --num-workers and --threads cannot be negative")
    if not args.log_seconds > 0:
        parser.error(f"--log-seconds must be above 0, not {args.log_seconds}")

    # A shared CPU: OpenMP threads that spin while waiting for a descheduled peer make every op of a 2-thread
    # team crawl (measured 5-10x slower under load). Passive waiting costs nothing measurable when idle.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when torch loads OpenMP below
    import torch

    from engine.compute.data.sources import load_splits
    from engine.compute.data.splits import DataError
    from engine.compute.device import DeviceError, resolve_device

    try:
        device = resolve_device(args.device)
    except DeviceError as e:
        print(f"train_speed: error: {e}", file=sys.stderr)
        return 2
    _fill_defaults(args, device.type == "cuda")
    args.device = str(device)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()  # the same number for both sides (the engine's config gets it)
    try:
        splits = load_splits("synthetic")
    except DataError as e:
        print(f"train_speed: error: {e}", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(f"train_speed: device {device}, width {args.width}, batch {args.batch_size}, {args.steps} steps after "
        f"{args.warmup} warm-up, {args.repeats} repeats, {args.threads} torch threads, "
        + (f"live (log_seconds {args.log_seconds:g}) against quiet" if args.liveness else
           f"reference with {args.num_workers} DataLoader workers") + f", torch {torch.__version__}")
    records = []
    with tempfile.TemporaryDirectory(prefix="ganmgr-bench-") as tmp:
        for recipe in recipes:
            if args.liveness:
                rec = bench_liveness(recipe, args, Path(tmp), log)
            else:
                rec = bench_recipe(recipe, args, splits, Path(tmp), log)
            records.append(rec)
            if args.out is not None:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with open(args.out, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(rec) + "\n")
    (print_liveness if args.liveness else print_table)(records)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)

