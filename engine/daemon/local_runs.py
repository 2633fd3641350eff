"""`RunJobs`: the supervisor's job kind for training runs on this machine (`python -m engine.worker RUN_DIR`).

Every tick it adopts live workers a dead supervisor left behind, follows each worker's metrics.jsonl into
its row, enforces cancels, reaps workers and writes their terminal status (`follow.outcome`: the worker's
own `end` record wins), then claims queued runs while slots (`max_concurrent`) are free and starts each on
the least busy GPU of the `gpus` setting.

A run that asks for GPU memory (`gpu_mem`, or learned: a resumed run's own measured peak plus a margin) is
packed instead: before it is claimed, NVML says how much memory each GPU has free now and
`engine.control.gpu_packing.place` picks the GPU (several such runs share one when they fit) or gives the
reason it waits, which the row shows ("waiting: GPU 0 has 3.1 GB free, run needs 6 GB"). The queue keeps its
order: while the head waits, the runs behind it wait too. Without NVML a request is ignored (said once in the
supervisor's log) and the run gets a GPU as any other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.control import nvml
from engine.control.eval_summary import run_quality
from engine.control.follow import ProgressFold, outcome
from engine.control.gpu_packing import Decision, GpuFree, Placed, learned_gpu_mem_gb, place, request_mb
from engine.control.launcher import spawn_worker
from engine.control.paths import LOG_FILE, METRICS_FILE, PathError
from engine.control.procs import is_alive, process_start_token
from engine.control.reconcile import is_supervisor_work
from engine.control.records import MetricsTail, line_end_offset
from engine.control.resource_use import ResourceUse, run_resources
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
    request_mb: float | None = None  # the GPU memory it was packed by (None: a whole GPU, or none)


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
        self._waits: dict[int, str] = {}  # run id -> the wait reason its row shows
        self._nvml_said = False
        self.nvml_lib: Any = None  # NVML's module (pynvml); a test's double where NVML cannot run

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
                fold=resumed_fold(run), started_at=run.started_at, gpu=run.gpu,
                cancel_requested=run.cancel_requested, stall=StallWatch.for_config(run.config),
                request_mb=gpu_request_mb(run)))
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
        while len(self.watched) < slots:
            head = next((r for r in store_runs.queued_in_order(self.home) if r.managed_by == "supervisor"), None)
            if head is None:
                return
            decision = self.placement(head, gpus)
            if decision is not None and decision.gpu is None:
                self.show_wait(head, decision.why)
                return  # the queue keeps its order: the runs behind the head wait with it
            run = store_runs.claim_next(self.home, host=self.host, slots=slots, only=head.id)
            if run is None:
                return  # the slots are full, or the queue changed meanwhile: the next tick decides again
            self._waits.pop(run.id, None)
            self.spawn(run, gpus, packed=decision.gpu if decision is not None else None)

    # --- packing by GPU memory ------------------------------------------------------------------------
    def placement(self, run: RunView, gpus: list[int]) -> Decision | None:
        """Where a run that asks for GPU memory starts now (or why it waits); None: not packed (no request,
        a CPU run or a pinned device, or no NVML here)."""
        need = gpu_request_mb(run)
        device = str(run.config.get("device", "auto"))
        if need is None or device == "cpu" or device.startswith("cuda:"):
            return None
        try:
            infos = nvml.read_gpus(lib=self.nvml_lib, processes=True)
        except nvml.NvmlUnavailable as e:
            if not self._nvml_said:
                self._nvml_said = True
                log(f"run {run.id}: gpu_mem is not used for placement here ({e}); whole-GPU assignment")
            return None
        if trains_on_cpu(run.config, gpus) and not infos:
            return None
        free = [GpuFree(i.index, i.mem_free_mb, i.mem_total_mb) for i in infos if not gpus or i.index in gpus]
        used = {p.pid: p.used_mb for i in infos for p in i.processes if p.used_mb is not None}
        placed = [Placed(int(w.gpu), w.request_mb, used.get(w.pid)) for w in self.watched.values()
                  if w.gpu is not None and w.gpu.isdigit()]
        return place(need, free, placed)

    def show_wait(self, run: RunView, why: str) -> None:
        """The wait reason on the row (written when it changes) and in the supervisor's log."""
        if self._waits.get(run.id) == why:
            return
        self._waits[run.id] = why
        log(f"run {run.id}: {why}")
        try:
            store_runs.set_wait_reason(self.home, run.id, why)
        except StoreError as e:
            log(f"run {run.id}: could not record the wait reason: {e}")

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

    def spawn(self, run: RunView, gpus: list[int], packed: int | None = None) -> None:
        if not run.run_dir:
            fail_unstarted(self.home, run.id, "the run has no folder")
            return
        try:  # a run_dir edited by hand in the store must not get even a log header outside the roots
            run_dir = ensure_run_folder(self.home, Path(run.run_dir))
        except (PathError, OSError) as e:
            fail_unstarted(self.home, run.id, f"its folder cannot be used: {e}")
            return
        if packed is not None:  # by UUID: CUDA's and NVML's index orders can differ
            gpu, env = str(packed), {"CUDA_VISIBLE_DEVICES": gpu_uuid(packed, self.nvml_lib) or str(packed)}
        else:
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
                              fold=resumed_fold(run), started_at=run.started_at, gpu=gpu,
                              stall=StallWatch.for_config(run.config),
                              request_mb=gpu_request_mb(run) if packed is not None else None))
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
            w.stall.check(self.home, w.key, w.fold.loop_records, w.fold)

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


def gpu_request_mb(run: RunView) -> float | None:
    """The GPU memory a run asks for: its config's `gpu_mem`, else (a resumed run) the peak its earlier
    attempts measured plus a margin; None: the whole-GPU default."""
    asked = request_mb(run.config.get("gpu_mem"))
    if asked is not None:
        return asked
    used = run_resources(run.last_metrics)
    learned = learned_gpu_mem_gb(used.get("peak_gpu_mem_mb"), used.get("gpu_mem_total_mb"))
    return request_mb(learned)


def resumed_fold(run: RunView) -> ProgressFold:
    """The fold of a new attempt: its resources summary continues the row's (a finished run keeps its peak)."""
    fold = ProgressFold(since=run.started_at)
    fold.resources = ResourceUse.from_dict(run_resources(run.last_metrics))
    fold.quality = run_quality(run.last_metrics)  # the best eval values over every attempt
    return fold


def gpu_uuid(index: int, lib: Any = None) -> str | None:
    try:
        return nvml.read_gpu(index, lib).uuid
    except nvml.NvmlUnavailable:
        return None
