"""What a run used, folded from its `resources` records: peak GPU memory, peak RSS, mean GPU utilisation.

`engine/control/follow.py` folds the records with this (supervisor, reconcile, headless: the same numbers) and
keeps the summary in the row's `last_metrics` under `resources`, so a finished run keeps its peak and `ls`,
`show`, the TUI, a fork's learned `gpu_mem` (engine/control/gpu_packing.py) read it back from there.

Peak GPU memory is what NVML lists for the run's own processes (`proc_gpu_mem_mb`); where NVML lists none of
them (a container's pid namespace), the used memory of the run's devices stands in (an upper bound: other
users' memory counts too), and `gpu_mem_from` says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

RESOURCES_KEY = "resources"  # the key of the summary in a row's last_metrics


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


@dataclass
class ResourceUse:
    samples: int = 0
    peak_rss_mb: float | None = None
    peak_proc_gpu_mb: float | None = None
    peak_device_gpu_mb: float | None = None
    gpu_mem_total_mb: float | None = None
    util_sum: float = 0.0
    util_samples: int = 0

    def add(self, rec: dict[str, Any]) -> None:
        """Fold one `resources` record."""
        self.samples += 1
        rss = _num(rec.get("rss_mb"))
        if rss is not None:
            self.peak_rss_mb = max(self.peak_rss_mb or 0.0, rss)
        proc = _num(rec.get("proc_gpu_mem_mb"))
        if proc is not None:
            self.peak_proc_gpu_mb = max(self.peak_proc_gpu_mb or 0.0, proc)
        gpus = [g for g in rec.get("gpu") or [] if isinstance(g, dict)] if isinstance(rec.get("gpu"), list) else []
        used = [u for u in (_num(g.get("mem_used_mb")) for g in gpus) if u is not None]
        if used:
            self.peak_device_gpu_mb = max(self.peak_device_gpu_mb or 0.0, sum(used))
        totals = [t for t in (_num(g.get("mem_total_mb")) for g in gpus) if t is not None]
        if totals:
            self.gpu_mem_total_mb = sum(totals)
        utils = [u for u in (_num(g.get("util_percent")) for g in gpus) if u is not None]
        if utils:
            self.util_sum += sum(utils) / len(utils)
            self.util_samples += 1

    @property
    def peak_gpu_mem_mb(self) -> float | None:
        return self.peak_proc_gpu_mb if self.peak_proc_gpu_mb is not None else self.peak_device_gpu_mb

    @property
    def mean_gpu_util(self) -> float | None:
        return self.util_sum / self.util_samples if self.util_samples else None

    def to_dict(self) -> dict[str, Any]:
        """The summary kept in the row (only the figures that were measured)."""
        out: dict[str, Any] = {"samples": self.samples}
        if self.peak_rss_mb is not None:
            out["peak_rss_mb"] = round(self.peak_rss_mb, 1)
        if self.peak_gpu_mem_mb is not None:
            out["peak_gpu_mem_mb"] = round(self.peak_gpu_mem_mb, 1)
            out["gpu_mem_from"] = "process" if self.peak_proc_gpu_mb is not None else "device"
        if self.gpu_mem_total_mb is not None:
            out["gpu_mem_total_mb"] = round(self.gpu_mem_total_mb, 1)
        if self.util_samples:
            out["mean_gpu_util"] = round(self.util_sum / self.util_samples, 1)
            out["util_samples"] = self.util_samples
        return out

    @classmethod
    def from_dict(cls, d: Any) -> ResourceUse:
        """Back from a row (a resumed run keeps counting from its earlier attempts)."""
        if not isinstance(d, dict):
            return cls()
        u = cls(samples=int(_num(d.get("samples")) or 0), peak_rss_mb=_num(d.get("peak_rss_mb")),
                gpu_mem_total_mb=_num(d.get("gpu_mem_total_mb")))
        peak = _num(d.get("peak_gpu_mem_mb"))
        if d.get("gpu_mem_from") == "process":
            u.peak_proc_gpu_mb = peak
        else:
            u.peak_device_gpu_mb = peak
        mean, n = _num(d.get("mean_gpu_util")), int(_num(d.get("util_samples")) or 0)
        if mean is not None and n:
            u.util_sum, u.util_samples = mean * n, n
        return u


def run_resources(last_metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The summary of a row's `last_metrics` ({} when the run wrote no resources record)."""
    d = (last_metrics or {}).get(RESOURCES_KEY)
    return d if isinstance(d, dict) else {}


def mb_text(mb: Any) -> str:
    """'812 MB', '5.1 GB'; '-' when unknown."""
    v = _num(mb)
    if v is None:
        return "-"
    return f"{v:.0f} MB" if v < 1024 else f"{v / 1024:.1f} GB"


def mb_short(mb: Any) -> str:
    """'812M', '5.1G' for a table cell; '-' when unknown."""
    v = _num(mb)
    if v is None:
        return "-"
    return f"{v:.0f}M" if v < 1024 else f"{v / 1024:.1f}G"


def summary_line(d: dict[str, Any]) -> str:
    """`show`'s resources line: 'peak GPU 5.1 GB of 80.0 GB  mean util 87%  peak RSS 2.3 GB'; '' when none."""
    if not d:
        return ""
    bits = []
    if "peak_gpu_mem_mb" in d:
        total = f" of {mb_text(d['gpu_mem_total_mb'])}" if "gpu_mem_total_mb" in d else ""
        bits.append(f"peak GPU {mb_text(d['peak_gpu_mem_mb'])}{total}"
                    + (" (device total: NVML lists no process of the run)" if d.get("gpu_mem_from") == "device"
                       else ""))
    if "mean_gpu_util" in d:
        bits.append(f"mean util {d['mean_gpu_util']:.0f}%")
    if "peak_rss_mb" in d:
        bits.append(f"peak RSS {mb_text(d['peak_rss_mb'])}")
    bits.append(f"({d.get('samples', 0)} samples)")
    return "    ".join(bits)
