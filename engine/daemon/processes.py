"""What training workers and visualization jobs share as local processes the supervisor watches.

Both lead their own session (their pid is their process group), write a metrics.jsonl the supervisor
folds into their row, get SIGTERM on a cancel and SIGKILL after the grace period, and are reaped with any
process left in their group. `ProcessJobs` is that life cycle; `RunJobs` (local_runs.py) and `VizJobs`
(viz_runs.py) add how a job is claimed, started, followed and settled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from engine.control.machine import cuda_present as cuda_probe
from engine.control.paths import open_log
from engine.control.procs import is_alive, kill_leftovers, signal_verified
from engine.control.records import MetricsTail
from engine.control.submit import cancel_grace_s
from engine.daemon.log import log
from engine.daemon.progress import FLUSH_S

CPU_NICE = 10  # niceness of a process that computes on the CPU, so the TUI and the shell stay responsive


class Fold(Protocol):
    """Records folded into a row's fields (engine.control.follow.ProgressFold, viz_jobs.VizFold)."""

    dirty: bool

    def fold(self, rec: dict[str, Any]) -> None: ...


@dataclass(kw_only=True)
class Watched:
    """A process this supervisor watches: its child, or a live one adopted from a dead supervisor."""

    key: int  # the row's id
    label: str  # how the log names it: "run 3", "viz job 5"
    pid: int
    token: str | None  # its start time (procs.process_start_token): a reused pid is not this process
    folder: Path
    proc: subprocess.Popen | None  # None when adopted: not our child, so exit is seen through liveness
    tail: MetricsTail
    fold: Fold
    cancel_requested: bool = False
    term_sent_at: float | None = None  # monotonic time of our SIGTERM (cancel)
    killed_by_us: bool = False
    last_flush: float = 0.0

    def enforce_cancel(self, grace: float) -> None:
        """SIGTERM to the group once a cancel is asked for; SIGKILL (leftovers too) `grace` s later."""
        if not self.cancel_requested:
            return
        now = time.monotonic()
        if self.term_sent_at is None:
            self.term_sent_at = now
            sent = signal_verified(self.pid, self.token, signal.SIGTERM, group=True)
            log(f"{self.label}: cancel requested; SIGTERM {'sent to' if sent else 'not needed for'} "
                f"group {self.pid}, SIGKILL in {grace:g} s")
        elif not self.killed_by_us and now - self.term_sent_at >= grace:
            self.killed_by_us = True
            sent = signal_verified(self.pid, self.token, signal.SIGKILL, group=True)
            sent = kill_leftovers(self.pid, not_before=self.token) > 0 or sent
            log(f"{self.label}: still running {grace:g} s after SIGTERM; "
                f"SIGKILL {'sent' if sent else 'not needed'}")

    def exit_status(self) -> tuple[int | None, bool]:
        """(returncode or None, exited). A child is checked without reaping it first (WNOWAIT), so its pid
        (= its group id) stays reserved while we kill anything left in its group; an adopted process (not
        our child) is seen through liveness, its return code unknown."""
        if self.proc is not None:
            try:
                info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                info = None
                if self.proc.poll() is None:
                    return None, False
            else:
                if info is None:
                    return None, False
            left = kill_leftovers(self.pid, not_before=self.token)
            if left:
                log(f"{self.label}: killed {left} leftover process(es) of its group")
            return self.proc.wait(), True
        if is_alive(self.pid, self.token):
            return None, False
        left = kill_leftovers(self.pid, not_before=self.token)
        if left:
            log(f"{self.label}: killed {left} leftover process(es) of the adopted group")
        return None, True

    def kill_unrecorded(self, why: Exception) -> None:
        """The row refused the start (cancelled or deleted meanwhile): this process has no business."""
        log(f"{self.label}: {why}; stopping the process just started")
        signal_verified(self.pid, self.token, signal.SIGKILL, group=True)
        self.killed_by_us = True


W = TypeVar("W", bound=Watched)


class Cancellable(Protocol):
    """A row (RunView, VizJobView) as far as polling needs it."""

    cancel_requested: bool


class ProcessJobs(Generic[W]):
    """The life cycle runs and viz jobs share: watch, cancel, reap. Subclasses claim, start and settle."""

    def __init__(self, home: Path, host: str):
        self.home = home
        self.host = host
        self.watched: dict[int, W] = {}

    def owned(self) -> set[int]:
        return set(self.watched)

    def busy(self) -> bool:
        """Anything watched, or waiting for a supervisor (the supervisor exits when no kind is busy)."""
        return bool(self.watched) or self.has_work()

    def has_work(self) -> bool:
        """A queued job, or a running one on this host to watch or adopt."""
        raise NotImplementedError

    def watch(self, w: W) -> W:
        self.watched[w.key] = w
        return w

    def poll_all(self, rows: Mapping[int, Cancellable], settings: dict[str, Any]) -> None:
        """Poll every watched process; `rows` (its row by id) says whether a cancel was asked for."""
        grace = cancel_grace_s(settings)
        for w in list(self.watched.values()):
            row = rows.get(w.key)
            if row is not None:
                w.cancel_requested = row.cancel_requested
            self.poll(w, grace)

    def poll(self, w: W, grace: float) -> None:
        self.follow(w)
        w.enforce_cancel(grace)
        returncode, exited = w.exit_status()
        if exited:
            del self.watched[w.key]
            self.finish(w, returncode)
        elif w.fold.dirty and time.monotonic() - w.last_flush >= FLUSH_S:
            self.flush(w)
            w.last_flush = time.monotonic()

    def follow(self, w: W) -> None:
        """Fold what the process appended to its metrics.jsonl since the last look."""
        for rec in w.tail.read_new():
            w.fold.fold(rec)

    def flush(self, w: W) -> None:
        """Write the folded progress into the row (at most every FLUSH_S while it runs)."""
        raise NotImplementedError

    def finish(self, w: W, returncode: int | None) -> None:
        """The process is gone (and no longer watched): write the row's terminal status."""
        raise NotImplementedError

    def stop_tracking(self) -> None:
        """Supervisor shutdown: forget the processes (they keep running and get adopted later)."""
        self.watched.clear()


def cuda_present() -> bool:
    """Whether this node looks like it has an NVIDIA GPU, decided without importing torch.

    CUDA_VISIBLE_DEVICES set to '' or -1 hides every GPU; otherwise the NVIDIA driver's /proc entry or an
    `nvidia-smi` on PATH counts as a GPU. Used only to pick a CPU process's niceness, so a wrong guess
    costs scheduling priority, never correctness (the process resolves its device itself).
    """
    return cuda_probe()


def log_header(folder: Path, text: str) -> None:
    """A `--- text ---` line in the folder's log.txt before the process appends its own output."""
    fd = open_log(folder)
    try:
        os.write(fd, f"--- {text} ---\n".encode())
    finally:
        os.close(fd)
