"""The backend interface and the cluster-state vocabulary (torch-free).

A backend runs `python -m engine.worker RUN_DIR` somewhere and reports on it. The worker writes only files
(metrics.jsonl, checkpoints, its `end` record), so the supervisor learns *what* happened from the run
folder and *how the job ended* from the backend; `ClusterState` is the latter, already translated into
ganmgr's status words so the store needs no Slurm knowledge.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.lifecycle import ACTIVE_STATUSES

# Slurm job state -> (ganmgr status, resumable, words shown to the user).
# `resumable`: the job was ended from outside (wall-time limit, preemption, a node failure), not by the run
# itself, so a new job can continue from checkpoints/last.pt. The statuses are the store's existing ones;
# the words keep the Slurm reason visible ("timed out", "out of memory").
SLURM_STATES: dict[str, tuple[str, bool, str]] = {
    "PENDING": ("queued", False, "queued on the cluster"),
    "REQUEUED": ("queued", False, "requeued on the cluster"),
    "REQUEUE_HOLD": ("queued", False, "requeued and held on the cluster"),
    "REQUEUE_FED": ("queued", False, "requeued on the cluster"),
    "RESV_DEL_HOLD": ("queued", False, "held on the cluster (reservation deleted)"),
    "SPECIAL_EXIT": ("queued", False, "held on the cluster (special exit)"),
    "CONFIGURING": ("running", False, "starting on the cluster"),
    "RUNNING": ("running", False, "running on the cluster"),
    "COMPLETING": ("running", False, "finishing on the cluster"),
    "SIGNALING": ("running", False, "being signalled on the cluster"),
    "STAGE_OUT": ("running", False, "staging out on the cluster"),
    "RESIZING": ("running", False, "resizing on the cluster"),
    "SUSPENDED": ("running", False, "suspended on the cluster"),
    "STOPPED": ("running", False, "stopped (SIGSTOP) on the cluster"),
    "COMPLETED": ("completed", False, "completed"),
    "FAILED": ("failed", False, "failed"),
    "BOOT_FAIL": ("failed", False, "failed: the node did not boot"),
    "DEADLINE": ("failed", False, "failed: past its deadline"),
    "OUT_OF_MEMORY": ("failed", False, "failed: out of memory"),
    "CANCELLED": ("cancelled", False, "cancelled"),
    "REVOKED": ("cancelled", False, "revoked (federation)"),
    "TIMEOUT": ("killed", True, "timed out (wall-time limit)"),
    "PREEMPTED": ("killed", True, "preempted"),
    "NODE_FAIL": ("lost", True, "lost: its node failed"),
}


@dataclass(frozen=True)
class ClusterState:
    """One job as the cluster sees it, mapped onto ganmgr's statuses."""

    job_id: str
    status: str  # queued | running | completed | failed | cancelled | killed | lost | unknown
    cluster_state: str  # the scheduler's own word (Slurm: PENDING, TIMEOUT, ...); '' when unknown
    reason: str | None = None  # why it is pending (Priority, Resources, BeginTime...) or why it ended
    exit_code: int | None = None
    signal: int | None = None
    resumable: bool = False  # ended from outside (limit, preemption, node failure): a new job may continue
    source: str = ""  # where the answer came from (scontrol, sacct, sacct -c); '' when nowhere
    raw_id: str | None = None  # an array task's own job id (Slurm: `6_3` runs as JobId=6); keep it: see slurm.py

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def terminal(self) -> bool:
        return self.status not in ACTIVE_STATUSES and self.status != "unknown"

    def describe(self) -> str:
        """One line for the run table and `show`: 'queued on the cluster (Resources)', 'timed out ...'."""
        words = SLURM_STATES.get(self.cluster_state, (self.status, False, self.status or "unknown"))[2]
        if self.status == "unknown":
            words = "unknown to the cluster (finished long ago, or never submitted)"
        out = f"job {self.job_id}: {words}"
        if self.reason and self.reason not in ("None", "(null)"):
            out += f" ({self.reason})"
        if self.terminal and (self.exit_code or self.signal):
            out += f", exit {self.exit_code or 0}" + (f" signal {self.signal}" if self.signal else "")
        return out


def map_slurm_state(job_id: str, state: str, *, reason: str | None = None, exit_code: int | None = None,
                    signal: int | None = None, source: str = "", raw_id: str | None = None) -> ClusterState:
    """A Slurm state word (`CANCELLED by 0` and sacct's truncated `CANCELLED+` included) as a ClusterState."""
    word = (state or "").strip().split(" ")[0].rstrip("+").upper()
    status, resumable, _ = SLURM_STATES.get(word, ("unknown", False, ""))
    return ClusterState(job_id=job_id, status=status, cluster_state=word, reason=reason, exit_code=exit_code,
                        signal=signal, resumable=resumable, source=source, raw_id=raw_id)


def resubmit_reason(state: ClusterState, end: Mapping[str, Any] | None, *, checkpoint_exists: bool,
                    cancel_requested: bool, segments_done: int, max_segments: int) -> str | None:
    """Why a finished job's run should continue in a new job (a new segment), or None when it should not.

    A segment continues when the run did not finish by itself and nobody asked it to stop: the cluster
    ended it from outside (TIMEOUT, PREEMPTED, NODE_FAIL), or the worker stopped on the time-limit warning
    signal (its `end` record says `cancelled` although no cancel was requested: Slurm then reports FAILED
    with exit 143 when the worker exits before the limit). A worker that completed, failed, diverged or stopped
    never continues, nor does a run without a checkpoint or past `max_segments`.
    """
    if cancel_requested or not checkpoint_exists or segments_done >= max_segments:
        return None
    if state.status == "cancelled":  # scancel from outside ganmgr: respect it
        return None
    end_status = end.get("status") if end else None
    if end_status in ("completed", "failed", "diverged", "stopped"):
        return None
    if state.resumable:
        return f"the job was {SLURM_STATES[state.cluster_state][2]}"
    # ("unknown": the cluster forgot the job, e.g. after MinJobAge without accounting; the worker's own
    # record says it checkpointed on the warning, and nobody asked it to stop)
    if end_status == "cancelled" and state.status in ("failed", "completed", "killed", "unknown"):
        return "the worker checkpointed on the time-limit warning signal"
    return None


class Backend(ABC):
    """Runs the worker of a run folder somewhere; the supervisor keeps the job id in the run's row."""

    name: str = ""

    @abstractmethod
    def submit(self, run_dir: Path, options: Mapping[str, Any] | None = None) -> str:
        """Start (or queue) the worker on `run_dir`; returns the job id to track it by."""

    @abstractmethod
    def state(self, job_id: str) -> ClusterState:
        """Where the job is now (or how it ended)."""

    @abstractmethod
    def cancel(self, job_id: str) -> None:
        """Ask the job to stop: the worker gets SIGTERM, checkpoints and exits; a kill follows later."""
