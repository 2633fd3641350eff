"""The Slurm backend's pure parts, without a cluster: option checks (no injection), the batch script (run
by bash itself, as a person re-running it by hand would), state parsing and mapping, resubmission rules.

The parsing samples are lines Slurm 22.05 printed in tests/test_slurm_backend.py's runs. The supervisor's
SlurmJobs is driven here by a fake cluster (the real one: tests/test_slurm_supervisor.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.control.config import resolve_config
from engine.control.errors import BackendError
from engine.control.records import MetricsWriter
from engine.control.slurm_options import SlurmOptions, parse_extra, time_limit_seconds
from engine.control.submit import create_run
from engine.daemon.backends.base import Backend, ClusterState, map_slurm_state, resubmit_reason
from engine.daemon.backends.slurm import SCRIPT_NAME, SlurmBackend, parse_sacct, parse_scontrol
from engine.daemon.slurm_runs import SlurmJobs
from store import runs as store_runs
from tests.helpers import ROOT, make_run_dir, records, tiny_npz

SCONTROL_FAILED = (
    "JobId=1 JobName=j.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 Nice=0 Account=(null) "
    "QOS=(null) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 "
    "Reboot=0 ExitCode=143:0 RunTime=00:00:27 TimeLimit=00:01:00 TimeMin=N/A")
SCONTROL_PENDING = ("JobId=7 ArrayJobId=7 ArrayTaskId=2-3 JobName=ganmgr-x UserId=root(0) JobState=PENDING "
                    "Reason=Resources Dependency=(null) ExitCode=0:0 RunTime=00:00:00")


def test_options_are_validated_and_become_sbatch_lines():
    opts = SlurmOptions.coerce({"partition": "gpu,long", "time": "1-12:00:00", "gres": "gpu:a100:2",
                                "account": "lab", "qos": "normal", "cpus_per_task": 8, "mem": "32G",
                                "grace_s": 300, "extra": "--constraint=a100 --exclusive"})
    assert opts.sbatch_options() == [
        "--partition=gpu,long", "--time=1-12:00:00", "--gres=gpu:a100:2", "--account=lab", "--qos=normal",
        "--cpus-per-task=8", "--mem=32G", "--signal=B:TERM@300", "--constraint=a100", "--exclusive"]
    assert SlurmOptions.coerce(None).sbatch_options() == ["--signal=B:TERM@120"]
    assert SlurmOptions.coerce({"grace_s": 0}).sbatch_options() == []


@pytest.mark.parametrize("options, words", [
    ({"partition": "gpu; rm -rf ~"}, "slurm partition='gpu; rm -rf ~' is not a partition name"),
    ({"time": "1:00:00\n#SBATCH --wrap=x"}, "is not a Slurm time"),
    ({"gres": "gpu:1 --wrap=id"}, "is not a GRES list"),
    ({"account": "$(id)"}, "is not an account name"),
    ({"qos": "a'b"}, "is not a QOS name"),
    ({"mem": "lots"}, "is not a memory size"),
    ({"cpus_per_task": 0}, "must be an integer 1-4096"),
    ({"grace_s": 120, "time": "2"}, "must be shorter than the time limit 2 (120 s)"),
    ({"grace_s": -1}, "must be whole seconds"),
    ({"extra": "--wrap=id"}, "--wrap is set by ganmgr"),
    ({"extra": "--output=/etc/passwd"}, "--output is set by ganmgr"),
    ({"extra": "--signal=B:KILL@1"}, "--signal is set by ganmgr"),
    # sbatch takes unique prefixes of long options (getopt_long): --out= is --output=
    ({"extra": "--out=/tmp/x"}, "--out (short for --output) is set by ganmgr"),
    ({"extra": "--sig=B:KILL@1"}, "--sig (short for --signal) is set by ganmgr"),
    ({"extra": "--open=truncate"}, "--open (short for --open-mode) is set by ganmgr"),
    ({"extra": "--arr=0-3"}, "--arr (short for --array) is set by ganmgr"),
    ({"extra": "--time=5"}, "--time has its own option in ganmgr"),
    ({"extra": "--ti=5"}, "--ti (short for --time) has its own option"),
    ({"extra": "--part=gpu"}, "--part (short for --partition) has its own option"),
    ({"extra": "-N 2"}, "must look like --key=value"),
    ({"extra": "--comment=`id`"}, "must look like --key=value"),
    ({"extra": "--comment='a b'"}, "must look like --key=value"),
    ({"extra": "--comment=\"unclosed"}, "does not parse"),
    ({"extra": ["--x=1", 3]}, "must be a list of --key=value strings"),
    ({"partitoin": "gpu"}, "unknown slurm option 'partitoin'"),
    ({"time": "1:99:99"}, "minutes or seconds of 60 or more"),
    ({"max_parallel": 0}, "max_parallel=0 must be an integer 1-10000"),
    ({"time": "2-3:60"}, "minutes or seconds of 60 or more"),
])
def test_bad_options_are_one_line_errors(options, words):
    with pytest.raises(BackendError) as e:
        SlurmOptions.coerce(options)
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text, seconds", [
    ("30", 1800), ("30:15", 1815), ("4:00:00", 14400), ("2-0", 172800), ("1-2:03", 93780),
    ("1-02:03:04", 93784), ("UNLIMITED", None)])
def test_time_limits_in_every_sbatch_format(text, seconds):
    assert time_limit_seconds(text) == seconds


def test_parse_extra_splits_like_a_shell():
    assert parse_extra("--constraint=a100  --exclusive") == ("--constraint=a100", "--exclusive")
    assert parse_extra("") == ()


def test_scontrol_and_sacct_lines_map_to_cluster_states():
    failed = parse_scontrol("1", SCONTROL_FAILED)
    assert (failed.status, failed.cluster_state, failed.reason, failed.exit_code, failed.signal) == (
        "failed", "FAILED", "NonZeroExitCode", 143, None)
    pending = parse_scontrol("7_2", SCONTROL_PENDING)
    assert pending.status == "queued" and pending.active and pending.describe() == \
        "job 7_2: queued on the cluster (Resources)"
    assert pending.raw_id is None  # JobId=7 is the pending array's id, not the task's own
    running = parse_scontrol("7_2", "JobId=9 ArrayJobId=7 ArrayTaskId=2 JobState=RUNNING Reason=None ExitCode=0:0")
    assert (running.status, running.raw_id) == ("running", "9")
    # a requeued job has one line per run (the first PENDING): the last one wins; step rows are ignored
    text = "5|PENDING|0:0\n5|CANCELLED by 0|0:15\n5.batch|CANCELLED|0:15\n6|COMPLETED|0:0\n"
    cancelled = parse_sacct("5", text)
    assert (cancelled.status, cancelled.cluster_state, cancelled.exit_code, cancelled.signal) == (
        "cancelled", "CANCELLED", 0, 15)
    assert parse_sacct("9", text) is None


@pytest.mark.parametrize("word, status, resumable", [
    ("PENDING", "queued", False), ("RUNNING", "running", False), ("COMPLETED", "completed", False),
    ("FAILED", "failed", False), ("CANCELLED+", "cancelled", False), ("TIMEOUT", "killed", True),
    ("OUT_OF_MEMORY", "failed", False), ("NODE_FAIL", "lost", True), ("PREEMPTED", "killed", True),
    ("SOMETHING_NEW", "unknown", False)])
def test_slurm_states_map_onto_ganmgr_statuses(word, status, resumable):
    s = map_slurm_state("3", word)
    assert (s.status, s.resumable) == (status, resumable)


def test_describe_names_the_slurm_reason():
    assert map_slurm_state("3", "OUT_OF_MEMORY", exit_code=0, signal=9).describe() == \
        "job 3: failed: out of memory, exit 0 signal 9"
    assert map_slurm_state("3", "TIMEOUT").describe() == "job 3: timed out (wall-time limit)"


def _verdict(state: ClusterState, end_status: str | None, **kw) -> str | None:
    args = {"checkpoint_exists": True, "cancel_requested": False, "segments_done": 1, "max_segments": 3} | kw
    return resubmit_reason(state, {"status": end_status} if end_status else None, **args)


def test_which_segments_continue():
    failed_143 = map_slurm_state("1", "FAILED", exit_code=143)
    assert _verdict(failed_143, "cancelled") == "the worker checkpointed on the time-limit warning signal"
    assert _verdict(map_slurm_state("1", "TIMEOUT"), None) == "the job was timed out (wall-time limit)"
    assert _verdict(map_slurm_state("1", "PREEMPTED"), "cancelled") == "the job was preempted"
    assert _verdict(map_slurm_state("1", "NODE_FAIL"), None) is not None
    # no: asked to stop, cancelled by scancel, finished by itself, nothing to resume from, or enough segments
    assert _verdict(failed_143, "cancelled", cancel_requested=True) is None
    assert _verdict(map_slurm_state("1", "CANCELLED"), "cancelled") is None
    assert _verdict(map_slurm_state("1", "TIMEOUT"), "completed") is None
    assert _verdict(map_slurm_state("1", "FAILED", exit_code=1), "failed") is None
    assert _verdict(map_slurm_state("1", "FAILED", exit_code=3), "diverged") is None
    assert _verdict(map_slurm_state("1", "TIMEOUT"), None, checkpoint_exists=False) is None
    assert _verdict(map_slurm_state("1", "TIMEOUT"), None, segments_done=3) is None
    assert _verdict(map_slurm_state("1", "OUT_OF_MEMORY"), None) is None


# --- the batch script, run by bash without Slurm -----------------------------------------------------


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz", n_train=64, n_test=32)


def test_the_batch_script_is_plain_bash_that_runs_the_worker(tmp_path, npz):
    """Quoting: a python path with a space, a quote and a '$' still runs (shlex.quote in the script)."""
    odd = tmp_path / "odd dir $HOME 'q'"
    odd.mkdir()
    (odd / "python").write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")  # a venv needs its real path
    (odd / "python").chmod(0o700)
    run_dir = make_run_dir(tmp_path, "baseline", f"dataset=npz:{npz}", "width=8", "batch_size=32", "epochs=1",
                           "device=cpu", "threads=1")
    backend = SlurmBackend(python=str(odd / "python"))
    script = backend.write_script(run_dir, {"time": "5", "grace_s": 60, "extra": "--comment=x"})
    assert script == run_dir.resolve() / SCRIPT_NAME and (script.stat().st_mode & 0o777) == 0o700
    assert (run_dir / "log.txt").stat().st_mode & 0o777 == 0o600  # before slurmstepd opens it
    text = script.read_text()
    assert "#SBATCH --time=5\n#SBATCH --signal=B:TERM@60\n#SBATCH --comment=x\n" in text
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")} | {"PYTHONPATH": "/nonexistent"}
    out = subprocess.run(["bash", str(script)], cwd="/", env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr + out.stdout
    assert records(run_dir, "end")[-1]["status"] == "completed"
    assert "ganmgr: slurm job ? (restart 0) started" in out.stdout  # outside Slurm: no job id


def test_array_script_parses_and_lists_its_runs(tmp_path, npz):
    dirs = [make_run_dir(tmp_path / f"p{i}", "baseline", f"dataset=npz:{npz}") for i in range(3)]
    backend = SlurmBackend(env={"PATH": "/nonexistent"})  # no sbatch: the submission fails, files stay
    with pytest.raises(BackendError, match="^sbatch is not installed or not on PATH"):
        backend.submit_array(dirs, {"time": "10", "grace_s": 30}, array_dir=tmp_path / "arr")
    script = tmp_path / "arr" / "array.sbatch"
    assert "#SBATCH --array=0-2\n" in script.read_text() and "mapfile -t RUN_DIRS <" in script.read_text()
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert (tmp_path / "arr" / "runs.txt").read_text().splitlines() == [str(d.resolve()) for d in dirs]
    with pytest.raises(BackendError, match="^sbatch is not installed"):  # a throttled sweep: %K, no own line
        backend.submit_array(dirs, {"time": "10", "grace_s": 30, "max_parallel": 2}, array_dir=tmp_path / "arr")
    assert "#SBATCH --array=0-2%2\n" in script.read_text() and "max" not in (dirs[0] / SCRIPT_NAME).read_text()
    assert all((d / SCRIPT_NAME).is_file() for d in dirs)
    with pytest.raises(BackendError, match="appears twice"):
        backend.submit_array([dirs[0], dirs[0]])


def test_unsafe_paths_and_job_ids_are_refused(tmp_path):
    spaced = tmp_path / "a b"
    spaced.mkdir()
    (spaced / "config.json").write_text("{}")
    with pytest.raises(BackendError, match="cannot go into a batch script"):
        SlurmBackend().script_text(spaced)
    with pytest.raises(BackendError, match="is not a run folder"):
        SlurmBackend().write_script(tmp_path)
    for bad in ("1;id", "-1", "12_x", ""):
        with pytest.raises(BackendError, match="is not a Slurm job id"):
            SlurmBackend().cancel(bad)


def test_backends_stay_torch_free():
    code = ("import sys, engine.daemon.backends, engine.daemon.backends.slurm, engine.control.slurm_options, "
            "engine.control.sweep; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


class FakeCluster(Backend):
    """A Backend whose jobs end as the test says: `ends[job]` is the state a finished job reports."""

    name = "fake"

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.ends: dict[str, ClusterState] = {}

    def submit(self, run_dir: Path, options=None) -> str:
        self.submitted.append(str(100 + len(self.submitted)))
        return self.submitted[-1]

    def state(self, job_id: str) -> ClusterState:
        return self.ends.get(job_id) or map_slurm_state(job_id, "RUNNING")

    def cancel(self, job_id: str) -> None:
        raise BackendError("not asked for here")


def test_a_slurm_run_without_a_cluster_continues_after_the_limit_and_settles(store_home):
    """SlurmJobs with a fake cluster: segment 1 times out after a checkpoint, segment 2 completes."""
    cfg = resolve_config("baseline", {"dataset": "synthetic", "epochs": 2})
    run = create_run(store_home, cfg, backend="slurm")
    cluster = FakeCluster()
    jobs = SlurmJobs(store_home, "host", backend=cluster)

    def tick() -> None:
        jobs._last_poll = 0.0  # poll on every tick
        jobs.tick({}, store_runs.list_runs(store_home, status="running"))

    tick()
    assert cluster.submitted == ["100"] and store_runs.get_run(store_home, run.id).cluster_job_id == "100"
    writer = MetricsWriter(Path(run.run_dir) / "metrics.jsonl")
    writer.write({"kind": "start", "epoch": 0, "step": 0, "epochs": 2, "steps_per_epoch": 5})
    writer.write({"kind": "epoch", "epoch": 1, "step": 5, "test_acc": 40.0})
    (Path(run.run_dir) / "checkpoints" / "last.pt").write_bytes(b"checkpoint")
    writer.end("cancelled")  # the worker checkpointed on the time-limit warning
    cluster.ends["100"] = map_slurm_state("100", "TIMEOUT")
    tick()
    row = store_runs.get_run(store_home, run.id)
    assert cluster.submitted == ["100", "101"] and row.status == "running" and row.segments == 2
    assert row.epoch == 1 and row.last_test_acc == 40.0
    writer = MetricsWriter(Path(run.run_dir) / "metrics.jsonl")
    writer.write({"kind": "epoch", "epoch": 2, "step": 10, "test_acc": 50.0})
    writer.end("completed")
    cluster.ends["101"] = map_slurm_state("101", "COMPLETED", exit_code=0)
    tick()
    row = store_runs.get_run(store_home, run.id)
    assert (row.status, row.epoch, row.progress, row.last_test_acc) == ("completed", 2, 1.0, 50.0)
    assert not jobs.busy()
