"""`ganmgr viz`, `ganmgr jobs` and `ganmgr report`: visualization jobs from the command line.

A job is queued through `engine.control.viz_jobs.submit_viz` (the same checks as the TUI's launcher) and
run by the supervisor like a training run; `--wait` polls its row, shows its progress on one line, then
prints its output paths and exits with its status. `report` is a `report` job waited for, whose HTML is
copied to the `-o` file atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from store import viz_jobs as store_viz
from store.db import db_path
from store.views import VizJobView
from tui.cli.args import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    shown,
)
from tui.cli.lookup import find
from tui.present import job_summary

WAIT_POLL_S = 0.5
RECONCILE_EVERY_S = 5.0


def cmd_viz(args: argparse.Namespace, home: Path) -> int:
    from engine.control.viz_jobs import submit_viz
    run = find(home, args.run)
    if args.kind is None:
        return _list_jobs(home, run.id, as_json=False)
    baseline = find(home, args.baseline).id if args.baseline else None
    job = submit_viz(home, run.id, args.kind, epoch=args.epoch, checkpoint=args.checkpoint,
                     assignments=args.assignments, baseline_id=baseline, priority=args.priority)
    if args.quiet:
        print(job.id)
    else:
        where = job.checkpoint or "its files"
        print(f"viz job {job.id} queued: {job.kind} on run {run.id} {run.name} ({where}) -> {job.job_dir}")
    if not args.wait:
        return EXIT_OK
    return _finish(home, wait_for(home, job.id, quiet=args.quiet), quiet=args.quiet)


def cmd_jobs(args: argparse.Namespace, home: Path) -> int:
    if args.cancel is not None:
        from engine.control.viz_jobs import cancel_viz

        view = cancel_viz(home, args.cancel)
        print(f"viz job {view.id} cancelled (it had not started)" if view.status == "cancelled"
              else f"viz job {view.id}: cancel requested; it stops at once (SIGKILL after the grace period)")
        return EXIT_OK
    run_id = find(home, args.run).id if args.run else None
    return _list_jobs(home, run_id, as_json=args.json)


def _list_jobs(home: Path, run_id: int | None, *, as_json: bool) -> int:
    jobs = store_viz.list_viz_jobs(home, run_id=run_id) if db_path(home).exists() else []
    if as_json:
        print(json.dumps([j.to_dict() for j in jobs], allow_nan=False))
        return EXIT_OK
    if not jobs:
        print("no visualization jobs" + (f" for run {run_id}" if run_id is not None else ""))
        return EXIT_OK
    print(f"{'ID':>4}  {'RUN':>4}  {'KIND':<13}{'STATUS':<11}{'TIME':>7}  WHAT")
    for j in jobs:
        print(f"{j.id:>4}  {j.run_id:>4}  {j.kind:<13}{j.status:<11}{_secs(j.duration_s):>7}  {job_summary(j)}")
    return EXIT_OK


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}s"


def wait_for(home: Path, job_id: int, *, quiet: bool = False) -> VizJobView:
    """Poll the job's row until it ends; one self-overwriting progress line on a terminal."""
    from engine.control.reconcile import reconcile_and_ensure_supervisor

    tty = sys.stdout.isatty() and not quiet
    last_line = ""
    last_reconcile = time.monotonic()
    try:
        while True:
            job = store_viz.get_viz_job(home, job_id)
            if job is None:
                raise CliError(f"viz job {job_id} was deleted (its run was removed)")
            if job.is_terminal:
                if tty and last_line:
                    print("\r" + " " * len(last_line) + "\r", end="", flush=True)
                return job
            if tty:
                line = f"  {job.status} {_secs(_elapsed(job))}  {job_summary(job)}"[:100]
                if line != last_line:
                    print("\r" + line.ljust(len(last_line)), end="", flush=True)
                    last_line = line
            if time.monotonic() - last_reconcile >= RECONCILE_EVERY_S:
                reconcile_and_ensure_supervisor(home)  # a supervisor that died is replaced
                last_reconcile = time.monotonic()
            time.sleep(WAIT_POLL_S)
    except KeyboardInterrupt:
        if tty:
            print()
        print(f"stopped waiting; viz job {job_id} keeps going (ganmgr jobs --cancel {job_id} stops it)",
              file=sys.stderr)
        raise


def _elapsed(job: VizJobView) -> float | None:
    return None if job.started_at is None else time.time() - job.started_at


def _finish(home: Path, job: VizJobView, *, quiet: bool) -> int:
    """Print how the job ended and its files; the exit code is its status."""
    folder = Path(job.job_dir) if job.job_dir else None
    if job.status == "completed":
        if not quiet:
            print(f"viz job {job.id} {job.message or 'completed'}")
            if job.kind == "quality" and folder is not None:  # the scores themselves, FID/KID/IS with n
                from engine.control.quality_text import quality_lines
                from engine.control.viz_jobs import fold_job_dir

                for line in quality_lines(fold_job_dir(folder).result or {}):
                    print(line)
        for rel in job.outputs:
            print(folder / rel if folder else rel)
        return EXIT_OK
    why = (job.error or job.message or job.status).strip().splitlines()
    print(f"viz job {job.id} {job.status}: {why[0] if why else ''}", file=sys.stderr)
    if folder is not None:
        print(f"  log: {folder / 'log.txt'}", file=sys.stderr)
    return EXIT_INTERRUPTED if job.status == "cancelled" else EXIT_FAILED


def cmd_report(args: argparse.Namespace, home: Path) -> int:
    from engine.control.paths import write_bytes_atomic
    from engine.control.viz_jobs import submit_viz
    out = Path(args.output).expanduser()
    if out.is_dir():
        raise CliError(f"-o {shown(str(out))} is a folder; give the HTML file to write")
    if not out.parent.is_dir():
        raise CliError(f"-o {shown(str(out))}: folder {out.parent} does not exist")
    gan = find(home, args.run)
    base = find(home, args.baseline)
    job = submit_viz(home, gan.id, "report", epoch=args.epoch, checkpoint=args.checkpoint,
                     assignments=args.assignments, baseline_id=base.id)
    print(f"viz job {job.id}: report on run {gan.id} {gan.name} with baseline {base.id} {base.name} "
          f"(a width-196 model takes minutes on a CPU)", file=sys.stderr)
    job = wait_for(home, job.id)
    if job.status != "completed" or not job.job_dir:
        return _finish(home, job, quiet=True)
    html = Path(job.job_dir) / "report.html"
    write_bytes_atomic(out, html.read_bytes())
    print(f"report written: {out.resolve()}")
    if job.error:  # completed with parts that failed: the page says which
        print(f"note: {job.error.splitlines()[0]}", file=sys.stderr)
    return EXIT_OK


COMMANDS = {"viz": cmd_viz, "jobs": cmd_jobs, "report": cmd_report}
