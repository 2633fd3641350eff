"""Running workers as Slurm batch jobs: sbatch, squeue/scontrol, sacct and scancel, argv lists only.

`submit` writes RUN_DIR/job.sbatch, a plain bash script a person can read and re-submit by hand
(`sbatch RUN_DIR/job.sbatch`), and submits it with `sbatch --parsable`. The script `exec`s the worker, so
the worker *is* the batch shell: Slurm's `--signal=B:TERM@GRACE` warning before the wall-time limit and
scancel's SIGTERM both reach it directly, and it checkpoints to checkpoints/last.pt and exits. (Measured
on Slurm 22.05: with the worker as a plain child of bash instead, the warning killed bash, the job ended
FAILED 0:15 and the worker ran on as an orphan; a bash `trap` that forwards TERM also works, but then a
scancel delivers TERM twice, once from Slurm to every process and once forwarded.)

Output goes to RUN_DIR/log.txt with `--open-mode=append`, so every segment of a long run adds to one log.
Every option is checked (engine/control/slurm_options.py) before it reaches a `#SBATCH` line, and every
value the shell part uses is quoted with shlex, so nothing in a run's options or paths can inject shell code.

State: `scontrol show job` while the controller knows the job (pending, running, and finished jobs younger
than MinJobAge); after that `sacct` (with accounting storage) or `sacct -c` (jobcomp/filetxt), retried
because it lags, the last line per job id winning (a requeued job has one line per run). `sacct -c` knows
array tasks only by their own job id (task `6_3` ran as JobId=6; it prints "Unknown type ArrayJobId"), so
`scontrol` answers carry that id as `ClusterState.raw_id`; keep it with the segment and pass it back.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.control.errors import BackendError
from engine.control.paths import CONFIG_FILE, open_log, write_bytes_atomic
from engine.control.slurm_options import MAX_ARRAY, SlurmOptions, check_extra, safe_path
from engine.daemon.backends.base import Backend, ClusterState, map_slurm_state

SCRIPT_NAME = "job.sbatch"
ARRAY_SCRIPT_NAME = "array.sbatch"
ARRAY_LIST_NAME = "runs.txt"
COMMAND_TIMEOUT_S = 60.0
JOB_ID_RE = re.compile(r"^\d{1,12}(_\d{1,6})?$")


def source_root() -> Path:
    """The checkout whose `engine` package the job must import (as launcher.worker_env does)."""
    return Path(__file__).resolve().parents[3]  # engine/daemon/backends/slurm.py -> the checkout


@dataclass
class SlurmBackend(Backend):
    """Slurm through its command-line clients. `env` is the clients' environment (SLURM_CONF etc.)."""

    env: Mapping[str, str] | None = None
    python: str = field(default_factory=lambda: sys.executable)
    source: Path = field(default_factory=source_root)
    sacct_tries: int = 6
    sacct_delay_s: float = 0.5
    name: str = "slurm"
    _sacct_flags: list[str] | None = field(default=None, repr=False)
    _raw_ids: dict[str, str] = field(default_factory=dict, repr=False)  # array task -> its own job id

    # --- scripts ------------------------------------------------------------------------------------
    def _preamble(self, opts: SlurmOptions, job_name: str, output: str, chdir: str | None,
                  array: str | None = None) -> list[str]:
        lines = ["#!/bin/bash",
                 "# Written by ganmgr (engine/daemon/backends/slurm.py). Re-submit by hand with: sbatch THIS_FILE",
                 f"#SBATCH --job-name={job_name}",
                 f"#SBATCH --output={output}",
                 "#SBATCH --open-mode=append"]
        if chdir:
            lines.append(f"#SBATCH --chdir={chdir}")
        if array:
            lines.append(f"#SBATCH --array={array}")
        lines += [f"#SBATCH {opt}" for opt in opts.sbatch_options()]
        python = self.python
        if "\n" in python or "\n" in str(self.source):
            raise BackendError("the python or checkout path contains a newline")
        lines += ["set -u",
                  "umask 077  # run folders 0700, files 0600 (log.txt is opened here, before the worker runs)",
                  "export PYTHONUNBUFFERED=1",
                  "# the worker imports this checkout's packages (engine/control/launcher.worker_env does the same)",
                  f"export PYTHONPATH={shlex.quote(str(self.source))}\"${{PYTHONPATH:+:$PYTHONPATH}}\""]
        return lines

    @staticmethod
    def _worker_lines(python: str) -> list[str]:
        return ['echo "ganmgr: slurm job ${SLURM_JOB_ID:-?}${SLURM_ARRAY_TASK_ID:+ task $SLURM_ARRAY_TASK_ID}'
                ' (restart ${SLURM_RESTART_COUNT:-0}) started $(date \'+%Y-%m-%d %H:%M:%S\') on $(hostname)"',
                "# exec: the worker becomes the batch shell, so the warning signal (B:TERM) and scancel reach it",
                f'exec {shlex.quote(python)} -m engine.worker "$RUN_DIR"']

    def script_text(self, run_dir: Path, options: SlurmOptions | Mapping[str, Any] | None = None) -> str:
        """The batch script for one run (what `write_script` puts into RUN_DIR/job.sbatch)."""
        opts = SlurmOptions.coerce(options)
        rd = safe_path(run_dir, "run directory")
        job_name = opts.job_name or _job_name(run_dir.name)
        lines = self._preamble(opts, job_name, f"{rd}/log.txt", rd)
        lines += [f"RUN_DIR={shlex.quote(rd)}", 'cd "$RUN_DIR" || exit 2']
        lines += self._worker_lines(self.python)
        return "\n".join(lines) + "\n"

    def write_script(self, run_dir: Path, options: SlurmOptions | Mapping[str, Any] | None = None) -> Path:
        run_dir = _run_folder(run_dir)
        path = run_dir / SCRIPT_NAME
        write_bytes_atomic(path, self.script_text(run_dir, options).encode())
        os.chmod(path, 0o700)  # the owner may run or re-submit it; nobody else reads the paths in it
        # slurmstepd would create the --output file with the submitter's umask (often 022): make it 0600 now
        os.close(open_log(run_dir))
        return path

    # --- submitting ---------------------------------------------------------------------------------
    def submit(self, run_dir: Path, options: SlurmOptions | Mapping[str, Any] | None = None) -> str:
        """Write RUN_DIR/job.sbatch and submit it; returns the job id."""
        script = self.write_script(run_dir, options)
        return self._sbatch([str(script)], cwd=script.parent)

    def resubmit(self, run_dir: Path, overrides: Sequence[str] = ()) -> str:
        """Submit RUN_DIR/job.sbatch again (the next segment of a long run). `overrides` are sbatch options
        given on the command line, which win over the script's `#SBATCH` lines (e.g. `--time=2:00:00`)."""
        run_dir = _run_folder(run_dir)
        script = run_dir / SCRIPT_NAME
        if not script.is_file():
            raise BackendError(f"{script} does not exist; submit the run first")
        extra = [check_extra(o, own_fields=False) for o in overrides]
        return self._sbatch([*extra, str(script)], cwd=run_dir)

    def submit_array(self, run_dirs: Sequence[Path], options: SlurmOptions | Mapping[str, Any] | None = None,
                     *, array_dir: Path | None = None, max_parallel: int | None = None) -> list[str]:
        """Submit one job array for `run_dirs`; returns the task ids (`ARRAYID_0`, ...) in their order.

        The array's script and its list of run folders go to `array_dir` (default: `arrays/<time>` beside
        the runs); task i reads line i of the list. Each run also gets its own RUN_DIR/job.sbatch, so a
        task that times out continues as a plain job. Slurm's own messages go to array_dir/slurm-A_a.out;
        the worker's output is appended to its RUN_DIR/log.txt.
        """
        dirs = [_run_folder(d) for d in run_dirs]
        if not dirs:
            raise BackendError("an array needs at least one run")
        if len(dirs) > MAX_ARRAY:
            raise BackendError(f"an array of {len(dirs)} runs is more than {MAX_ARRAY}")
        if len(set(dirs)) != len(dirs):
            raise BackendError("the same run folder appears twice in the array")
        if max_parallel is not None and (isinstance(max_parallel, bool) or not isinstance(max_parallel, int)
                                         or max_parallel < 1):
            raise BackendError(f"max_parallel={max_parallel!r} must be a positive integer")
        opts = SlurmOptions.coerce(options)
        if max_parallel is None:
            max_parallel = opts.max_parallel
        for d in dirs:
            safe_path(d, "run directory")
            self.write_script(d, opts)
        if array_dir is None:
            parent = Path(os.path.commonpath([str(d.parent) for d in dirs]))
            array_dir = parent / "arrays" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        array_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        ad = safe_path(array_dir.resolve(), "array directory")
        listing = array_dir / ARRAY_LIST_NAME
        write_bytes_atomic(listing, ("\n".join(str(d) for d in dirs) + "\n").encode())
        spec = f"0-{len(dirs) - 1}" + (f"%{max_parallel}" if max_parallel else "")
        job_name = opts.job_name or _job_name(f"array-{dirs[0].name}")
        lines = self._preamble(opts, job_name, f"{ad}/slurm-%A_%a.out", ad, array=spec)
        lines += [f"mapfile -t RUN_DIRS < {shlex.quote(str(listing))}",
                  'RUN_DIR="${RUN_DIRS[${SLURM_ARRAY_TASK_ID:-0}]:-}"',
                  'if [ -z "$RUN_DIR" ] || [ ! -d "$RUN_DIR" ]; then',
                  '  echo "ganmgr: array task ${SLURM_ARRAY_TASK_ID:-?} has no run directory in the list" >&2',
                  "  exit 2",
                  "fi",
                  'cd "$RUN_DIR" || exit 2',
                  'exec >>"$RUN_DIR/log.txt" 2>&1']
        lines += self._worker_lines(self.python)
        script = array_dir / ARRAY_SCRIPT_NAME
        write_bytes_atomic(script, ("\n".join(lines) + "\n").encode())
        os.chmod(script, 0o700)
        job = self._sbatch([str(script)], cwd=array_dir)
        return [f"{job}_{i}" for i in range(len(dirs))]

    def _sbatch(self, args: list[str], cwd: Path) -> str:
        r = self._run(["sbatch", "--parsable", *args], cwd=cwd)
        if r.returncode != 0:
            raise BackendError(f"sbatch refused the job: {_first_line(r.stderr or r.stdout)}")
        out = r.stdout.strip().splitlines()
        job = out[-1].split(";", 1)[0].strip() if out else ""
        if not re.fullmatch(r"\d{1,12}", job):
            raise BackendError(f"sbatch printed no job id: {_first_line(r.stdout + r.stderr)}")
        return job

    # --- state --------------------------------------------------------------------------------------
    def state(self, job_id: str, raw_id: str | None = None) -> ClusterState:
        """scontrol while the controller knows the job, else sacct (retried: it lags), else `unknown`.
        `raw_id`: an array task's own job id, from an earlier ClusterState (needed by `sacct -c`)."""
        _check_job_id(job_id)
        live = self.scontrol_state(job_id)
        if live is not None:
            return live
        for i in range(max(1, self.sacct_tries)):
            final = self.sacct_state(job_id, raw_id)
            if final is not None:
                return final
            if i + 1 < self.sacct_tries:
                time.sleep(self.sacct_delay_s)
        return ClusterState(job_id=job_id, status="unknown", cluster_state="")

    def states(self, job_ids: Sequence[str], raw_ids: Mapping[str, str] | None = None) -> dict[str, ClusterState]:
        """Many jobs with one `squeue` call (a sweep's tasks, every run a supervisor follows); jobs squeue
        no longer lists as pending or running are asked about one by one (scontrol, then sacct).
        `raw_ids`: array tasks' own job ids kept in the store (a restarted supervisor's `sacct -c` needs them)."""
        for j in job_ids:
            _check_job_id(j)
        for j, raw in (raw_ids or {}).items():
            self._raw_ids.setdefault(j, raw)
        live: dict[str, ClusterState] = {}
        if not job_ids:
            return live
        # %i: the id as asked (ARRAY_TASK for a task), %A: a started task's own job id
        # -r: one line per array task, also while pending (else `A_[2-3]`, and each task costs a scontrol)
        r = self._run(["squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", "%i|%A|%T|%r"])
        if r.returncode == 0:
            for line in r.stdout.splitlines():
                parts = line.strip().split("|")
                if len(parts) == 4 and parts[0] in job_ids:
                    # (the last task of an array runs under the array's own id: JobId=6 for task 6_3)
                    raw = parts[1] if "_" in parts[0] and parts[1].isdigit() else None
                    if map_slurm_state(parts[0], parts[2]).status == "queued":
                        raw = None  # a pending task may not have its own job record yet
                    state = map_slurm_state(parts[0], parts[2], reason=parts[3], source="squeue", raw_id=raw)
                    if state.active:
                        live[parts[0]] = state
                        if raw:
                            self._raw_ids[parts[0]] = raw
        return {j: live[j] if j in live else self.state(j, self._raw_ids.get(j)) for j in job_ids}

    def scontrol_state(self, job_id: str) -> ClusterState | None:
        r = self._run(["scontrol", "show", "job", "-o", job_id])
        if r.returncode != 0 or not r.stdout.strip():
            if "invalid job id" in (r.stderr + r.stdout).lower():
                return None
            raise BackendError(f"scontrol show job {job_id} failed: {_first_line(r.stderr or r.stdout)}")
        live = parse_scontrol(job_id, r.stdout)
        if live.raw_id:
            self._raw_ids[job_id] = live.raw_id
        return live

    def sacct_state(self, job_id: str, raw_id: str | None = None) -> ClusterState | None:
        _check_job_id(job_id)
        flags = self._sacct_mode()
        query = job_id
        if "_" in job_id and flags == ["-c"]:  # jobcomp lists array tasks under their own job ids only
            query = raw_id or self._raw_ids.get(job_id) or ""
            if not query:
                return None
            _check_job_id(query)
        r = self._run(["sacct", *flags, "-n", "-P", "-j", query, "-o", "JobID,State,ExitCode"])
        if r.returncode != 0 and not r.stdout.strip():
            return None
        found = parse_sacct(query, r.stdout, source="sacct " + " ".join(flags))
        return replace(found, job_id=job_id, raw_id=query if query != job_id else None) if found else None

    def _sacct_mode(self) -> list[str]:
        """`-X` with accounting storage (allocations only, no step rows); `-c` (jobcomp) without it."""
        if self._sacct_flags is None:
            r = self._run(["sacct", "-n", "-X", "-j", "1", "-o", "JobID"])
            self._sacct_flags = ["-c"] if "accounting storage is disabled" in (r.stderr + r.stdout).lower() \
                else ["-X"]
        return self._sacct_flags

    # --- cancelling ---------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> None:
        """scancel: Slurm sends SIGTERM to the job (the worker checkpoints) and SIGKILL after KillWait."""
        _check_job_id(job_id)
        r = self._run(["scancel", job_id])
        if r.returncode != 0:
            raise BackendError(f"scancel {job_id} failed: {_first_line(r.stderr or r.stdout)}")

    # --- plumbing -----------------------------------------------------------------------------------
    def _run(self, argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        env = dict(self.env) if self.env is not None else None
        try:
            return subprocess.run(argv, cwd=str(cwd) if cwd else None, env=env, capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise BackendError(f"{argv[0]} is not installed or not on PATH (is this a Slurm login node?)") from None
        except subprocess.TimeoutExpired:
            raise BackendError(f"{argv[0]} did not answer within {COMMAND_TIMEOUT_S:g} s") from None
        except OSError as e:
            raise BackendError(f"{argv[0]} could not run: {e}") from None


# --- parsing ----------------------------------------------------------------------------------------

_STATE_RE = re.compile(r"(?:^|\s)JobState=(\S+)")
_REASON_RE = re.compile(r"(?:^|\s)Reason=(\S+)")
_EXIT_RE = re.compile(r"(?:^|\s)ExitCode=(\d+):(\d+)")
_JOBID_RE = re.compile(r"(?:^|\s)JobId=(\d+)")
_TASK_RE = re.compile(r"(?:^|\s)ArrayTaskId=(\S+)")


def parse_scontrol(job_id: str, text: str) -> ClusterState:
    """The first record of `scontrol show job -o ID` (one line per job with -o)."""
    line = next((ln for ln in text.splitlines() if "JobState=" in ln), "")
    m = _STATE_RE.search(line)
    if m is None:
        raise BackendError(f"scontrol show job {job_id} printed no JobState")
    reason = _REASON_RE.search(line)
    code, sig = _exit(_EXIT_RE.search(line))
    # an array task's own job id, once the task is split out of the pending array record (whose JobId is
    # the array's: ArrayTaskId=2-3 there, a single number here)
    own, task = _JOBID_RE.search(line), _TASK_RE.search(line)
    raw_id = None
    if "_" in job_id and own and task and task.group(1) == job_id.split("_", 1)[1]:
        raw_id = own.group(1) if own.group(1) != job_id else None
    return map_slurm_state(job_id, m.group(1), reason=reason.group(1) if reason else None, exit_code=code,
                           signal=sig, source="scontrol", raw_id=raw_id)


def parse_sacct(job_id: str, text: str, source: str = "sacct") -> ClusterState | None:
    """`sacct -n -P -o JobID,State,ExitCode` lines: the last one for `job_id` wins (one line per run of a
    requeued job); step rows (`ID.batch`) are ignored. None when the job is not listed (yet)."""
    found = None
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or parts[0] != job_id:
            continue
        found = parts
    if found is None:
        return None
    m = re.fullmatch(r"(\d+):(\d+)", found[2].strip())
    code, sig = _exit(m)
    return map_slurm_state(job_id, found[1], exit_code=code, signal=sig, source=source)


def _exit(m: re.Match | None) -> tuple[int | None, int | None]:
    if m is None:
        return None, None
    return int(m.group(1)), (int(m.group(2)) or None)


def _check_job_id(job_id: str) -> None:
    if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
        raise BackendError(f"{job_id!r} is not a Slurm job id (digits, or ARRAY_TASK for an array task)")


def _run_folder(run_dir: Path) -> Path:
    run_dir = Path(run_dir).resolve()
    if not (run_dir / CONFIG_FILE).is_file():
        raise BackendError(f"{run_dir} is not a run folder (no config.json)")
    return run_dir


def _job_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.+-]", "-", f"ganmgr-{text}")[:64]
    return name


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[0][:300] if lines else "(no message)"

