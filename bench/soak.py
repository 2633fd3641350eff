"""`python -m bench.soak [--runs 200]`: many tiny queued runs through one supervisor with 2 slots.

All the runs are created first (one epoch of the tiny npz each, CPU, width 8), then one command starts the
supervisor, which must take them all to `completed` without being restarted. Sampled every half second
from /proc: the supervisor's open file descriptors, its resident memory (VmRSS) and its zombie children.
Printed: the first and last samples and the largest, and one JSON line (`runs`, `completed`, `fds_start`,
`fds_end`, `fds_max`, `rss_start_kib`, `rss_end_kib`, `rss_max_kib`, `zombies_max` (at once, before the
next tick reaps them), `zombies_lingering` (seen for 2 s: never reaped), `supervisors`: how many distinct supervisor pids held the lock, 1 when none died). Wall time on whatever
machine runs this; tests/test_chaos.py runs a small version and checks what must hold.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.control.config import resolve_config
from engine.control.submit import create_run
from store import runs as store_runs
from tests.helpers import (
    RUN_TIMEOUT,
    clean_up_store,
    ganmgr,
    make_npz,
    supervisor_pid,
    wait_for,
    wait_supervisor_gone,
)

SAMPLE_S = 0.5
LINGER_SAMPLES = 4  # 2 s: four supervisor ticks


@dataclass
class Sample:
    fds: int
    rss_kib: int
    zombies: frozenset[int]  # children exited and not yet reaped (the supervisor reaps them every tick)


@dataclass
class Watch:
    """Samples of the supervisor's resources while it runs (a thread: the waits stay in the main one)."""

    home: Path
    samples: list[Sample] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            pid = supervisor_pid(self.home)
            if pid is not None:
                s = sample(pid)
                if s is not None:
                    self.pids.add(pid)
                    self.samples.append(s)
            self.stop.wait(SAMPLE_S)


def sample(pid: int) -> Sample | None:
    """The process's open descriptors, VmRSS and zombie children; None once it is gone."""
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
    zombies = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            rest = stat[stat.rindex(")") + 2:].split()
            if rest[0] == "Z" and int(rest[1]) == pid:
                zombies.add(int(name))
    return Sample(fds, rss, frozenset(zombies))


def lingering(samples: list[Sample], n: int = LINGER_SAMPLES) -> set[int]:
    """Zombie children seen in `n` consecutive samples: exited and never reaped, unlike the moment between
    a worker's exit and the next tick."""
    out: set[int] = set()
    for i in range(len(samples) - n + 1):
        out |= frozenset.intersection(*(x.zombies for x in samples[i:i + n]))
    return out


def soak(runs: int, base: Path | None = None) -> dict[str, Any]:
    """Queue `runs` tiny runs, let one supervisor (2 slots) finish them; the figures."""
    with tempfile.TemporaryDirectory(prefix="ganmgr-soak-", dir=base) as tmp:
        home = Path(tmp) / "store"
        npz = make_npz(Path(tmp))
        cfg = resolve_config("baseline", {"dataset": f"npz:{npz}", "epochs": 1, "width": 8, "batch_size": 32,
                                          "device": "cpu", "threads": 1})
        ids = [create_run(home, {**cfg, "name": f"soak-{i}"}).id for i in range(runs)]
        watch = Watch(home)
        thread = threading.Thread(target=watch.run, daemon=True)
        thread.start()
        t0 = time.monotonic()
        try:
            out = ganmgr(home, "settings", "--max-concurrent", "2")  # starts the supervisor
            assert out.returncode == 0, out.stderr
            wait_for(lambda: not store_runs.list_runs(home, status=("queued", "running")), RUN_TIMEOUT + runs * 30,
                     f"{runs} runs to finish", interval=1.0)
            wait_supervisor_gone(home, timeout=60)
        finally:
            watch.stop.set()
            thread.join()
            clean_up_store(home)
        seconds = time.monotonic() - t0
        done = [store_runs.get_run(home, i) for i in ids]
    s = watch.samples or [Sample(0, 0, frozenset())]
    return {"runs": runs, "completed": sum(1 for v in done if v is not None and v.status == "completed"),
            "seconds": round(seconds, 1), "samples": len(watch.samples),
            "fds_start": s[0].fds, "fds_end": s[-1].fds, "fds_max": max(x.fds for x in s),
            "rss_start_kib": s[0].rss_kib, "rss_end_kib": s[-1].rss_kib, "rss_max_kib": max(x.rss_kib for x in s),
            "zombies_max": max(len(x.zombies) for x in s), "zombies_lingering": len(lingering(s)),
            "supervisors": len(watch.pids)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200, help="tiny runs to queue (default 200)")
    args = p.parse_args(argv)
    r = soak(args.runs)
    print(f"{r['completed']}/{r['runs']} completed in {r['seconds']} s through {r['supervisors']} supervisor(s), "
          f"{r['samples']} samples")
    print(f"open fds   start {r['fds_start']:5d}  end {r['fds_end']:5d}  max {r['fds_max']:5d}")
    print(f"RSS (MiB)  start {r['rss_start_kib'] / 1024:5.1f}  end {r['rss_end_kib'] / 1024:5.1f}  "
          f"max {r['rss_max_kib'] / 1024:5.1f}")
    print(f"zombie children: at most {r['zombies_max']} at once (exited, reaped by the next tick), "
          f"{r['zombies_lingering']} lingering past {LINGER_SAMPLES * SAMPLE_S:g} s")
    print(json.dumps(r))
    return 0 if r["completed"] == r["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
