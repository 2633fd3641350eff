"""Parser of `export`: a run's records as CSV or JSON lines, TensorBoard event files, the sample grids as a GIF."""

from __future__ import annotations

from typing import Any

from engine.control.export import DEFAULT_KIND, FORMATS, KINDS
from tui.cli.args import run_ref


def add_parsers(sub: Any) -> None:
    export = sub.add_parser(
        "export", help="a run's metrics as CSV, JSON lines or TensorBoard event files; its samples as a GIF",
        description="Export runs for a paper or another tool. csv: one row per record of --kind (one run), or "
        "one wide table joined on step (train) or epoch (epoch, eval) with a column per run and metric (several "
        "runs); jsonl: the records of --kind as written; tensorboard: a folder with one event-file folder per "
        "run (scalars, and the sample grids as images); gif: the sample grids over the epochs, one frame each. "
        "Bad input is refused before anything is written.")
    export.add_argument("runs", nargs="+", type=run_ref, metavar="RUN", help="run ids or names")
    export.add_argument("--format", required=True, choices=list(FORMATS), metavar="FORMAT",
                        help=f"one of: {', '.join(FORMATS)}")
    export.add_argument("-o", "--output", metavar="PATH",
                        help="the file to write (csv, jsonl: default standard output; gif: required), or the "
                             "folder for tensorboard (required; created if its parent exists)")
    export.add_argument("--kind", choices=list(KINDS), metavar="KIND",
                        help=f"the records: {', '.join(KINDS)} (default {DEFAULT_KIND}; tensorboard: all of them)")
