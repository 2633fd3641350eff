"""The worker's resources sampler: a daemon thread that writes a `resources` record every `resources_every` s.

    {"kind": "resources", "t": ..., "cpu_percent": ..., "rss_mb": ...,
     "gpu": [{"index", "uuid", "mem_used_mb", "mem_total_mb", "util_percent", "temp_c", "power_w"}],
     "proc_gpu_mem_mb": ...}

CPU and RSS come from psutil over the worker and its children (DataLoader workers, a compile's helpers), summed;
`cpu_percent` is over the interval since the last sample and, like `top`, 100 per busy core. The GPU fields come
from NVML (engine/control/nvml.py) for the run's own devices (CUDA_VISIBLE_DEVICES mapped to NVML's indices, then
the torch device's ordinal) and are ABSENT where NVML is (one log line says why), or while the run trains on the
CPU. `proc_gpu_mem_mb` is what NVML lists for the worker's processes, absent when it lists none of them.

Nothing here touches torch or a CUDA stream: NVML is the driver's management library, and psutil reads /proc.
So the sampler never makes the training loop wait on the GPU (tests/test_no_host_sync.py) and its own cost is a
few /proc and NVML reads every few seconds (bench/resources.py).

The training loop and this thread share the one MetricsWriter, which writes whole lines under a lock.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from engine.control import nvml
from engine.control.records import RESOURCES

MB = 1024 * 1024


class ProcessTree:
    """psutil figures of one process and its descendants, summed; keeps each process's psutil handle so
    `cpu_percent` measures the interval since the previous sample."""

    def __init__(self, pid: int | None = None) -> None:
        self.root = psutil.Process(pid or os.getpid())
        self._known: dict[int, psutil.Process] = {}
        self.sample()  # the first cpu_percent of a process is 0.0: prime every handle

    def pids(self) -> list[int]:
        return [p.pid for p in self._members()]

    def _members(self) -> list[psutil.Process]:
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:
            children = []
        members = [self.root, *children]
        for p in members:
            self._known.setdefault(p.pid, p)
        alive = {p.pid for p in members}
        for pid in list(self._known):
            if pid not in alive:
                del self._known[pid]
        return [self._known[p.pid] for p in members]

    def sample(self) -> tuple[float, float]:
        """(cpu_percent, rss_mb) of the tree now."""
        cpu = rss = 0.0
        for p in self._members():
            try:
                with p.oneshot():
                    cpu += p.cpu_percent(None)
                    rss += p.memory_info().rss
            except psutil.Error:  # exited between the listing and the read
                continue
        return round(cpu, 1), round(rss / MB, 1)


def cuda_ordinal(device: str | None) -> int | None:
    """The ordinal of a torch device string ('cuda' -> 0, 'cuda:1' -> 1); None for a CPU device or none yet."""
    if not device or not device.startswith("cuda"):
        return None
    _, _, n = device.partition(":")
    return int(n) if n.isdigit() else 0


class ResourceSampler:
    """`with ResourceSampler(...)`: sample every `every` seconds from a daemon thread until the block ends.

    `device()` names the torch device the run trains on ("cuda:0", "cpu"), None while it is not chosen yet; the
    trainer resolves it in its setup, after the sampler started. `lib` is NVML's module (a test's double)."""

    def __init__(self, write: Callable[[dict[str, Any]], None], every: float, *,
                 device: Callable[[], str | None] = lambda: None, log: Callable[[str], None] = print,
                 lib: Any = None, visible: str | None = None) -> None:
        self.write = write
        self.every = float(every)
        self.device = device
        self.log = log
        self.lib = lib
        self.visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
        self.samples = 0
        self.tree: ProcessTree | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml_said = False
        self._nvml_ok: bool | None = None
        self._visible_indices: list[int] | None = None

    # --- lifetime ---------------------------------------------------------------------------------------
    def start(self) -> ResourceSampler:
        if self.every <= 0:
            return self
        self.tree = ProcessTree()
        self._thread = threading.Thread(target=self._loop, name="ganmgr-resources", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def __enter__(self) -> ResourceSampler:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.write(self.record())
            except (ValueError, OSError):  # the writer closed (the run is ending) or the disk is full
                return
            except Exception as e:  # never take the run down: say it once and stop sampling
                self.log(f"resources: sampling stopped ({type(e).__name__}: {e})")
                return

    # --- one sample -------------------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        if self.tree is None:
            self.tree = ProcessTree()
        cpu, rss = self.tree.sample()
        rec: dict[str, Any] = {"kind": RESOURCES, "t": time.time(), "cpu_percent": cpu, "rss_mb": rss}
        gpus = self._gpus()
        if gpus is not None:
            rec["gpu"] = [g.record() for g in gpus]
            ours = set(self.tree.pids())
            mine = [p.used_mb for g in gpus for p in g.processes if p.pid in ours and p.used_mb is not None]
            if mine:
                rec["proc_gpu_mem_mb"] = round(sum(mine), 1)
        self.samples += 1
        return rec

    def _gpus(self) -> list[nvml.GpuInfo] | None:
        """The run's devices now, or None (no GPU fields): a CPU run, or no NVML (said once in the log)."""
        device = self.device()
        ordinal = cuda_ordinal(device)
        if ordinal is None:
            if device is not None:
                self._say(f"the run trains on {device}")
            return None
        if self._nvml_ok is False:
            return None
        try:
            if self._visible_indices is None:
                uuids = [nvml.read_gpu(i, self.lib).uuid for i in range(nvml.device_count(self.lib))]
                self._visible_indices = nvml.map_visible(self.visible, uuids)
            if ordinal >= len(self._visible_indices):
                raise nvml.NvmlUnavailable(f"CUDA_VISIBLE_DEVICES={self.visible!r} has no device {ordinal} "
                                           f"that NVML knows")
            gpus = [nvml.read_gpu(self._visible_indices[ordinal], self.lib, processes=True)]
        except nvml.NvmlUnavailable as e:
            self._nvml_ok = False
            self._say(str(e))
            return None
        self._nvml_ok = True
        return gpus

    def _say(self, why: str) -> None:
        """The one log line that says why the records carry no GPU fields."""
        if not self._nvml_said:
            self._nvml_said = True
            self.log(f"resources: no GPU figures ({why}); CPU and RSS only")


def sampler_for_run(cfg: dict[str, Any], write: Callable[[dict[str, Any]], None], trainer: Any,
                    log: Callable[[str], None]) -> ResourceSampler:
    """The worker's sampler for `trainer` (its device is read once the trainer has chosen it)."""

    def device() -> str | None:
        rt = getattr(trainer, "rt", None)
        return str(rt.device) if rt is not None else None

    return ResourceSampler(write, float(cfg.get("resources_every", 10.0) or 0.0), device=device, log=log)


def oom_fields(trainer: Any) -> dict[str, Any]:
    """The end record's `oom` for a CUDA out-of-memory failure: the run's peak and its device's total, in MB
    (None where torch cannot say). Read after the failure: host-side allocator statistics, no stream sync."""
    peak = total = None
    try:
        import torch

        rt = getattr(trainer, "rt", None)
        if rt is not None and rt.device.type == "cuda":
            peak = torch.cuda.max_memory_reserved(rt.device) / MB
            total = torch.cuda.get_device_properties(rt.device).total_memory / MB
    except Exception:
        pass
    return {"oom": {"peak_mb": round(peak, 1) if peak is not None else None,
                    "total_mb": round(total, 1) if total is not None else None}}
