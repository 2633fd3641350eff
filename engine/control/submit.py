"""Creating runs: the row and its folder come into being together, or not at all.

Used by `ganmgr run` (queued or headless), the TUI's new-run form, `fork` and sweeps, so every path
validates the same way and writes the same `config.json`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.control.config import config_diff, default_run_name, resolve_config, validate_config
from engine.control.datasets import check_dataset_available
from engine.control.errors import ConfigError, SubmitError
from engine.control.eval_baseline import resolve_eval_baseline
from engine.control.fork_epochs import fork_epochs_error
from engine.control.gitinfo import source_commit
from engine.control.gpu_packing import check_gpu_mem, learned_gpu_mem_gb
from engine.control.inception_enqueue import resolve_inception
from engine.control.launcher import ensure_supervisor, worker_env
from engine.control.paths import CONFIG_FILE, create_run_dir, ensure_home, fsync_dir, run_dir_for
from engine.control.procs import signal_verified
from engine.control.resource_use import run_resources
from engine.control.run_dir import read_run_config, write_run_config
from engine.control.runs_root import ensure_run_folder, runs_root
from engine.control.supervisor_lock import lock_is_held
from engine.control.viz_spec import (
    available_checkpoints,
    checkpoint_choice,
    checkpoint_epoch,
    checkpoint_path,
    choice_of,
)
from store import runs as store_runs
from store.views import RunView


def folder_maker(home: Path, cfg: dict[str, Any], after: Callable[[Path], None] | None = None):
    """The `prepare` hook of create_run: the run folder and its frozen config, inside the row's transaction.

    `after(folder)` adds files before the row commits (a fork's `checkpoints/init.pt`), so a supervisor
    can never claim a run whose folder is still being filled.
    """
    root = runs_root(home)  # read before create_run's write transaction, which runs prepare()

    def prepare(view: RunView) -> str:
        path = run_dir_for(ensure_home(root), view.id, view.name)
        create_run_dir(path)
        try:
            write_run_config(path, cfg)
            if after is not None:
                after(path)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return str(path)

    return prepare


def create_run(home: Path, cfg: dict[str, Any], *, tags: list[str] | tuple[str, ...] = (), notes: str = "",
               priority: int = 0, status: str = "queued", managed_by: str = "supervisor",
               parent_id: int | None = None, parent_relation: str | None = None,
               parent_epoch: int | None = None, after_folder: Callable[[Path], None] | None = None,
               backend: str = "local", backend_options: dict[str, Any] | None = None,
               max_segments: int | None = None, sweep: str | None = None, held: bool = False) -> RunView:
    """Validate `cfg` (and that its data exists), then insert the row and create its folder atomically.
    A run on the slurm backend is `managed_by='slurm'`: the supervisor submits it with sbatch."""
    if backend == "slurm":
        managed_by = "slurm"
    cfg = validate_config(cfg)
    check_dataset_available(cfg)  # before any row or folder exists
    if backend == "local":
        check_gpu_mem(cfg)  # more GPU memory than any GPU here holds (when NVML knows)
    cfg = resolve_eval_baseline(home, cfg)  # the baseline run's checkpoint, for a worker without the store
    cfg = resolve_inception(home, cfg)  # the Inception weights' path (settings), for the same worker
    ensure_home(home)
    name = cfg["name"] or default_run_name(cfg)
    return store_runs.create_run(
        home, name=name, recipe=cfg["recipe"], dataset=cfg["dataset"], config=cfg, epochs=cfg["epochs"],
        priority=priority, tags=list(tags), notes=notes, git_commit=source_commit(), managed_by=managed_by,
        status=status, parent_id=parent_id, parent_relation=parent_relation, parent_epoch=parent_epoch,
        prepare=folder_maker(home, cfg, after_folder), backend=backend, backend_options=backend_options,
        max_segments=max_segments, sweep=sweep, held=held)


def enqueue(home: Path, cfg: dict[str, Any], *, tags: list[str] | tuple[str, ...] = (), notes: str = "",
            priority: int = 0, backend: str = "local", backend_options: dict[str, Any] | None = None,
            max_segments: int | None = None, sweep: str | None = None) -> RunView:
    """Create a queued run and make sure a supervisor is running to start (or submit) it."""
    view = create_run(home, cfg, tags=tags, notes=notes, priority=priority, status="queued", backend=backend,
                      backend_options=backend_options, max_segments=max_segments, sweep=sweep)
    ensure_supervisor(home)
    return view


# ------------------------------------------------------------------------ resume, fork, cancel

# SIGTERM -> SIGKILL on cancel. A worker stops within one step plus a checkpoint write; 30 s leaves room for
# a slow step on a busy machine. Setting `cancel_grace_s` changes it per store.
DEFAULT_CANCEL_GRACE_S = 30.0
# Fields whose change alters the models' shapes: a fork cannot load its parent's weights under them.
SHAPE_FIELDS = ("width", "n_z")


def cancel_grace_s(settings: dict[str, Any]) -> float:
    """Seconds between SIGTERM and SIGKILL when a run is cancelled (setting `cancel_grace_s`)."""
    value = settings.get("cancel_grace_s", DEFAULT_CANCEL_GRACE_S)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
        return DEFAULT_CANCEL_GRACE_S
    return float(value)


def _run_folder(home: Path, run: RunView) -> Path:
    if not run.run_dir:
        raise SubmitError(f"run {run.id} has no folder")
    return ensure_run_folder(home, Path(run.run_dir))


def resume_run(home: Path, run_ref: str | int) -> RunView:
    """Queue the same run again; its worker continues from `checkpoints/last.pt`.

    Refused for a run that is queued or running, that completed all its epochs, that has no checkpoint,
    or whose config.json no longer matches the config it was created with (fork it to change a config).
    """
    run = store_runs.find_run(home, run_ref)
    if run.is_active:
        raise SubmitError(f"run {run.id} is {run.status}; only a finished run can be resumed")
    if run.status == "completed" and run.epoch >= run.epochs:
        raise SubmitError(f"run {run.id} completed all {run.epochs} epochs; fork it with "
                          f"--set epochs=N to train longer")
    folder = _run_folder(home, run)
    last = folder / "checkpoints" / "last.pt"
    if not last.is_file():
        raise SubmitError(f"run {run.id} has no checkpoint to resume from ({last} is missing); "
                          f"start a new run instead")
    changed = _config_changes(folder, run)
    if changed:
        raise SubmitError(f"config.json of run {run.id} was changed since the run was created ({changed}); "
                          f"fork the run to change its config")
    check_checkpoint(last, f"run {run.id} cannot be resumed")
    view = store_runs.requeue(home, run.id, message=f"resumed from checkpoints/last.pt after epoch {run.epoch}")
    ensure_supervisor(home)
    return view


# `python -m engine.compute.checkpoint_check` imports torch (a few seconds) and reads the file once
CHECKPOINT_CHECK_TIMEOUT_S = 300.0


def check_checkpoint(path: Path, what: str, shown_as: Path | None = None) -> None:
    """SubmitError (one line, exit 2) unless the worker can load `path` (weights_only, a ganmgr checkpoint).

    The CLI and the TUI never import torch, so the worker's own loader runs in a short child process (an
    argv list, no shell): the same rule as the worker's, and a pickle that would run code is refused there
    by torch's weights-only unpickler, never executed. `shown_as`: the name the message gives the file (a
    fork checks its private copy but names the parent's checkpoint).
    """
    argv = [sys.executable, "-m", "engine.compute.checkpoint_check", str(path)]
    try:
        out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                             timeout=CHECKPOINT_CHECK_TIMEOUT_S, env=worker_env({"CUDA_VISIBLE_DEVICES": ""}))
    except subprocess.TimeoutExpired:
        raise SubmitError(f"{what}: checking {path} took over {CHECKPOINT_CHECK_TIMEOUT_S:.0f} s") from None
    except OSError as e:
        raise SubmitError(f"{what}: cannot check {path} ({e.strerror or e})") from None
    if out.returncode != 0:
        said = (out.stdout.strip().splitlines() or out.stderr.strip().splitlines() or ["no answer"])[-1]
        raise SubmitError(f"{what}: {said.replace(str(path), str(shown_as or path))[:400]}")


def _config_changes(folder: Path, run: RunView) -> str:
    """'' if config.json still holds the run's stored config, else a short description of the change."""
    if not (folder / CONFIG_FILE).is_file():
        return "it is missing"
    try:
        on_disk = read_run_config(folder)
    except ConfigError as e:
        return f"it no longer loads: {str(e).splitlines()[0][:200]}"
    try:  # the stored config with the fields added since it was created filled in, as read_run_config does
        stored = validate_config(run.config)
    except ConfigError:
        stored = run.config
    diff = config_diff(stored, on_disk)
    if not diff:
        return ""
    k, (old, new) = next(iter(diff.items()))
    more = f" and {len(diff) - 1} more" if len(diff) > 1 else ""
    return f"{k}: {old!r} -> {new!r}{more}"


