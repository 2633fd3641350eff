"""Visualization jobs (the course's Part 2 and more), run by `python -m engine.compute.viz JOB_DIR`.

One module per kind, each with `run(job) -> dict` (the numbers of its `result` record): perturb,
max_class, max_features, progression, curves, quality, report. The kinds, their parameters and the job.json
contract are declared torch-free in `engine.control.viz_spec`; this package is the compute side (torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.compute.viz.job import Job

KIND_MODULES = {
    "perturb": "engine.compute.viz.perturb",
    "max_class": "engine.compute.viz.max_class",
    "max_features": "engine.compute.viz.max_features",
    "progression": "engine.compute.viz.progression",
    "curves": "engine.compute.viz.curves",
    "quality": "engine.compute.viz.quality",
    "report": "engine.compute.viz.report",
}


def run_kind(job: Job) -> dict[str, Any]:
    """Run `job.kind` into `job.out_dir`; returns its result numbers."""
    return importlib.import_module(KIND_MODULES[job.kind]).run(job)
