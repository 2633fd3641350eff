"""The bodies of the `ganmgr` subcommands (the parser and the error handling live in tui/cli.py).

Each command reconciles first (see `dispatch`), reads and writes the store through `store.runs` and
`engine.control.submit`, and prints plain text meant for a terminal or a pipe.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from engine.control.config import RECIPES
from engine.control.paths import PathError
from engine.control.runs_root import ensure_run_folder
from store import runs as store_runs
from store.db import db_path
from store.views import RunView
from tui.cli.main import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    config_from_args,
    shown,
    validate_note,
    validate_tags,
)

FOLLOW_POLL_S = 0.25


def dispatch(args: argparse.Namespace, home: Path) -> int:
    from engine.control.reconcile import reconcile_and_ensure_supervisor

    if db_path(home).exists():
        reconcile_and_ensure_supervisor(home)
    handler = COMMANDS[args.command]
    return handler(args, home)


def find(home: Path, ref: str) -> RunView:
    """The run `ref` names; an empty or missing store is 'no run', and is not created by asking."""
    if not db_path(home).exists():
        raise CliError(f"no run {shown(ref)}: there is no store at {home}")
    return store_runs.find_run(home, ref)


# ----------------------------------------------------------------------------------------------- run


def backend_from_args(args: argparse.Namespace, home: Path) -> tuple[str, dict[str, Any] | None, int | None]:
    """(backend, its options as stored, max_segments) from `run`'s flags over the store's settings; every
    Slurm option is validated here, before anything is created (BackendError -> one-line CliError)."""
    from tui.cli.main import SLURM_FLAGS

    settings = store_runs.get_settings(home) if db_path(home).exists() else {}
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
    options, max_segments = slurm_options_from(settings.get("slurm_options") or {}, given)
    return backend, options, max_segments


def slurm_options_from(defaults: Any, given: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """(the Slurm options as stored, max_segments): `given` (flag name -> value: `run`'s flags, or the
    TUI form's fields, the same names) over `defaults` (the store's `slurm_options`), validated whole by
    SlurmOptions.coerce. Shared by `ganmgr run`/`sweep` and the TUI's new-run form, so both accept and
    refuse exactly the same things; a refusal is a one-line CliError naming the flag or option."""
    from dataclasses import asdict

    from engine.daemon.backends.base import BackendError
    from engine.daemon.backends.slurm import SlurmOptions

    max_segments = given.get("max-segments")
    if max_segments is not None:
        if not isinstance(max_segments, int):
            try:
                max_segments = int(str(max_segments).strip())
            except ValueError:
                raise CliError(f"--max-segments {shown(str(max_segments))} must be a whole number") from None
        if not 1 <= max_segments <= 1000:
            raise CliError(f"--max-segments {max_segments} must be from 1 to 1000")
    options = dict(defaults or {})
    for flag, value in given.items():
        if flag == "max-segments":
            continue
        options[{"grace": "grace_s", "extra-sbatch": "extra"}.get(flag, flag.replace("-", "_"))] = value
    try:
        opts = SlurmOptions.coerce(options)
    except BackendError as e:
        raise CliError(str(e)) from None
    stored = {k: v for k, v in asdict(opts).items() if v is not None}
    stored["extra"] = list(opts.extra)
    return stored, max_segments


def cmd_run(args: argparse.Namespace, home: Path) -> int:
    cfg = config_from_args(args)
    tags = validate_tags(args.tags)
    notes = validate_note(args.note)
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
    from engine.control.datasets import check_dataset_available
    from engine.control.submit import enqueue

    check_dataset_available(cfg)  # before the settings change: bad input changes nothing
    if args.max_concurrent is not None:
        store_runs.set_setting(home, "max_concurrent", args.max_concurrent)
    if args.gpus is not None:
        store_runs.set_setting(home, "gpus", args.gpus)
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


# --------------------------------------------------------------------------------------------- sweep


def cmd_sweep(args: argparse.Namespace, home: Path) -> int:
    """A grid of queued runs (engine/control/sweep.py); every point is validated before any run exists."""
    from engine.control.datasets import check_dataset_available
    from engine.control.launcher import ensure_supervisor
    from engine.control.submit import create_run
    from engine.control.sweep import expand_sweep
    from tui.cli.main import FLAG_FIELDS, read_config_file

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
    tags = validate_tags([*sweep.tags, *args.tags])
    notes = validate_note(args.note)
    backend, options, max_segments = backend_from_args(args, home)
    if args.max_parallel is not None:
        if backend != "slurm":
            raise CliError("--max-parallel throttles a Slurm job array; locally use settings --max-concurrent")
        options, _ = slurm_options_from(options, {"max_parallel": args.max_parallel})
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
            note = point.label() + (f"\n{notes}" if notes else "")
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


# ------------------------------------------------------------------------------------------------ ls


def cmd_ls(args: argparse.Namespace, home: Path) -> int:
    if args.limit is not None and args.limit < 1:
        raise CliError(f"--limit {args.limit} must be 1 or more")
    if args.tag is not None:
        validate_tags([args.tag])
    runs: list[RunView] = []
    if db_path(home).exists():
        runs = store_runs.list_runs(home, status=args.status, recipe=args.recipe, tag=args.tag,
                                    text=args.text or None, order="id", sweep=args.sweep)
    if args.limit:
        runs = runs[-args.limit:]
    if args.json:
        print(json.dumps([run_json(r) for r in runs], allow_nan=False))
        return EXIT_OK
    if not runs:
        print("no runs" + (" match" if any((args.status, args.recipe, args.tag, args.text)) else " yet"))
        return EXIT_OK
    now = time.time()
    header = ("ID", "NAME", "RECIPE", "DATASET", "STATUS", "PROG", "EPOCH", "TEST ACC", "IMG/S", "AGE")
    rows = [(str(r.id), _cut(r.name, 28), r.recipe, _cut(_short_dataset(r.dataset), 18), _status_text(r),
             f"{r.progress * 100:.0f}%", f"{r.epoch}/{r.epochs}", _acc_text(r),
             f"{r.images_per_s:.0f}" if r.images_per_s else "-", _age(now - r.created_at)) for r in runs]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    right = {0, 5, 6, 7, 8, 9}
    for row in (header, *rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())
    return EXIT_OK


def run_json(r: RunView) -> dict[str, Any]:
    """Every column of a run as strict JSON (a non-finite number becomes null)."""
    return _finite(r.to_dict())


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def _status_text(r: RunView) -> str:
    if r.status == "running" and r.cancel_requested:
        return "cancelling"
    if r.status == "running" and r.backend == "slurm" and r.cluster_state in ("SUBMITTING", "PENDING"):
        return "pending"  # submitted, waiting for Slurm to start it
    return r.status


def _backend_lines(run: RunView, store_max_segments: int | None = None) -> list[tuple[str, str]]:
    """`show`: where a cluster run runs, its options, its current job and state, and its segments."""
    if run.backend == "local":
        return [("backend", "local")]
    opts = dict(run.backend_options)
    extra = opts.pop("extra", None) or []
    words = "  ".join(f"{k}={v}" for k, v in opts.items()) + ("  extra=" + " ".join(extra) if extra else "")
    out = [("backend", f"{run.backend}    {words}".rstrip())]
    if run.cluster_job_id:
        state = run.cluster_state or "?"
        if run.cluster_reason and run.cluster_reason not in ("None", "(null)"):
            state += f" ({run.cluster_reason})"
        out.append(("cluster job", f"{run.cluster_job_id}    {state}"))
    limit: Any = run.max_segments
    if limit is None:
        limit = f"{store_max_segments or 20} (the store's max_segments)"
    out.append(("segments", f"{run.segments} of at most {limit}    (each listed in the history)"))
    if run.sweep:
        out.append(("sweep", run.sweep))
    return out


def _acc_text(r: RunView) -> str:
    if r.last_test_acc is None:
        return "-"
    best = r.best_test_acc if r.best_test_acc is not None else r.last_test_acc
    return f"{r.last_test_acc:.1f}/{best:.1f}"


def _short_dataset(ds: str) -> str:
    return "npz:" + Path(ds[4:]).name if ds.startswith("npz:") else ds


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _age(seconds: float) -> str:
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


# ---------------------------------------------------------------------------------------------- show


def cmd_show(args: argparse.Namespace, home: Path) -> int:
    run = find(home, args.run)
    events = store_runs.list_events(home, run.id)
    artifacts = store_runs.list_artifacts(home, run.id)
    jobs = store_runs.list_viz_jobs(home, run_id=run.id)
    if args.json:
        print(json.dumps(_finite({"run": run.to_dict(), "events": [e.to_dict() for e in events],
                                  "artifacts": [a.to_dict() for a in artifacts],
                                  "viz_jobs": [j.to_dict() for j in jobs]}), allow_nan=False))
        return EXIT_OK
    out: list[tuple[str, str]] = []
    status = _status_text(run)
    print(f"run {run.id}  {run.name}  [{status}]")
    out.append(("recipe", f"{run.recipe}    dataset {run.dataset}"))
    dur = run.duration_s
    out.append(("created", f"{_when(run.created_at)}    started {_when(run.started_at)}    ended "
                           f"{_when(run.ended_at)}{f'    ran {_age(dur)}' if dur is not None else ''}"))
    out.append(("progress", f"{run.progress * 100:.0f}%    epoch {run.epoch}/{run.epochs}    step {run.step}"))
    if run.last_test_acc is not None or run.last_train_acc is not None:
        out.append(("accuracy", f"test last {_num(run.last_test_acc)} best {_num(run.best_test_acc)}    "
                                f"train {_num(run.last_train_acc)}    images/s {_num(run.images_per_s, 0)}"))
    if run.last_metrics:
        out.append(("latest", "  ".join(f"{k} {_num(v, 4)}" for k, v in run.last_metrics.items())))
    if run.pid is not None:
        where = f"pid {run.pid} on {run.host or '?'}" + (f", GPU {run.gpu}" if run.gpu else "")
        out.append(("process", where + ("" if run.status == "running" else " (ended)")))
    if run.exit_code is not None or run.signal is not None:
        out.append(("exit", f"code {run.exit_code}" if run.signal is None else f"signal {run.signal}"))
    out.append(("queue", f"priority {run.priority}    managed by {run.managed_by}"))
    out.extend(_backend_lines(run, store_runs.get_settings(home).get("max_segments")))
    if run.parent_id is not None:
        out.append(("parent", f"run {run.parent_id} ({run.parent_relation} at epoch {run.parent_epoch})"))
    out.append(("git", run.git_commit or "-"))
    if run.tags:
        out.append(("tags", ", ".join(run.tags)))
    if run.notes:
        out.append(("notes", run.notes.replace("\n", "\n" + " " * 15)))
    folder = Path(run.run_dir) if run.run_dir else None
    if folder is not None:
        out.append(("folder", str(folder)))
        out.append(("log", str(folder / "log.txt")))
        out.append(("metrics", str(folder / "metrics.jsonl")))
        ckpts = sorted(p.name for p in (folder / "checkpoints").glob("*.pt")) if folder.is_dir() else []
        out.append(("checkpoints", ", ".join(ckpts) if ckpts else "none yet"))
        samples = [a.path for a in artifacts if a.kind == "samples"]
        if samples:
            out.append(("samples", f"{len(samples)} grids, latest {folder / samples[-1]}"))
    for k, v in out:
        print(f"  {k:<13}{v}")
    if run.error:
        print("  error")
        for line in run.error.strip().splitlines()[-25:]:
            print(f"    {line}")
    if jobs:
        from tui.cli.viz import job_summary

        print("  viz jobs")
        for j in jobs:
            print(f"    #{j.id:<4} {j.kind:<13}{j.status:<11}{job_summary(j)}")
    print("  config")
    for k in sorted(run.config):
        print(f"    {k:<16}{json.dumps(run.config[k])}")
    print("  history")
    for e in events:
        print(f"    {_when(e.at)}  {e.status:<10}{e.message or ''}")
    return EXIT_OK


def _num(v: Any, digits: int = 2) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "-" if v is None else str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------------------------- logs


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
                reconcile(home)  # a dead worker without a supervisor must not keep us waiting forever
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


# ----------------------------------------------------------------------------- cancel, resume, fork


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
        grace = cancel_grace_s(store_runs.get_settings(home))
        print(f"run {view.id}: cancel requested; the worker finishes its step, checkpoints and stops "
              f"(SIGKILL after {grace:g} s)")
    return EXIT_OK


def _cancel_sweep(home: Path, name: str) -> int:
    """Cancel every queued or running run of a sweep (a Slurm array's tasks each get their scancel)."""
    from engine.control.submit import cancel_run

    every = store_runs.list_runs(home, sweep=name) if db_path(home).exists() else []
    if not every:
        raise CliError(f"no sweep named {shown(name)} (ganmgr ls --tag sweep lists the sweeps' runs)")
    active = [r for r in every if r.status in ("queued", "running")]
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

    tags = validate_tags(args.tags)
    notes = validate_note(args.note)
    parent = find(home, args.run)
    view = fork_run(home, parent.id, assignments=args.assignments, epoch=args.epoch, name=args.name,
                    tags=tags, notes=notes, priority=args.priority)
    if args.quiet:
        print(view.id)
        return EXIT_OK
    from engine.control.config import config_diff

    diff = config_diff(parent.config, view.config)
    changes = ", ".join(f"{k}={json.dumps(new)}" for k, (_old, new) in diff.items() if k != "name")
    print(f"run {view.id} queued: {view.name}, forked from run {parent.id} after epoch {view.parent_epoch}"
          f"{' with ' + changes if changes else ''}")
    print(f"  folder {view.run_dir}")
    return EXIT_OK


# ------------------------------------------------------------------------------- tag, note, rm


def cmd_tag(args: argparse.Namespace, home: Path) -> int:
    tags = validate_tags(args.tags)
    run = find(home, args.run)
    view = (store_runs.remove_tags if args.remove else store_runs.add_tags)(home, run.id, tags)
    print(f"run {view.id} tags: {', '.join(view.tags) if view.tags else '(none)'}")
    return EXIT_OK


def cmd_note(args: argparse.Namespace, home: Path) -> int:
    text = validate_note(args.text, "the note")
    run = find(home, args.run)
    if args.append and run.notes:
        text = run.notes.rstrip("\n") + "\n" + text
    validate_note(text, "the note")
    store_runs.set_notes(home, run.id, text)
    print(f"run {run.id} note {'appended' if args.append else 'set'}")
    return EXIT_OK


def cmd_rm(args: argparse.Namespace, home: Path) -> int:
    runs: list[tuple[RunView, Path | None]] = []
    for ref in dict.fromkeys(args.runs):
        run = find(home, ref)
        if run.status == "running":
            raise CliError(f"run {run.id} is running; cancel it first (ganmgr cancel {run.id})")
        folder = None
        if run.run_dir:
            try:
                folder = ensure_run_folder(home, Path(run.run_dir))
            except PathError:
                raise CliError(f"run {run.id}'s folder {run.run_dir} is outside the store {home} and its runs roots; "
                               f"not deleting it") from None
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
        store_runs.delete_run(home, run.id)  # refuses a run that started meanwhile
        if folder is not None and folder.exists():
            shutil.rmtree(folder)
        print(f"deleted run {run.id} ({run.name})")
    return EXIT_OK


# ---------------------------------------------------------------------------------------- settings


def cmd_settings(args: argparse.Namespace, home: Path) -> int:
    from engine.control.submit import cancel_grace_s

    changes = {k: v for k, v in (("max_concurrent", args.max_concurrent), ("gpus", args.gpus),
                                 ("cancel_grace_s", args.cancel_grace),
                                 ("viz_max_concurrent", args.viz_max_concurrent), ("backend", args.backend),
                                 ("max_segments", args.max_segments), ("slurm_poll_s", args.slurm_poll))
               if v is not None}
    if args.slurm_defaults:
        changes["slurm_options"] = _slurm_defaults(home, args.slurm_defaults)
    if args.runs_root is not None:
        changes["runs_root"] = _runs_root_setting(home, args.runs_root)
        from engine.control.runs_root import known_roots

        used = [str(r) for r in known_roots(home)[1:]]  # the folders made under an older root stay valid
        changes["runs_roots_used"] = sorted({*used, *([changes["runs_root"]] if changes["runs_root"] else [])})
    for key, value in changes.items():
        store_runs.set_setting(home, key, value)
    if db_path(home).exists():
        settings = store_runs.get_settings(home)
    else:
        settings = json.loads(json.dumps(store_runs.DEFAULT_SETTINGS))
    settings["cancel_grace_s"] = cancel_grace_s(settings)
    if args.json:
        print(json.dumps(settings, allow_nan=False, sort_keys=True))
        return EXIT_OK
    print(f"max_concurrent  {settings['max_concurrent']}    runs the supervisor keeps going at once")
    gpus = ",".join(str(g) for g in settings.get("gpus") or []) or "none"
    print(f"gpus            {gpus:<4}    handed out through CUDA_VISIBLE_DEVICES ('none': not assigned)")
    print(f"cancel_grace_s  {settings['cancel_grace_s']:<4g}    seconds from SIGTERM to SIGKILL on cancel")
    viz_slots = settings.get("viz_max_concurrent", 1)
    print(f"viz_max_concurrent {viz_slots:<4} visualization jobs the supervisor runs at once")
    print(f"runs_root       {settings.get('runs_root') or home}    where new run folders go")
    print(f"backend         {settings.get('backend', 'local'):<6}  where new runs run (local, slurm)")
    slurm = settings.get("slurm_options") or {}
    if slurm or settings.get("backend") == "slurm":
        words = "  ".join(f"{k}={v}" for k, v in slurm.items()) or "none"
        print(f"slurm_options   {words}")
        print(f"max_segments    {settings.get('max_segments', 20):<6}  jobs a run may span (wall-time limits)")
        print(f"slurm_poll_s    {settings.get('slurm_poll_s', 5):<6g}  seconds between squeue polls")
    if changes:
        from engine.control.launcher import ensure_supervisor
        from engine.control.reconcile import supervisor_work_pending

        if supervisor_work_pending(home):
            ensure_supervisor(home)  # a raised max_concurrent takes effect on its next tick
    return EXIT_OK


def _runs_root_setting(home: Path, text: str) -> str | None:
    """`--runs-root DIR`: an absolute folder (made 0700) that may stand on a #SBATCH line; 'home' clears it."""
    from engine.daemon.backends.base import BackendError
    from engine.daemon.backends.slurm import safe_path

    if text.strip().lower() == "home":
        return None
    if not text.strip() or "\x00" in text:
        raise CliError("--runs-root needs a folder")
    if not os.path.isabs(os.path.expanduser(text)):
        raise CliError(f"--runs-root {shown(text)} must be an absolute path (the compute nodes resolve it)")
    root = Path(os.path.expanduser(text)).resolve()
    if root.parent == root:
        raise CliError("--runs-root / would make every folder the store's; pick a folder of its own")
    try:
        safe_path(root, "--runs-root")
    except BackendError as e:
        raise CliError(str(e)) from None
    if root == home:
        return None
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"--runs-root {root}: {e.strerror or e}") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise CliError(f"--runs-root {root} is not writable")
    return str(root)


