"""`ganmgr gpus` and the TUI's GPU screen (`g`): this node's GPUs and the processes on each, ours by run.

This machine has no NVIDIA GPU: the command says so plainly and exits 0 (the real path runs where NVML does).
Matching GPU processes to our runs is tested with real processes and an NVML double listing their pids.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from engine.control import nvml
from engine.control.gpu_overview import NO_GPU, OurRun, overview
from engine.control.procs import process_start_token
from tests.helpers import ganmgr
from tests.nvml_double import MB, FakeNvml

NO_NVML = nvml.nvml_reason()


@pytest.mark.skipif(NO_NVML is None, reason="this node has NVML: the no-GPU sentence does not apply")
def test_gpus_on_a_node_without_a_gpu_says_so_and_exits_0(home):
    out = ganmgr(home, "gpus")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == NO_GPU.format(why=NO_NVML)
    assert out.stdout.startswith("this node has no NVIDIA GPU") and out.stderr == ""
    js = ganmgr(home, "gpus", "--json")
    assert js.returncode == 0 and json.loads(js.stdout) == {"gpus": [], "reason": NO_NVML}
    assert not home.exists()  # asking creates no store


@pytest.fixture
def worker_like():
    """A real process group like a supervised worker's: a leader (session leader) and one child in it."""
    leader = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time\n"
                               "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                               "print(c.pid, flush=True)\ntime.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = int(leader.stdout.readline())
    yield leader.pid, child
    os.killpg(leader.pid, 9)
    leader.wait()


def test_gpu_processes_are_tied_to_our_runs_and_others_shown_as_such(worker_like):
    leader, child = worker_like
    stranger = os.getppid()  # a live process that is not one of our runs
    fake = FakeNvml(procs={0: [(leader, 3_000 * MB), (child, 500 * MB), (stranger, 7_000 * MB)]})
    runs = [OurRun(12, "dcgan-a", leader, process_start_token(leader)),
            OurRun(13, "gone", 999_999, "1")]
    rows = overview(runs, lib=fake)
    assert [r.gpu.index for r in rows] == [0, 1]
    procs = {p.pid: p for p in rows[0].processes}
    assert procs[leader].run_id == 12 and procs[leader].run_name == "dcgan-a"
    assert procs[child].run_id == 12  # a member of the worker's process group (a DataLoader worker)
    assert procs[stranger].run_id is None and procs[stranger].user  # another process, with its owner
    assert "not ganmgr's (user " in procs[stranger].text() and "run 12 dcgan-a" in procs[leader].text()
    assert rows[1].processes == ()
    assert rows[0].head().startswith("GPU 0  Fake H100  9.8 GB / 79.6 GB used  util 40%  55°C  251 W")
    # a pid whose start time is not the recorded one (a reused pid) is not ours
    liar = overview([OurRun(12, "dcgan-a", leader, "12345")], lib=fake)
    assert all(p.run_id is None for p in liar[0].processes)


def test_the_gpu_screen_says_plainly_there_is_no_gpu(home):
    if NO_NVML is None:
        pytest.skip("this node has NVML")
    from tests.tui_helpers import drive, plain, wait_for
    from tui.screens.gpus import GpusScreen

    async def scenario(app, pilot) -> None:
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, GpusScreen), what="the GPU screen")
        screen = app.screen
        await wait_for(pilot, lambda: screen.reads >= 1, what="the NVML answer")
        assert plain(screen.query_one("#gpus-body")) == NO_GPU.format(why=NO_NVML)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, GpusScreen), what="back to the runs")

    drive(home, scenario, size=(120, 30))


@pytest.mark.gpu
def test_gpus_lists_this_nodes_gpus(home):
    if NO_NVML is not None:
        pytest.skip(f"NVML: {NO_NVML}")
    out = ganmgr(home, "gpus")
    assert out.returncode == 0 and out.stdout.startswith("GPU 0  "), out.stdout + out.stderr
    data = json.loads(ganmgr(home, "gpus", "--json").stdout)
    assert data["gpus"] and data["gpus"][0]["mem_total_mb"] > 1000


def test_our_runs_reads_a_real_store_with_a_running_worker(home, worker_like):
    """The store path of `gpus` (not only the no-store shortcut): a running run's pid and start token."""
    from engine.control.config import resolve_config
    from engine.control.submit import create_run
    from store import runs as store_runs
    from tui.cli.gpus import our_runs

    leader, _child = worker_like
    cfg = resolve_config("baseline", {"dataset": "synthetic", "epochs": 1, "width": 8, "name": "gpuw"})
    rid = create_run(home, cfg, held=True).id
    store_runs.mark_started(home, rid, pid=leader, pid_start=process_start_token(leader))
    assert [(r.run_id, r.name, r.pid) for r in our_runs(home)] == [(rid, "gpuw", leader)]
    out = ganmgr(home, "gpus")  # with a store present, still one sentence (or the GPU list) and exit 0
    assert out.returncode == 0 and out.stderr == "", out.stderr
