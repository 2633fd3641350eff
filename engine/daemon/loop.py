"""`python -m engine.supervisor --home HOME`: advance the queue of one store, then exit when idle.

One per store (an flock on HOME/supervisor.lock). Every tick (TICK_S) it reconciles liveness, adopts
running workers a dead supervisor left behind, follows each worker's metrics.jsonl into its row, enforces
cancels (SIGTERM to the worker's process group, SIGKILL after the grace period), reaps workers and writes
their terminal status, then starts queued runs while slots are free. It is torch-free and holds no state
that the store and the run folders do not: kill it at any moment and the next one carries on.

Job kinds are pluggable (`JobKind`): `RunJobs` drives training runs, `VizJobs` visualization jobs
(`python -m engine.compute.viz JOB_DIR`, claimed through `store.runs.claim_next_viz` in their own slots), and
`SlurmJobs` (engine/slurm_jobs.py) runs on the Slurm backend: submitted with sbatch, polled, resubmitted.

SIGTERM/SIGINT make the supervisor exit at once and leave its workers running: they lead their own
sessions, and the next supervisor adopts them. Log: HOME/supervisor.log (stdout/stderr, see launcher).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.control.follow import ProgressFold, line_end_offset, outcome
from engine.control.launcher import spawn_logged, spawn_worker
from engine.control.paths import PathError, resolve_home
from engine.control.procs import (
    is_alive,
    kill_leftovers,
    process_start_token,
    signal_verified,
)
from engine.control.reconcile import is_supervisor_work, reconcile, record_artifacts, viz_is_supervisor_work
from engine.control.records import MetricsTail
from engine.control.submit import cancel_grace_s
from engine.control.supervisor_lock import try_lock
from engine.control.viz_jobs import VizFold, viz_outcome
from engine.control.viz_spec import viz_argv
from store import runs as store_runs
from store.errors import StoreError
from store.views import RunView, VizJobView

TICK_S = 0.5  # how often the queue, the workers and cancels are looked at
FLUSH_S = 0.5  # a run's row gets its progress at most this often (2 Hz)
MAX_TICK_FAILURES = 20  # consecutive failed ticks before the supervisor gives up and exits
CPU_NICE = 10  # niceness of a worker that trains on the CPU, so the TUI and the shell stay responsive


def log(msg: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} supervisor[{os.getpid()}] {msg}", flush=True)


class JobKind(Protocol):
    """One kind of job the supervisor schedules (training runs; later visualization jobs)."""

    def owned(self) -> set[int]: ...

    def tick(self, settings: dict[str, Any], running: list[RunView]) -> None: ...

    def busy(self) -> bool:
        """Anything running or queued for this kind (the supervisor exits when no kind is busy)."""
        ...


@dataclass
class Worker:
    """A training worker this supervisor watches: its child, or a live one adopted from a dead supervisor."""

    run_id: int
    pid: int
    token: str | None
    run_dir: Path
    started_at: float | None
    proc: subprocess.Popen | None  # None when adopted: not our child, so exit is seen through liveness
    tail: MetricsTail
    fold: ProgressFold
    gpu: str | None = None
    term_sent_at: float | None = None  # monotonic time of our SIGTERM (cancel)
    killed_by_us: bool = False
    last_flush: float = 0.0
    cancel_requested: bool = False


def cuda_present() -> bool:
    """Whether this node looks like it has an NVIDIA GPU, decided without importing torch.

    CUDA_VISIBLE_DEVICES set to '' or -1 hides every GPU; otherwise the NVIDIA driver's /proc entry or an
    `nvidia-smi` on PATH counts as a GPU. Used only to pick a CPU worker's niceness, so a wrong guess
    costs scheduling priority, never correctness (the worker resolves its device itself).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or shutil.which("nvidia-smi") is not None


def trains_on_cpu(cfg: dict[str, Any], gpus: list[int]) -> bool:
    device = str(cfg.get("device", "auto"))
    if device == "cpu":
        return True
    if device != "auto":
        return False
    return not gpus and not cuda_present()