def _slurm_defaults(home: Path, items: list[str]) -> dict[str, Any]:
    """The store's default Slurm options changed by KEY=VALUE items (KEY= drops one), validated whole."""
    from dataclasses import asdict

    from engine.daemon.backends.base import BackendError
    from engine.daemon.backends.slurm import SlurmOptions

    current = dict((store_runs.get_settings(home) if db_path(home).exists() else {}).get("slurm_options") or {})
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise CliError(f"--slurm-default {shown(item)} must be KEY=VALUE")
        if not value:
            current.pop(key, None)
            continue
        current[key] = value
    try:
        opts = SlurmOptions.coerce(current)
    except BackendError as e:
        raise CliError(str(e)) from None
    # only the keys given, as coerce reads them (whole numbers as numbers, extra as a list)
    return {k: list(v) if k == "extra" else v for k, v in asdict(opts).items() if k in current}


# ----------------------------------------------------------------------------------------- recipes


def cmd_recipes(args: argparse.Namespace) -> int:
    for spec in RECIPES.values():
        print(f"{spec.name}: {spec.summary}")
        defaults = spec.default_config()
        for name, f in spec.all_fields().items():
            print(f"  {name:<16} {json.dumps(defaults[name]):<22} {f.help}")
        print()
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "sweep": cmd_sweep,
    "ls": cmd_ls,
    "show": cmd_show,
    "logs": cmd_logs,
    "cancel": cmd_cancel,
    "resume": cmd_resume,
    "fork": cmd_fork,
    "tag": cmd_tag,
    "note": cmd_note,
    "rm": cmd_rm,
    "settings": cmd_settings,
}


def _viz_commands() -> None:
    from tui.cli.viz import COMMANDS as VIZ_COMMANDS

    COMMANDS.update(VIZ_COMMANDS)


_viz_commands()
