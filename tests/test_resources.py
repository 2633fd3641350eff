"""The worker's resources records: psutil figures of real processes, the sampler thread beside the training loop,
the fold into the row (peaks a finished run keeps), CUDA out-of-memory as a status, and NVML: a double where NVML
alone is exercised (it cannot run on a machine without a GPU), the real library in `gpu`-marked tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.compute.resources import ProcessTree, ResourceSampler, cuda_ordinal
from engine.control import nvml
from engine.control.follow import ProgressFold, outcome
from engine.control.records import RESOURCES, MetricsWriter, read_all
from engine.control.resource_use import ResourceUse, run_resources, summary_line
from tests.helpers import ROOT, ganmgr, make_run_dir, records, run_worker, tiny_args, tiny_npz
from tests.nvml_double import MB, FakeNvml


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return tiny_npz(tmp_path_factory.mktemp("res") / "tiny.npz", n_train=256, n_test=64)


# --------------------------------------------------------------------------------- psutil, real processes


def test_the_process_tree_counts_a_busy_child_and_its_memory():
    """A child that holds 200 MB and spins one core: the tree's RSS and CPU include it (DataLoader workers)."""
    child = subprocess.Popen([sys.executable, "-c", "b = bytearray(200 * 1024 * 1024)\n"
                              "import time\nt = time.time()\nwhile time.time() - t < 20: pass"])
    try:
        import psutil

        tree = ProcessTree()
        time.sleep(1.0)  # let the child allocate and run
        alone = psutil_rss_mb(os.getpid())
        tree.sample()
        spun, t0 = sum(psutil.Process(child.pid).cpu_times()[:2]), time.monotonic()
        time.sleep(1.0)
        cpu, rss = tree.sample()
        child_pct = (sum(psutil.Process(child.pid).cpu_times()[:2]) - spun) / (time.monotonic() - t0) * 100
        assert child.pid in tree.pids()
        assert rss >= alone + 190, (rss, alone)  # the child's 200 MB bytearray is counted
        # the spinning child's share of the last second is in the sum (on a loaded machine it gets what it gets)
        assert child_pct > 2 and cpu >= 0.7 * child_pct, (cpu, child_pct)
    finally:
        child.kill()
        child.wait()
    cpu, rss = tree.sample()  # a child that exited is simply gone from the sum
    assert child.pid not in tree.pids() and rss < alone + 100


def psutil_rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / MB


def test_a_cpu_run_records_cpu_and_rss_and_no_gpu_fields(tmp_path):
    lines: list[str] = []
    sampler = ResourceSampler(lambda rec: None, 1.0, device=lambda: "cpu", log=lines.append)
    rec = sampler.record()
    assert rec["kind"] == RESOURCES and rec["rss_mb"] > 10 and rec["cpu_percent"] >= 0
    assert "gpu" not in rec and "proc_gpu_mem_mb" not in rec  # absent, never zero
    sampler.record()
    assert lines == ["resources: no GPU figures (the run trains on cpu); CPU and RSS only"]  # said once


def test_the_sampler_thread_writes_whole_lines_beside_the_loop(tmp_path):
    """The training loop and the sampler share one writer: under load every line is one whole record."""
    writer = MetricsWriter(tmp_path / "metrics.jsonl")
    with ResourceSampler(writer.write, 0.001, device=lambda: "cpu", log=lambda m: None) as sampler:
        for i in range(3000):
            writer.write({"kind": "train", "step": i, "pad": "x" * 200})
        time.sleep(0.05)
    n = sampler.samples
    writer.close()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    parsed = [json.loads(line) for line in lines]  # raises on an interleaved line
    assert [r["step"] for r in parsed if r["kind"] == "train"] == list(range(3000))
    assert sum(r["kind"] == RESOURCES for r in parsed) == n and n > 5


def test_a_closed_writer_ends_the_sampler_quietly(tmp_path):
    writer = MetricsWriter(tmp_path / "metrics.jsonl")
    said: list[str] = []
    sampler = ResourceSampler(writer.write, 0.01, device=lambda: None, log=said.append).start()
    writer.close()
    sampler._thread.join(timeout=5)
    assert not sampler._thread.is_alive() and said == []


