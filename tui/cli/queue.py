"""The queue's everyday commands: `ls`, `show`, `logs`, `cancel`, `resume`, `fork`, `tag`, `note`, `rm`, `recipes`.

Each reads and writes the store through `store` and `engine.control.submit` and prints plain text meant
for a terminal or a pipe.
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
from engine.control.records import json_safe
from engine.control.runs_root import ensure_run_folder
from engine.control.viz_spec import best_checkpoint, checkpoint_choice
from store import runs as store_runs
from store import settings as store_settings
from store import viz_jobs as store_viz
from store.checks import check_note, normalize_tags
from store.db import db_path
from store.lifecycle import STATUSES
from store.views import RunView
from tui.cli.args import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    _int,
    priority,
    run_ref,
    shown,
)
from tui.cli.lookup import find
from tui.cli.viz import add_checkpoint_options
from tui.present import backend_lines, job_summary, run_status_word

FOLLOW_POLL_S = 0.25


def cmd_ls(args: argparse.Namespace, home: Path) -> int:
    if args.limit is not None and args.limit < 1:
        raise CliError(f"--limit {args.limit} must be 1 or more")
    if args.tag is not None:
        normalize_tags([args.tag])
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
    header = ("ID", "NAME", "RECIPE", "DATASET", "STATUS", "PROG", "EPOCH", "TEST ACC", "IMG/S", "AGE", "HEALTH")
    rows = [(str(r.id), _cut(r.name, 28), r.recipe, _cut(_short_dataset(r.dataset), 18), run_status_word(r),
             f"{r.progress * 100:.0f}%", f"{r.epoch}/{r.epochs}", _acc_text(r),
             f"{r.images_per_s:.0f}" if r.images_per_s else "-", _age(now - r.created_at),
             r.health_flag or "") for r in runs]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    right = {0, 5, 6, 7, 8, 9}
    for row in (header, *rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())
    return EXIT_OK


def run_json(r: RunView) -> dict[str, Any]:
    """Every column of a run as strict JSON (a non-finite number becomes null), with its health flag."""
    return json_safe({**r.to_dict(), "health_flag": r.health_flag})



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


def cmd_show(args: argparse.Namespace, home: Path) -> int:
    run = find(home, args.run)
    events = store_runs.list_events(home, run.id)
    artifacts = store_runs.list_artifacts(home, run.id)
    jobs = store_viz.list_viz_jobs(home, run_id=run.id)
    folder = Path(run.run_dir) if run.run_dir else None
    best = best_checkpoint(folder) if folder is not None else None
    if args.json:
        print(json.dumps(json_safe({"run": run.to_dict(), "events": [e.to_dict() for e in events],
                                  "artifacts": [a.to_dict() for a in artifacts],
                                  "viz_jobs": [j.to_dict() for j in jobs], "best": best}), allow_nan=False))
        return EXIT_OK
    out: list[tuple[str, str]] = []
    status = run_status_word(run)
    print(f"run {run.id}  {run.name}  [{status}]")
    out.append(("recipe", f"{run.recipe}    dataset {run.dataset}"))
    dur = run.duration_s
    out.append(("created", f"{_when(run.created_at)}    started {_when(run.started_at)}    ended "
                           f"{_when(run.ended_at)}{f'    ran {_age(dur)}' if dur is not None else ''}"))
    out.append(("progress", f"{run.progress * 100:.0f}%    epoch {run.epoch}/{run.epochs}    step {run.step}"))
    if run.health_flag == "stalled":
        out.append(("health", f"stalled: nothing written since {_when(run.stalled_since)}"))
    elif run.health:
        out.append(("health", f"{run.health_flag or run.status}: {run.health}"))
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
    out.extend(backend_lines(run, store_settings.get_settings(home).get("max_segments")))
    if run.parent_id is not None:
        out.append(("parent", f"run {run.parent_id} ({run.parent_relation} at epoch {run.parent_epoch})"))
    out.append(("git", run.git_commit or "-"))
    if run.tags:
        out.append(("tags", ", ".join(run.tags)))
    if run.notes:
        out.append(("notes", run.notes.replace("\n", "\n" + " " * 15)))
    if folder is not None:
        out.append(("folder", str(folder)))
        out.append(("log", str(folder / "log.txt")))
        out.append(("metrics", str(folder / "metrics.jsonl")))
        ckpts = sorted(p.name for p in (folder / "checkpoints").glob("*.pt")) if folder.is_dir() else []
        out.append(("checkpoints", ", ".join(ckpts) if ckpts else "none yet"))
        if best is not None:
            out.append(("best", f"{best.get('path', 'checkpoints/best.pt')}: epoch {best['epoch']}, "
                                f"{best.get('metric')} {_num(best.get('value'))} ({best.get('mode', 'max')} wins)"))
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


def cmd_recipes(args: argparse.Namespace) -> int:
    for spec in RECIPES.values():
        print(f"{spec.name}: {spec.summary}")
        defaults = spec.default_config()
        for name, f in spec.all_fields().items():
            print(f"  {name:<16} {json.dumps(defaults[name]):<22} {f.help}")
        print()
    return EXIT_OK


def add_parsers(sub: Any) -> None:
    """`ls`, `show`, `logs`, `cancel`, `resume`, `fork`, `tag`, `note`, `rm`, `recipes`."""
    ls = sub.add_parser("ls", help="list runs", description="Runs in id order, filtered.")
    ls.add_argument("text", nargs="?", help="only runs whose name, recipe, dataset, notes or tags contain TEXT")
    ls.add_argument("--status", action="append", choices=STATUSES, help="only runs with this status (repeatable)")
    ls.add_argument("--recipe", choices=list(RECIPES), help="only runs of this recipe")
    ls.add_argument("--tag", help="only runs with this tag")
    ls.add_argument("--sweep", help="only the runs of this sweep")
    ls.add_argument("--limit", type=_int, help="the newest N runs only")
    ls.add_argument("--json", action="store_true", help="a JSON list of objects (every column)")

    show = sub.add_parser("show", help="a run's config, history, metrics and paths")
    show.add_argument("run", type=run_ref, metavar="ID")
    show.add_argument("--json", action="store_true", help="as one JSON object")

    logs = sub.add_parser("logs", help="print a run's log.txt", description="Print a run's log (worker "
                          "stdout+stderr). -f keeps following it until the run ends.")
    logs.add_argument("run", type=run_ref, metavar="ID")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until the run ends")
    logs.add_argument("-n", "--lines", type=_int, help="start with the last N lines")

    cancel = sub.add_parser("cancel", help="cancel a queued or running run",
                            description="A queued run is cancelled at once. A running worker gets SIGTERM "
                            "(it finishes its step, checkpoints and stops); SIGKILL follows after the grace "
                            "period (settings --cancel-grace, default 30 s).")
    cancel.add_argument("run", type=run_ref, metavar="ID", nargs="?")
    cancel.add_argument("--sweep", metavar="NAME", help="every queued or running run of the sweep NAME")

    resume = sub.add_parser("resume", help="queue a finished run again; it continues from its last checkpoint")
    resume.add_argument("run", type=run_ref, metavar="ID")

    fork = sub.add_parser("fork", help="a new run from a run's checkpoint with a changed config",
                          description="Queue a new run that starts from another run's weights (last.pt, or "
                          "the one --checkpoint names: best.pt, final.pt, epoch_NNN.pt) under the parent's config "
                          "changed by --set.")
    fork.add_argument("run", type=run_ref, metavar="ID")
    fork.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                      help="change a config field (repeatable)")
    add_checkpoint_options(fork, "start from the parent's", default="last")
    fork.add_argument("--from-healthy", action="store_true",
                      help="start from the checkpoint the parent kept from before a health rule fired or it "
                           "diverged (checkpoints/healthy.pt or last.pt, as its records say)")
    fork.add_argument("--name", help="the new run's name (default: PARENT-fork)")
    fork.add_argument("--tag", dest="tags", action="append", default=[], help="tag the new run (repeatable)")
    fork.add_argument("--note", default="", help="note kept with the new run")
    fork.add_argument("--priority", type=priority, default=0, help="queue priority (default 0)")
    fork.add_argument("-q", "--quiet", action="store_true", help="print only the new run's id")

    tag = sub.add_parser("tag", help="add (or --remove) tags")
    tag.add_argument("run", type=run_ref, metavar="ID")
    tag.add_argument("tags", nargs="+", metavar="TAG")
    tag.add_argument("--remove", action="store_true", help="remove these tags instead")

    note = sub.add_parser("note", help="set (or --append to) a run's note")
    note.add_argument("run", type=run_ref, metavar="ID")
    note.add_argument("text", metavar="TEXT")
    note.add_argument("--append", action="store_true", help="add TEXT as a new line instead of replacing")

    rm = sub.add_parser("rm", help="delete finished or queued runs: their rows and folders",
                        description="Asks first (in a terminal); never deletes a running run.")
    rm.add_argument("runs", type=run_ref, nargs="+", metavar="ID")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask")

    sub.add_parser("recipes", help="list recipes and every config field with its default")
