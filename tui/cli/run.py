"""`ganmgr run` (queued, or --headless here) and `ganmgr sweep`: config flags, backends, Slurm options.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from engine.control.config import RECIPES, resolve_config
from engine.control.datasets import check_dataset_available
from engine.control.errors import ConfigError
from engine.control.slurm_options import options_from_flags
from store import runs as store_runs
from store import settings as store_settings
from store.checks import BACKENDS, check_note, normalize_tags
from store.db import db_path
from tui.cli.args import (
    EXIT_OK,
    CliError,
    _float,
    _int,
    gpu_list,
    max_concurrent,
    priority,
    shown,
)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The config flags shared by `run` (and, later, the form and `fork`): each maps to one config field."""
    g = p.add_argument_group("what to train")
    g.add_argument("--recipe", required=True, help=f"one of: {', '.join(RECIPES)}")
    g.add_argument("--dataset", help="synthetic (embedded, 3x32) | synthetic28 (1x28) | synthetic64 (3x64) | "
                   "cifar10 | mnist | npz:PATH | imagefolder:PATH (default: the recipe's)")
    g.add_argument("--data-root", help="folder holding the cifar10/mnist files (torchvision layout)")
    g.add_argument("--download", action="store_true", default=None,
                   help="let torchvision download the data set into --data-root (online nodes only)")
    g.add_argument("--epochs", type=_int, help="passes over the training set (recipe default: the course's)")
    g.add_argument("--width", type=_int, help="model width: conv channels (acgan/baseline course: 196, 128 the faster "
                   "option; dcgan: 64) or hidden units (mlp-gan 300, lab5-gan 256)")
    g.add_argument("--batch-size", type=_int, help="images per step (course: 128)")
    g.add_argument("--lr", type=_float, help="Adam learning rate (course: 1e-4)")
    g.add_argument("--seed", type=_int, help="seed of every random draw (default 0)")
    g.add_argument("--device", help="auto (default) | cpu | cuda | cuda:N")
    g.add_argument("--precision", help="auto (default: bf16 on CUDA, fp32 on CPU) | fp32 | tf32 | bf16")
    g.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field (repeatable); 'ganmgr recipes' lists them")
    g.add_argument("--config", dest="config_file", metavar="FILE",
                   help="JSON file of config fields to override (applied before the flags)")
    m = p.add_argument_group("bookkeeping")
    m.add_argument("--name", help="run name (letters, digits, . _ -); default: recipe-dataset")
    m.add_argument("--tag", dest="tags", action="append", default=[], help="tag the run (repeatable)")
    m.add_argument("--note", default="", help="free-text note kept with the run")


def add_queue_options(p: argparse.ArgumentParser) -> None:
    q = p.add_argument_group("queue (not with --headless)")
    q.add_argument("--priority", type=priority, default=None,
                   help="higher starts first (default 0); equal priorities start in the order queued")
    q.add_argument("--max-concurrent", type=max_concurrent, default=None, metavar="N",
                   help="runs the supervisor keeps going at once (kept in the store's settings)")
    q.add_argument("--gpus", type=gpu_list, default=None, metavar="0,1,...",
                   help="GPUs handed out round-robin through CUDA_VISIBLE_DEVICES (kept in the settings)")
    q.add_argument("-q", "--quiet", action="store_true", help="print only the new run's id")


def add_backend_options(p: argparse.ArgumentParser) -> None:
    """Where the run's worker runs: here (local) or as a Slurm batch job (see engine/backends/slurm.py)."""
    b = p.add_argument_group("backend (default: the store's setting `backend`, else local)")
    b.add_argument("--backend", choices=BACKENDS, default=None, help="local: the supervisor's own worker; "
                   "slurm: a batch job submitted by the supervisor (sbatch)")
    for flag, meta, what in SLURM_FLAGS:
        b.add_argument(f"--{flag}", metavar=meta, default=None, help=f"slurm: {what}")
    b.add_argument("--max-segments", type=_int, default=None, metavar="N",
                   help="slurm: jobs a run may span when it reaches the wall-time limit (default: setting, 20)")




