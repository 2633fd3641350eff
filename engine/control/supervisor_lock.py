"""One supervisor per store: an exclusive flock on HOME/supervisor.lock, held for the supervisor's life."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def lock_path(home: Path) -> Path:
    return home / "supervisor.lock"


def try_lock(home: Path) -> int | None:
    """The locked file descriptor (keep it open to hold the lock), or None if another process holds it."""
    fd = os.open(lock_path(home), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def lock_is_held(home: Path) -> bool:
    if not lock_path(home).exists():
        return False
    fd = os.open(lock_path(home), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