class RunJobs:
    """Training runs: claim, spawn, follow, cancel, reap."""

    def __init__(self, home: Path, host: str):
        self.home = home
        self.host = host
        self.workers: dict[int, Worker] = {}
        self._rr = 0  # round-robin position in the gpus setting

    def owned(self) -> set[int]:
        return set(self.workers)

    def busy(self) -> bool:
        if self.workers:
            return True
        return any(is_supervisor_work(r, self.host)
                   for r in store_runs.list_runs(self.home, status=("queued", "running")))

    def tick(self, settings: dict[str, Any], running: list[RunView]) -> None:
        by_id = {r.id: r for r in running}
        self.adopt(running)
        grace = cancel_grace_s(settings)
        for w in list(self.workers.values()):
            row = by_id.get(w.run_id)
            if row is not None:
                w.cancel_requested = row.cancel_requested
            self.poll(w, grace)
        self.start_queued(settings)

    # --- adoption -----------------------------------------------------------------------------------
    def adopt(self, running: list[RunView]) -> None:
        """Watch live supervisor workers that no supervisor watches (their supervisor died)."""
        for run in running:
            if run.id in self.workers or run.managed_by != "supervisor" or run.pid is None:
                continue
            if run.host and run.host != self.host:
                continue
            if not is_alive(run.pid, run.pid_start) or not run.run_dir:
                continue  # reconcile settles it
            run_dir = Path(run.run_dir)
            w = Worker(
                run_id=run.id, pid=run.pid, token=run.pid_start, run_dir=run_dir, started_at=run.started_at,
                proc=None, tail=MetricsTail(run_dir / "metrics.jsonl", offset=run.metrics_offset),
                fold=ProgressFold(since=run.started_at), gpu=run.gpu, cancel_requested=run.cancel_requested)
            if run.cancel_requested:
                # asked while no supervisor watched: the asker sent SIGTERM (see submit.cancel_run); keep
                # the grace from now rather than sending a second one
                w.term_sent_at = time.monotonic()
            self.workers[run.id] = w
            log(f"run {run.id}: adopted worker pid {run.pid} (metrics from byte {run.metrics_offset})"
                f"{'; cancel pending, SIGKILL after the grace' if run.cancel_requested else ''}")

    # --- starting -----------------------------------------------------------------------------------
    def start_queued(self, settings: dict[str, Any]) -> None:
        slots = int(settings.get("max_concurrent") or 1)
        gpus = [int(g) for g in settings.get("gpus") or []]
        while True:
            run = store_runs.claim_next(self.home, host=self.host, slots=slots)
            if run is None:
                return
            self.spawn(run, gpus)

    def pick_gpu(self, cfg: dict[str, Any], gpus: list[int]) -> tuple[str | None, dict[str, str]]:
        """The GPU for a new worker and its environment: the least busy of `gpus`, ties in rotation.

        A config that names `cuda:N` keeps its device and sees every GPU; a CPU run gets none.
        """
        device = str(cfg.get("device", "auto"))
        if device.startswith("cuda:"):
            return device.split(":", 1)[1], {}
        if device not in ("auto", "cuda") or not gpus:
            return None, {}
        load = {g: 0 for g in gpus}
        for w in self.workers.values():
            if w.gpu is not None and w.gpu.isdigit() and int(w.gpu) in load:
                load[int(w.gpu)] += 1
        n = len(gpus)
        order = [gpus[(self._rr + i) % n] for i in range(n)]
        g = min(order, key=lambda x: load[x])  # min keeps the first of equals: rotation breaks ties
        self._rr = (gpus.index(g) + 1) % n
        return str(g), {"CUDA_VISIBLE_DEVICES": str(g)}

    def spawn(self, run: RunView, gpus: list[int]) -> None:
        if not run.run_dir:
            self._fail_start(run, "the run has no folder")
            return
        run_dir = Path(run.run_dir)
        gpu, env = self.pick_gpu(run.config, gpus)
        nice = CPU_NICE if trains_on_cpu(run.config, gpus) else 0
        metrics = run_dir / "metrics.jsonl"
        offset = line_end_offset(metrics)
        try:
            _log_header(run_dir, f"ganmgr: attempt started {time.strftime('%Y-%m-%d %H:%M:%S')} on {self.host}"
                                 f"{' GPU ' + gpu if gpu else ''}{f' (nice {nice})' if nice else ''}")
            proc = spawn_worker(self.home, run_dir, new_session=True, nice=nice, env_extra=env)
        except (OSError, PathError) as e:
            self._fail_start(run, f"could not start the worker: {e}")
            return
        token = process_start_token(proc.pid)
        w = Worker(run_id=run.id, pid=proc.pid, token=token, run_dir=run_dir, started_at=run.started_at,
                   proc=proc, tail=MetricsTail(metrics, offset=offset), fold=ProgressFold(since=run.started_at),
                   gpu=gpu)
        self.workers[run.id] = w
        try:
            store_runs.mark_started(self.home, run.id, pid=proc.pid, pid_start=token or "?", gpu=gpu,
                                    host=self.host)
            store_runs.update_progress(self.home, run.id, metrics_offset=offset)
        except StoreError as e:  # the row went away or finished meanwhile: this worker has no business
            log(f"run {run.id}: {e}; stopping the worker just started")
            signal_verified(proc.pid, token, signal.SIGKILL, group=True)
            w.killed_by_us = True
        log(f"run {run.id}: started worker pid {proc.pid}{' on GPU ' + gpu if gpu else ''} "
            f"(nice {nice}) in {run_dir}")

    def _fail_start(self, run: RunView, why: str) -> None:
        log(f"run {run.id}: {why}")
        try:
            store_runs.set_status(self.home, run.id, "failed", message=f"failed: {why}", error=why)
        except StoreError:
            pass

    # --- following ----------------------------------------------------------------------------------
    def poll(self, w: Worker, grace: float) -> None:
        self.follow(w)
        self.enforce_cancel(w, grace)
        returncode, exited = self.exit_status(w)
        if exited:
            self.finish(w, returncode)
        elif w.fold.dirty and time.monotonic() - w.last_flush >= FLUSH_S:
            self.flush(w)

    def follow(self, w: Worker) -> None:
        follow_metrics(self.home, w.run_id, w.tail, w.fold)

    def flush(self, w: Worker) -> None:
        flush_progress(self.home, w.run_id, w.tail, w.fold)
        w.last_flush = time.monotonic()

    def enforce_cancel(self, w: Worker, grace: float) -> None:
        if not w.cancel_requested:
            return
        now = time.monotonic()
        if w.term_sent_at is None:
            w.term_sent_at = now
            sent = signal_verified(w.pid, w.token, signal.SIGTERM, group=True)
            log(f"run {w.run_id}: cancel requested; SIGTERM {'sent to' if sent else 'not needed for'} "
                f"group {w.pid}, SIGKILL in {grace:g} s")
        elif not w.killed_by_us and now - w.term_sent_at >= grace:
            w.killed_by_us = True
            sent = signal_verified(w.pid, w.token, signal.SIGKILL, group=True)
            sent = kill_leftovers(w.pid, not_before=w.token) > 0 or sent
            log(f"run {w.run_id}: still running {grace:g} s after SIGTERM; "
                f"SIGKILL {'sent' if sent else 'not needed'}")

    def exit_status(self, w: Worker) -> tuple[int | None, bool]:
        return process_exit(w.proc, w.pid, w.token, f"run {w.run_id}")

    def finish(self, w: Worker, returncode: int | None) -> None:
        drain_metrics(self.home, w.run_id, w.tail, w.fold)  # whatever the worker wrote last
        del self.workers[w.run_id]
        row = store_runs.get_run(self.home, w.run_id)
        if row is None or row.status != "running":
            log(f"run {w.run_id}: worker exited ({returncode}); row already "
                f"{'deleted' if row is None else row.status}")
            return
        end = w.fold.end
        oc = outcome(end, returncode=returncode, cancel_requested=row.cancel_requested or w.cancel_requested,
                     killed_by_us=w.killed_by_us, log_path=w.run_dir / "log.txt")
        fields = dict(w.fold.fields)
        fields["metrics_offset"] = w.tail.offset
        try:
            store_runs.set_status(self.home, w.run_id, oc.status, message=oc.message, **oc.fields(), **fields)
        except StoreError as e:
            log(f"run {w.run_id}: status not recorded: {e}")
            return
        log(f"run {w.run_id}: {oc.message.splitlines()[0]} (exit {returncode})")

    def stop_tracking(self) -> None:
        """Supervisor shutdown: forget the workers (they keep running and get adopted later)."""
        for w in self.workers.values():
            if w.fold.dirty:
                self.flush(w)
        self.workers.clear()