def test_resources_every_zero_starts_no_thread(tmp_path):
    before = threading.active_count()
    with ResourceSampler(lambda r: None, 0, device=lambda: "cpu") as sampler:
        assert sampler._thread is None and threading.active_count() == before


@pytest.mark.slow
def test_a_tiny_worker_writes_resources_records(tmp_path, npz):
    run_dir = make_run_dir(tmp_path, "baseline", f"dataset=npz:{npz}", "width=8", "batch_size=32", "epochs=3",
                           "device=cpu", "threads=1", "resources_every=0.2")
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    recs = records(run_dir, RESOURCES)
    assert recs, "no resources record"
    for r in recs:
        assert set(r) == {"kind", "t", "cpu_percent", "rss_mb"}  # no gpu field on this CPU run
        assert r["rss_mb"] > 50 and r["cpu_percent"] >= 0
    assert max(r["cpu_percent"] for r in recs) > 10  # the worker trains: it is busy
    assert out.stdout.count("resources: no GPU figures") == 1
    assert records(run_dir)[-1]["kind"] == "end"  # the sampler stopped before the end record


# ------------------------------------------------------------------------------------------ the fold


def test_the_fold_keeps_peaks_beside_the_train_metrics():
    fold = ProgressFold()
    fold.fold({"kind": RESOURCES, "t": 1, "cpu_percent": 90, "rss_mb": 500.0})
    fold.fold({"kind": "train", "step": 3, "loss": 2.5})
    fold.fold({"kind": RESOURCES, "t": 2, "cpu_percent": 95, "rss_mb": 800.0, "proc_gpu_mem_mb": 3000.0,
               "gpu": [{"index": 0, "uuid": "GPU-a", "mem_used_mb": 5000.0, "mem_total_mb": 81920.0,
                        "util_percent": 80.0, "temp_c": 60, "power_w": 250.0}]})
    fold.fold({"kind": RESOURCES, "t": 3, "cpu_percent": 95, "rss_mb": 700.0, "proc_gpu_mem_mb": 2500.0,
               "gpu": [{"index": 0, "uuid": "GPU-a", "mem_used_mb": 4000.0, "mem_total_mb": 81920.0,
                        "util_percent": 100.0, "temp_c": 61, "power_w": 260.0}]})
    fold.fold({"kind": "train", "step": 6, "loss": 2.0})
    lm = fold.fields["last_metrics"]
    assert lm["loss"] == 2.0
    res = run_resources(lm)
    assert res == {"samples": 3, "peak_rss_mb": 800.0, "peak_gpu_mem_mb": 3000.0, "gpu_mem_from": "process",
                   "gpu_mem_total_mb": 81920.0, "mean_gpu_util": 90.0, "util_samples": 2}
    assert summary_line(res).startswith("peak GPU 2.9 GB of 80.0 GB    mean util 90%    peak RSS 800 MB")
    # a resumed run's fold starts from the row: its peak survives the next attempt's smaller samples
    again = ProgressFold()
    again.resources = ResourceUse.from_dict(res)
    again.fold({"kind": RESOURCES, "t": 9, "cpu_percent": 10, "rss_mb": 100.0})
    kept = run_resources(again.fields["last_metrics"])
    assert kept["peak_rss_mb"] == 800.0 and kept["peak_gpu_mem_mb"] == 3000.0 and kept["samples"] == 4


def test_cuda_oom_ends_failed_with_the_peak_and_a_hint():
    end = {"kind": "end", "status": "failed", "time": 5.0, "error": "OutOfMemoryError: CUDA out of memory.",
           "oom": {"peak_mb": 23900.0, "total_mb": 24576.0}}
    oc = outcome(end, returncode=1, cancel_requested=False, killed_by_us=False, log_path=None)
    assert oc.status == "failed"
    assert oc.message.startswith("failed: out of GPU memory (peak 23.3 GB of 24.0 GB): lower batch_size")
    assert "--gpu-mem" in oc.error and "OutOfMemoryError" in oc.error


