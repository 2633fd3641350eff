"""What a running visualization sees: its parameters, its run(s), its output folder and its metrics stream.

A `Job` is handed to each kind's `run(job) -> dict`. The kind writes its files into `job.out_dir` and
announces each with `job.artifact(path, what)`; the dict it returns becomes the `result` record. The
`report` kind runs other kinds in-process through `job.part(...)`, which gives them a subfolder and tags
their records with `"part"`, so one metrics stream describes the whole job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from engine.control.records import ARTIFACT, PROGRESS, RESULT, MetricsWriter

PROGRESS_EVERY_S = 0.5


class JobFailed(RuntimeError):
    """The job cannot be done on these runs (no checkpoint, wrong recipe, no samples); one line."""


class Cancelled(BaseException):  # noqa: N818 - a BaseException so `except Exception` in parts lets it pass
    """SIGTERM/SIGINT arrived: stop at once (outputs already written stay complete, being atomic)."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


@dataclass
class Job:
    kind: str
    params: dict[str, Any]
    run_dir: Path
    checkpoint: str
    baseline_run_dir: Path | None
    baseline_checkpoint: str | None
    out_dir: Path  # where this job (or report part) writes
    root_dir: Path  # JOB_DIR: artifact paths are relative to it
    metrics: MetricsWriter
    part: str | None = None
    inception_weights: str | None = None  # job.json's: the FID/KID/IS weights, resolved at submit
    inception_uncalibrated: bool = False
    log: Callable[[str], None] = print
    cache: dict[str, Any] = field(default_factory=dict)  # loaded runs and data, shared with report parts
    outputs: list[Path] = field(default_factory=list)  # files announced by this job (or part)
    _last_progress: float = 0.0

    def progress(self, done: int, total: int, what: str | None = None, *, force: bool = False) -> None:
        """A `progress` record (at most every PROGRESS_EVERY_S unless forced), which the supervisor folds into
        the job's row: the TUI and `ganmgr viz --wait` show how far a minute-long ascent has got."""
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_EVERY_S and done < total:
            return
        self._last_progress = now
        rec: dict[str, Any] = {"kind": PROGRESS, "done": int(done), "total": int(total)}
        if what:
            rec["what"] = what
        if self.part:
            rec["part"] = self.part
        self.metrics.write(rec)

    @property
    def device(self) -> torch.device:
        from engine.compute.device import resolve_device

        if "device" not in self.cache:
            self.cache["device"] = resolve_device(self.params.get("device", "auto"))
        return self.cache["device"]

    def path(self, name: str) -> Path:
        return self.out_dir / name

    def artifact(self, path: Path, what: str) -> None:
        rec: dict[str, Any] = {"kind": ARTIFACT, "path": str(path.relative_to(self.root_dir)), "what": what}
        self.outputs.append(path)
        if self.part:
            rec["part"] = self.part
        self.metrics.write(rec)

    def write_result(self, numbers: dict[str, Any]) -> None:
        rec: dict[str, Any] = {"kind": RESULT, "viz": self.kind, "time": time.time()}
        if self.part:
            rec["part"] = self.part
        rec.update(numbers)
        self.metrics.write(rec)

    def sub(self, part: str, kind: str, params: dict[str, Any], *, run_dir: Path | None = None,
            checkpoint: str | None = None, baseline_run_dir: Path | None = None,
            baseline_checkpoint: str | None = None) -> Job:
        """A part of a report: another kind run in-process into `out_dir/part/`, sharing caches and metrics."""
        out = self.out_dir / part
        out.mkdir(mode=0o700, exist_ok=True)
        return replace(self, kind=kind, params=params, run_dir=run_dir or self.run_dir,
                       checkpoint=checkpoint or self.checkpoint, baseline_run_dir=baseline_run_dir,
                       baseline_checkpoint=baseline_checkpoint, out_dir=out, part=part, outputs=[],
                       _last_progress=0.0)
