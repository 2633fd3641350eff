"""`python -m bench.liveness [--repeats N]`: how fast the supervisor settles a killed worker and a cancel.

tests/test_liveness.py checks what must be true (a row never stays `running` without its process, a cancel
takes the whole process group down, SIGKILL only after the grace); these are the times it takes, with tiny
real CPU runs against a private store. Three measurements take turns (round robin, `--repeats` rounds), so
a noisy shared machine slows them alike:

- kill -9: a worker killed with SIGKILL (at a seeded random moment after its first checkpoint, as in the
  test; GANMGR_CHAOS_SEED picks another seed) -> its row leaves `running`. The supervisor looks every tick.
- cancel, obeying: `ganmgr cancel` -> the worker's process group is gone (the worker checkpoints and exits
  on SIGTERM; a child in its group that ignores SIGTERM is killed with it).
- cancel, stuck: the same with SIGTERM blocked in the worker -> the group is gone after the grace; printed
  also as the time past the grace.

Prints one line per measurement and, per kind, the median, min, max and spread (max - min). Wall-clock
times on whatever machine runs this. Not a test: no assertions. Takes about a minute per round.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from store.views import RunView
from tests.helpers import (
    RUN_TIMEOUT,
    chaos_seed,
    clean_up_store,
    ganmgr,
    group_members,
    make_npz,
    queue,
    run,
    wait_for,
    wait_supervisor_gone,
    wait_worker,
    worker_hooks,
)

ENDED = {"lost", "killed", "completed", "failed", "cancelled", "diverged"}
EPOCHS = 200  # long enough that every run is still training when it is killed or cancelled
STUCK_GRACE_S = 4.0
OBEYING_GRACE_S = 20.0


def _first_checkpoint(home: Path, run_id: int) -> RunView:
    """Wait for the run's worker and its first checkpoint (the run is then mid-training); its row."""
    v = wait_worker(home, run_id)
    last = Path(v.run_dir) / "checkpoints" / "last.pt"
    wait_for(last.exists, RUN_TIMEOUT, f"run {run_id}'s first checkpoint")
    return v


def kill_9(home: Path, npz: Path, name: str, rng: random.Random) -> float:
    """Seconds from SIGKILL of the worker to its row leaving `running`."""
    rid = queue(home, npz, name, EPOCHS)
    v = _first_checkpoint(home, rid)
    time.sleep(rng.uniform(0.0, 0.6))
    os.kill(v.pid, signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: run(home, rid).status in ENDED, RUN_TIMEOUT, f"run {rid} to leave `running`", interval=0.02)
    return time.monotonic() - t0


def cancel(home: Path, npz: Path, name: str, folder: Path, *, stuck: bool) -> float:
    """Seconds from `ganmgr cancel` to the worker's process group being gone."""
    grace = STUCK_GRACE_S if stuck else OBEYING_GRACE_S
    assert ganmgr(home, "settings", "--cancel-grace", str(grace)).returncode == 0
    env = worker_hooks(folder / "site", child_pidfile=folder / "child.pid", block_sigterm=stuck)
    rid = queue(home, npz, name, EPOCHS, env=env)
    pgid = _first_checkpoint(home, rid).pid
    t0 = time.monotonic()
    out = ganmgr(home, "cancel", str(rid))
    assert out.returncode == 0, out.stderr
    wait_for(lambda: group_members(pgid) == [], grace + RUN_TIMEOUT, "the worker's process group to be gone",
             interval=0.02)
    return time.monotonic() - t0


def _summary(name: str, values: list[float]) -> str:
    return (f"{name:<16} median {statistics.median(values):6.2f} s  min {min(values):6.2f}  "
            f"max {max(values):6.2f}  spread {max(values) - min(values):5.2f}  (n={len(values)})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.liveness", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="rounds of the three measurements (interleaved)")
    args = p.parse_args(argv)
    seed = chaos_seed()
    rng = random.Random(seed)
    print(f"seed {seed}, {args.repeats} rounds; grace {STUCK_GRACE_S:g} s (stuck), {OBEYING_GRACE_S:g} s (obeying)")
    results: dict[str, list[float]] = {"kill -9": [], "cancel obeying": [], "cancel stuck": []}
    with tempfile.TemporaryDirectory(prefix="bench-liveness-") as tmp:
        base = Path(tmp)
        home = base / "store"
        npz = make_npz(base)
        try:
            for r in range(args.repeats):
                results["kill -9"].append(kill_9(home, npz, f"kill-{r}", rng))
                print(f"round {r + 1}: {'kill -9 -> row settled':<30}{results['kill -9'][-1]:6.2f} s", flush=True)
                wait_supervisor_gone(home)
                for stuck in (False, True):
                    kind = "cancel stuck" if stuck else "cancel obeying"
                    folder = base / f"{kind.replace(' ', '-')}-{r}"
                    results[kind].append(cancel(home, npz, f"{kind.replace(' ', '-')}-{r}", folder, stuck=stuck))
                    extra = f" ({results[kind][-1] - STUCK_GRACE_S:+.2f} s past the grace)" if stuck else ""
                    print(f"round {r + 1}: {kind + ' -> group gone':<30}{results[kind][-1]:6.2f} s{extra}",
                          flush=True)
                    wait_supervisor_gone(home)
        finally:
            clean_up_store(home)
    print("summary:")
    for name, values in results.items():
        print("  " + _summary(name, values))
    past = [v - STUCK_GRACE_S for v in results["cancel stuck"]]
    print(f"  cancel stuck, past the grace: median {statistics.median(past):+.2f} s, max {max(past):+.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
