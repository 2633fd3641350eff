"""`VizJobs`: the supervisor's job kind for visualization jobs (`python -m engine.compute.viz JOB_DIR`).

They are claimed through `store.viz_jobs.claim_next_viz` in their own slots (setting `viz_max_concurrent`,
default 1) and live the same life as training workers (processes.py): adopted after a supervisor dies,
cancelled with SIGTERM then SIGKILL, settled from their own `end` record (`viz_jobs.viz_outcome`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.control.launcher import spawn_logged
from engine.control.paths import METRICS_FILE, PathError
from engine.control.procs import is_alive, process_start_token
from engine.control.reconcile import viz_is_supervisor_work
from engine.control.records import MetricsTail
from engine.control.runs_root import ensure_run_folder
from engine.control.viz_jobs import VizFold, viz_outcome
from engine.control.viz_spec import viz_argv
from engine.daemon.log import log
from engine.daemon.processes import CPU_NICE, ProcessJobs, Watched, cuda_present, log_header
from engine.daemon.progress import DRAIN_READS
from store import viz_jobs as store_viz
from store.errors import StoreError
from store.lifecycle import ACTIVE_STATUSES
from store.views import RunView, VizJobView


@dataclass(kw_only=True)
class VizProcess(Watched):
    """A running visualization job this supervisor watches."""

    fold: VizFold


def viz_slots(settings: dict[str, Any]) -> int:
    slots = settings.get("viz_max_concurrent", 1)
    return slots if isinstance(slots, int) and not isinstance(slots, bool) and 1 <= slots <= 64 else 1


class VizJobs(ProcessJobs[VizProcess]):
    """Visualization jobs: their own slots, the same life cycle as runs."""

    def has_work(self) -> bool:
        return any(viz_is_supervisor_work(j, self.host)
                   for j in store_viz.list_viz_jobs(self.home, status=ACTIVE_STATUSES))

    def tick(self, settings: dict[str, Any], running: list[RunView]) -> None:
        jobs = store_viz.list_viz_jobs(self.home, status=ACTIVE_STATUSES)
        active = [j for j in jobs if j.status == "running"]
        self.adopt(active)
        self.poll_all({j.id: j for j in active}, settings)
        if not any(j.status == "queued" for j in jobs):
            return  # no write transaction every tick while nothing waits
        slots = viz_slots(settings)
        while (job := store_viz.claim_next_viz(self.home, host=self.host, slots=slots)) is not None:
            self.spawn(job)

    def adopt(self, active: list[VizJobView]) -> None:
        for job in active:
            if job.id in self.watched or job.pid is None or not job.job_dir or job.host not in (None, self.host):
                continue
            if not is_alive(job.pid, job.pid_start):
                continue  # reconcile settles it
            job_dir = Path(job.job_dir)
            self.watch(VizProcess(key=job.id, label=f"viz job {job.id}", pid=job.pid, token=job.pid_start,
                                  folder=job_dir, proc=None, tail=MetricsTail(job_dir / METRICS_FILE),
                                  fold=VizFold(), cancel_requested=job.cancel_requested))
            log(f"viz job {job.id}: adopted pid {job.pid}")

    def spawn(self, job: VizJobView) -> None:
        if not job.job_dir or not Path(job.job_dir).is_dir():
            self._fail(job.id, f"its folder {job.job_dir} is missing")
            return
        try:  # a job_dir edited by hand in the store must not get even a log header outside the roots
            job_dir = ensure_run_folder(self.home, Path(job.job_dir))
        except (PathError, OSError) as e:
            self._fail(job.id, f"its folder cannot be used: {e}")
            return
        device = str(job.params.get("device", "auto"))
        nice = CPU_NICE if device == "cpu" or (device == "auto" and not cuda_present()) else 0
        try:
            log_header(job_dir, f"ganmgr: viz job {job.id} ({job.kind}) started "
                                f"{time.strftime('%Y-%m-%d %H:%M:%S')} on {self.host}")
            proc = spawn_logged(viz_argv(job_dir), job_dir, new_session=True, nice=nice)
        except OSError as e:
            self._fail(job.id, f"could not start: {e}")
            return
        token = process_start_token(proc.pid)
        p = self.watch(VizProcess(key=job.id, label=f"viz job {job.id}", pid=proc.pid, token=token,
                                  folder=job_dir, proc=proc, tail=MetricsTail(job_dir / METRICS_FILE),
                                  fold=VizFold()))
        try:
            store_viz.set_viz_status(self.home, job.id, "running", pid=proc.pid, pid_start=token or "?",
                                      message="starting")
        except StoreError as e:  # cancelled or deleted meanwhile
            p.kill_unrecorded(e)
        log(f"viz job {job.id}: started {job.kind} pid {proc.pid} (nice {nice}) in {job_dir}")

    def _fail(self, job_id: int, why: str) -> None:
        log(f"viz job {job_id}: {why}")
        try:
            store_viz.set_viz_status(self.home, job_id, "failed", error=why, message=f"failed: {why}")
        except StoreError:
            pass

    def flush(self, p: VizProcess) -> None:
        p.fold.dirty = False
        try:
            store_viz.set_viz_status(self.home, p.key, "running", **p.fold.fields())
        except StoreError as e:
            log(f"viz job {p.key}: progress not recorded: {e}")

    def finish(self, p: VizProcess, returncode: int | None) -> None:
        for rec in p.tail.read_backlog(DRAIN_READS):
            p.fold.fold(rec)
        fields = viz_outcome(p.fold, returncode=returncode, cancel_requested=p.cancel_requested,
                             killed_by_us=p.killed_by_us, job_dir=p.folder)
        status = fields.pop("status")
        try:
            store_viz.set_viz_status(self.home, p.key, status, **fields)
        except StoreError as e:
            log(f"viz job {p.key}: status not recorded: {e}")
            return
        log(f"viz job {p.key}: {fields['message']} (exit {returncode})")
