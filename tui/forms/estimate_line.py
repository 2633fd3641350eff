"""The new-run form's line on a machine without CUDA: it trains on the CPU, and about how long that takes.

Pure: the form hands it the checked config and this machine's measurements (engine.control.estimate), so a
one-keystroke ctrl+s never queues days of CPU work (the course's width 196 × 500 epochs) without a word.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from engine.control.estimate import Measurement, estimate
from tui.present import fmt_duration, fmt_rate

NO_CUDA = "no CUDA device on this machine: this run trains on the CPU"
LONG_S = 6 * 3600  # longer than this reads as a warning


def estimate_line(cfg: dict[str, Any] | None, found: list[Measurement], start_epoch: int = 0) -> Text:
    """`⚠ no CUDA device ...; ≈ 3d04h for 500 epochs at ≈ 41 img/s (measured by run #12 ...)`, or why
    there is no figure yet. `start_epoch`: a fork trains only the epochs after it."""
    t = Text()
    t.append(f"⚠ {NO_CUDA}", style="bold yellow")
    if cfg is None:
        t.append("; fix the marked fields for an estimate of its duration", style="yellow")
        return t
    epochs = max(0, int(cfg.get("epochs", 0)) - start_epoch)
    est = estimate(cfg, found, epochs)
    if est is None:
        t.append(f"; no {cfg.get('recipe')} run on {cfg.get('dataset')} was measured here yet, so its duration "
                 f"is unknown: the run screen shows the time left after its first epoch (a first try: "
                 f"epochs 1, a small width)", style="yellow")
        return t
    b = est.basis
    t.append("; ≈ ")
    t.append(fmt_duration(est.seconds), style="bold red" if est.seconds > LONG_S else "bold")
    t.append(f" for {epochs} epoch{'s' if epochs != 1 else ''} at ≈ {_rate(est.images_per_s)} img/s")
    how = f"; scaled to width {cfg.get('width')} by the square of the widths" if est.scaled else ""
    t.append(f" (run #{b.run_id} measured {_rate(b.images_per_s)} img/s at width {b.width}{how})", style="dim")
    return t


def _rate(value: float) -> str:
    """Images per second: `4.0k`, `210`, and two digits below 10 (a width-196 model on a CPU: `0.41`)."""
    return fmt_rate(value) if value >= 10 else f"{value:.2g}"
