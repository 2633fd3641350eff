"""`RunJobs`: the supervisor's job kind for training runs on this machine (`python -m engine.worker RUN_DIR`).

Every tick it adopts live workers a dead supervisor left behind, follows each worker's metrics.jsonl into
its row, enforces cancels, reaps workers and writes their terminal status (`follow.outcome`: the worker's
own `end` record wins), then claims queued runs while slots (`max_concurrent`) are free and starts each on
the least busy GPU of the `gpus` setting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.control.follow import ProgressFold, outcome
from engine.control.launcher import spawn_worker
from engine.control.paths import LOG_FILE, METRICS_FILE, PathError
from engine.control.procs import is_alive, process_start_token
from engine.control.reconcile import is_supervisor_work
from engine.control.records import MetricsTail, line_end_offset
from engine.control.runs_root import ensure_run_folder
from engine.daemon.log import log
from engine.daemon.processes import CPU_NICE, ProcessJobs, Watched, cuda_present, log_header
from engine.daemon.progress import (
    drain_metrics,
    fail_unstarted,
    flush_progress,
    follow_metrics,
    record_end,
    row_to_settle,
)
from engine.daemon.stall import StallWatch
from store import runs as store_runs
from store.errors import StoreError
from store.lifecycle import ACTIVE_STATUSES
from store.views import RunView


@dataclass(kw_only=True)
class Worker(Watched):
    """A training worker: its run's attempt started at `started_at`, on `gpu` (None: no GPU pinned)."""

    fold: ProgressFold
    started_at: float | None
    gpu: str | None = None
    stall: StallWatch | None = None  # the `stalled` flag (engine/daemon/stall.py)


def trains_on_cpu(cfg: dict[str, Any], gpus: list[int]) -> bool:
    device = str(cfg.get("device", "auto"))
    if device == "cpu":
        return True
    if device != "auto":
        return False
    return not gpus and not cuda_present()


class RunJobs(ProcessJobs[Worker]):
    """Training runs: claim, spawn, follow, cancel, reap."""

    def __init__(self, home: Path, host: str):
        super().__init__(home, host)
        self._rr = 0  # round-robin position in the gpus setting

    def has_work(self) -> bool:
        return any(is_supervisor_work(r, self.host)
                   for r in store_runs.list_runs(self.home, status=ACTIVE_STATUSES))

    def tick(self, settings: dict[str, Any], running: list[RunView]) -> None:
        self.adopt(running)
        self.poll_all({r.id: r for r in running}, settings)
        self.start_queued(settings)

    # --- adoption -----------------------------------------------------------------------------------
    def adopt(self, running: list[RunView]) -> None:
        """Watch live supervisor workers that no supervisor watches (their supervisor died)."""
        for run in running:
            if run.id in self.watched or run.managed_by != "supervisor" or run.pid is None:
                continue
            if run.host and run.host != self.host:
                continue
            if not is_alive(run.pid, run.pid_start) or not run.run_dir:
                continue  # reconcile settles it
            run_dir = Path(run.run_dir)
            w = self.watch(Worker(
                key=run.id, label=f"run {run.id}", pid=run.pid, token=run.pid_start, folder=run_dir, proc=None,
                tail=MetricsTail(run_dir / METRICS_FILE, offset=run.metrics_offset),
                fold=ProgressFold(since=run.started_at), started_at=run.started_at, gpu=run.gpu,
                cancel_requested=run.cancel_requested, stall=StallWatch.for_config(run.config)))
            if run.cancel_requested:
                # asked while no supervisor watched: the asker sent SIGTERM (see submit.cancel_run); keep
                # the grace from now rather than sending a second one
                w.term_sent_at = time.monotonic()
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
        for w in self.watched.values():
            if w.gpu is not None and w.gpu.isdigit() and int(w.gpu) in load:
                load[int(w.gpu)] += 1
        n = len(gpus)
        order = [gpus[(self._rr + i) % n] for i in range(n)]
        g = min(order, key=lambda x: load[x])  # min keeps the first of equals: rotation breaks ties
        self._rr = (gpus.index(g) + 1) % n
        return str(g), {"CUDA_VISIBLE_DEVICES": str(g)}

    def spawn(self, run: RunView, gpus: list[int]) -> None:
        if not run.run_dir:
            fail_unstarted(self.home, run.id, "the run has no folder")
            return
        try:  # a run_dir edited by hand in the store must not get even a log header outside the roots
            run_dir = ensure_run_folder(self.home, Path(run.run_dir))
        except (PathError, OSError) as e:
            fail_unstarted(self.home, run.id, f"its folder cannot be used: {e}")
            return
        gpu, env = self.pick_gpu(run.config, gpus)
        nice = CPU_NICE if trains_on_cpu(run.config, gpus) else 0
        metrics = run_dir / METRICS_FILE
        offset = line_end_offset(metrics)
        try:
            log_header(run_dir, f"ganmgr: attempt started {time.strftime('%Y-%m-%d %H:%M:%S')} on {self.host}"
                                f"{' GPU ' + gpu if gpu else ''}{f' (nice {nice})' if nice else ''}")
            proc = spawn_worker(self.home, run_dir, new_session=True, nice=nice, env_extra=env)
        except (OSError, PathError) as e:
            fail_unstarted(self.home, run.id, f"could not start the worker: {e}")
            return
        token = process_start_token(proc.pid)
        w = self.watch(Worker(key=run.id, label=f"run {run.id}", pid=proc.pid, token=token, folder=run_dir,
                              proc=proc, tail=MetricsTail(metrics, offset=offset),
                              fold=ProgressFold(since=run.started_at), started_at=run.started_at, gpu=gpu,
                              stall=StallWatch.for_config(run.config)))
        try:
            store_runs.mark_started(self.home, run.id, pid=proc.pid, pid_start=token or "?", gpu=gpu,
                                    host=self.host)
            store_runs.update_progress(self.home, run.id, metrics_offset=offset)
        except StoreError as e:  # the row went away or finished meanwhile: this worker has no business
            w.kill_unrecorded(e)
        log(f"run {run.id}: started worker pid {proc.pid}{' on GPU ' + gpu if gpu else ''} "
            f"(nice {nice}) in {run_dir}")

    # --- following ----------------------------------------------------------------------------------
    def follow(self, w: Worker) -> None:
        follow_metrics(self.home, w.key, w.tail, w.fold)
        if w.stall is not None:
            w.stall.check(self.home, w.key, w.tail.offset, w.fold)

    def flush(self, w: Worker) -> None:
        flush_progress(self.home, w.key, w.tail, w.fold)

    def finish(self, w: Worker, returncode: int | None) -> None:
        drain_metrics(self.home, w.key, w.tail, w.fold)  # whatever the worker wrote last
        w.fold.fields["stalled_since"] = None  # the flag is about a live process
        row = row_to_settle(self.home, w.key, f"worker exited ({returncode})")
        if row is None:
            return
        oc = outcome(w.fold.end, returncode=returncode,
                     cancel_requested=row.cancel_requested or w.cancel_requested,
                     killed_by_us=w.killed_by_us, log_path=w.folder / LOG_FILE)
        record_end(self.home, w.key, oc.status, oc.message, f"exit {returncode}",
                   **oc.fields(), **w.fold.fields, metrics_offset=w.tail.offset)

    def stop_tracking(self) -> None:
        """Supervisor shutdown: record what was folded, then forget the workers (they get adopted later)."""
        for w in self.watched.values():
            if w.fold.dirty:
                self.flush(w)
        super().stop_tracking()
