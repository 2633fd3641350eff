"""Packing runs onto GPUs by memory: the pure decision (engine/control/gpu_packing.py) and the enqueue refusals."""

from __future__ import annotations

import os

import pytest

from engine.control.config import resolve_config
from engine.control.errors import ConfigError
from engine.control.gpu_packing import (
    GpuFree,
    Placed,
    available_mb,
    learned_gpu_mem_gb,
    place,
    request_mb,
    too_large,
)
from tests.helpers import ganmgr

GB = 1024.0


def test_a_run_that_fits_starts_on_the_tightest_gpu():
    gpus = [GpuFree(0, free_mb=40 * GB, total_mb=80 * GB), GpuFree(1, free_mb=10 * GB, total_mb=80 * GB)]
    assert place(6 * GB, gpus).gpu == 1  # best fit: GPU 0's 40 GB stay whole for a large run
    assert place(20 * GB, gpus).gpu == 0
    tie = [GpuFree(3, 10 * GB, 24 * GB), GpuFree(2, 10 * GB, 24 * GB)]
    assert place(4 * GB, tie).gpu == 2  # equal leftovers: the lower index


def test_a_run_that_does_not_fit_waits_with_the_reason():
    gpus = [GpuFree(0, free_mb=3.1 * GB, total_mb=24 * GB), GpuFree(1, free_mb=1.0 * GB, total_mb=24 * GB)]
    d = place(6 * GB, gpus)
    assert d.gpu is None
    assert d.why == "waiting: GPU 0 has 3.1 GB free, run needs 6.0 GB"  # names the GPU that came closest


def test_two_runs_share_a_gpu_and_a_third_waits():
    gpus = [GpuFree(0, free_mb=16 * GB, total_mb=16 * GB)]
    first = place(6 * GB, gpus)
    assert first.gpu == 0
    # the first has not allocated yet: NVML still says 16 GB free, but its 6 GB are held back
    placed = [Placed(0, 6 * GB, used_mb=None)]
    assert available_mb(gpus[0], placed) == 10 * GB
    second = place(6 * GB, gpus, placed)
    assert second.gpu == 0
    placed.append(Placed(0, 6 * GB, used_mb=None))
    third = place(6 * GB, gpus, placed)
    assert third.gpu is None and "GPU 0 has 4.0 GB free" in third.why
    # once the first two run and use their memory, NVML's free figure carries it; nothing is counted twice
    now = [GpuFree(0, free_mb=4 * GB, total_mb=16 * GB)]
    running = [Placed(0, 6 * GB, used_mb=6 * GB), Placed(0, 6 * GB, used_mb=6 * GB)]
    assert available_mb(now[0], running) == 4 * GB
    assert place(3 * GB, now, running).gpu == 0


def test_a_gpu_held_whole_is_not_offered_to_packed_runs():
    gpus = [GpuFree(0, free_mb=70 * GB, total_mb=80 * GB), GpuFree(1, free_mb=5 * GB, total_mb=80 * GB)]
    whole = [Placed(0, None)]  # a default (whole-GPU) run is on GPU 0
    assert place(2 * GB, gpus, whole).gpu == 1
    d = place(20 * GB, gpus, whole)
    assert d.gpu is None and "GPU 1 has 5.0 GB free" in d.why
    only_whole = place(2 * GB, gpus[:1], whole)
    assert only_whole.gpu is None and "held whole" in only_whole.why


def test_a_run_larger_than_any_gpu():
    gpus = [GpuFree(0, free_mb=24 * GB, total_mb=24 * GB), GpuFree(1, free_mb=40 * GB, total_mb=40 * GB)]
    d = place(48 * GB, gpus)
    assert d.gpu is None and d.why == "waiting: the largest GPU has 40.0 GB, run needs 48.0 GB"
    # at enqueue, with this node's totals known, it is refused instead of waiting forever
    assert too_large(48, [24 * GB, 40 * GB]) == ("gpu_mem=48 GB is more than any GPU of this node holds (the "
                                                 "largest has 40.0 GB)")
    assert too_large(40, [24 * GB, 40 * GB]) is None
    assert too_large(4000, []) is None  # totals unknown (no NVML here): the supervisor's node may differ


def test_no_gpu_to_pack_onto():
    d = place(1 * GB, [])
    assert d.gpu is None and "no GPU" in d.why


