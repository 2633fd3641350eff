"""Starting workers: argv lists only (never a shell string), output to the run's log.txt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.control.paths import open_log
from engine.control.runs_root import ensure_run_folder
from engine.control.supervisor_lock import lock_is_held


def worker_argv(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "engine.worker", str(run_dir)]


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # the worker must find this checkout's packages even when started from another cwd
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if extra:
        env.update(extra)
    return env


def spawn_worker(home: Path, run_dir: Path, *, new_session: bool, nice: int = 0,
                 env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `python -m engine.worker RUN_DIR` with stdout+stderr appended to RUN_DIR/log.txt.

    new_session=True makes the worker a process-group leader detached from the terminal (queued runs);
    False keeps it in the caller's group so a terminal Ctrl-C reaches it too (headless runs).
    """
    run_dir = ensure_run_folder(home, run_dir)
    return spawn_logged(worker_argv(run_dir), run_dir, new_session=new_session, nice=nice, env_extra=env_extra)


def spawn_logged(argv: list[str], folder: Path, *, new_session: bool, nice: int = 0,
                 env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `argv` in `folder` with stdout+stderr appended to folder/log.txt (a worker or a viz job)."""
    log = os.fdopen(open_log(folder), "ab", buffering=0)  # noqa: SIM115 - handed to the child
    try:
        def lower_priority() -> None:
            if nice:
                os.nice(nice)

        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=str(folder), env=worker_env(env_extra), start_new_session=new_session,
                                close_fds=True, preexec_fn=lower_priority if nice else None)
    finally:
        log.close()


def supervisor_argv(home: Path) -> list[str]:
    return [sys.executable, "-m", "engine.supervisor", "--home", str(home)]


def ensure_supervisor(home: Path) -> subprocess.Popen | None:
    """Start a detached supervisor for `home` unless one holds the store's lock already.

    The supervisor itself takes an exclusive flock on HOME/supervisor.lock and exits at once when another
    instance holds it, so racing callers are harmless; we only skip the spawn when the lock is visibly held.
    """
    _reap_started()
    if lock_is_held(home):
        return None
    fd = os.open(home / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    log = os.fdopen(fd, "ab", buffering=0)
    try:
        proc = subprocess.Popen(supervisor_argv(home), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=str(home), env=worker_env(),
                                start_new_session=True, close_fds=True)
    finally:
        log.close()
    _STARTED.append(proc)
    return proc


# Supervisors this process started. A long-lived caller (the TUI) reaps the ones that exited, so they
# do not linger as zombies; a short-lived one (the CLI) exits first and init reaps them.
_STARTED: list[subprocess.Popen] = []


def _reap_started() -> None:
    _STARTED[:] = [p for p in _STARTED if p.poll() is None]