# (flag, metavar, help); the flag's dest with '-' -> '_' is the SlurmOptions field, except --grace
SLURM_FLAGS = (("partition", "P", "partition"), ("time", "HH:MM:SS", "wall-time limit per job"),
               ("gres", "G", "generic resources, e.g. gpu:1"), ("account", "A", "account to charge"),
               ("qos", "Q", "quality of service"), ("cpus-per-task", "N", "CPUs for the worker"),
               ("mem", "SIZE", "memory, e.g. 16G"),
               ("extra-sbatch", "OPTS", "more sbatch long options, e.g. \"--constraint=a100\""),
               ("grace", "S", "seconds before the limit at which the worker checkpoints (default 120)"))


FLAG_FIELDS = {"dataset": "dataset", "data_root": "data_root", "download": "download", "epochs": "epochs",
               "width": "width", "batch_size": "batch_size", "lr": "lr", "seed": "seed", "device": "device",
               "precision": "precision", "name": "name"}


def read_config_file(path: str) -> dict[str, Any]:
    """`--config FILE`: a JSON object (a run's config.json will do), or a one-line ConfigError."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"--config {path}: {e}") from None
    except RecursionError:  # e.g. 100,000 nested '[': the decoder's stack, not a traceback
        raise ConfigError(f"--config {path}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a JSON object")
    return data


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Recipe defaults <- --config file <- flags <- --set; validated (raises ConfigError)."""
    overrides: dict[str, Any] = {}
    if args.config_file:
        data = read_config_file(args.config_file)
        overrides.update({k: v for k, v in data.items() if k != "recipe"})
    for attr, field in FLAG_FIELDS.items():
        value = getattr(args, attr, None)
        if value is not None:
            overrides[field] = value
    return resolve_config(args.recipe, overrides, args.assignments)


def backend_from_args(args: argparse.Namespace, home: Path) -> tuple[str, dict[str, Any] | None, int | None]:
    """(backend, its options as stored, max_segments) from `run`'s flags over the store's settings; every
    Slurm option is validated here, before anything is created (a BackendError is one line, exit 2)."""
    settings = store_settings.get_settings(home) if db_path(home).exists() else {}
    # --headless trains here: the store's default backend does not apply to it (an explicit one still does)
    backend = args.backend or ("local" if getattr(args, "headless", False) else settings.get("backend")) or "local"
    given = {flag: getattr(args, flag.replace("-", "_")) for flag, _, _ in SLURM_FLAGS}
    given = {k: v for k, v in given.items() if v is not None}
    if args.max_segments is not None:
        given["max-segments"] = args.max_segments
    if backend != "slurm":
        if given:
            raise CliError(f"--{next(iter(given))} applies to the slurm backend; add --backend slurm")
        return backend, None, None
    options, max_segments = options_from_flags(settings.get("slurm_options") or {}, given)
    return backend, options, max_segments