def fork_run(home: Path, run_ref: str | int, *, overrides: dict[str, Any] | None = None,
             assignments: list[str] | tuple[str, ...] = (), epoch: int | None = None, checkpoint: str | None = None,
             name: str | None = None, tags: list[str] | tuple[str, ...] = (), notes: str = "",
             priority: int = 0, from_healthy: bool = False) -> RunView:
    """A new queued run that starts from a checkpoint of `run_ref` under a changed config.

    The parent's config plus `overrides` and `key=value` `assignments`; its folder gets
    `checkpoints/init.pt`, a copy of the parent's checkpoint named by `checkpoint` (best, last, final,
    epoch:N: the rule of `viz_spec.checkpoint_choice`; `epoch` N is epoch:N), `last.pt` by default;
    `from_healthy`: the checkpoint the worker kept from before a health rule fired or the run diverged.
    """
    parent = store_runs.find_run(home, run_ref)
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1):
        raise SubmitError(f"--epoch must be a positive integer, not {epoch!r}")
    healthy_epoch: int | None = None
    if from_healthy:
        if checkpoint is not None or epoch is not None:
            raise SubmitError("give --from-healthy or --checkpoint/--epoch, not both")
        chosen, healthy_epoch = _healthy_source(home, parent)
    else:
        chosen = checkpoint_choice(checkpoint, epoch, default="last")
    base = {k: v for k, v in parent.config.items() if k not in ("recipe", "config_version")}
    base.update(overrides or {})
    used = run_resources(parent.last_metrics)
    learned = learned_gpu_mem_gb(used.get("peak_gpu_mem_mb"), used.get("gpu_mem_total_mb"))
    if learned is not None and "gpu_mem" not in (overrides or {}):  # a --set gpu_mem=... still wins
        base["gpu_mem"] = learned  # the parent's measured peak plus a margin (engine/control/gpu_packing.py)
    base["name"] = name if name is not None else _fork_name(parent.name)
    cfg = resolve_config(parent.config["recipe"], base, list(assignments))  # bad --set values first
    shape = [k for k in SHAPE_FIELDS if k in config_diff(parent.config, cfg)]
    if shape:
        raise SubmitError(f"a fork keeps the parent's model shapes; {', '.join(shape)} cannot change "
                          f"(start a new run instead)")
    folder = _run_folder(home, parent)
    source = checkpoint_path(folder, chosen)
    if not source.is_file():
        raise SubmitError(_no_fork_source(parent.id, folder, chosen))
    parent_epoch = healthy_epoch if healthy_epoch is not None else checkpoint_epoch(folder, chosen)
    if parent_epoch is None:
        if chosen.endswith("/best.pt"):
            raise SubmitError(f"run {parent.id}: metrics.jsonl does not say which epoch checkpoints/best.pt is "
                              f"from; fork --checkpoint last or epoch:N instead")
        parent_epoch = parent.epoch  # last.pt and final.pt hold the run's latest epoch
    refused = fork_epochs_error(cfg["epochs"], parent_epoch)
    if refused is not None:
        raise refused

    # Copy before the row's write transaction (a checkpoint can be large), move it in inside it.
    staged = _stage_copy(source, home)
    try:  # the copy is what the fork's worker reads: check it, not the parent's file (which may change)
        check_checkpoint(staged, f"run {parent.id} cannot be forked", shown_as=source)
        view = create_run(home, cfg, tags=tags, notes=notes, priority=priority, status="queued",
                          parent_id=parent.id, parent_relation="fork", parent_epoch=parent_epoch,
                          after_folder=lambda run_dir: os.replace(staged, run_dir / "checkpoints" / "init.pt"))
    finally:
        staged.unlink(missing_ok=True)
    ensure_supervisor(home)
    return view


