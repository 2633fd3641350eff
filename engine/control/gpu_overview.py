"""This node's GPUs and whose processes are on them: `ganmgr gpus` and the TUI's GPU screen (`g`), torch-free.

A process on a GPU is one of ours when it is a live worker the store knows (pid AND start time, so a reused pid
is never taken for ours: engine/control/procs.py) or a member of such a worker's process group (a DataLoader
worker, a compile helper). Anything else is another user's (or another tool's) process, shown with its owner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.control import nvml
from engine.control.procs import is_alive, read_stat
from engine.control.resource_use import mb_text


@dataclass(frozen=True)
class OurRun:
    """A live run of this store: what a GPU process is matched against."""

    run_id: int
    name: str
    pid: int
    pid_start: str | None


@dataclass(frozen=True)
class ProcOnGpu:
    pid: int
    used_mb: float | None
    run_id: int | None = None  # one of our runs
    run_name: str | None = None
    user: str | None = None  # the owner of a process that is not ours (None: not visible from here)

    def text(self) -> str:
        mem = mb_text(self.used_mb) if self.used_mb is not None else "? MB"
        if self.run_id is not None:
            return f"pid {self.pid:<8} {mem:>9}  run {self.run_id} {self.run_name}"
        who = f"user {self.user}" if self.user else "owner not visible from here"
        return f"pid {self.pid:<8} {mem:>9}  not ganmgr's ({who})"


@dataclass(frozen=True)
class GpuRow:
    gpu: nvml.GpuInfo
    processes: tuple[ProcOnGpu, ...]

    def head(self) -> str:
        g = self.gpu
        util = f"{g.util_percent:.0f}%" if g.util_percent is not None else "?"
        extra = "".join([f"  {g.temp_c:.0f}°C" if g.temp_c is not None else "",
                         f"  {g.power_w:.0f} W" if g.power_w is not None else ""])
        return (f"GPU {g.index}  {g.name}  {mb_text(g.mem_used_mb)} / {mb_text(g.mem_total_mb)} used  "
                f"util {util}{extra}")

    def to_dict(self) -> dict[str, Any]:
        return {**self.gpu.record(), "name": self.gpu.name,
                "processes": [{"pid": p.pid, "used_mb": p.used_mb, "run_id": p.run_id, "run_name": p.run_name,
                               "user": p.user} for p in self.processes]}


def owner_of(pid: int, runs: Iterable[OurRun]) -> OurRun | None:
    """The live run whose worker is `pid` or leads `pid`'s process group."""
    live = [r for r in runs if is_alive(r.pid, r.pid_start)]
    for r in live:
        if r.pid == pid:
            return r
    st = read_stat(pid)
    if st is None:
        return None
    return next((r for r in live if r.pid == st.pgrp), None)


def _user(pid: int) -> str | None:
    try:
        import psutil

        return psutil.Process(pid).username()
    except Exception:  # gone, not visible (another pid namespace), no permission
        return None


def overview(runs: Iterable[OurRun], lib: Any = None) -> list[GpuRow]:
    """Every GPU of this node with its processes, each tied to our run when it is one; NvmlUnavailable when
    NVML cannot be read here (the caller says so plainly)."""
    runs = list(runs)
    rows = []
    for g in nvml.read_gpus(lib=lib, processes=True):
        procs = []
        for p in g.processes:
            ours = owner_of(p.pid, runs)
            if ours is not None:
                procs.append(ProcOnGpu(p.pid, p.used_mb, ours.run_id, ours.name))
            else:
                procs.append(ProcOnGpu(p.pid, p.used_mb, user=_user(p.pid)))
        rows.append(GpuRow(g, tuple(procs)))
    return rows


NO_GPU = "this node has no NVIDIA GPU ({why}); runs here train on the CPU"
