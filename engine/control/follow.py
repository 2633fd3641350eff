"""Turning a worker's metrics.jsonl into row fields and its exit into a terminal status (torch-free).

Shared by the supervisor (which follows its workers live), `reconcile` (which settles a run whose process
vanished) and the headless runner, so all three report the same numbers and the same statuses.

A resumed run appends to the same metrics.jsonl, so the file can hold an `end` record of an earlier attempt.
Only an `end` record written after the current attempt started (its `time` >= the row's `started_at`)
counts; an older one is history.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.control.config import RECIPES
from engine.control.eval_summary import QUALITY_KEY, fold_eval
from engine.control.records import (
    ARTIFACT,
    END,
    END_STATUSES,
    EPOCH,
    EVAL,
    HEALTH,
    PROGRESS,
    RESOURCES,
    START,
    TRAIN,
    json_safe,
)
from engine.control.resource_use import RESOURCES_KEY, ResourceUse, mb_text

ERROR_LIMIT = 4000  # characters of error text kept in the row (the full log stays in log.txt)
LOG_TAIL_LINES = 20
# the per-epoch signals (the mode-collapse signal: `diversity`, `class_spread`) kept in `last_metrics` beside the
# last train window's means, so the table and `ls` show a GAN without a classifier by more than "-"
EPOCH_SIGNALS = tuple(dict.fromkeys(m for spec in RECIPES.values() for m in spec.epoch_metrics))


@dataclass
class ProgressFold:
    """Folds metrics records into the progress columns of a run row (see store.runs.PROGRESS_FIELDS).

    `progress` records (a worker's sign of life between train windows, about once a second) move the step,
    the progress fraction and the images/s, so a row moves step by step before its first epoch ends.
    """

    since: float | None = None  # start of the current attempt: older `end` records are ignored
    fields: dict[str, Any] = field(default_factory=dict)
    epochs: int = 0
    steps_per_epoch: int = 0
    end: dict[str, Any] | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # not yet recorded in the store
    # run events not yet recorded in the store: a health rule's warn as ("warn", message)
    events: list[tuple[str, str]] = field(default_factory=list)
    dirty: bool = False
    # `resources` records (peaks, mean util) kept in last_metrics beside the latest train window's values;
    # seeded from the row for a resumed run, so a finished run keeps its peak over all its attempts
    resources: ResourceUse = field(default_factory=ResourceUse)
    last_train: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, Any] = field(default_factory=dict)  # the latest epoch signals (EPOCH_SIGNALS)
    # `eval` records as latest and best values (engine/control/eval_summary.py), kept in last_metrics; seeded
    # from the row for a resumed or adopted run, so the best stays the best over all its attempts
    quality: dict[str, Any] = field(default_factory=dict)
    # records from the training loop itself (everything but the sampler thread's `resources`): the
    # supervisor's stall watch counts these, since a hung loop's sampler keeps writing
    loop_records: int = 0

    def fold(self, rec: dict[str, Any]) -> None:
        kind = rec.get("kind")
        f = self.fields
        if kind != RESOURCES:
            self.loop_records += 1
        if kind == START:
            self.epochs = _int(rec.get("epochs")) or self.epochs
            self.steps_per_epoch = _int(rec.get("steps_per_epoch")) or self.steps_per_epoch
            f["epoch"] = _int(rec.get("epoch")) or 0
            f["step"] = _int(rec.get("step")) or 0
            if self.epochs:
                f["epochs"] = self.epochs
        elif kind == PROGRESS:
            self.steps_per_epoch = _int(rec.get("steps_per_epoch")) or self.steps_per_epoch
            if _int(rec.get("step")) is not None:
                f["step"] = _int(rec.get("step"))
            epoch = _int(rec.get("epoch"))  # the epoch in progress, 1-based: one more than those completed
            if epoch is not None and epoch >= 1:
                f["epoch"] = epoch - 1
            ips = json_safe(rec.get("images_per_s"))
            if isinstance(ips, (int, float)) and not isinstance(ips, bool):
                f["images_per_s"] = ips
        elif kind == TRAIN:
            if _int(rec.get("step")) is not None:
                f["step"] = _int(rec.get("step"))
            self.last_train = {k: json_safe(v) for k, v in rec.items()
                               if k not in ("kind", "epoch", "step", "time")}
            f["last_metrics"] = self._last_metrics()
        elif kind == RESOURCES:
            self.resources.add(rec)
            f["last_metrics"] = self._last_metrics()
        elif kind == EVAL:
            self.quality = fold_eval(self.quality, rec)
            f["last_metrics"] = self._last_metrics()
        elif kind == EPOCH:
            if _int(rec.get("epoch")) is not None:
                f["epoch"] = _int(rec.get("epoch"))
            if _int(rec.get("step")) is not None:
                f["step"] = _int(rec.get("step"))
            for src, dst in (("test_acc", "last_test_acc"), ("train_acc", "last_train_acc"),
                             ("images_per_s", "images_per_s")):
                v = json_safe(rec.get(src))
                if v is not None:
                    f[dst] = v
            signals = {k: json_safe(rec[k]) for k in EPOCH_SIGNALS if k in rec}
            if signals:
                self.signals.update(signals)
                f["last_metrics"] = self._last_metrics()
        elif kind == ARTIFACT:
            if isinstance(rec.get("path"), str):
                self.artifacts.append(rec)
        elif kind == HEALTH:  # a health rule acted: the row's flag, and a `warn` event (a stop ends the run)
            message = rec.get("message")
            if isinstance(message, str) and message:
                f["health"] = message[:500]
                if rec.get("action") == "warn":
                    self.events.append(("warn", message[:500]))
        elif kind == END:
            t = rec.get("time")
            if self.since is None or not isinstance(t, (int, float)) or t >= self.since:
                self.end = rec
        else:
            return
        total = self.epochs * self.steps_per_epoch
        if total and isinstance(f.get("step"), int):
            f["progress"] = min(1.0, max(0.0, f["step"] / total))
        if self.end is not None and self.end.get("status") == "completed":
            f["progress"] = 1.0
        self.dirty = True

    def _last_metrics(self) -> dict[str, Any]:
        out = {**self.last_train, **self.signals}
        if self.resources.samples:
            out[RESOURCES_KEY] = self.resources.to_dict()
        if self.quality:
            out[QUALITY_KEY] = self.quality
        return out

    def take_artifacts(self) -> list[dict[str, Any]]:
        out, self.artifacts = self.artifacts, []
        return out

    def take_events(self) -> list[tuple[str, str]]:
        out, self.events = self.events, []
        return out


@dataclass(frozen=True)
class Outcome:
    """How a worker's attempt ended: the row's terminal status and what to record with it."""

    status: str
    message: str
    error: str | None = None
    exit_code: int | None = None
    signal: int | None = None

    def fields(self) -> dict[str, Any]:
        return {"error": self.error, "exit_code": self.exit_code, "signal": self.signal}


def outcome(end: dict[str, Any] | None, *, returncode: int | None, cancel_requested: bool,
            killed_by_us: bool, log_path: Path | None) -> Outcome:
    """The terminal status of an attempt.

    The worker's own `end` record wins (it knows why it stopped). Without one: a signal is `killed` (or
    `cancelled` when a cancel was asked for, whoever delivered the signal), an exit code is `failed` with the
    log's tail, and a process that vanished while nobody was its parent (returncode None) is `lost`.
    """
    code = returncode if returncode is not None and returncode >= 0 else None
    sig = -returncode if returncode is not None and returncode < 0 else None
    if end is not None and end.get("status") in END_STATUSES:
        status = str(end["status"])
        error = end.get("error") if isinstance(end.get("error"), str) else None
        if status == "failed":
            error = _clip(oom_text(end) + (error or "failed") + log_tail(log_path))
        message = {"completed": "completed", "cancelled": "cancelled: the worker checkpointed and stopped",
                   "diverged": f"diverged: {error}{healthy_note(end)}",
                   "stopped": f"stopped: {error}{healthy_note(end)}",
                   "failed": f"failed: {_first_line(error)}"}[status]
        if status == "completed":
            error = None
        return Outcome(status, message, error, code if code is not None else (128 + sig if sig else None), sig)
    if sig is not None:
        name = _signame(sig)
        if cancel_requested:
            why = ("did not stop within the grace period; killed with " if killed_by_us else "stopped by ") + name
            return Outcome("cancelled", f"cancelled: {why}", why, None, sig)
        return Outcome("killed", f"killed by {name}", f"worker killed by {name}" + log_tail(log_path), None, sig)
    if returncode is not None:
        if cancel_requested and killed_by_us:
            return Outcome("cancelled", "cancelled", f"exited with code {returncode} after the cancel", code)
        error = _clip(f"worker exited with code {returncode} without an end record" + log_tail(log_path))
        status = "failed" if returncode != 0 else "lost"
        return Outcome(status, f"{status}: {_first_line(error)}", error, code)
    why = "the worker process vanished without an end record (killed, or its machine restarted)"
    if cancel_requested:
        return Outcome("cancelled", "cancelled: the worker is gone", why)
    return Outcome("lost", f"lost: {why}", why + log_tail(log_path))


OOM_HINT = ("lower batch_size or width, or queue it with a larger --gpu-mem so the supervisor starts it on a GPU "
            "with that much free")


def oom_text(end: dict[str, Any]) -> str:
    """'out of GPU memory (peak N MB of M MB): hint\n' for a worker's end record that says so (`oom`), else ''."""
    oom = end.get("oom")
    if not isinstance(oom, dict):
        return ""
    peak, total = oom.get("peak_mb"), oom.get("total_mb")
    if peak is None:
        return f"out of GPU memory (peak not measured): {OOM_HINT}\n"
    of = f" of {mb_text(total)}" if total is not None else ""
    return f"out of GPU memory (peak {mb_text(peak)}{of}): {OOM_HINT}\n"


def healthy_note(end: dict[str, Any]) -> str:
    """'; healthy checkpoint: checkpoints/last.pt (epoch 2, step 78)' from a divergence's or a health stop's
    end record ('' for an end record without the field: an older worker)."""
    if "healthy_checkpoint" not in end:
        return ""
    ck = end.get("healthy_checkpoint")
    if not isinstance(ck, dict) or not isinstance(ck.get("path"), str):
        return "; no healthy checkpoint (no epoch of this run had ended)"
    return f"; healthy checkpoint: {ck['path']} (epoch {ck.get('epoch')}, step {ck.get('step')})"


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last non-empty lines of log.txt (a traceback, usually), prefixed with a newline; '' if none."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - 32768))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    tail = [ln for ln in text.splitlines()[-lines:] if ln.strip()]
    return ("\n" + "\n".join(tail)) if tail else ""


def _clip(text: str) -> str:
    return text if len(text) <= ERROR_LIMIT else "..." + text[-(ERROR_LIMIT - 3):]


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:200] if (text or "").strip() else ""


def _signame(sig: int) -> str:
    try:
        return f"signal {sig} ({signal.Signals(sig).name})"
    except ValueError:
        return f"signal {sig}"


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None

