"""Queueing visualization jobs and reading how they went, torch-free.

`submit_viz` is what `ganmgr viz`, `ganmgr report` and the TUI's launcher call: it checks everything a
job needs before anything exists (the kind and its parameters, that the run is of a recipe the kind
understands, that the checkpoint it names (`best`, `last`, `final`, `epoch:N`: `viz_spec.checkpoint_choice`) is
there inside the run folder, the baseline run for `quality`/`report`), then creates the
row and RUN_DIR/viz/<id>-<kind>/job.json in one transaction and makes sure a supervisor runs it.

`VizFold` folds a job's metrics.jsonl (start, progress, artifact, result, end records) into the fields of
its row; the supervisor uses it while the job runs and `settle_viz` when nobody watched it end.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.control.config import RECIPES
from engine.control.follow import log_tail, outcome
from engine.control.inception_enqueue import inception_fields
from engine.control.launcher import ensure_supervisor
from engine.control.paths import LOG_FILE, METRICS_FILE, PathError
from engine.control.records import ARTIFACT, END, PROGRESS, RESULT, START, read_all
from engine.control.run_dir import write_job
from engine.control.runs_root import ensure_run_folder
from engine.control.submit import SubmitError
from engine.control.viz_spec import (
    FINAL_CHECKPOINT,
    checkpoint_choice,
    checkpoint_path,
    create_job_dir,
    make_job,
    missing_checkpoint_message,
    resolve_viz_params,
    viz_kind,
)
from store import runs as store_runs
from store import viz_jobs as store_viz
from store.errors import StoreError
from store.views import RunView, VizJobView

# Kinds that rebuild the models read the course's discriminator/generator tables from the checkpoint.
COURSE_MODEL_RECIPES = ("baseline", "acgan-wgangp")
# Kinds that sample the generator class by class need the conditional generator.
CONDITIONAL_GAN_RECIPES = ("acgan-wgangp",)
# Runs whose files (samples, metrics) are being written while they train: progression and curves can read them.
LIVE_OK = ("progression", "curves")


def _run(home: Path, run_id: int, what: str) -> RunView:
    run = store_runs.get_run(home, run_id)
    if run is None:
        raise SubmitError(f"no {what} with id {run_id}")
    if not run.run_dir:
        raise SubmitError(f"{what} {run_id} has no folder")
    try:
        ensure_run_folder(home, Path(run.run_dir))
    except PathError as e:
        raise SubmitError(str(e)) from None
    if not Path(run.run_dir).is_dir():
        raise SubmitError(f"the folder of {what} {run_id} is gone: {run.run_dir}")
    return run


def recipe_refusal(recipe: str, kind: str) -> str | None:
    """Why `kind` cannot read a run of `recipe` (None: it can). The one rule behind `submit_viz` and the
    TUI launcher's list of kinds."""
    spec = viz_kind(kind)
    r = RECIPES.get(recipe)
    if spec.needs_generator and not (r is not None and r.has_generator):
        return f"{kind} needs a GAN run; this is a {recipe} run with no generator"
    if spec.needs_checkpoint:
        allowed = CONDITIONAL_GAN_RECIPES if spec.needs_generator else COURSE_MODEL_RECIPES
        if recipe not in allowed:
            return f"{kind} reads the course's models; this is a {recipe} run (it works on {' and '.join(allowed)} runs)"
    return None


def check_run_for_kind(run: RunView, kind: str, checkpoint: str) -> None:
    """Refuse a run the kind cannot read, with what to pick instead."""
    why = recipe_refusal(run.recipe, kind)
    if why is not None:
        raise SubmitError(f"run {run.id}: {why}")
    if viz_kind(kind).needs_checkpoint:
        if not checkpoint_path(Path(run.run_dir or ""), checkpoint).is_file():
            raise SubmitError(missing_checkpoint_message(Path(run.run_dir or ""), checkpoint))
    elif kind not in LIVE_OK and run.status != "completed":
        raise SubmitError(f"run {run.id} is {run.status}; {kind} needs a completed run")


def submit_viz(home: Path, run_id: int, kind: str, *, epoch: int | None = None, checkpoint: str | None = None,
               assignments: tuple[str, ...] | list[str] = (), overrides: dict[str, Any] | None = None,
               baseline_id: int | None = None, priority: int = 0, start_supervisor: bool = True) -> VizJobView:
    """Validate, create the job's row and folder together, and start a supervisor. Raises SubmitError
    (or VizSpecError, a ConfigError) with one line naming the problem; nothing is created then.

    `checkpoint` is the user's choice (best, last, final, epoch:N; default final); `epoch` is its synonym."""
    spec = viz_kind(kind)
    params = resolve_viz_params(kind, overrides, assignments)
    run = _run(home, run_id, "run")
    if (epoch is not None or checkpoint is not None) and not spec.needs_checkpoint:
        flag = "--epoch" if epoch is not None else "--checkpoint"
        raise SubmitError(f"{kind} reads the run's files, not a checkpoint; drop {flag}")
    checkpoint = checkpoint_choice(checkpoint, epoch)
    check_run_for_kind(run, kind, checkpoint)
    base: RunView | None = None
    if spec.needs_baseline:
        if baseline_id is None:
            raise SubmitError(f"{kind} needs --baseline ID: a completed baseline run whose classifier scores "
                              f"the generator")
        base = _run(home, baseline_id, "baseline run")
        if base.recipe != "baseline":
            raise SubmitError(f"--baseline {baseline_id} is a {base.recipe} run; it must be a baseline run")
        if not (Path(base.run_dir or "") / FINAL_CHECKPOINT).is_file():
            raise SubmitError(f"baseline run {baseline_id}: " + missing_checkpoint_message(
                Path(base.run_dir or ""), FINAL_CHECKPOINT).split(": ", 1)[-1])
    elif baseline_id is not None:
        raise SubmitError(f"{kind} takes no --baseline")
    job_obj = make_job(kind, params, Path(run.run_dir or ""), checkpoint,
                       baseline_run_dir=Path(base.run_dir) if base and base.run_dir else None,
                       **inception_fields(home))  # the worker cannot read the settings

    def prepare(view: VizJobView) -> str:
        path = create_job_dir(Path(run.run_dir or ""), view.id, kind)
        try:
            write_job(path, job_obj)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return str(path)

    try:
        view = store_viz.create_viz_job(home, run_id=run.id, kind=kind, params=params,
                                         checkpoint=checkpoint if spec.needs_checkpoint else None,
                                         priority=priority, baseline_run_id=base.id if base else None,
                                         prepare=prepare)
    except (OSError, PathError) as e:
        raise SubmitError(f"could not create the job folder: {e}") from None
    if start_supervisor:
        ensure_supervisor(home)
    return view


