"""An NVML double: the pynvml functions ganmgr calls, answering for two GPUs (NVML cannot run on a machine without
a GPU). Used only where NVML alone is exercised; the real library has `gpu`-marked tests beside each use."""

from __future__ import annotations

from types import SimpleNamespace

MB = 1024 * 1024


class FakeNvml:
    """The pynvml functions the code calls, answering for two GPUs; `fail` makes nvmlInit fail as on a CPU node."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, procs: dict[int, list[tuple[int, int]]] | None = None, fail: bool = False) -> None:
        self.procs = procs or {}
        self.fail = fail
        self.used = {0: 10_000 * MB, 1: 2_000 * MB}

    def nvmlInit(self):
        if self.fail:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUUID(self, h):
        return f"GPU-{h}aaa-{h}"

    def nvmlDeviceGetName(self, h):
        return b"Fake H100"

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=self.used[h], total=81_559 * MB, free=81_559 * MB - self.used[h])

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=40 + h, memory=10)

    def nvmlDeviceGetTemperature(self, h, sensor):
        return 55

    def nvmlDeviceGetPowerUsage(self, h):
        if h == 1:
            raise RuntimeError("Not Supported")
        return 251_000

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self.procs.get(h, [])]
