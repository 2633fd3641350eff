"""The queue's everyday commands: `logs`, `cancel`, `resume`, `fork`, `tag`, `note`, `rm`, `recipes`
(`ls` and `show` are in `tui.cli.listing`: they read without the database layer, issue 16).

Each reads and writes the store through `store` and `engine.control.submit` and prints plain text meant
for a terminal or a pipe.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from engine.control.config import RECIPES
from engine.control.runs_root import ensure_run_folder
from engine.control.viz_spec import checkpoint_choice
from store import runs as store_runs
from store import settings as store_settings
from store.checks import check_note, normalize_tags
from store.db import db_path
from store.views import RunView
from tui.cli.args import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    shown,
)
from tui.cli.lookup import find

FOLLOW_POLL_S = 0.25


def cmd_logs(args: argparse.Namespace, home: Path) -> int:
    run = find(home, args.run)
    if args.lines is not None and args.lines < 0:
        raise CliError(f"--lines {args.lines} must be 0 or more")
    if not run.run_dir:
        raise CliError(f"run {run.id} has no folder")
    path = ensure_run_folder(home, Path(run.run_dir)) / "log.txt"
    out = sys.stdout.buffer
    pos = 0
    if path.exists():
        pos = _print_log(path, out, args.lines)
    elif not args.follow:
        print(f"(run {run.id} has no log yet: {run.status})", file=sys.stderr)
        return EXIT_OK
    if not args.follow:
        return EXIT_OK
    return _follow_log(home, run.id, path, pos, out)


def _print_log(path: Path, out: Any, lines: int | None) -> int:
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if lines is not None:
            fh.seek(max(0, size - max(4096, lines * 400)))
            data = fh.read(size - fh.tell())
            kept = data.splitlines(keepends=True)[-lines:] if lines else []
            out.write(b"".join(kept))
        else:
            while chunk := fh.read(1 << 20):
                out.write(chunk)
        out.flush()
        return fh.tell()


def _follow_log(home: Path, run_id: int, path: Path, pos: int, out: Any) -> int:
    """Copy what the worker appends until the run reaches a terminal status (then the rest, and stop)."""
    from engine.control.reconcile import reconcile

    last_check = 0.0
    try:
        while True:
            now = time.monotonic()
            ended = False
            if now - last_check >= 1.0:
                last_check = now
                reconcile(home, wait=False)  # a dead worker without a supervisor must not keep us waiting forever
                row = store_runs.get_run(home, run_id)
                ended = row is None or row.is_terminal
            pos = _copy_new(path, pos, out)
            if ended:
                _copy_new(path, pos, out)
                return EXIT_OK
            time.sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _copy_new(path: Path, pos: int, out: Any) -> int:
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < pos:
                pos = 0  # replaced or truncated: start over
            fh.seek(pos)
            while chunk := fh.read(1 << 20):
                out.write(chunk)
                pos += len(chunk)
    except FileNotFoundError:
        return pos
    out.flush()
    return pos


def cmd_cancel(args: argparse.Namespace, home: Path) -> int:
    from engine.control.submit import cancel_grace_s, cancel_run

    if args.sweep is not None:
        if args.run is not None:
            raise CliError("give a run ID or --sweep NAME, not both")
        return _cancel_sweep(home, args.sweep)
    if args.run is None:
        raise CliError("cancel needs a run ID (or --sweep NAME)")
    run = find(home, args.run)
    view = cancel_run(home, run.id)
    if view.status == "cancelled":
        print(f"run {view.id} cancelled (it had not started)")
    elif view.backend == "slurm":
        job = f"Slurm job {view.cluster_job_id}" if view.cluster_job_id else "its Slurm job"
        print(f"run {view.id}: cancel requested; scancel {job}: a running worker finishes its step, "
              f"checkpoints and stops (SIGKILL after the cluster's KillWait)")
    else:
        grace = cancel_grace_s(store_settings.get_settings(home))
        print(f"run {view.id}: cancel requested; the worker finishes its step, checkpoints and stops "
              f"(SIGKILL after {grace:g} s)")
    return EXIT_OK


def _cancel_sweep(home: Path, name: str) -> int:
    """Cancel every queued or running run of a sweep (a Slurm array's tasks each get their scancel)."""
    from engine.control.submit import cancel_run

    every = store_runs.list_runs(home, sweep=name) if db_path(home).exists() else []
    if not every:
        raise CliError(f"no sweep named {shown(name)} (ganmgr ls --tag sweep lists the sweeps' runs)")
    active = [r for r in every if r.is_active]
    views = [cancel_run(home, r.id) for r in active]
    queued = sum(v.status == "cancelled" for v in views)
    print(f"sweep {name}: {queued} queued run(s) cancelled, cancel requested for {len(views) - queued} "
          f"running; {len(every) - len(active)} had ended already")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace, home: Path) -> int:
    from engine.control.submit import resume_run

    run = find(home, args.run)
    view = resume_run(home, run.id)
    print(f"run {view.id} queued again: it continues from checkpoints/last.pt (after epoch {run.epoch} "
          f"of {run.epochs})")
    return EXIT_OK


