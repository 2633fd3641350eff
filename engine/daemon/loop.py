"""`python -m engine.supervisor --home HOME`: advance the queue of one store, then exit when idle.

One per store (an flock on HOME/supervisor.lock). Every tick (TICK_S) it reconciles liveness, adopts
running workers a dead supervisor left behind, follows each worker's metrics.jsonl into its row, enforces
cancels (SIGTERM to the worker's process group, SIGKILL after the grace period), reaps workers and writes
their terminal status, then starts queued runs while slots are free. It is torch-free and holds no state
that the store and the run folders do not: kill it at any moment and the next one carries on.

Job kinds are pluggable (`JobKind`), one room each: `RunJobs` (local_runs.py) drives training workers on
this machine, `VizJobs` (viz_runs.py) visualization jobs (`python -m engine.compute.viz JOB_DIR`, in their
own slots), and `SlurmJobs` (slurm_runs.py) runs on the Slurm backend: submitted with sbatch, polled,
resubmitted; `Notifier` (notify.py) sends the notifications of run events. What local workers and viz jobs
share as processes is in processes.py; how a training run's
metrics.jsonl reaches its row, for local and Slurm runs alike, in progress.py.

SIGTERM/SIGINT make the supervisor exit at once and leave its workers running: they lead their own
sessions, and the next supervisor adopts them. Log: HOME/supervisor.log (stdout/stderr, see launcher).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Protocol

from engine.control.paths import PathError, is_disk_full, resolve_home
from engine.control.reconcile import reconcile
from engine.control.supervisor_lock import try_lock
from engine.daemon.local_runs import RunJobs
from engine.daemon.log import log
from engine.daemon.notify import Notifier
from engine.daemon.slurm_runs import SlurmJobs
from engine.daemon.viz_runs import VizJobs
from store import runs as store_runs
from store import settings as store_settings
from store.errors import StoreError
from store.views import RunView

TICK_S = 0.5  # how often the queue, the workers and cancels are looked at
MAX_TICK_FAILURES = 20  # consecutive failed ticks before the supervisor gives up and exits
DISK_FULL_WAIT_S = 5.0  # between tries while the disk is full (not counted as failures: space comes back)
DISK_FULL_LOG_S = 60.0  # one "still full" line a minute, not one a tick


class JobKind(Protocol):
    """One kind of job the supervisor schedules (local training runs, visualization jobs, Slurm runs)."""

    def owned(self) -> set[int]: ...

    def tick(self, settings: dict[str, Any], running: list[RunView]) -> None: ...

    def busy(self) -> bool:
        """Anything running or queued for this kind (the supervisor exits when no kind is busy)."""
        ...

    def stop_tracking(self) -> None:
        """Supervisor shutdown: forget what is watched (it keeps running and is adopted later)."""
        ...


class Supervisor:
    """One store's queue daemon: a tick loop over the job kinds, holding the store's lock while busy."""

    def __init__(self, home: Path, tick_s: float = TICK_S):
        self.home = home
        self.tick_s = tick_s
        self.host = socket.gethostname()
        self.runs = RunJobs(home, self.host)
        self.viz = VizJobs(home, self.host)
        self.slurm = SlurmJobs(home, self.host)
        self.notifier = Notifier(home)  # last: it announces what the others settled in the same tick
        self.kinds: list[JobKind] = [self.runs, self.viz, self.slurm, self.notifier]
        self.stopping = False

    def serve(self) -> int:
        fd = try_lock(self.home)
        if fd is None:
            log("another supervisor holds the lock; exiting")
            return 0
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        log(f"started for {self.home}")
        failures = 0
        full_since: float | None = None  # when the disk was first seen full, and the last line said so
        full_said = 0.0
        try:
            while not self.stopping:
                try:
                    self.tick()
                    idle = not any(k.busy() for k in self.kinds)
                    failures = 0
                    if full_since is not None:
                        log(f"disk space is back after {time.monotonic() - full_since:.0f} s")
                        full_since = None
                except Exception as e:  # one bad tick (a locked db, a bug) must not orphan the queue
                    if is_disk_full(e):  # wait it out: the runs are recorded once there is room again
                        now = time.monotonic()
                        if full_since is None or now - full_said >= DISK_FULL_LOG_S:
                            log(f"disk full ({' '.join(str(e).split())[:160]}); waiting for space")
                            full_said = now
                            full_since = now if full_since is None else full_since
                        self._sleep(DISK_FULL_WAIT_S)
                        continue
                    failures += 1
                    log(f"tick failed ({failures} in a row):\n{traceback.format_exc().rstrip()}")
                    if failures >= MAX_TICK_FAILURES:
                        log("giving up; the next ganmgr command starts a new supervisor")
                        return 1
                    idle = False
                if idle:
                    fd = self._release_if_idle(fd)
                    if fd is None:
                        log("exiting: nothing queued or running")
                        return 0
                self._sleep()
            for kind in self.kinds:
                kind.stop_tracking()
            log("stopping on a signal; the workers keep running and the next supervisor adopts them")
            return 0
        finally:
            if fd is not None:
                os.close(fd)

    def tick(self) -> None:
        settings = store_settings.get_settings(self.home)
        for view in reconcile(self.home, owned=self.runs.owned(), supervisor_alive=False,
                              owned_viz=self.viz.owned()):
            log(f"run {view.id}: reconciled to {view.status}")
        running = store_runs.list_runs(self.home, status="running")
        for kind in self.kinds:
            kind.tick(settings, running)

    def _release_if_idle(self, fd: int) -> int | None:
        """Drop the lock, then look again: a run queued while we decided to stop saw the lock held and
        started no supervisor, so we must take it (or leave it to the one that grabbed the lock)."""
        os.close(fd)
        if not any(k.busy() for k in self.kinds):
            return None
        again = try_lock(self.home)
        if again is None:
            log("work arrived as we went idle; another supervisor took over")
        return again

    def _sleep(self, seconds: float | None = None) -> None:
        end = time.monotonic() + (self.tick_s if seconds is None else seconds)
        while not self.stopping and time.monotonic() < end:
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    def _on_stop(self, signum: int, _frame: Any) -> None:
        self.stopping = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="the store folder (default: $GANMGR_HOME, else ./runs)")
    parser.add_argument("--tick", type=float, default=TICK_S, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.umask(0o077)
    try:
        home = resolve_home(args.home)
    except PathError as e:
        print(f"supervisor: error: {e}", file=sys.stderr)
        return 2
    if not home.is_dir():
        print(f"supervisor: error: {home} is not a store folder", file=sys.stderr)
        return 2
    try:
        return Supervisor(home, tick_s=max(0.05, args.tick)).serve()
    except StoreError as e:
        log(f"error: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