def follow_metrics(home: Path, run_id: int, tail: MetricsTail, fold: ProgressFold) -> None:
    """Fold the records a worker appended to metrics.jsonl since the last look (artifacts recorded)."""
    for rec in tail.read_new():
        fold.fold(rec)
    if fold.artifacts:
        record_artifacts(home, run_id, fold)


def drain_metrics(home: Path, run_id: int, tail: MetricsTail, fold: ProgressFold) -> None:
    """Everything left in metrics.jsonl (a long backlog is read in 1 MiB slices)."""
    follow_metrics(home, run_id, tail, fold)
    for _ in range(100):
        before = tail.offset
        follow_metrics(home, run_id, tail, fold)
        if tail.offset == before:
            break


def flush_progress(home: Path, run_id: int, tail: MetricsTail, fold: ProgressFold) -> None:
    """The folded progress and the byte offset into the row (a restarted supervisor resumes from it)."""
    fields = dict(fold.fields)
    fields["metrics_offset"] = tail.offset
    try:
        store_runs.update_progress(home, run_id, **fields)
    except StoreError as e:
        log(f"run {run_id}: progress not recorded: {e}")
    fold.dirty = False


def process_exit(proc: subprocess.Popen | None, pid: int, token: str | None, label: str) -> tuple[int | None, bool]:
    """(returncode or None, exited) of a watched process. A child is checked without reaping it first
    (WNOWAIT), so its pid (= its group id) stays reserved while we kill anything left in its group; an
    adopted process (not our child) is seen through liveness, its return code unknown."""
    if proc is not None:
        try:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            info = None
            if proc.poll() is None:
                return None, False
        else:
            if info is None:
                return None, False
        left = kill_leftovers(pid, not_before=token)
        if left:
            log(f"{label}: killed {left} leftover process(es) of its group")
        return proc.wait(), True
    if is_alive(pid, token):
        return None, False
    left = kill_leftovers(pid, not_before=token)
    if left:
        log(f"{label}: killed {left} leftover process(es) of the adopted group")
    return None, True


