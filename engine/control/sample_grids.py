"""A run's sample grids: `samples/epoch_NNN.png`, one per epoch (docs/reference/run-directory.md), and what
their columns mean. Torch-free: the TUI's viewer, the exports and the report list and label them here.

The class-conditional recipe (`acgan-wgangp`) draws a 10-column grid whose fixed labels are `i % classes`
(engine/compute/recipes/acgan.py `save_noise`), so with 10 (or 5, 2, 1) classes each column is one class;
the other GANs' grids are unconditional and their columns mean nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from engine.control.class_names import dataset_class_names
from engine.control.config import RECIPES

SAMPLES_DIR = "samples"
SAMPLE_NAME_RE = re.compile(r"^epoch_(\d+)\.png$")
CONDITIONAL_COLUMNS = 10  # the class-conditional grid's columns (label i % classes at index i)


def sample_rel(epoch: int) -> str:
    """The grid of `epoch` relative to the run folder."""
    return f"{SAMPLES_DIR}/epoch_{epoch:03d}.png"


def sample_epoch(rel_path: str) -> int | None:
    """The epoch of `samples/epoch_NNN.png` (relative to the run folder), else None."""
    folder, _, name = rel_path.rpartition("/")
    m = SAMPLE_NAME_RE.match(name) if folder == SAMPLES_DIR else None
    return int(m.group(1)) if m else None


def sample_grids(run_dir: Path) -> dict[int, Path]:
    """The run's grids by epoch, oldest first; {} when it has none (not started, not a GAN)."""
    folder = Path(run_dir) / SAMPLES_DIR
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return {}
    found = {int(m.group(1)): folder / name for name in names if (m := SAMPLE_NAME_RE.match(name))}
    return dict(sorted(found.items()))


def column_labels(config: dict[str, Any]) -> tuple[str, ...] | None:
    """The class of each grid column for a class-conditional recipe whose columns are one class each;
    None for the unconditional grids (and when the class count does not divide the 10 columns)."""
    spec = RECIPES.get(str(config.get("recipe", "")))
    if spec is None or not (spec.has_generator and spec.has_classifier):
        return None
    names = dataset_class_names(str(config.get("dataset", "")))
    if not names or CONDITIONAL_COLUMNS % len(names):
        return None
    return tuple(names[j % len(names)] for j in range(CONDITIONAL_COLUMNS))
