"""How long will a run take on this machine? An estimate from what this machine measured, torch-free.

The new-run form shows it before ctrl+s on a machine without CUDA, where the course's width 196 × 500
epochs would take days: one keystroke must not queue that silently. The basis is the newest finished local
run of the same recipe and dataset on this host: its images/s (the row's `images_per_s`) and its train set
size (its `start` record's `train_images`). A different width scales the rate by the square of the width
ratio (a conv layer's cost grows with in × out channels), so the figure is rough and says what it rests on.
Without such a run there is no figure: the run screen shows the time left once its first epoch is done.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.control.records import START, parse_record

START_SEARCH_BYTES = 64 * 1024  # the start record is a run's first line (a resumed run adds more later)


@dataclass(frozen=True)
class Measurement:
    """What one finished run on this machine measured."""

    run_id: int
    recipe: str
    dataset: str
    classes: tuple[int, ...]
    width: int
    images_per_s: float
    train_images: int


@dataclass(frozen=True)
class Estimate:
    seconds: float
    images_per_s: float
    basis: Measurement
    scaled: bool  # the basis ran at another width: the rate was scaled


def train_images(run_dir: Path) -> int | None:
    """The `train_images` of a run's first `start` record (None when there is none yet)."""
    try:
        with open(run_dir / "metrics.jsonl", "rb") as fh:
            head = fh.read(START_SEARCH_BYTES)
    except OSError:
        return None
    for line in head.split(b"\n"):
        rec = parse_record(line) if line.strip() else None
        if rec is not None and rec.get("kind") == START:
            n = rec.get("train_images")
            return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None
    return None


def measurements(home: Path, host: str | None = None, limit: int = 50) -> list[Measurement]:
    """The newest finished local runs of this host that measured a rate, newest first."""
    from store import runs as store_runs
    from store.db import db_path
    from store.lifecycle import TERMINAL_STATUSES

    if not db_path(home).exists():
        return []
    host = socket.gethostname() if host is None else host
    out: list[Measurement] = []
    rows = store_runs.list_runs(home, status=TERMINAL_STATUSES, backend="local", order="-id", limit=limit)
    for r in rows:
        ips = r.images_per_s
        if r.host != host or r.gpu or not r.run_dir or not _positive(ips) or r.epoch < 1:
            continue
        n = train_images(Path(r.run_dir))
        width = r.config.get("width")
        if n is None or not isinstance(width, int):
            continue
        out.append(Measurement(r.id, r.recipe, r.dataset, _classes(r.config), width, float(ips), n))  # type: ignore[arg-type]
    return out


def estimate(cfg: dict[str, Any], found: list[Measurement], epochs: int | None = None) -> Estimate | None:
    """The duration of `epochs` (default: the config's) under `cfg`, from the closest measurement: same
    recipe, dataset and classes; the nearest width, then the newest. None when nothing fits."""
    same = [m for m in found if m.recipe == cfg.get("recipe") and m.dataset == cfg.get("dataset")
            and m.classes == _classes(cfg)]
    width = cfg.get("width")
    if not same or not isinstance(width, int) or width < 1:
        return None
    best = min(same, key=lambda m: abs(math.log(m.width / width)))  # min keeps the newest of equals
    rate = best.images_per_s * (best.width / width) ** 2
    n = cfg.get("epochs") if epochs is None else epochs
    if not isinstance(n, int) or n < 0:
        return None
    return Estimate(n * best.train_images / rate, rate, best, best.width != width)


def _classes(cfg: dict[str, Any]) -> tuple[int, ...]:
    value = cfg.get("classes") or ()
    return tuple(sorted(value)) if isinstance(value, (list, tuple)) else ()


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
