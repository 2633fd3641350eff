"""Parsers of `viz`, `jobs` and `report`, and the `--checkpoint`/`--epoch` pair `fork` shares."""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.control.viz_spec import describe_kinds
from tui.cli.args import epoch_number, priority, run_ref, shown


def kinds_epilog() -> str:
    """Every kind with its parameters and defaults, for `ganmgr viz --help`."""
    lines = ["kinds and their parameters (--set KEY=VALUE):"]
    for k in describe_kinds():
        needs = " (needs --baseline)" if k["needs_baseline"] else ""
        lines.append(f"  {k['kind']}{needs}: {k['summary']}")
        for p in k["params"]:
            lines.append(f"      {p['name']}={json.dumps(p['default'])}  {p['help']}")
    return "\n".join(lines)


def add_parsers(sub: Any) -> None:
    """`viz`, `jobs` and `report`."""
    from engine.control.viz_spec import VIZ_KINDS

    viz = sub.add_parser(
        "viz", help="queue a visualization job on a run (or list its jobs)",
        description="Queue a visualization job on a run's checkpoint (the final one unless --checkpoint): the "
        "supervisor runs it like a training run and its files land in RUN_DIR/viz/<job>-<kind>/. With no "
        "KIND, list the run's jobs.", epilog=kinds_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    viz.add_argument("run", type=run_ref, metavar="ID")
    viz.add_argument("kind", nargs="?", choices=list(VIZ_KINDS), metavar="KIND",
                     help=f"one of: {', '.join(VIZ_KINDS)}")
    add_checkpoint_options(viz, "the run's")
    viz.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                     help="change a parameter (repeatable; the list is below)")
    viz.add_argument("--baseline", type=run_ref, metavar="ID",
                     help="the baseline run whose classifier scores the generator (quality, report)")
    viz.add_argument("--priority", type=priority, default=0, help="higher starts first (default 0)")
    viz.add_argument("--wait", action="store_true",
                     help="block until the job ends, print its files, exit 0 completed / 1 failed / 130 cancelled")
    viz.add_argument("-q", "--quiet", action="store_true", help="print only the job id (and, with --wait, its files)")

    jobs = sub.add_parser("jobs", help="list visualization jobs (of one run), or --cancel one")
    jobs.add_argument("run", nargs="?", type=run_ref, metavar="ID", help="only this run's jobs")
    jobs.add_argument("--cancel", type=_job_id, metavar="JOB", help="cancel this visualization job")
    jobs.add_argument("--json", action="store_true", help="as a JSON list")

    report = sub.add_parser(
        "report", help="one HTML page with everything the course asks to turn in",
        description="Run the `report` job on a GAN run with a baseline run, wait for it, and write the "
        "self-contained HTML page (images embedded) to FILE.")
    report.add_argument("run", type=run_ref, metavar="GAN_RUN")
    report.add_argument("--baseline", type=run_ref, metavar="BASE_RUN", required=True,
                        help="the completed baseline run (its classifier scores the samples)")
    report.add_argument("-o", "--output", required=True, metavar="FILE", help="the HTML file to write")
    add_checkpoint_options(report, "the GAN run's")
    report.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="change a report parameter (see 'ganmgr viz --help', kind report)")


def add_checkpoint_options(parser: argparse.ArgumentParser, whose: str, default: str = "final") -> None:
    """`--checkpoint best|last|final|epoch:N` and its synonym `--epoch N` (one or the other); the choice is
    checked by engine.control.viz_spec.checkpoint_choice, the one rule of viz, report and fork."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--checkpoint", metavar="best|last|final|epoch:N",
                       help=f"{whose} checkpoint: best (by its best_metric), last (its latest epoch, also of a "
                            f"run that stopped early), final, or epoch:N (a kept epoch); default {default}")
    group.add_argument("--epoch", type=epoch_number, metavar="N", help="the same as --checkpoint epoch:N")


def _job_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise argparse.ArgumentTypeError(f"bad job id {shown(text)}: give a visualization job's number")
    return int(text)
