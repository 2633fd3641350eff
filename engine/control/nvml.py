"""NVML reads (the `nvidia-ml-py` package), torch-free: this node's GPUs, their memory, utilisation and processes.

Shared by the worker's resources sampler (engine/compute/resources.py), `ganmgr gpus`, the TUI's GPU screen and
the supervisor's packing by memory (engine/daemon/local_runs.py). NVML is the driver's management library: it
never touches a CUDA context or stream, so reading it from a thread cannot make the training loop wait.

Where NVML is absent (no NVIDIA driver, a CPU node) every entry point raises `NvmlUnavailable` with one line
saying why; callers then leave the GPU fields out (never zeros). `lib` is the pynvml module by default; the tests
pass a double with the same functions (NVML cannot run on a machine without a GPU), and the real path has
`gpu`-marked tests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

MB = 1024 * 1024


class NvmlUnavailable(RuntimeError):
    """NVML cannot be used here; the message is one line (no driver, no GPU, a library error)."""


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_mb: float | None  # None: the driver does not say (e.g. some MIG and Windows setups)


@dataclass(frozen=True)
class GpuInfo:
    """One device as NVML sees it now. A figure the device does not report is None."""

    index: int
    uuid: str
    name: str
    mem_used_mb: float
    mem_total_mb: float
    util_percent: float | None = None
    temp_c: float | None = None
    power_w: float | None = None
    processes: tuple[GpuProcess, ...] = field(default=())

    @property
    def mem_free_mb(self) -> float:
        return max(0.0, self.mem_total_mb - self.mem_used_mb)

    def record(self) -> dict[str, Any]:
        """The entry of a `resources` record's `gpu` list (engine/control/records.py RESOURCES)."""
        return {"index": self.index, "uuid": self.uuid, "mem_used_mb": round(self.mem_used_mb, 1),
                "mem_total_mb": round(self.mem_total_mb, 1), "util_percent": self.util_percent,
                "temp_c": self.temp_c, "power_w": self.power_w}


_lock = threading.Lock()
_ready: dict[int, bool] = {}  # id(lib) -> initialised (nvmlInit once per process per library)


def _pynvml() -> Any:
    try:
        import pynvml  # the nvidia-ml-py package; imported on first use only
    except ImportError as e:  # pragma: no cover - declared in pyproject.toml
        raise NvmlUnavailable(f"the nvidia-ml-py package is not installed ({e})") from None
    return pynvml


def _init(lib: Any) -> Any:
    lib = lib if lib is not None else _pynvml()
    with _lock:
        if not _ready.get(id(lib)):
            try:
                lib.nvmlInit()
            except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
                raise NvmlUnavailable(_why(e)) from None
            _ready[id(lib)] = True
    return lib


def _why(e: Exception) -> str:
    text = str(e) or type(e).__name__
    if "Library Not Found" in text or "LibraryNotFound" in type(e).__name__:
        return "the NVML library is not found: no NVIDIA driver"
    if "Driver Not Loaded" in text:
        return "the NVIDIA driver is not loaded on this node"
    return f"NVML failed: {text}"


def device_count(lib: Any = None) -> int:
    lib = _init(lib)
    try:
        return int(lib.nvmlDeviceGetCount())
    except Exception as e:
        raise NvmlUnavailable(_why(e)) from None


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _opt(fn: Any, *args: Any) -> Any:
    """A figure some devices do not report (power, temperature, util on a MIG slice): None then."""
    try:
        return fn(*args)
    except Exception:
        return None


def read_gpu(index: int, lib: Any = None, processes: bool = False) -> GpuInfo:
    """Device `index` (NVML's numbering: PCI bus order) now."""
    lib = _init(lib)
    try:
        h = lib.nvmlDeviceGetHandleByIndex(index)
        mem = lib.nvmlDeviceGetMemoryInfo(h)
        uuid = _text(lib.nvmlDeviceGetUUID(h))
    except Exception as e:
        raise NvmlUnavailable(_why(e)) from None
    name = _opt(lib.nvmlDeviceGetName, h)
    util = _opt(lib.nvmlDeviceGetUtilizationRates, h)
    temp = _opt(lib.nvmlDeviceGetTemperature, h, getattr(lib, "NVML_TEMPERATURE_GPU", 0))
    power = _opt(lib.nvmlDeviceGetPowerUsage, h)  # milliwatts
    procs: tuple[GpuProcess, ...] = ()
    if processes:
        procs = tuple(_processes(lib, h))
    return GpuInfo(index=index, uuid=uuid, name=_text(name) if name is not None else "?",
                   mem_used_mb=float(mem.used) / MB, mem_total_mb=float(mem.total) / MB,
                   util_percent=float(util.gpu) if util is not None else None,
                   temp_c=float(temp) if temp is not None else None,
                   power_w=round(float(power) / 1000.0, 1) if power is not None else None, processes=procs)


def _processes(lib: Any, h: Any) -> list[GpuProcess]:
    out: dict[int, GpuProcess] = {}
    for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        fn = getattr(lib, getter, None)
        for p in (_opt(fn, h) if fn is not None else None) or []:
            used = getattr(p, "usedGpuMemory", None)
            mb = float(used) / MB if isinstance(used, int) and used >= 0 and used < 1 << 60 else None
            if p.pid not in out:
                out[int(p.pid)] = GpuProcess(int(p.pid), mb)
    return list(out.values())


def read_gpus(indices: list[int] | None = None, lib: Any = None, processes: bool = False) -> list[GpuInfo]:
    """Every device of this node (or those of `indices`), now; NvmlUnavailable when NVML cannot be read."""
    lib = _init(lib)
    wanted = range(device_count(lib)) if indices is None else indices
    return [read_gpu(i, lib, processes) for i in wanted]


def nvml_reason(lib: Any = None) -> str | None:
    """None when NVML answers here, else one line saying why it does not."""
    try:
        device_count(lib)
    except NvmlUnavailable as e:
        return str(e)
    return None


def map_visible(spec: str | None, uuids: list[str]) -> list[int]:
    """CUDA_VISIBLE_DEVICES (`spec`) as NVML indices, in CUDA's order; `uuids` are NVML's, index by index.

    Entries are indices (`0,2`) or UUIDs (`GPU-8a3f...`, a unique prefix will do); CUDA stops at the first
    entry it cannot use, and so does this. Unset: every device. Empty or `-1`: none. MIG entries are not mapped
    (their memory is the slice's, which NVML reports per MIG handle)."""
    if spec is None:
        return list(range(len(uuids)))
    out: list[int] = []
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            break
        if entry.lstrip("-").isdigit():
            i = int(entry)
            if i < 0 or i >= len(uuids) or i in out:
                break
            out.append(i)
            continue
        if not entry.startswith("GPU-"):
            break  # MIG-..., a typo: CUDA sees nothing from here on
        match = [i for i, u in enumerate(uuids) if u.startswith(entry)]
        if len(match) != 1 or match[0] in out:
            break
        out.append(match[0])
    return out
