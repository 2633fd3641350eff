"""Is there a CUDA device on this machine? Decided without importing torch, in one place.

The TUI, the CLI and the supervisor never import torch (it costs seconds), so they cannot ask
`torch.cuda.is_available()`. The NVIDIA driver's /proc entry or an `nvidia-smi` on PATH counts as a GPU;
`CUDA_VISIBLE_DEVICES` set to '' or -1 hides every one. A wrong guess costs a warning or a process's
niceness, never correctness: the worker resolves its device itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

PROC_GPUS = Path("/proc/driver/nvidia/gpus")


def cuda_present(which: Callable[[str], str | None] = shutil.which, proc_gpus: Path = PROC_GPUS,
                 environ: Mapping[str, str] | None = None) -> bool:
    """Whether this node looks like it has a usable NVIDIA GPU (the arguments are for tests)."""
    env = os.environ if environ is None else environ
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    try:
        if proc_gpus.is_dir() and any(proc_gpus.iterdir()):
            return True
    except OSError:
        pass
    return which("nvidia-smi") is not None
