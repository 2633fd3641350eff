"""Checkpoints: one dict per file, written atomically, read back with weights_only=True only.

A checkpoint carries the run's config, so a visualization job rebuilds the models from the file alone.
An interrupted write (kill, full disk) leaves the previous file in place: we write a temp file in the same
folder, fsync it, and rename it over the old one.
"""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import torch

from engine.control.paths import write_bytes_atomic

FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message names the file."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    state = {"format": FORMAT, **state}
    buf = io.BytesIO()
    torch.save(state, buf)
    try:
        write_bytes_atomic(path, buf.getbuffer())
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CheckpointError(f"disk full while writing {path}; the previous checkpoint is kept") from e
        raise CheckpointError(f"cannot write {path}: {e.strerror or e}") from e


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'corrupt'})") from None
    if not isinstance(state, dict) or "models" not in state or "config" not in state:
        raise CheckpointError(f"checkpoint {path} is not a ganmgr checkpoint")
    if state.get("format", 0) > FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {state['format']}; this ganmgr reads up to {FORMAT}")
    return state