def cmd_fork(args: argparse.Namespace, home: Path) -> int:
    from engine.control.submit import fork_run

    tags = list(normalize_tags(args.tags))
    notes = check_note(args.note, "--note")
    parent = find(home, args.run)
    view = fork_run(home, parent.id, assignments=args.assignments, epoch=args.epoch, checkpoint=args.checkpoint,
                    name=args.name, tags=tags, notes=notes, priority=args.priority, from_healthy=args.from_healthy)
    if args.quiet:
        print(view.id)
        return EXIT_OK
    from engine.control.config import config_diff

    diff = config_diff(parent.config, view.config)
    changes = ", ".join(f"{k}={json.dumps(new)}" for k, (_old, new) in diff.items() if k != "name")
    source = ("the healthy checkpoint" if args.from_healthy
              else checkpoint_choice(args.checkpoint, args.epoch, default="last"))
    print(f"run {view.id} queued: {view.name}, forked from run {parent.id} after epoch {view.parent_epoch} "
          f"({source}){' with ' + changes if changes else ''}")
    print(f"  folder {view.run_dir}")
    return EXIT_OK


def cmd_tag(args: argparse.Namespace, home: Path) -> int:
    tags = list(normalize_tags(args.tags))
    run = find(home, args.run)
    view = (store_runs.remove_tags if args.remove else store_runs.add_tags)(home, run.id, tags)
    print(f"run {view.id} tags: {', '.join(view.tags) if view.tags else '(none)'}")
    return EXIT_OK


def cmd_note(args: argparse.Namespace, home: Path) -> int:
    text = check_note(args.text)
    run = find(home, args.run)
    if args.append and run.notes:
        text = run.notes.rstrip("\n") + "\n" + text
    check_note(text)
    store_runs.set_notes(home, run.id, text)
    print(f"run {run.id} note {'appended' if args.append else 'set'}")
    return EXIT_OK


def cmd_rm(args: argparse.Namespace, home: Path) -> int:
    from engine.control.remove import removable_folder, remove_run

    runs: list[tuple[RunView, Path | None]] = []
    for ref in dict.fromkeys(args.runs):
        run = find(home, ref)
        folder = removable_folder(home, run)  # refuses a running run, a folder outside the store
        if run.id not in [r.id for r, _ in runs]:
            runs.append((run, folder))
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("rm asks before deleting; run it in a terminal or add --yes")
        for run, folder in runs:
            print(f"  run {run.id}  {run.name}  [{run.status}]  {folder or '(no folder)'}", file=sys.stderr)
        print(f"delete {'this run' if len(runs) == 1 else f'these {len(runs)} runs'} and "
              f"{'its folder' if len(runs) == 1 else 'their folders'}? [y/N] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return EXIT_OK
    for run, folder in runs:
        remove_run(home, run, folder)  # refuses a run that started meanwhile
        print(f"deleted run {run.id} ({run.name})")
    return EXIT_OK


def cmd_recipes(args: argparse.Namespace) -> int:
    for spec in RECIPES.values():
        print(f"{spec.name}: {spec.summary}")
        defaults = spec.default_config()
        for name, f in spec.all_fields().items():
            print(f"  {name:<16} {json.dumps(defaults[name]):<22} {f.help}")
        print()
    return EXIT_OK