def cancel_viz(home: Path, job_id: int) -> VizJobView:
    """Queued: cancelled at once. Running: the supervisor sends SIGTERM (SIGKILL after the grace)."""
    try:
        view = store_viz.request_cancel_viz(home, job_id)
    except StoreError as e:
        raise SubmitError(str(e)) from None
    if view.status == "running":
        ensure_supervisor(home)
    return view


# ------------------------------------------------------------------------------------------- following


@dataclass
class VizFold:
    """A job's metrics.jsonl folded into its row: progress, message, outputs, result, end."""

    outputs: list[str] = field(default_factory=list)
    progress: float | None = None
    message: str | None = None
    result: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    dirty: bool = False
    _base: tuple[int, int, str] | None = None  # the report's own (parts done, parts, current part)

    def fold(self, rec: dict[str, Any]) -> None:
        kind = rec.get("kind")
        if kind == PROGRESS:
            self._progress(rec)
        elif kind == ARTIFACT and isinstance(rec.get("path"), str):
            if rec["path"] not in self.outputs:
                self.outputs.append(rec["path"])
        elif kind == RESULT and "part" not in rec:
            self.result = rec
        elif kind == END:
            self.end = rec
        elif kind == START:
            self.message = "started"
        else:
            return
        self.dirty = True

    def _progress(self, rec: dict[str, Any]) -> None:
        done, total = rec.get("done"), rec.get("total")
        if not isinstance(done, int) or not isinstance(total, int) or total <= 0:
            return
        what = str(rec.get("what") or "")
        if "part" not in rec:
            self._base = (done, total, what)
            self.progress = done / total
            self.message = f"{what} ({done + 1}/{total})" if what else f"{done}/{total}"
            return
        inner = min(done / total, 1.0)
        if self._base is None:
            self.progress = inner
            self.message = f"{rec['part']}: {done}/{total} {what}".rstrip()
        else:
            b_done, b_total, b_what = self._base
            self.progress = (b_done + inner) / b_total
            self.message = f"{b_what} ({b_done + 1}/{b_total}): {done}/{total} {what}".rstrip()

    def fields(self) -> dict[str, Any]:
        return {"outputs": self.outputs, "progress": self.progress, "message": self.message}


def fold_job_dir(job_dir: Path) -> VizFold:
    fold = VizFold()
    for rec in read_all(job_dir / METRICS_FILE):
        fold.fold(rec)
    return fold


def viz_outcome(fold: VizFold, *, returncode: int | None, cancel_requested: bool, killed_by_us: bool,
                job_dir: Path | None) -> dict[str, Any]:
    """Terminal fields for set_viz_status: the job's own end record wins, as for training runs."""
    oc = outcome(fold.end, returncode=returncode, cancel_requested=cancel_requested, killed_by_us=killed_by_us,
                 log_path=job_dir / LOG_FILE if job_dir else None)
    seconds = fold.result.get("seconds") if fold.result else None
    if oc.status == "completed":
        message = f"completed in {seconds:.1f} s" if isinstance(seconds, (int, float)) else "completed"
    elif oc.status == "cancelled" or not (oc.error or "").strip():
        message = oc.status
    else:
        message = f"{oc.status}: {oc.error.strip().splitlines()[0]}"
    return {"status": oc.status, "error": oc.error, "exit_code": oc.exit_code, "message": message[:300],
            "outputs": fold.outputs, "progress": 1.0 if oc.status == "completed" else fold.progress}


def settle_viz(home: Path, job: VizJobView) -> VizJobView | None:
    """A running job whose process is gone and that nobody watched end: record what its files say."""
    job_dir = Path(job.job_dir) if job.job_dir else None
    fold = fold_job_dir(job_dir) if job_dir else VizFold()
    fields = viz_outcome(fold, returncode=None, cancel_requested=job.cancel_requested, killed_by_us=False,
                         job_dir=job_dir)
    status = fields.pop("status")
    try:
        return store_viz.set_viz_status(home, job.id, status, **fields)
    except StoreError:
        return None


def job_log_tail(job: VizJobView, lines: int = 20) -> str:
    return log_tail(Path(job.job_dir) / LOG_FILE, lines) if job.job_dir else ""