@dataclass
class VizProcess:
    """A running visualization job (`python -m engine.compute.viz JOB_DIR`) this supervisor watches."""

    job_id: int
    pid: int
    token: str | None
    job_dir: Path
    proc: subprocess.Popen | None  # None when adopted from a dead supervisor
    tail: MetricsTail
    fold: VizFold
    term_sent_at: float | None = None
    killed_by_us: bool = False
    cancel_requested: bool = False
    last_flush: float = 0.0


class VizJobs:
    """Visualization jobs: their own slots (setting `viz_max_concurrent`, default 1), same life cycle as runs."""

    def __init__(self, home: Path, host: str):
        self.home = home
        self.host = host
        self.procs: dict[int, VizProcess] = {}

    def owned(self) -> set[int]:
        return set(self.procs)

    def busy(self) -> bool:
        if self.procs:
            return True
        return any(viz_is_supervisor_work(j, self.host)
                   for j in store_runs.list_viz_jobs(self.home, status=("queued", "running")))

    def tick(self, settings: dict[str, Any], running: list[RunView]) -> None:
        jobs = store_runs.list_viz_jobs(self.home, status=("queued", "running"))
        active = [j for j in jobs if j.status == "running"]
        self.adopt(active)
        by_id = {j.id: j for j in active}
        grace = cancel_grace_s(settings)
        for p in list(self.procs.values()):
            row = by_id.get(p.job_id)
            if row is not None:
                p.cancel_requested = row.cancel_requested
            self.poll(p, grace)
        slots = settings.get("viz_max_concurrent", 1)
        slots = slots if isinstance(slots, int) and not isinstance(slots, bool) and 1 <= slots <= 64 else 1
        if not any(j.status == "queued" for j in jobs):
            return  # no write transaction every tick while nothing waits
        while (job := store_runs.claim_next_viz(self.home, host=self.host, slots=slots)) is not None:
            self.spawn(job)

    def adopt(self, active: list[VizJobView]) -> None:
        for job in active:
            if job.id in self.procs or job.pid is None or not job.job_dir or job.host not in (None, self.host):
                continue
            if not is_alive(job.pid, job.pid_start):
                continue  # reconcile settles it
            job_dir = Path(job.job_dir)
            self.procs[job.id] = VizProcess(job.id, job.pid, job.pid_start, job_dir, None,
                                            MetricsTail(job_dir / "metrics.jsonl"), VizFold(),
                                            cancel_requested=job.cancel_requested)
            log(f"viz job {job.id}: adopted pid {job.pid}")

    def spawn(self, job: VizJobView) -> None:
        if not job.job_dir or not Path(job.job_dir).is_dir():
            self._fail(job.id, f"its folder {job.job_dir} is missing")
            return
        job_dir = Path(job.job_dir)
        device = str(job.params.get("device", "auto"))
        nice = CPU_NICE if device == "cpu" or (device == "auto" and not cuda_present()) else 0
        try:
            _log_header(job_dir, f"ganmgr: viz job {job.id} ({job.kind}) started "
                                 f"{time.strftime('%Y-%m-%d %H:%M:%S')} on {self.host}")
            proc = spawn_logged(viz_argv(job_dir), job_dir, new_session=True, nice=nice)
        except OSError as e:
            self._fail(job.id, f"could not start: {e}")
            return
        token = process_start_token(proc.pid)
        p = VizProcess(job.id, proc.pid, token, job_dir, proc, MetricsTail(job_dir / "metrics.jsonl"), VizFold())
        self.procs[job.id] = p
        try:
            store_runs.set_viz_status(self.home, job.id, "running", pid=proc.pid, pid_start=token or "?",
                                      message="starting")
        except StoreError as e:  # cancelled or deleted meanwhile
            log(f"viz job {job.id}: {e}; stopping the process just started")
            signal_verified(proc.pid, token, signal.SIGKILL, group=True)
            p.killed_by_us = True
        log(f"viz job {job.id}: started {job.kind} pid {proc.pid} (nice {nice}) in {job_dir}")

    def _fail(self, job_id: int, why: str) -> None:
        log(f"viz job {job_id}: {why}")
        try:
            store_runs.set_viz_status(self.home, job_id, "failed", error=why, message=f"failed: {why}")
        except StoreError:
            pass

    def poll(self, p: VizProcess, grace: float) -> None:
        for rec in p.tail.read_new():
            p.fold.fold(rec)
        if p.cancel_requested:
            now = time.monotonic()
            if p.term_sent_at is None:
                p.term_sent_at = now
                signal_verified(p.pid, p.token, signal.SIGTERM, group=True)
                log(f"viz job {p.job_id}: cancel requested; SIGTERM sent")
            elif not p.killed_by_us and now - p.term_sent_at >= grace:
                p.killed_by_us = True
                signal_verified(p.pid, p.token, signal.SIGKILL, group=True)
                kill_leftovers(p.pid, not_before=p.token)
                log(f"viz job {p.job_id}: SIGKILL after {grace:g} s")
        returncode, exited = process_exit(p.proc, p.pid, p.token, f"viz job {p.job_id}")
        if exited:
            self.finish(p, returncode)
        elif p.fold.dirty and time.monotonic() - p.last_flush >= FLUSH_S:
            p.fold.dirty = False
            p.last_flush = time.monotonic()
            try:
                store_runs.set_viz_status(self.home, p.job_id, "running", **p.fold.fields())
            except StoreError as e:
                log(f"viz job {p.job_id}: progress not recorded: {e}")

    def finish(self, p: VizProcess, returncode: int | None) -> None:
        for _ in range(100):
            before = p.tail.offset
            for rec in p.tail.read_new():
                p.fold.fold(rec)
            if p.tail.offset == before:
                break
        del self.procs[p.job_id]
        fields = viz_outcome(p.fold, returncode=returncode, cancel_requested=p.cancel_requested,
                             killed_by_us=p.killed_by_us, job_dir=p.job_dir)
        status = fields.pop("status")
        try:
            store_runs.set_viz_status(self.home, p.job_id, status, **fields)
        except StoreError as e:
            log(f"viz job {p.job_id}: status not recorded: {e}")
            return
        log(f"viz job {p.job_id}: {fields['message']} (exit {returncode})")

    def stop_tracking(self) -> None:
        self.procs.clear()