def _healthy_source(home: Path, parent: RunView) -> tuple[str, int]:
    """The checkpoint a worker named healthy (before a health rule fired or the run diverged) and its epoch;
    SubmitError (exit 2) when nothing fired or nothing was kept before it."""
    from engine.control.health_rules import healthy_of

    found = healthy_of(_run_folder(home, parent))
    if found is None:
        raise SubmitError(f"run {parent.id} has no health event or divergence: no checkpoint is marked healthy; "
                          f"fork --checkpoint last instead")
    epoch = found.get("epoch")
    if not found or not isinstance(epoch, int) or isinstance(epoch, bool):
        raise SubmitError(f"run {parent.id}: its health rule fired (or it diverged) before any checkpoint; "
                          f"there is no healthy checkpoint to fork from")
    return str(found["path"]), epoch


def _no_fork_source(run_id: int, folder: Path, checkpoint: str) -> str:
    """One line: the checkpoint the fork asked for is missing, and the ones the parent has."""
    have = available_checkpoints(folder)
    choice = choice_of(checkpoint)
    if choice == "last":
        what = "checkpoint"
    elif choice.startswith("epoch:"):
        what = f"checkpoint of epoch {choice.removeprefix('epoch:')}"
    else:
        what = f"{choice} checkpoint"
    kept = f"it has --checkpoint {', '.join(have)}" if have else "it has none"
    return f"run {run_id} has no {what} to fork from ({checkpoint} is missing; {kept})"