def cmd_run(args: argparse.Namespace, home: Path) -> int:
    cfg = config_from_args(args)
    tags = list(normalize_tags(args.tags))
    notes = check_note(args.note, "--note")
    backend, options, max_segments = backend_from_args(args, home)
    if args.headless and backend != "local":
        raise CliError("--headless trains here; it cannot run on the slurm backend (drop one of them)")
    if args.headless:
        queue_only = [flag for flag, value in (("--priority", args.priority),
                                               ("--max-concurrent", args.max_concurrent),
                                               ("--gpus", args.gpus), ("--quiet", args.quiet or None))
                      if value is not None]
        if queue_only:
            raise CliError(f"{queue_only[0]} applies to queued runs; drop it or drop --headless")
        from tui.cli.headless import run_headless

        return run_headless(home, cfg, tags=tags, notes=notes)
    from engine.control.submit import enqueue

    check_dataset_available(cfg)  # before the settings change: bad input changes nothing
    if args.max_concurrent is not None:
        store_settings.set_setting(home, "max_concurrent", args.max_concurrent)
    if args.gpus is not None:
        store_settings.set_setting(home, "gpus", args.gpus)
    view = enqueue(home, cfg, tags=tags, notes=notes, priority=args.priority or 0, backend=backend,
                   backend_options=options, max_segments=max_segments)
    if args.quiet:
        print(view.id)
        return EXIT_OK
    queue = [r.id for r in store_runs.queued_in_order(home)]
    where = f"position {queue.index(view.id) + 1} of {len(queue)} in the queue" if view.id in queue else "started"
    if backend == "slurm":
        where = "the supervisor submits it to Slurm with sbatch"
    print(f"run {view.id} queued: {view.name} ({where})")
    print(f"  folder {view.run_dir}")
    print(f"  follow it with: ganmgr logs -f {view.id}   (or ganmgr ls)")
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace, home: Path) -> int:
    """A grid of queued runs (engine/control/sweep.py); every point is validated before any run exists."""
    from engine.control.launcher import ensure_supervisor
    from engine.control.submit import create_run
    from engine.control.sweep import expand_sweep

    base: dict[str, Any] = {}
    if args.config_file:
        data = read_config_file(args.config_file)
        base.update({k: v for k, v in data.items() if k not in ("recipe", "name")})
    for attr, key in FLAG_FIELDS.items():
        value = getattr(args, attr, None)
        if value is not None and key != "name":
            base[key] = value
    if not args.assignments:
        raise CliError("a sweep needs at least one --set KEY=V1,V2")
    sweep = expand_sweep(args.recipe, args.assignments, base=base, name=args.name)
    tags = list(normalize_tags([*sweep.tags, *args.tags]))
    notes = check_note(args.note, "--note")
    backend, options, max_segments = backend_from_args(args, home)
    if args.max_parallel is not None:
        if backend != "slurm":
            raise CliError("--max-parallel throttles a Slurm job array; locally use settings --max-concurrent")
        options, _ = options_from_flags(options, {"max_parallel": args.max_parallel})
    for dataset in sorted({p.config["dataset"] for p in sweep.points}):
        check_dataset_available(next(p.config for p in sweep.points if p.config["dataset"] == dataset))
    if args.dry_run:
        print(sweep.summary())
        for point in sweep.points:
            print(f"  {point.name}  {point.label()}")
        return EXIT_OK
    if db_path(home).exists() and store_runs.list_runs(home, sweep=sweep.name):
        raise CliError(f"a sweep named {shown(sweep.name)} exists already; pick another --name")
    views = []
    held = backend == "slurm"  # held until the last row exists: a running supervisor submits ONE array
    try:
        for point in sweep.points:
            note = check_note(point.label() + (f"\n{notes}" if notes else ""), "--note with the sweep's label")
            views.append(create_run(home, point.config, tags=tags, notes=note, priority=args.priority or 0,
                                    status="queued", backend=backend, backend_options=options,
                                    max_segments=max_segments, sweep=sweep.name, held=held))
    except BaseException:
        from engine.control.submit import cancel_run

        for view in views:  # not a part of the sweep: none of it (the rows stay, cancelled, to say so)
            cancel_run(home, view.id)
        raise
    if held:
        store_runs.release_sweep(home, sweep.name)
    ensure_supervisor(home)
    if args.quiet:
        print(" ".join(str(v.id) for v in views))
        return EXIT_OK
    print(sweep.summary())
    where = "one Slurm job array" if backend == "slurm" else "the local queue"
    print(f"{len(views)} runs queued ({where}): ids {views[0].id}-{views[-1].id}, tag {sweep.tag}")
    print(f"  follow them with: ganmgr ls --sweep {sweep.name}")
    return EXIT_OK


def add_parsers(sub: Any) -> None:
    """`run` and `sweep`."""
    run = sub.add_parser("run", help="queue a run (or train it here with --headless)",
                         description="Validate a config, create the run's row and folder, and queue it: a "
                         "supervisor starts it when a slot is free, and it keeps going after you log out. "
                         "With --headless the worker runs in the foreground with a progress bar instead; "
                         "Ctrl-C checkpoints and exits 130.")
    add_run_options(run)
    add_queue_options(run)
    add_backend_options(run)
    run.add_argument("--headless", action="store_true", help="train in the foreground (no queue, no UI)")

    sweep = sub.add_parser("sweep", help="queue a grid of runs: --set key=v1,v2 ... (one Slurm array)",
                           description="Expand every --set KEY=V1,V2 into a grid (the product, last key fastest; "
                           "'|' separates values of list fields), validate every point, then queue one run "
                           "per point named NAME-i and tagged sweep and sweep:NAME. On the slurm backend "
                           "the points are submitted as one job array. --name names the sweep.")
    add_run_options(sweep)
    add_backend_options(sweep)
    sweep.add_argument("--priority", type=priority, default=None, help="queue priority of every run")
    sweep.add_argument("--max-parallel", type=_int, metavar="K", default=None,
                       help="slurm: at most K of the sweep's runs at once (the array's %%K)")
    sweep.add_argument("--dry-run", action="store_true", help="print the grid; create nothing")
    sweep.add_argument("-q", "--quiet", action="store_true", help="print only the new runs' ids")
