"""`eval_baseline`: the baseline run whose classifier scores a GAN's samples during training, resolved at enqueue.

The worker never reads the store (it runs on nodes without one), so the run a user names (`--eval-baseline ID`
or `--set eval_baseline=NAME`) is looked up here, once, when the run is created: it must be a `completed`
`baseline` run on the same data set with its final checkpoint on disk. The config then carries the run's id
(`eval_baseline`) and the checkpoint's absolute path (`eval_baseline_ckpt`); anything else is a one-line
`ConfigError` before a row or a folder exists. A path typed into `eval_baseline_ckpt` by hand is never kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.control.errors import ConfigError
from engine.control.paths import PathError
from engine.control.runs_root import ensure_run_folder
from engine.control.viz_spec import FINAL_CHECKPOINT
from store import runs as store_runs
from store.db import db_path
from store.errors import StoreError

BASELINE_RECIPE = "baseline"


def resolve_eval_baseline(home: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """`cfg` with eval_baseline as a run id and eval_baseline_ckpt as its checkpoint (both None when unset)."""
    if "eval_baseline" not in cfg:
        return cfg
    ref = cfg.get("eval_baseline")
    if ref is None or not str(ref).strip():
        return {**cfg, "eval_baseline": None, "eval_baseline_ckpt": None}
    run_id, ckpt = baseline_checkpoint(home, str(ref), cfg)
    return {**cfg, "eval_baseline": str(run_id), "eval_baseline_ckpt": str(ckpt)}


def baseline_checkpoint(home: Path, ref: str, cfg: dict[str, Any]) -> tuple[int, Path]:
    """(run id, final checkpoint) of the baseline run `ref` names, or a one-line ConfigError saying why not."""
    what = f"--eval-baseline {ref}"
    if not db_path(home).exists():
        raise ConfigError(f"{what}: there is no store at {home}, so no baseline run to name")
    try:
        run = store_runs.find_run(home, ref)
    except StoreError as e:
        raise ConfigError(f"{what}: {e}") from None
    if run.recipe != BASELINE_RECIPE:
        raise ConfigError(f"{what}: run {run.id} is a {run.recipe} run; name a completed {BASELINE_RECIPE} run")
    if run.status != "completed":
        raise ConfigError(f"{what}: run {run.id} is {run.status}; name a completed {BASELINE_RECIPE} run")
    theirs = run.config.get("dataset", run.dataset)
    if theirs != cfg.get("dataset"):
        raise ConfigError(f"{what}: run {run.id} was trained on {theirs}, this run on {cfg.get('dataset')}; "
                          f"the classifier must know the same data set")
    if run.config.get("classes") != cfg.get("classes"):
        raise ConfigError(f"{what}: run {run.id} was trained on other classes ({run.config.get('classes')})")
    if not run.run_dir:
        raise ConfigError(f"{what}: run {run.id} has no folder")
    try:
        folder = ensure_run_folder(home, Path(run.run_dir))
    except PathError as e:
        raise ConfigError(f"{what}: {e}") from None
    ckpt = folder / FINAL_CHECKPOINT
    if not ckpt.is_file():
        raise ConfigError(f"{what}: run {run.id} has no {FINAL_CHECKPOINT} (deleted?)")
    return run.id, ckpt
