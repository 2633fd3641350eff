"""`ganmgr run` (queued, or --headless here) and `ganmgr sweep`: config flags, backends, Slurm options.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from engine.control.config import resolve_config
from engine.control.datasets import check_dataset_available
from engine.control.errors import ConfigError
from engine.control.eval_baseline import resolve_eval_baseline
from engine.control.slurm_options import options_from_flags
from store import runs as store_runs
from store import settings as store_settings
from store.checks import check_note, normalize_tags
from store.db import db_path
from tui.cli.args import (
    EXIT_OK,
    CliError,
    shown,
)
from tui.cli.parsers.run import SLURM_FLAGS

FLAG_FIELDS = {"dataset": "dataset", "data_root": "data_root", "download": "download", "epochs": "epochs",
               "width": "width", "batch_size": "batch_size", "lr": "lr", "seed": "seed", "device": "device",
               "precision": "precision", "name": "name", "eval_baseline": "eval_baseline",
               "gpu_mem": "gpu_mem"}


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
    cfg = resolve_eval_baseline(home, config_from_args(args))  # before anything changes: bad input changes nothing
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


