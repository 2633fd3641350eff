"""What an export reads and where it may write: a run's records (engine/control/records.py) and sample grids
(engine/control/sample_grids.py), the checks on the output path, and the writes themselves (files 0600
through the one atomic write, folders 0700).

Every check runs before anything is written, so a refused export leaves nothing behind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.control.export import KINDS
from engine.control.export.tables import csv_bytes, jsonl_bytes, long_table, of_kind, wide_table
from engine.control.paths import METRICS_FILE, write_bytes_atomic
from engine.control.records import EPOCH, read_all
from engine.control.sample_grids import sample_grids

EXPORTS_DIR = "exports"  # RUN_DIR/exports/: what the sample viewer writes (samples.gif)
VIEWER_GIF = "samples.gif"


class ExportError(Exception):
    """Bad input for an export (one line; the CLI exits 2, nothing written)."""


@dataclass(frozen=True)
class RunSource:
    """One run to export: a label for columns and folders (`ID-NAME`) and its folder."""

    label: str
    run_dir: Path

    def records(self) -> list[dict[str, Any]]:
        return read_all(self.run_dir / METRICS_FILE)

    def grids(self) -> dict[int, Path]:
        return sample_grids(self.run_dir)


def records_of(source: RunSource, kind: str) -> list[dict[str, Any]]:
    """The run's records of `kind`; refused when it has none (the run never logged one)."""
    recs = of_kind(source.records(), kind)
    if not recs:
        raise ExportError(f"run {source.label} has no {kind} records in {METRICS_FILE}")
    return recs


def csv_export(sources: Sequence[RunSource], kind: str) -> bytes:
    """One run: one row per record. Several: one wide table joined on the kind's key (step or epoch)."""
    if len(sources) == 1:
        return csv_bytes(long_table(records_of(sources[0], kind)))
    return csv_bytes(wide_table([(s.label, records_of(s, kind)) for s in sources], kind))


def jsonl_export(source: RunSource, kind: str) -> bytes:
    return jsonl_bytes(records_of(source, kind))


def gif_export(source: RunSource) -> bytes:
    from engine.control.export.gif import gif_bytes

    grids = source.grids()
    if not grids:
        raise ExportError(f"run {source.label} has no sample grids (samples/epoch_NNN.png): "
                          "not a GAN run, or no epoch has finished")
    return gif_bytes(grids)


def tensorboard_export(sources: Sequence[RunSource], kinds: Sequence[str], out_dir: Path) -> list[tuple[Path, int, int]]:
    """One subfolder per run (`OUT/ID-NAME/`) holding one event file: scalars of `kinds`, sample grids as
    images. Everything is read and checked first; returns (folder, scalars, images) per run."""
    from engine.control.export.tensorboard import write_events

    plans = []
    for s in sources:
        records = s.records()
        chosen = [r for r in records if r.get("kind") in kinds]
        grids = s.grids()
        if not chosen and not grids:
            raise ExportError(f"run {s.label} has no {'/'.join(kinds)} records and no sample grids to export")
        if len(kinds) == 1 and not chosen:
            raise ExportError(f"run {s.label} has no {kinds[0]} records in {METRICS_FILE}")
        folder = out_dir / s.label
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise ExportError(f"{folder} already exists and is not empty: TensorBoard would mix two exports; "
                              "choose another -o or remove it")
        steps = {int(r["epoch"]): int(r["step"]) for r in records
                 if r.get("kind") == EPOCH and isinstance(r.get("epoch"), int) and isinstance(r.get("step"), int)}
        plans.append((folder, chosen, grids, steps))
    if not out_dir.exists():
        out_dir.mkdir(mode=0o700)
        os.chmod(out_dir, 0o700)
    return [(folder, *write_events(folder, chosen, grids, steps)) for folder, chosen, grids, steps in plans]


# ---------------------------------------------------------------------------------------- the output


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def check_not_in_runs(out: Path, sources: Sequence[RunSource]) -> None:
    """An export never writes over a run's own files: inside an exported run's folder only `exports/`."""
    for s in sources:
        run_dir = s.run_dir.resolve()
        if _inside(out, run_dir) and not _inside(out, run_dir / EXPORTS_DIR):
            raise ExportError(f"-o {out} is inside run {s.label}'s folder; write elsewhere "
                              f"(or under {run_dir / EXPORTS_DIR})")


def check_output_file(out: Path, sources: Sequence[RunSource]) -> Path:
    """The file an export may write: its folder exists, it is not a folder or a device, not a run's file."""
    target = out.expanduser()
    if target.is_dir():
        raise ExportError(f"-o {out} is a folder; give the file to write")
    if target.exists() and not target.is_file():
        raise ExportError(f"-o {out} exists and is not a regular file")
    parent = target.parent.resolve()
    if not parent.is_dir():
        raise ExportError(f"-o {out}: folder {target.parent} does not exist")
    resolved = parent / target.name
    check_not_in_runs(resolved, sources)
    return resolved


def check_output_dir(out: Path, sources: Sequence[RunSource]) -> Path:
    """The folder a TensorBoard export may write into: an existing folder, or a new one in an existing folder."""
    target = out.expanduser()
    if target.exists() and not target.is_dir():
        raise ExportError(f"-o {out} is a file; TensorBoard writes a folder of event files")
    if not target.parent.resolve().is_dir():
        raise ExportError(f"-o {out}: folder {target.parent} does not exist")
    resolved = target.parent.resolve() / target.name
    check_not_in_runs(resolved, sources)
    return resolved


def write_file(path: Path, data: bytes) -> None:
    """Atomically, 0600 (the one atomic write makes its temp file 0600)."""
    write_bytes_atomic(path, data)


def write_viewer_gif(run_dir: Path, label: str) -> Path:
    """The sample viewer's export: RUN_DIR/exports/samples.gif (folder 0700), replaced atomically."""
    data = gif_export(RunSource(label, Path(run_dir)))
    folder = Path(run_dir) / EXPORTS_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / VIEWER_GIF
    write_file(path, data)
    return path


def kinds_for(kind: str | None, fmt: str) -> tuple[str, ...]:
    """The kinds an export takes: the one asked for; else all numeric kinds for TensorBoard, epoch otherwise."""
    if kind is not None:
        return (kind,)
    return KINDS if fmt == "tensorboard" else (EPOCH,)