OOM_HOOK = '''
import os, sys
if b"engine.worker" in open("/proc/self/cmdline", "rb").read().split(b"\\0"):
    import torch
    from engine.compute.recipes import base
    def setup(self):  # a CUDA double: the allocator's own error, where a CPU has no CUDA to run out of
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    base.Trainer.setup = setup
'''


@pytest.mark.slow
def test_a_worker_that_runs_out_of_cuda_memory_says_so(tmp_path, npz):
    run_dir = make_run_dir(tmp_path, "baseline", f"dataset=npz:{npz}", "width=8", "epochs=1", "device=cpu")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(OOM_HOOK)
    out = run_worker(run_dir, env={"PYTHONPATH": f"{hook}:{ROOT}"})
    assert out.returncode == 1, out.stderr
    end = read_all(run_dir / "metrics.jsonl")[-1]
    assert end["status"] == "failed" and end["error"].startswith("OutOfMemoryError: CUDA out of memory")
    assert set(end["oom"]) == {"peak_mb", "total_mb"}  # None here: no CUDA device to ask
    oc = outcome(end, returncode=1, cancel_requested=False, killed_by_us=False, log_path=None)
    assert oc.message.startswith("failed: out of GPU memory (peak not measured): lower batch_size")


@pytest.mark.slow
def test_show_and_ls_give_a_finished_runs_peak_rss(home, npz):
    out = ganmgr(home, "run", "--headless", *tiny_args(npz, "res", 3, "--set", "resources_every=0.2"))
    assert out.returncode == 0, out.stderr
    show = ganmgr(home, "show", "1")
    line = next(ln for ln in show.stdout.splitlines() if ln.strip().startswith("resources"))
    assert "peak RSS" in line and "peak GPU" not in line, line  # no GPU here: no GPU figure, not a zero
    peak = json.loads(ganmgr(home, "show", "1", "--json").stdout)["run"]["last_metrics"]["resources"]
    assert peak["peak_rss_mb"] > 50 and peak["samples"] >= 1
    ls = ganmgr(home, "ls").stdout.splitlines()
    assert ls[0].split()[-2:] == ["MEM", "RSS"] and ls[1].split()[-1].endswith(("M", "G"))


# ------------------------------------------------------------------------------ NVML: a double, and real


def test_cuda_visible_devices_maps_to_nvml_indices():
    uuids = ["GPU-aaaa", "GPU-bbbb", "GPU-cccc"]
    assert nvml.map_visible(None, uuids) == [0, 1, 2]
    assert nvml.map_visible("2,0", uuids) == [2, 0]
    assert nvml.map_visible("GPU-bb,0", uuids) == [1, 0]  # a unique UUID prefix will do
    assert nvml.map_visible("1,7,0", uuids) == [1]  # CUDA stops at the first device it cannot use
    assert nvml.map_visible("", uuids) == [] and nvml.map_visible("-1", uuids) == []
    assert nvml.map_visible("MIG-xyz", uuids) == []
    assert cuda_ordinal("cuda") == 0 and cuda_ordinal("cuda:1") == 1 and cuda_ordinal("cpu") is None


def test_a_gpu_run_records_its_own_device_and_process_memory():
    fake = FakeNvml(procs={1: [(os.getpid(), 1_500 * MB), (999_999, 4_000 * MB)]})
    sampler = ResourceSampler(lambda r: None, 1.0, device=lambda: "cuda:0", lib=fake, visible="1")
    rec = sampler.record()
    assert rec["gpu"] == [{"index": 1, "uuid": "GPU-1aaa-1", "mem_used_mb": 2000.0, "mem_total_mb": 81559.0,
                           "util_percent": 41.0, "temp_c": 55.0, "power_w": None}]
    assert rec["proc_gpu_mem_mb"] == 1500.0  # our pid only; another user's 4 GB is not the run's


def test_without_nvml_the_gpu_fields_are_absent_and_one_line_says_why():
    said: list[str] = []
    sampler = ResourceSampler(lambda r: None, 1.0, device=lambda: "cuda:0", lib=FakeNvml(fail=True),
                              log=said.append)
    for _ in range(3):
        rec = sampler.record()
        assert "gpu" not in rec and "proc_gpu_mem_mb" not in rec and rec["rss_mb"] > 0
    assert said == ["resources: no GPU figures (the NVML library is not found: no NVIDIA driver); "
                    "CPU and RSS only"]


