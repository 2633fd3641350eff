"""The first-start offer: a short run on the embedded data, sized for the machine it will run on.

GPU presence is decided without importing torch (the TUI never does): an `nvidia-smi` on PATH or an
NVIDIA driver entry in /proc.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from engine.control.config import resolve_config
from engine.control.machine import PROC_GPUS, cuda_present

QUICK_RECIPE = "acgan-wgangp"
CPU_OVERRIDES: dict[str, Any] = {"width": 32, "epochs": 2, "batch_size": 64, "name": "quickstart"}
GPU_OVERRIDES: dict[str, Any] = {"width": 128, "epochs": 20, "batch_size": 128, "name": "quickstart"}


def has_gpu(which=shutil.which, proc_gpus: Path = PROC_GPUS) -> bool:
    """The one probe, engine.control.machine.cuda_present."""
    return cuda_present(which=which, proc_gpus=proc_gpus)


def quick_config(gpu: bool) -> dict[str, Any]:
    """The resolved quick-start config (embedded synthetic data, no download)."""
    return resolve_config(QUICK_RECIPE, dict(GPU_OVERRIDES if gpu else CPU_OVERRIDES))


def describe(cfg: dict[str, Any]) -> str:
    return (f"{cfg['recipe']} on the embedded {cfg['dataset']} data: width {cfg['width']}, "
            f"{cfg['epochs']} epochs, batch {cfg['batch_size']}")
