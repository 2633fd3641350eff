"""Packing runs onto GPUs by memory: which GPU a run that asks for `gpu_mem` starts on, or why it waits.

A pure decision (no NVML, no store): the supervisor (engine/daemon/local_runs.py) passes what NVML says now
(free and total memory per GPU), the request, and the runs it has already placed (their request and what they
use now), and gets a GPU or the reason to show in `ls` and the TUI ("waiting: GPU 0 has 3.1 GB free, run needs
6 GB"). A run just started has not allocated its memory yet, so NVML's free figure does not count it: the part
of each placed run's request it does not use yet is held back from the free memory.

Runs without `gpu_mem` keep the whole-GPU assignment (the least busy GPU of `settings --gpus`); a GPU that holds
one of those is not offered to packed runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.control.errors import ConfigError

GB_MB = 1024.0  # gpu_mem is in GB (GiB, as nvidia-smi's MiB / 1024); NVML figures are in MB (MiB)
# A fork's or a resumed run's request when it gives none: the peak its parent measured, plus this much
LEARNED_MARGIN = 0.15
LEARNED_MIN_MARGIN_MB = 256.0


@dataclass(frozen=True)
class GpuFree:
    """One GPU as NVML reports it now."""

    index: int
    free_mb: float
    total_mb: float


@dataclass(frozen=True)
class Placed:
    """A run of ours already on a GPU: what it asked for (None: the whole GPU) and what it uses now (None:
    not known yet, e.g. NVML lists no process of it)."""

    gpu: int
    request_mb: float | None
    used_mb: float | None = None


@dataclass(frozen=True)
class Decision:
    """Start on `gpu`, or wait for the reason in `why` (gpu None)."""

    gpu: int | None
    why: str = ""


def gb(mb: float) -> str:
    """'3.1 GB' from MB."""
    return f"{mb / GB_MB:.1f} GB" if mb < 100 * GB_MB else f"{mb / GB_MB:.0f} GB"


def available_mb(gpu: GpuFree, placed: Sequence[Placed]) -> float:
    """What a new run may count on: NVML's free memory less the not-yet-used part of our runs' requests there."""
    held = sum(max(0.0, p.request_mb - (p.used_mb or 0.0)) for p in placed
               if p.gpu == gpu.index and p.request_mb is not None)
    return max(0.0, gpu.free_mb - held)


def place(request_mb: float, gpus: Sequence[GpuFree], placed: Sequence[Placed] = ()) -> Decision:
    """The GPU a run needing `request_mb` starts on now: of the GPUs whose available memory covers it, the one
    with the least left over (best fit: large holes stay free for large runs), lower index on a tie; or the
    reason it waits, naming the GPU that came closest."""
    if not gpus:
        return Decision(None, "waiting: no GPU to pack onto (settings --gpus lists none NVML can see)")
    whole = {p.gpu for p in placed if p.request_mb is None}
    fits: list[tuple[float, int]] = []
    best: tuple[float, GpuFree] | None = None
    for g in gpus:
        if g.index in whole:
            continue
        avail = available_mb(g, placed)
        if avail >= request_mb:
            fits.append((avail - request_mb, g.index))
        if best is None or avail > best[0]:
            best = (avail, g)
    if fits:
        return Decision(min(fits)[1])
    need = gb(request_mb)
    if best is None:
        held = ", ".join(str(g.index) for g in gpus)
        return Decision(None, f"waiting: GPU {held} held whole by another run, run needs {need}")
    avail, g = best
    if request_mb > g.total_mb and all(request_mb > x.total_mb for x in gpus):
        return Decision(None, f"waiting: the largest GPU has {gb(max(x.total_mb for x in gpus))}, "
                              f"run needs {need}")
    return Decision(None, f"waiting: GPU {g.index} has {gb(avail)} free, run needs {need}")


def request_mb(gpu_mem_gb: float | None) -> float | None:
    """The config's `gpu_mem` (GB) in MB; None: the whole-GPU default."""
    return None if gpu_mem_gb is None else float(gpu_mem_gb) * GB_MB


def learned_gpu_mem_gb(peak_mb: float | None, total_mb: float | None = None) -> float | None:
    """A request learned from a measured peak (a fork's parent, a resumed run's last attempt): the peak plus a
    margin, in GB rounded up to a tenth, at most the device's `total_mb` where known (a run that filled its GPU
    asks for a whole one of that size, not for more than exists); None without a peak."""
    if peak_mb is None or not math.isfinite(peak_mb) or peak_mb <= 0:
        return None
    mb = peak_mb + max(peak_mb * LEARNED_MARGIN, LEARNED_MIN_MARGIN_MB)
    if total_mb is not None and math.isfinite(total_mb) and total_mb > 0:
        mb = min(mb, total_mb)
        return math.floor(mb / GB_MB * 10) / 10 if mb == total_mb else math.ceil(mb / GB_MB * 10) / 10
    return math.ceil(mb / GB_MB * 10) / 10


def too_large(gpu_mem_gb: float, totals_mb: Sequence[float]) -> str | None:
    """At enqueue, when this node's GPU totals are known: the one-line refusal of a request no GPU can hold."""
    if not totals_mb:
        return None
    largest = max(totals_mb)
    if gpu_mem_gb * GB_MB > largest:
        return (f"gpu_mem={gpu_mem_gb:g} GB is more than any GPU of this node holds (the largest has "
                f"{gb(largest)})")
    return None


def check_gpu_mem(cfg: Mapping[str, Any]) -> None:
    """At enqueue of a local run: ConfigError (one line, exit 2, nothing created) when its `gpu_mem` exceeds every
    GPU of this node. Unknown totals (no NVML here) let it through: the supervisor's node may differ."""
    asked = cfg.get("gpu_mem")
    if asked is None:
        return
    from engine.control import nvml  # the decision above stays pure; only this check reads the node

    try:
        totals = [g.mem_total_mb for g in nvml.read_gpus()]
    except nvml.NvmlUnavailable:
        return
    problem = too_large(float(asked), totals)
    if problem:
        raise ConfigError(problem)