def _stage_copy(source: Path, home: Path) -> Path:
    """A private, fsynced copy of `source` in `home` (same file system as the run folders)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".fork-", suffix=".pt", dir=home)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    fsync_dir(home)
    return Path(tmp)


def _fork_name(parent_name: str) -> str:
    import re

    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", parent_name)[:59].strip("-.") or "run"
    return f"{stem}-fork"


def cancel_run(home: Path, run_ref: str | int) -> RunView:
    """Queued: cancelled at once. Running: cancel requested in the store, and SIGTERM sent to the worker's
    process group; SIGKILL follows after the grace period (setting `cancel_grace_s`, default 30 s),
    enforced by the supervisor. Finished: refused.

    Exactly one SIGTERM reaches a worker: the supervisor watching it sends it (within one tick); with no
    supervisor alive, we send it here when the worker runs on this host and is verifiably ours, and
    start a supervisor, which adopts the worker, knows the SIGTERM was sent and keeps the grace. (A second
    SIGTERM could arrive while the worker's interpreter shuts down, after its handlers are gone, and turn
    a clean `cancelled` exit into a death by signal.) A headless worker shares its command's process
    group, so it alone gets the signal.
    """
    import signal
    import socket

    run = store_runs.find_run(home, run_ref)
    if run.is_terminal:
        raise SubmitError(f"run {run.id} is already {run.status}")
    already = run.cancel_requested
    view = store_runs.request_cancel(home, run.id)
    if view.status != "running" or already:
        return view
    here = view.host in (None, socket.gethostname())
    if view.managed_by == "slurm":
        # the job runs wherever Slurm put it: the supervisor sends scancel (SIGTERM to the job, the worker
        # checkpoints) within a tick, and again a few seconds later if scancel fails; one that starts now
        # adopts the job and sends it. Only the supervisor sends it, so exactly one scancel goes out.
        if not lock_is_held(home):
            ensure_supervisor(home)
    elif view.managed_by != "supervisor":
        if here:
            signal_verified(view.pid, view.pid_start, signal.SIGTERM, group=False)
    elif not lock_is_held(home):
        if here:
            signal_verified(view.pid, view.pid_start, signal.SIGTERM, group=True)
        ensure_supervisor(home)  # someone must enforce the grace period
    return view
