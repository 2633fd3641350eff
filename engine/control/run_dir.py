"""The one reader (and writer) of a run folder's config.json and of a viz job folder's job.json.

The worker, `ganmgr resume` (which refuses a config changed on disk) and the visualizations read a run's
config through `read_run_config`, validated as the CLI and the forms validate it; the viz process reads its
job through `read_job`. A file that is missing, unreadable or invalid is a one-line error naming it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.control.config import validate_config
from engine.control.errors import ConfigError
from engine.control.paths import CONFIG_FILE, JOB_FILE, write_json_atomic
from engine.control.viz_spec import VizSpecError, validate_job


def _load_json(path: Path, error: type[ConfigError]) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path} is unreadable: {' '.join(str(e).split())[:200]}") from None
    except RecursionError:
        raise error(f"{path} is unreadable: JSON nested too deeply") from None


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """RUN_DIR/config.json, validated and normalised (`validate_config`); ConfigError says what is wrong."""
    return validate_config(_load_json(run_dir / CONFIG_FILE, ConfigError))


def write_run_config(run_dir: Path, cfg: Mapping[str, Any]) -> Path:
    """Write RUN_DIR/config.json (atomically): the config the run was created with, validated by the caller."""
    path = run_dir / CONFIG_FILE
    write_json_atomic(path, cfg)
    return path


def read_job(job_dir: Path) -> dict[str, Any]:
    """JOB_DIR/job.json, validated; VizSpecError names the file and the problem."""
    path = job_dir / JOB_FILE
    raw = _load_json(path, VizSpecError)
    try:
        return validate_job(raw)
    except VizSpecError as e:
        raise VizSpecError(f"{path}: {e}") from None


def write_job(job_dir: Path, job: Mapping[str, Any]) -> Path:
    """Validate `job` and write it as JOB_DIR/job.json (atomically, 0600)."""
    path = job_dir / JOB_FILE
    write_json_atomic(path, validate_job(job))
    path.chmod(0o600)
    return path