def test_requests_and_learned_requests():
    assert request_mb(None) is None
    assert request_mb(6) == 6 * GB
    assert learned_gpu_mem_gb(None) is None and learned_gpu_mem_gb(0) is None
    assert learned_gpu_mem_gb(8 * GB) == 9.2  # peak + 15%, rounded up to a tenth of a GB
    assert learned_gpu_mem_gb(500) == 0.8  # a small peak gets at least 256 MB of margin (756 MB -> 0.8 GB)
    # a run that filled its 24 GB GPU asks for that GPU's size, never for more than exists (a fork of it
    # would otherwise be refused at enqueue as larger than any GPU)
    assert learned_gpu_mem_gb(23.5 * GB, total_mb=24 * GB) == 24.0
    assert too_large(learned_gpu_mem_gb(23.9 * GB, total_mb=24 * GB), [24 * GB]) is None


@pytest.mark.parametrize("value", ["0", "-2"])
def test_gpu_mem_non_positive_is_a_config_error(value):
    with pytest.raises(ConfigError, match="gpu_mem"):
        resolve_config("baseline", assignments=[f"gpu_mem={value}"])
    assert resolve_config("baseline", assignments=["gpu_mem=6"])["gpu_mem"] == 6.0
    assert resolve_config("baseline")["gpu_mem"] is None  # the default: a whole GPU


@pytest.mark.parametrize("args, word", [(["--gpu-mem", "0"], "gpu_mem"), (["--gpu-mem", "-1"], "gpu_mem"),
                                        (["--gpu-mem", "lots"], "lots"),
                                        (["--set", "resources_every=-1"], "resources_every")])
def test_bad_gpu_mem_and_resources_every_exit_2_and_create_nothing(home, args, word):
    out = ganmgr(home, "run", "--recipe", "baseline", "--device", "cpu", *args)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0], out.stderr
    assert not home.exists()


# ------------------------------------------------------------------- the supervisor's side, NVML a double


def test_the_supervisor_keeps_a_run_queued_with_the_reason_and_places_one_that_fits(home):
    """RunJobs decides before claiming: a run no GPU can hold stays queued and its row says why (`ls`, `show`);
    one that fits is placed on the GPU with the least memory left over. NVML is a double (none here)."""
    from engine.control.submit import create_run
    from engine.daemon.local_runs import RunJobs
    from store import runs as store_runs
    from tests.nvml_double import FakeNvml
    from tests.tui_helpers import hold_supervisor_lock

    lock = hold_supervisor_lock(home)  # no real supervisor (no NVML here: it would not pack) starts meanwhile
    big = create_run(home, resolve_config("baseline", {"gpu_mem": 100.0, "device": "auto", "name": "big"}))
    small = create_run(home, resolve_config("baseline", {"gpu_mem": 4.0, "device": "auto", "name": "small"}))
    jobs = RunJobs(home, "testhost")
    jobs.nvml_lib = FakeNvml()  # two GPUs of 79.6 GB, 10 GB and 2 GB used
    jobs.start_queued({"max_concurrent": 4, "gpus": [0, 1]})
    row = store_runs.get_run(home, big.id)
    assert row.status == "queued" and row.pid is None
    assert row.cluster_reason == "waiting: the largest GPU has 79.6 GB, run needs 100 GB"
    assert store_runs.get_run(home, small.id).status == "queued"  # behind the head: the queue keeps its order
    ls = ganmgr(home, "ls").stdout
    assert "waiting: the largest GPU has 79.6 GB" in ls
    shown = [ln.split(None, 1) for ln in ganmgr(home, "show", "big").stdout.splitlines()]
    assert ["waiting", "the largest GPU has 79.6 GB, run needs 100 GB"] in shown
    d = jobs.placement(store_runs.get_run(home, small.id), [0, 1])
    assert d is not None and d.gpu == 0  # 69.6 GB left there fits 4 GB more tightly than GPU 1's 77.6 GB
    assert jobs.placement(store_runs.get_run(home, small.id), [1]).gpu == 1  # only the GPUs of settings --gpus
    os.close(lock)


@pytest.mark.gpu
def test_gpu_mem_beyond_every_real_gpu_is_refused_at_enqueue(home):
    from engine.control import nvml

    if nvml.nvml_reason() is not None:
        pytest.skip(f"NVML: {nvml.nvml_reason()}")
    largest = max(g.mem_total_mb for g in nvml.read_gpus()) / GB
    out = ganmgr(home, "run", "--recipe", "baseline", "--gpu-mem", f"{largest + 1:.0f}")
    assert out.returncode == 2 and "more than any GPU of this node holds" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (home / "ganmgr.db").exists()
