"""Process identity: a pid plus its start time, so a reused pid is never mistaken for our worker.

Every signal ganmgr sends to a run goes through this module, and only after the pid's start-time token was
checked against the one recorded when the worker started: a pid the kernel has handed to an unrelated
process since (pid reuse) gets nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

IS_LINUX = sys.platform.startswith("linux")


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/PID/stat we use (Linux)."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    start: str  # start time in clock ticks since boot: the identity token


def read_stat(pid: int) -> ProcStat | None:
    """/proc/PID/stat parsed, or None if the process is gone (Linux only)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    rest = data[data.rindex(")") + 2:].split()
    if len(rest) <= 19:
        return None
    return ProcStat(pid=pid, state=rest[0], ppid=int(rest[1]), pgrp=int(rest[2]), session=int(rest[3]),
                    start=rest[19])


def process_start_token(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot on Linux), or None if it is gone."""
    if pid <= 0:
        return None
    if IS_LINUX:
        st = read_stat(pid)
        if st is None or st.state == "Z":  # a zombie is dead for our purposes
            return None
        return st.start
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


def signal_verified(pid: int | None, token: str | None, sig: int, *, group: bool) -> bool:
    """Send `sig` to the process (group=False) or its process group (group=True), only if `pid` is still
    the process that had `token`. Returns whether a signal was sent.

    A worker started by the supervisor leads its own session and group (pgid == pid), so the group holds
    it and anything it started. The leader being alive pins the group id: the kernel never hands out a
    pid that is still in use as a process-group id.
    """
    if not is_alive(pid, token):
        return False
    assert pid is not None
    try:
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_members(pgid: int, *, not_before: str | None = None) -> list[ProcStat]:
    """Live processes of process group `pgid` that also belong to session `pgid` (Linux; [] elsewhere).

    Used after a worker (the group's leader) exited, to find what it left behind. While any member lives
    the kernel keeps `pgid` reserved, so members found here are the worker's, not a later process's;
    `not_before` (the leader's start token) additionally drops anything that started before the leader.
    """
    if not IS_LINUX or pgid <= 1:
        return []
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        st = read_stat(int(name))
        if st is None or st.state == "Z" or st.pgrp != pgid or st.session != pgid:
            continue
        if not_before is not None and _ticks(st.start) is not None and _ticks(not_before) is not None:
            if _ticks(st.start) < _ticks(not_before):  # type: ignore[operator]
                continue
        out.append(st)
    return out


def kill_leftovers(pgid: int, *, not_before: str | None = None, sig: int = signal.SIGKILL) -> int:
    """Signal every remaining member of a finished worker's group (see `group_members`); returns how many."""
    count = 0
    for st in group_members(pgid, not_before=not_before):
        if signal_verified(st.pid, st.start, sig, group=False):
            count += 1
    return count


def group_alive(pid: int | None, token: str | None) -> bool:
    """The worker or anything left of its process group still runs."""
    if pid is None:
        return False
    return is_alive(pid, token) or bool(group_members(pid, not_before=token))


def find_processes(argv: list[str]) -> list[ProcStat]:
    """Live processes whose command line is exactly `argv` (Linux; [] elsewhere).

    Lets a supervisor find a worker it started but had not recorded before it died.
    """
    if not IS_LINUX:
        return []
    wanted = ("\0".join(argv) + "\0").encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline == wanted:
            st = read_stat(int(name))
            if st is not None and st.state != "Z":
                out.append(st)
    return out


def _ticks(token: str) -> int | None:
    return int(token) if token.isdigit() else None
