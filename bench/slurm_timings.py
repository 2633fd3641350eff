"""`python -m bench.slurm_timings`: how fast a real single-node Slurm answers the Slurm backend (root only).

Brings up the test cluster of tests/slurm_cluster.py and measures, with tiny real CPU runs:
submit -> RUNNING (scontrol polled every 50 ms), scancel -> CANCELLED after the first epoch, and when the
`--signal=B:TERM@GRACE` warning of a 1-minute job reaches the worker (its `end` record against the job's
StartTime). Prints one line per measurement and a summary; takes about 90 s. Not a test: no assertions.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine.daemon.backends.slurm import SlurmBackend
from tests.helpers import live_records, make_run_dir, tiny_npz
from tests.slurm_cluster import SlurmCluster, slurm_skip_reason


def _run(base: Path, npz: Path, epochs: int) -> Path:
    base.mkdir(parents=True)
    return make_run_dir(base, "baseline", f"dataset=npz:{npz}", "width=8", "batch_size=32", "device=cpu",
                        "threads=1", f"epochs={epochs}", "keep_every=0")


def _until(pred, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError


def main() -> int:
    reason = slurm_skip_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="slurm-timings-") as tmp, SlurmCluster.up(Path(tmp)) as cluster:
        base = Path(tmp)
        print(f"cluster up in {cluster.timings['up_s']:.2f} s")
        be = SlurmBackend(env=cluster.env)
        small = tiny_npz(base / "small.npz", n_train=256, n_test=64)
        big = tiny_npz(base / "big.npz", n_train=1024, n_test=64)

        to_running = []
        for i in range(5):
            rd = _run(base / f"s{i}", small, epochs=1)
            t0 = time.monotonic()
            job = be.submit(rd)
            _until(lambda job=job: be.state(job).status != "queued", 60)
            to_running.append(time.monotonic() - t0)
            _until(lambda job=job: be.state(job).terminal, 120, 0.2)
            print(f"submit -> RUNNING: {to_running[-1]:.2f} s")

        to_cancelled = []
        for i in range(3):
            rd = _run(base / f"c{i}", small, epochs=100000)
            job = be.submit(rd)
            _until(lambda rd=rd: live_records(rd, "epoch"), 120, 0.1)
            t0 = time.monotonic()
            be.cancel(job)
            final = _until(lambda job=job: (s := be.state(job)).terminal and s, 60)
            to_cancelled.append(time.monotonic() - t0)
            print(f"scancel -> {final.cluster_state}: {to_cancelled[-1]:.2f} s "
                  f"(worker end record: {live_records(rd, 'end')[-1]['status']})")

        jobs = {}
        for grace in (10, 30):
            rd = _run(base / f"w{grace}", big, epochs=100000)
            jobs[grace] = (be.submit(rd, {"time": "1", "grace_s": grace}), rd)
        for grace, (job, rd) in jobs.items():
            final = _until(lambda job=job: (s := be.state(job)).terminal and s, 150, 0.5)
            info = be._run(["scontrol", "show", "job", "-o", job]).stdout
            start = time.mktime(time.strptime(re.search(r"StartTime=(\S+)", info).group(1), "%Y-%m-%dT%H:%M:%S"))
            end = live_records(rd, "end")[-1]
            print(f"--signal=B:TERM@{grace} with --time=1: worker ended {end['time'] - start:.1f} s into the job, "
                  f"{start + 60 - end['time']:.1f} s before the limit; Slurm: {final.cluster_state} "
                  f"exit {final.exit_code}, worker: {end['status']}")
        print(f"summary: submit->RUNNING median {statistics.median(to_running):.2f} s "
              f"(min {min(to_running):.2f}, max {max(to_running):.2f}); scancel->CANCELLED median "
              f"{statistics.median(to_cancelled):.2f} s (max {max(to_cancelled):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