@pytest.mark.gpu
def test_real_nvml_reads_this_nodes_gpus():
    if nvml.nvml_reason() is not None:
        pytest.skip(f"NVML: {nvml.nvml_reason()}")
    gpus = nvml.read_gpus(processes=True)
    assert gpus and all(g.mem_total_mb > 1000 and 0 <= g.mem_used_mb <= g.mem_total_mb for g in gpus)
    assert all(g.uuid.startswith(("GPU-", "MIG-")) for g in gpus)
    assert nvml.map_visible(gpus[0].uuid, [g.uuid for g in gpus]) == [0]


@pytest.mark.gpu
def test_real_sampler_on_cuda_never_syncs_the_stream(tmp_path):
    """The sampler's NVML reads, many of them, while CUDA's sync detector is armed on a busy stream."""
    import torch

    if not torch.cuda.is_available() or nvml.nvml_reason() is not None:
        pytest.skip("needs a CUDA device and NVML")
    x = torch.randn(2048, 2048, device="cuda")
    x @ x  # CUDA context and memory exist: NVML lists this process
    torch.cuda.synchronize()
    recs: list[dict] = []
    torch.cuda.set_sync_debug_mode("error")
    try:
        with ResourceSampler(recs.append, 0.01, device=lambda: "cuda:0"):
            for _ in range(200):
                x = (x @ x).tanh()
            time.sleep(0.3)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    assert recs and all(r["gpu"][0]["mem_total_mb"] > 1000 for r in recs)
    assert any(r.get("proc_gpu_mem_mb", 0) > 0 for r in recs)  # this process's own memory, from NVML


@pytest.mark.gpu
def test_real_cuda_oom_ends_failed_with_the_peak(tmp_path, npz):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    run_dir = make_run_dir(tmp_path, "dcgan", "dataset=synthetic64", "width=4096", "batch_size=65536",
                           "epochs=1", "device=cuda")
    out = run_worker(run_dir)
    end = read_all(run_dir / "metrics.jsonl")[-1]
    assert out.returncode == 1 and end["status"] == "failed", out.stderr[-2000:]
    assert end["oom"]["total_mb"] > 1000
    oc = outcome(end, returncode=1, cancel_requested=False, killed_by_us=False, log_path=None)
    assert oc.message.startswith("failed: out of GPU memory (peak ")


# ------------------------------------------------------------------------------ the run screen's strip


def test_the_run_screen_shows_cpu_and_rss_live(home):
    """Real psutil figures of this process, written as a worker writes them, on the run screen's strip."""
    from tests.tui_helpers import drive, make_run, open_run, plain, wait_for
    from tui.widgets.resources_strip import ResourcesStrip

    run = make_run(home, "running", name="res")
    writer = MetricsWriter(Path(run.run_dir) / "metrics.jsonl")
    sampler = ResourceSampler(writer.write, 1.0, device=lambda: "cpu", log=lambda m: None)
    first = sampler.record()
    writer.write(first)

    async def scenario(app, pilot) -> None:
        screen = await open_run(app, pilot, run.id)
        strip = screen.query_one(ResourcesStrip)
        rss = f"RSS {first['rss_mb']:.0f} MB" if first["rss_mb"] < 1024 else f"RSS {first['rss_mb'] / 1024:.1f} GB"
        await wait_for(pilot, lambda: rss in plain(strip), timeout=10, what="the first sample on the strip")
        text = plain(strip)
        assert f"CPU {first['cpu_percent']:.0f}%" in text and "(no GPU figures)" in text and "GPU 0" not in text
        nxt = {**sampler.record(), "rss_mb": first["rss_mb"] + 2048.0}  # the run grows by 2 GB
        writer.write(nxt)
        grown = f"RSS {(first['rss_mb'] + 2048.0) / 1024:.1f} GB"
        await wait_for(pilot, lambda: grown in plain(strip), timeout=10, what="the next sample")
        assert strip.history_of == "rss" and len(strip.history) == 2 and "▁█" in plain(strip)

    drive(home, scenario, size=(140, 40))
    writer.close()