class Supervisor:
    def __init__(self, home: Path, tick_s: float = TICK_S):
        self.home = home
        self.tick_s = tick_s
        self.host = socket.gethostname()
        self.runs = RunJobs(home, self.host)
        self.viz = VizJobs(home, self.host)
        from engine.daemon.slurm_runs import (
            SlurmJobs,  # here: engine.daemon.slurm_runs imports this module's helpers
        )

        self.slurm = SlurmJobs(home, self.host)
        self.kinds: list[JobKind] = [self.runs, self.viz, self.slurm]
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
        try:
            while not self.stopping:
                try:
                    self.tick()
                    idle = not any(k.busy() for k in self.kinds)
                    failures = 0
                except Exception:  # one bad tick (a full disk, a locked db) must not orphan the queue
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
            self.runs.stop_tracking()
            self.viz.stop_tracking()
            self.slurm.stop_tracking()
            log("stopping on a signal; the workers keep running and the next supervisor adopts them")
            return 0
        finally:
            if fd is not None:
                os.close(fd)

    def tick(self) -> None:
        settings = store_runs.get_settings(self.home)
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

    def _sleep(self) -> None:
        end = time.monotonic() + self.tick_s
        while not self.stopping and time.monotonic() < end:
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    def _on_stop(self, signum: int, _frame: Any) -> None:
        self.stopping = True


def _log_header(run_dir: Path, text: str) -> None:
    fd = os.open(run_dir / "log.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, f"--- {text} ---\n".encode())
    finally:
        os.close(fd)


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
