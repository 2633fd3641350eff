"""Handing a file to the outside world: an external viewer when a display exists, else a ready `scp` line.

On a cluster node reached over SSH there is usually no display; the useful thing then is the file's path
and the exact command that copies it to the researcher's laptop. Viewers are started from an argv list
(never a shell), detached, with their output discarded.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path


def viewer_argv(path: Path, *, env: Mapping[str, str] | None = None, platform: str | None = None,
                which: Callable[[str], str | None] = shutil.which) -> list[str] | None:
    """The command that shows `path` on this machine's display, or None when there is no display."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform == "darwin":
        return ["open", str(path)] if which("open") else None
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        return None
    for tool in ("xdg-open", "gio", "feh", "eog", "display"):
        exe = which(tool)
        if exe:
            return [exe, "open", str(path)] if tool == "gio" else [exe, str(path)]
    return None


def scp_line(path: Path, *, user: str | None = None, host: str | None = None) -> str:
    """`scp user@host:/abs/path .`, quoted for the local shell it is pasted into (only when needed)."""
    user = user if user is not None else _user()
    host = host if host is not None else socket.getfqdn()
    target = f"{user}@{host}" if user else host
    return f"scp {shlex.quote(f'{target}:{Path(path).resolve()}')} ."


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def open_external(argv: list[str]) -> None:
    """Start a viewer detached from the TUI (own session, no terminal I/O)."""
    subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, close_fds=True)
