"""Where a store lives, how run folders are named and laid out; every path must stay inside the root."""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_HOME = "runs"
RUN_SUBDIRS = ("samples", "checkpoints", "viz")
# The files of a run folder (and of a viz job's folder, RUN_DIR/viz/ID-KIND, which has the last three):
# config.json and job.json are read through engine/control/run_dir.py, metrics.jsonl through records.py.
CONFIG_FILE = "config.json"
JOB_FILE = "job.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "log.txt"


class PathError(ValueError):
    """A path that would leave the runs root, or a home that cannot be used."""


def resolve_home(cli_home: str | None = None) -> Path:
    """--home beats $GANMGR_HOME beats ./runs; returned absolute (not created)."""
    raw = cli_home or os.environ.get("GANMGR_HOME") or DEFAULT_HOME
    if "\x00" in raw:
        raise PathError("the home path contains a NUL character")
    home = Path(os.path.expanduser(raw)).resolve()
    if home.exists() and not home.is_dir():
        raise PathError(f"home {home} exists and is not a folder")
    return home


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps: SQLAlchemy wraps sqlite3's errors) means no space is left.

    The one test for a full disk: the worker names it in its error, the supervisor waits it out rather than
    counting it as a failed tick."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            return True
        if isinstance(e, sqlite3.OperationalError) and "disk is full" in str(e):
            return True
        e = getattr(e, "orig", None) or e.__cause__ or e.__context__
    return False


def ensure_home(home: Path) -> Path:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return home


def slugify(name: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:limit].strip("-") or "run"


def run_dir_for(home: Path, run_id: int, name: str) -> Path:
    return ensure_inside(home, home / f"{run_id}-{slugify(name)}")


def ensure_inside(root: Path, path: Path) -> Path:
    """Resolve `path` and refuse it unless it lies strictly inside `root`."""
    root_r = root.resolve()
    p = path.resolve()
    if p == root_r or root_r not in p.parents:
        raise PathError(f"{path} is outside the runs root {root_r}")
    return p


def create_run_dir(path: Path) -> Path:
    """A new run directory, readable by its owner only; an existing one is an error (ids are unique)."""
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    for sub in RUN_SUBDIRS:
        (path / sub).mkdir(mode=0o700)
    return path


def open_log(folder: Path) -> int:
    """A descriptor appending to folder/log.txt, created readable by its owner only: the worker's output,
    the supervisor's headers and every Slurm segment go to the same log."""
    return os.open(folder / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_bytes_atomic(path: Path, data: bytes | memoryview) -> None:
    """Temp file in the same folder, fsync, rename: readers see the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _drill_pause(path)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


CKPT_PAUSE_VAR = "GANMGR_DEBUG_CKPT_PAUSE"


def _drill_pause(path: Path) -> None:
    """GANMGR_DEBUG_CKPT_PAUSE=S: sleep S seconds between a checkpoint's (.pt) fsynced temp file and its
    rename, so a kill can land inside the write window on purpose (bench/chaos.py); unset, nothing."""
    if path.suffix != ".pt":
        return
    try:
        pause = float(os.environ.get(CKPT_PAUSE_VAR, "") or 0)
    except ValueError:
        return
    if pause > 0:
        time.sleep(pause)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
