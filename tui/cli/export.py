"""`ganmgr export RUN... --format csv|jsonl|tensorboard|gif [-o PATH] [--kind train|epoch|eval]`.

Only reads the store (the runs' folders); the writing is engine/control/export's. Every refusal (no such run,
a kind the run never logged, no sample grids, an output path that does not make sense) is one line and exit 2
before anything is written; files are written atomically, 0600.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.control.export.runs import (
    ExportError,
    RunSource,
    check_output_dir,
    check_output_file,
    csv_export,
    gif_export,
    jsonl_export,
    kinds_for,
    tensorboard_export,
    write_file,
)
from tui.cli.args import EXIT_OK, CliError, shown
from tui.cli.lookup import find

ONE_RUN_FORMATS = ("jsonl", "gif")


def sources(home: Path, refs: list[str]) -> list[RunSource]:
    out: list[RunSource] = []
    seen: set[int] = set()
    for ref in refs:
        run = find(home, ref)
        if run.id in seen:
            raise CliError(f"run {shown(ref)} is named twice")
        seen.add(run.id)
        folder = Path(run.run_dir) if run.run_dir else None
        if folder is None or not folder.is_dir():
            raise CliError(f"run {run.id} {run.name} has no folder{f' ({folder})' if folder else ''}")
        out.append(RunSource(f"{run.id}-{run.name}", folder))
    return out


def cmd_export(args: argparse.Namespace, home: Path) -> int:
    fmt = args.format
    if fmt == "gif" and args.kind is not None:
        raise CliError("--kind does not apply to --format gif (it animates the sample grids)")
    if fmt in ONE_RUN_FORMATS and len(args.runs) > 1:
        raise CliError(f"--format {fmt} takes one run ({len(args.runs)} given); export each to its own file")
    if fmt in ("gif", "tensorboard") and not args.output:
        raise CliError(f"--format {fmt} needs -o ({'a .gif file' if fmt == 'gif' else 'a folder'})")
    runs = sources(home, args.runs)
    try:
        if fmt == "tensorboard":
            out_dir = check_output_dir(Path(args.output), runs)
            for folder, scalars, images in tensorboard_export(runs, kinds_for(args.kind, fmt), out_dir):
                print(f"{folder}: {scalars} scalars, {images} images")
            print(f"tensorboard --logdir {out_dir}", file=sys.stderr)
            return EXIT_OK
        out = check_output_file(Path(args.output), runs) if args.output else None
        kind = kinds_for(args.kind, fmt)[0]
        if fmt == "csv":
            data = csv_export(runs, kind)
        elif fmt == "jsonl":
            data = jsonl_export(runs[0], kind)
        else:
            data = gif_export(runs[0])
    except ExportError as e:
        raise CliError(str(e)) from None
    if out is None:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            sys.stdout.flush()
            buffer.write(data)
            buffer.flush()
        else:
            sys.stdout.write(data.decode())
        return EXIT_OK
    write_file(out, data)
    print(f"{fmt} written: {out} ({len(data):,} bytes)", file=sys.stderr)
    return EXIT_OK
