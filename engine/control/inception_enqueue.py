"""The Inception weights a new run or viz job gets, resolved at enqueue from the store's settings.

The worker never reads the store, so the file travels by name: `config.json` (fields `inception_weights`,
`inception_uncalibrated`) or `job.json` (same keys). Kept apart from `inception_weights` (which the torch side
imports) because this module reads the store, which `engine.compute` must never import. Also the CLI's
child-process load check of a weights file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from engine.control.errors import ConfigError
from engine.control.inception_weights import SETTING_ALLOW, SETTING_PATH, config_fields, weights_status
from engine.control.launcher import worker_env
from store import settings as store_settings
from store.db import db_path

LOAD_CHECK_TIMEOUT_S = 300.0


def inception_settings(home: Path) -> tuple[str | None, bool]:
    """(the path set by `ganmgr settings --inception-weights`, or None for torch hub's cache; allowed
    uncalibrated)."""
    if not db_path(home).exists():
        return None, False
    settings = store_settings.get_settings(home)
    path = settings.get(SETTING_PATH)
    return (path if isinstance(path, str) else None), settings.get(SETTING_ALLOW) is True


def inception_fields(home: Path) -> dict[str, Any]:
    """`{"inception_weights": abs path or None, "inception_uncalibrated": bool}` as usable right now (a file
    that went missing or changed since it was set resolves to None: the evaluation says why it is off)."""
    return config_fields(*inception_settings(home))


def resolve_inception(home: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """`cfg` with its Inception fields resolved (a recipe without them is returned as it is). Hashing the
    96 MB file costs ~0.1 s, so it is done only for a run that evaluates (eval_every > 0); a value typed by
    hand is never kept. A file the user set that is no longer usable (moved, replaced, cut) is a ConfigError
    (one line, exit 2, nothing created): a long run must not skip FID for a reason nobody saw. No setting and
    nothing in torch hub's cache is not an error: the run evaluates without FID and says so once."""
    if "inception_weights" not in cfg:
        return cfg
    if not cfg.get("eval_every"):
        return {**cfg, "inception_weights": None, "inception_uncalibrated": False}
    path, allow = inception_settings(home)
    resolved, uncalibrated, problem = weights_status(path, allow)
    if path is not None and problem:
        raise ConfigError(f"{problem} (set by `ganmgr settings --inception-weights`; fix the file, or "
                          f"`ganmgr settings --inception-weights default`)")
    return {**cfg, "inception_weights": resolved, "inception_uncalibrated": bool(uncalibrated and resolved)}


def check_loadable(path: Path, timeout_s: float = LOAD_CHECK_TIMEOUT_S) -> str | None:
    """None when the file loads with torch's weights-only unpickler into torch-fidelity's InceptionV3, else one
    line. Runs `python -m engine.compute.inception_check PATH` (argv list, no shell): the CLI never imports
    torch, and a pickle that would run code is refused by the weights-only unpickler, never executed."""
    argv = [sys.executable, "-m", "engine.compute.inception_check", str(path)]
    try:
        out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                             timeout=timeout_s, env=worker_env({"CUDA_VISIBLE_DEVICES": ""}))
    except subprocess.TimeoutExpired:
        return f"Inception weights {path}: checking it took over {timeout_s:.0f} s"
    except OSError as e:
        return f"Inception weights {path}: cannot check it ({e.strerror or e})"
    if out.returncode != 0:
        said = (out.stdout.strip().splitlines() or out.stderr.strip().splitlines() or ["no answer"])[-1]
        return said[:400]
    return None
