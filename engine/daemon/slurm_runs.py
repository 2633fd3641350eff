"""`SlurmJobs`: the supervisor's job kind for runs on the Slurm backend (torch-free).

The store and the run folders hold everything, so any supervisor beside the store can pick the work up:
- a queued run with `managed_by='slurm'` is claimed (`store.runs.claim_next_slurm`: it becomes `running`
  with cluster state SUBMITTING), its RUN_DIR/job.sbatch is written and submitted (`SlurmBackend.submit`),
  and the job id is recorded as its first segment;
- every `slurm_poll_s` (setting, default 5 s) one `squeue` asks about every active job; scontrol and then
  sacct answer for jobs squeue no longer lists (see engine/daemon/backends/slurm.py);
- every tick the worker's metrics.jsonl (on the shared filesystem) is folded into the row exactly as for a
  local run (`follow_metrics`/`flush_progress` in engine/daemon/progress.py);
- a cancel request is passed on once with scancel (the worker checkpoints on Slurm's SIGTERM);
- a finished job either continues in a new job from checkpoints/last.pt (`resubmit_reason`: the wall-time
  warning, TIMEOUT, preemption or a node failure, up to `max_segments`) or settles the row.
Each segment's start and end is a line in the run's history (run_events).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.control.errors import BackendError
from engine.control.eval_summary import run_quality
from engine.control.follow import ProgressFold, log_tail, outcome
from engine.control.paths import LOG_FILE, METRICS_FILE, PathError
from engine.control.records import MetricsTail, attempt_end, line_end_offset
from engine.control.runs_root import ensure_run_folder, runs_root
from engine.daemon.backends.base import Backend, ClusterState, resubmit_reason
from engine.daemon.backends.slurm import SlurmBackend
from engine.daemon.log import log
from engine.daemon.progress import (
    FLUSH_S,
    drain_metrics,
    fail_unstarted,
    flush_progress,
    follow_metrics,
    record_end,
    row_to_settle,
)
from store import runs as store_runs
from store.errors import StoreError
from store.lifecycle import ACTIVE_STATUSES
from store.views import RunView

DEFAULT_POLL_S = 5.0
DEFAULT_MAX_SEGMENTS = 20
CANCEL_RETRY_S = 5.0


@dataclass
class ClusterRun:
    """One run whose current segment is a cluster job this supervisor follows."""

    run_id: int
    run_dir: Path
    job_id: str
    raw_id: str | None
    tail: MetricsTail
    fold: ProgressFold
    cluster_state: str | None = None
    cluster_reason: str | None = None
    cancel_sent: bool = False
    cancel_retry_at: float = 0.0  # after a failed scancel: when to try again
    last_flush: float = 0.0
    unknown_polls: int = 0


def poll_interval(settings: dict[str, Any]) -> float:
    value = settings.get("slurm_poll_s", DEFAULT_POLL_S)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return float(value) if ok else DEFAULT_POLL_S


def max_segments_for(run: RunView, settings: dict[str, Any]) -> int:
    for value in (run.max_segments, settings.get("max_segments")):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    return DEFAULT_MAX_SEGMENTS


class SlurmJobs:
    """Runs on Slurm: submit, poll, follow metrics, cancel, resubmit the next segment, settle."""

    UNKNOWN_LIMIT = 12  # polls a job may stay unknown to the cluster before the run is marked lost

    def __init__(self, home: Path, host: str, backend: Backend | None = None):
        self.home = home
        self.host = host
        # one sacct try per poll: the supervisor asks again next poll (UNKNOWN_LIMIT polls), so a tick is
        # never held up by sacct's lag for every finished job at once
        self.backend = backend if backend is not None else SlurmBackend(sacct_tries=1)
        self.runs: dict[int, ClusterRun] = {}
        self._last_poll = 0.0

    def owned(self) -> set[int]:
        return set(self.runs)

    def busy(self) -> bool:
        if self.runs:
            return True
        # a held sweep row (its `ganmgr sweep` still writing, or killed meanwhile) is no work yet
        return any(r.cluster_state != store_runs.HELD
                   for r in store_runs.list_runs(self.home, status=ACTIVE_STATUSES, backend="slurm"))

    def tick(self, settings: dict[str, Any], running: list[RunView]) -> None:
        mine = [r for r in running if r.managed_by == "slurm"]
        self.adopt(mine)
        by_id = {r.id: r for r in mine}
        # a claim is a write transaction: only while a Slurm run waits, not every tick of a days-long job
        while store_runs.list_runs(self.home, status="queued", backend="slurm", limit=1) and \
                (run := store_runs.claim_next_slurm(self.home, host=self.host)) is not None:
            if run.sweep:
                self.submit_sweep(run)
            else:
                self.submit(run)
        for cr in list(self.runs.values()):
            row = by_id.get(cr.run_id)
            follow_metrics(self.home, cr.run_id, cr.tail, cr.fold)
            if row is not None and row.cancel_requested and not cr.cancel_sent \
                    and time.monotonic() >= cr.cancel_retry_at:
                self.cancel(cr)
            if cr.fold.dirty and time.monotonic() - cr.last_flush >= FLUSH_S:
                flush_progress(self.home, cr.run_id, cr.tail, cr.fold)
                cr.last_flush = time.monotonic()
        if self.runs and time.monotonic() - self._last_poll >= poll_interval(settings):
            self._last_poll = time.monotonic()
            self.poll(settings)

    # --- adoption and submission --------------------------------------------------------------------
    def adopt(self, mine: list[RunView]) -> None:
        """Follow running Slurm rows nobody here follows (a restarted supervisor; the job keeps its id)."""
        for run in mine:
            if run.id in self.runs or self._folder(run) is None:
                continue
            if not run.cluster_job_id:
                if run.cancel_requested:  # claimed, never submitted, and now cancelled: nothing to scancel
                    self._settle_unsubmitted(run.id)
                    continue
                # claimed, but the supervisor stopped before sbatch answered: submit (again)
                self.submit(run)
                continue
            self.runs[run.id] = self._track(run, run.cluster_job_id, run.cluster_raw_id, run.metrics_offset,
                                            run.segment_started_at)
            # a cancel requested while no supervisor followed the job is sent now (submit.cancel_run only
            # records it and starts a supervisor), so exactly one scancel goes out
            log(f"run {run.id}: following Slurm job {run.cluster_job_id} (segment {run.segments})")

    def _settle_unsubmitted(self, run_id: int) -> None:
        try:
            store_runs.set_status(self.home, run_id, "cancelled", message="cancelled before it was submitted")
        except StoreError as e:
            log(f"run {run_id}: {e}")

    def _track(self, run: RunView, job_id: str, raw_id: str | None, offset: int, since: float | None) -> ClusterRun:
        run_dir = Path(run.run_dir or "")
        return ClusterRun(run_id=run.id, run_dir=run_dir, job_id=job_id, raw_id=raw_id,
                          tail=MetricsTail(run_dir / METRICS_FILE, offset=offset),
                          fold=ProgressFold(since=since, quality=run_quality(run.last_metrics)),
                          cluster_state=run.cluster_state,
                          cluster_reason=run.cluster_reason)

    def _folder(self, run: RunView) -> Path | None:
        """The run's folder, checked inside the store's runs roots (else the run fails, saying why)."""
        try:
            return ensure_run_folder(self.home, Path(run.run_dir or ""))
        except (PathError, OSError) as e:
            fail_unstarted(self.home, run.id, f"its folder cannot be used: {e}" if run.run_dir else "the run has no folder")
            return None

    def submit(self, run: RunView) -> None:
        run_dir = self._folder(run)
        if run_dir is None:
            return
        offset = line_end_offset(run_dir / METRICS_FILE)
        try:
            job = self.backend.submit(run_dir, run.backend_options or None)
        except BackendError as e:
            fail_unstarted(self.home, run.id, f"could not submit to Slurm: {e}")
            return
        try:
            view = store_runs.record_submission(self.home, run.id, job,
                                                message=f"segment 1: Slurm job {job} submitted")
        except Exception as e:  # cancelled or deleted meanwhile, or the store failed: no job may run unrecorded
            log(f"run {run.id}: {e}; cancelling Slurm job {job}")
            self._scancel(job)
            return
        self._set_offset(run.id, offset)
        self.runs[run.id] = self._track(view, job, None, offset, view.segment_started_at)
        log(f"run {run.id}: submitted Slurm job {job} ({run_dir / 'job.sbatch'})")

    def submit_sweep(self, first: RunView) -> None:
        """The queued runs of one sweep as ONE job array (the first run's options apply to every task);
        each task's id (`A_i`) is its run's job. A task that hits the limit continues as a plain job."""
        runs = [first]
        while (more := store_runs.claim_next_slurm(self.home, host=self.host, sweep=first.sweep)) is not None:
            runs.append(more)
        if len(runs) == 1 or not isinstance(self.backend, SlurmBackend):
            for run in runs:
                self.submit(run)
            return
        folders = [(r, self._folder(r)) for r in runs]
        runs = [r for r, d in folders if d is not None]
        dirs = [d for _, d in folders if d is not None]
        if not runs:
            return
        offsets = [line_end_offset(d / METRICS_FILE) for d in dirs]
        array_dir = runs_root(self.home) / "arrays" / f"{first.sweep}-{first.id}"  # compute nodes read it
        try:
            jobs = self.backend.submit_array(dirs, first.backend_options or None, array_dir=array_dir)
        except BackendError as e:
            for r in runs:
                fail_unstarted(self.home, r.id, f"could not submit the sweep's array to Slurm: {e}")
            return
        for run, job, offset in zip(runs, jobs, offsets, strict=True):
            try:
                view = store_runs.record_submission(
                    self.home, run.id, job, message=f"segment 1: Slurm array task {job} submitted "
                                                    f"(sweep {first.sweep}, {len(jobs)} tasks)")
            except Exception as e:  # as in submit: no task may run unrecorded
                log(f"run {run.id}: {e}; cancelling Slurm task {job}")
                self._scancel(job)
                continue
            self._set_offset(run.id, offset)
            self.runs[run.id] = self._track(view, job, None, offset, view.segment_started_at)
        log(f"sweep {first.sweep}: submitted {len(jobs)} runs as Slurm array {jobs[0].split('_')[0]} "
            f"({array_dir / 'array.sbatch'})")

    # --- cancel ----------------------------------------------------------------------------------------
    def cancel(self, cr: ClusterRun) -> None:
        """scancel once; a failed scancel (controller restarting) is tried again every few seconds."""
        if self._scancel(cr.job_id):
            cr.cancel_sent = True
            log(f"run {cr.run_id}: cancel requested; scancel {cr.job_id} sent")
        else:
            cr.cancel_retry_at = time.monotonic() + CANCEL_RETRY_S

    def _scancel(self, job_id: str) -> bool:
        try:
            self.backend.cancel(job_id)
        except BackendError as e:
            log(f"scancel {job_id}: {e}")
            return False
        return True

    def _set_offset(self, run_id: int, offset: int) -> None:
        """Where the new segment's records start in metrics.jsonl (a restarted supervisor reads on from it)."""
        try:
            store_runs.update_progress(self.home, run_id, metrics_offset=offset)
        except StoreError as e:
            log(f"run {run_id}: metrics offset not recorded: {e}")

    # --- polling ---------------------------------------------------------------------------------------
    def poll(self, settings: dict[str, Any]) -> None:
        ids = [cr.job_id for cr in self.runs.values()]
        raw_ids = {cr.job_id: cr.raw_id for cr in self.runs.values() if cr.raw_id}
        try:
            states = self.backend.states(ids, raw_ids=raw_ids) if isinstance(self.backend, SlurmBackend) else \
                {j: self.backend.state(j) for j in ids}
        except BackendError as e:
            log(f"Slurm did not answer: {e}")
            return
        for cr in list(self.runs.values()):
            state = states.get(cr.job_id)
            if state is None:
                continue
            if state.raw_id:
                cr.raw_id = state.raw_id
            if state.status == "unknown":
                cr.unknown_polls += 1
                if cr.unknown_polls < self.UNKNOWN_LIMIT:
                    continue
            elif state.active:
                cr.unknown_polls = 0
                self._record_live(cr, state)
                continue
            self.finish(cr, state, settings)

    def _record_live(self, cr: ClusterRun, state: ClusterState) -> None:
        reason = state.reason if state.reason not in (None, "None", "(null)") else None
        if (state.cluster_state, reason) == (cr.cluster_state, cr.cluster_reason):
            return
        first_run = state.status == "running" and cr.cluster_state in (None, "SUBMITTING", "PENDING")
        cr.cluster_state, cr.cluster_reason = state.cluster_state, reason
        try:
            store_runs.update_cluster_state(self.home, cr.run_id, state=state.cluster_state, reason=reason,
                                            raw_id=state.raw_id)
            if first_run:
                store_runs.add_event(self.home, cr.run_id, "running", f"Slurm job {cr.job_id} is running")
        except StoreError as e:
            log(f"run {cr.run_id}: cluster state not recorded: {e}")

    # --- the end of a segment --------------------------------------------------------------------------
    def finish(self, cr: ClusterRun, state: ClusterState, settings: dict[str, Any]) -> None:
        drain_metrics(self.home, cr.run_id, cr.tail, cr.fold)
        flush_progress(self.home, cr.run_id, cr.tail, cr.fold)
        del self.runs[cr.run_id]
        row = row_to_settle(self.home, cr.run_id, f"Slurm job {cr.job_id} ended")
        if row is None:
            return
        metrics = cr.run_dir / METRICS_FILE
        end = cr.fold.end or attempt_end(metrics, row.segment_started_at)
        end_status = end.get("status") if end else None
        outside = state.status == "cancelled" and not row.cancel_requested  # an scancel not from ganmgr
        if end_status == "cancelled" and not row.cancel_requested and not outside:
            said = "the worker checkpointed on the wall-time warning"
        else:
            said = f"the worker says {end_status}" if end_status else "no end record"
        try:
            store_runs.add_event(self.home, row.id, "running", f"segment {row.segments} ended at epoch "
                                 f"{row.epoch}: {said} (Slurm: {state.describe()})")
        except StoreError:
            pass
        limit = max_segments_for(row, settings)
        why = resubmit_reason(state, end, checkpoint_exists=(cr.run_dir / "checkpoints" / "last.pt").is_file(),
                              cancel_requested=row.cancel_requested, segments_done=row.segments,
                              max_segments=limit)
        refused = None
        if why is not None:
            refused = self.resubmit(cr, row, why)
            if refused is None:
                return
        self.settle(cr, row, state, end, limit, refused)

    def resubmit(self, cr: ClusterRun, row: RunView, why: str) -> str | None:
        """Submit the run's next segment; None when it is on its way, else why sbatch refused it."""
        try:
            job = self.backend.resubmit(cr.run_dir) if isinstance(self.backend, SlurmBackend) else \
                self.backend.submit(cr.run_dir, row.backend_options or None)
        except BackendError as e:
            log(f"run {row.id}: the next segment could not be submitted: {e}")
            return str(e)
        n = row.segments + 1
        try:
            view = store_runs.record_submission(self.home, row.id, job,
                                                message=f"segment {n}: Slurm job {job} submitted ({why})")
        except Exception as e:  # no job may run unrecorded: a later tick would submit yet another
            log(f"run {row.id}: {e}; cancelling Slurm job {job}")
            self._scancel(job)
            return None
        self.runs[row.id] = self._track(view, job, None, cr.tail.offset, view.segment_started_at)
        log(f"run {row.id}: segment {n}, Slurm job {job} ({why})")
        return None

    def settle(self, cr: ClusterRun, row: RunView, state: ClusterState, end: dict[str, Any] | None,
               limit: int, refused: str | None = None) -> None:
        log_path = cr.run_dir / LOG_FILE
        cancel = row.cancel_requested
        extra = {"cluster_state": state.cluster_state or None, "cluster_reason": state.reason}
        if end is not None and end.get("status") == "cancelled" and not cancel and state.status == "cancelled":
            status, message = "cancelled", (f"cancelled: Slurm job {cr.job_id} was cancelled outside ganmgr "
                                            f"(scancel); resume it to continue")
            fields: dict[str, Any] = {"exit_code": state.exit_code, "signal": state.signal}
        elif end is not None and end.get("status") == "cancelled" and not cancel:
            # the worker checkpointed on the wall-time warning (or the cluster stopped the job), but no
            # further segment may (or could) run
            why_not = f"the next segment was refused: {refused}" if refused else \
                f"max_segments {limit}" if row.segments >= limit else state.describe()
            what = "the wall-time limit" if not state.resumable else f"Slurm ({state.describe()})"
            status, message = "killed", (f"killed: stopped by {what} after {row.segments} "
                                         f"segment(s) ({why_not}); resume it to continue")
            fields = {"error": message, "exit_code": state.exit_code, "signal": state.signal}
        elif end is not None:
            rc = -state.signal if state.signal else state.exit_code
            oc = outcome(end, returncode=rc, cancel_requested=cancel, killed_by_us=False, log_path=log_path)
            status, message, fields = oc.status, oc.message, oc.fields()
        else:
            status = state.status if state.terminal else "lost"
            if cancel and status in ("cancelled", "killed", "failed", "lost"):
                status = "cancelled"
            message = f"{status}: {state.describe()}" + (f"; the next segment was refused: {refused}" if refused else "")
            error = None if status in ("completed", "cancelled") else message + log_tail(log_path)
            if status == "completed":  # the job finished but the worker wrote no end record
                status, error = "lost", "Slurm says COMPLETED but the worker wrote no end record" + \
                    log_tail(log_path)
                message = f"lost: {error.splitlines()[0]}"
            fields = {"error": error, "exit_code": state.exit_code, "signal": state.signal}
        record_end(self.home, row.id, status, message, f"Slurm job {cr.job_id}: {state.cluster_state}",
                   **fields, **extra)

    def stop_tracking(self) -> None:
        for cr in self.runs.values():
            if cr.fold.dirty:
                flush_progress(self.home, cr.run_id, cr.tail, cr.fold)
        self.runs.clear()
