"""Process identity: a pid plus its start time, so a reused pid is never mistaken for our worker."""

from __future__ import annotations

import os
import subprocess
import sys


def process_start_token(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot on Linux), or None if it is gone."""
    if pid <= 0:
        return None
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                data = fh.read().decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        # the command name (field 2) may hold spaces and parentheses: split after the last ')'
        rest = data[data.rindex(")") + 2:].split()
        if rest and rest[0] == "Z":  # a zombie is dead for our purposes
            return None
        return rest[19] if len(rest) > 19 else None
    try:
        out = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    token = out.stdout.strip()
    return token or None


def is_alive(pid: int | None, token: str | None) -> bool:
    """True only if `pid` runs and is the same process that had `token` when we recorded it."""
    if not pid or not token:
        return False
    return process_start_token(pid) == token


def own_token() -> str | None:
    return process_start_token(os.getpid())
