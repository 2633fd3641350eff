"""A real single-node Slurm (slurmctld + slurmd) in a temporary folder, for the tests marked `slurm`.

The config is the one measured in ../shared/SLURM-LOCAL.md: auth/none (no munge), linuxproc process
tracking (no cgroups), no accounting storage but `jobcomp/filetxt` so `sacct -c` reports finished jobs,
`batch_sched_delay=0` (a job starts within about a second), a short KillWait (a cancel that is ignored
becomes SIGKILL after 3 s) and a MinJobAge long enough that a finished job stays visible to scontrol.

Every cluster gets its own free ports and its own ClusterName, so two test sessions on one host (or two
clusters in one session) never talk to each other's daemons. Everything a cluster starts (daemons,
slurmstepd, the job's processes) carries the cluster's `SLURM_CONF` in its environment; that is how
`leftovers()` finds what is left, and teardown checks it is nothing.

Needs root (slurmd runs jobs as their owner) and Debian's slurmctld, slurmd and slurm-client; otherwise
`slurm_skip_reason()` says which is missing and the fixture skips with that reason. `install_slurm()` (also
`python -m tests.slurm_cluster --install`) installs the packages where it runs as root with apt-get; the
fixture calls it itself only when GANMGR_SLURM_INSTALL=1.

Use: `pytestmark = pytest.mark.slurm` in the test module, then the `slurm` fixture below (module scope;
import it, or wrap `start_test_cluster` in a fixture of your own, as tests/test_slurm_backend.py does), or
`with SlurmCluster.up(tmp) as c:` for a private one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGES = ("slurmctld", "slurmd", "slurm-client")
COMMANDS = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sacct", "sinfo")
PARTITION = "debug"
NODE = "localhost"
KILL_WAIT_S = 3  # scancel: SIGTERM, then SIGKILL this long after (Slurm's default is 30)
MIN_JOB_AGE_S = 600  # finished jobs stay in scontrol/squeue -t all this long (longer than a test module)
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def slurm_skip_reason() -> str | None:
    """Why a real Slurm cannot be started here, or None when it can."""
    if sys.platform != "linux":
        return "the Slurm tests run on Linux only"
    if os.geteuid() != 0:
        return "the Slurm tests need root (slurmd runs jobs as their owner); run them as root"
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if missing:
        return (f"Slurm is not installed ({', '.join(missing)} missing): apt-get install -y "
                f"--no-install-recommends {' '.join(PACKAGES)}, or set GANMGR_SLURM_INSTALL=1 as root")
    return None


def install_slurm(quiet: bool = True) -> str | None:
    """Install Debian's Slurm packages when running as root with apt-get; returns why not, or None.

    The postinst scripts do not start any daemon on the machines we use (policy-rc.d refuses, and there
    is no systemd); the tests start their own.
    """
    if all(shutil.which(c) for c in COMMANDS):
        return None
    if os.geteuid() != 0:
        return "not root: cannot install Slurm"
    apt = shutil.which("apt-get")
    if apt is None:
        return "no apt-get: cannot install Slurm"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    out = subprocess.DEVNULL if quiet else None
    for argv in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
        try:
            r = subprocess.run(argv, env=env, stdout=out, stderr=out, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"{' '.join(argv[:2])} failed: {e}"
        if r.returncode != 0 and argv[1] == "install":
            return f"apt-get install {' '.join(PACKAGES)} exited {r.returncode}"
    return None if all(shutil.which(c) for c in COMMANDS) else "Slurm commands still missing after install"


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free right now (the kernel picks them; a race with another binder is possible
    but harmless here: the daemon fails to start and the fixture reports its log)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class SlurmCluster:
    """One running single-node cluster: its folder, its config and the environment its clients need."""

    root: Path
    name: str
    ctld_port: int
    slurmd_port: int
    env: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def jobcomp(self) -> Path:
        return self.root / "log" / "jobcomp.txt"

    # --- bring-up -----------------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def up(cls, base: Path | None = None) -> Iterator[SlurmCluster]:
        """Start a cluster in a new folder under `base` (or the temp dir) and tear it down afterwards."""
        reason = slurm_skip_reason()
        if reason:
            pytest.skip(reason)
        root = Path(tempfile.mkdtemp(prefix="slurm-", dir=base))
        root.chmod(0o755)  # slurmd and the job (root here) read the config; other users may submit
        ctld, slurmd = free_ports(2)
        cluster = cls(root=root, name=f"gm{os.getpid() % 100000}x{ctld}", ctld_port=ctld, slurmd_port=slurmd)
        # a SIGTERM (CI cancelling the job, `timeout`) would end the process without teardown and leave the
        # daemons running: turn it into KeyboardInterrupt, which pytest and `finally` clean up after
        previous = _term_as_interrupt()
        try:
            cluster.start()
            yield cluster
        finally:
            try:
                cluster.down()
            finally:
                _restore_term(previous)

    def render_conf(self) -> str:
        t = self.root
        lines = {
            "ClusterName": self.name,
            "SlurmctldHost": NODE,
            "SlurmUser": "root",
            "AuthType": "auth/none",
            "CredType": "cred/none",
            "SlurmctldPort": self.ctld_port,
            "SlurmdPort": self.slurmd_port,
            "StateSaveLocation": t / "state",
            "SlurmdSpoolDir": t / "spool",
            "SlurmctldPidFile": t / "run" / "slurmctld.pid",
            "SlurmdPidFile": t / "run" / "slurmd.pid",
            "SlurmctldLogFile": t / "log" / "slurmctld.log",
            "SlurmdLogFile": t / "log" / "slurmd.log",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "JobAcctGatherType": "jobacct_gather/linux",
            "AccountingStorageType": "accounting_storage/none",
            "JobCompType": "jobcomp/filetxt",
            "JobCompLoc": self.jobcomp,
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core_Memory",
            "DefMemPerCPU": 256,
            "SchedulerParameters": "batch_sched_delay=0",
            "MpiDefault": "none",
            "MailProg": "/bin/true",
            "ReturnToService": 2,
            "KillWait": KILL_WAIT_S,
            "MinJobAge": MIN_JOB_AGE_S,
            "SlurmctldDebug": "info",
            "SlurmdDebug": "info",
        }
        out = [f"{k}={v}" for k, v in lines.items()]
        out.append(f"NodeName={NODE} CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=2000 "
                   f"State=UNKNOWN")
        out.append(f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP")
        return "\n".join(out) + "\n"

    def start(self) -> None:
        for sub in ("state", "spool", "log", "run"):
            (self.root / sub).mkdir(mode=0o755, exist_ok=True)
        self.conf.write_text(self.render_conf())
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        t0 = time.monotonic()
        for argv in (["slurmctld", "-f", str(self.conf)], ["slurmd", "-f", str(self.conf), "-N", NODE]):
            r = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise RuntimeError(f"{argv[0]} did not start (exit {r.returncode}): "
                                   f"{(r.stderr or r.stdout).strip()[-500:]}\n{self.log_tail()}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            r = self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False)
            if r.stdout.strip() == "idle":
                self.timings["up_s"] = time.monotonic() - t0
                return
            time.sleep(0.1)
        raise RuntimeError(f"the Slurm node did not become idle in {START_TIMEOUT_S:g} s\n{self.log_tail()}")

    # --- use ----------------------------------------------------------------------------------------
    def run(self, argv: list[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster (argv only)."""
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {r.returncode}: {r.stderr.strip()}")
        return r

    def job_ids(self) -> list[str]:
        """Jobs the controller still holds as pending or running."""
        r = self.run(["squeue", "-h", "-o", "%i"], check=False)
        return [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.root / "log" / name
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(out)

    def leftovers(self) -> list[tuple[int, str]]:
        """(pid, command) of every process that carries this cluster's SLURM_CONF, other than us and our
        ancestors: its daemons, slurmstepd and the jobs' processes."""
        marker = f"SLURM_CONF={self.conf}".encode()
        mine = _ancestors(os.getpid())
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in mine:
                continue
            try:
                env = (entry / "environ").read_bytes()
                if marker not in env.split(b"\0"):
                    continue
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            out.append((int(entry.name), cmd or "?"))
        return out

    # --- teardown -----------------------------------------------------------------------------------
    def down(self) -> None:
        """Cancel every job, wait for them to go, stop slurmd then slurmctld by pid; then check (and
        clean) what is left. Raises RuntimeError naming leftovers, after killing them."""
        if not self.env:
            return
        if self.conf.exists():
            jobs = self.job_ids()
            if jobs:
                self.run(["scancel", *jobs], check=False)  # no slurmstepd may outlive slurmd
                deadline = time.monotonic() + KILL_WAIT_S + STOP_TIMEOUT_S
                while self.job_ids() and time.monotonic() < deadline:
                    time.sleep(0.2)
        for daemon in ("slurmd", "slurmctld"):
            pid = _read_pid(self.root / "run" / f"{daemon}.pid")
            if pid is not None:
                _stop_pid(pid)
        # slurmstepd finishes its last messages after slurmd is gone; give it a moment
        deadline = time.monotonic() + 5
        left = self.leftovers()
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = self.leftovers()
        for pid, _cmd in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.env = {}
        if left:
            raise RuntimeError(f"Slurm teardown left processes behind (killed now): {left}")


def _term_as_interrupt():
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt("SIGTERM")

    return signal.signal(signal.SIGTERM, interrupt)


def _restore_term(previous) -> None:
    import threading

    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _stop_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _ancestors(pid: int) -> set[int]:
    out = {pid}
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        out.add(pid)
    return out


def start_test_cluster(tmp_path_factory) -> Iterator[SlurmCluster]:
    """The body of a cluster fixture: install when GANMGR_SLURM_INSTALL=1, skip with the reason, start, stop."""
    if os.environ.get("GANMGR_SLURM_INSTALL") == "1":
        install_slurm()
    reason = slurm_skip_reason()
    if reason:
        pytest.skip(reason)
    with SlurmCluster.up(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> Iterator[SlurmCluster]:
    """A running single-node cluster for one test module; skipped (with the reason) where it cannot run."""
    yield from start_test_cluster(tmp_path_factory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.slurm_cluster",
                                     description="Install Slurm for the tests marked `slurm`.")
    parser.add_argument("--install", action="store_true", help="apt-get install the Slurm packages (root)")
    args = parser.parse_args(argv)
    if args.install:
        why = install_slurm(quiet=True)
        if why:
            print(f"slurm tests will skip: {why}", file=sys.stderr)
    reason = slurm_skip_reason()
    print(reason or "Slurm is available: the tests marked `slurm` will run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
