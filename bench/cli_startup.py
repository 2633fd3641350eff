"""`python -m bench.cli_startup [--runs N] [--reps R] [--base REV]`: the CPU `ganmgr ls` / `show ID` cost.

Issue 16 measured ≈1 s of CPU per command whatever the store size (importing SQLAlchemy/SQLModel was 0.8 s
of it); the target is ≤ 0.35 s for `ls` and `show` on a 1,000-run store. This builds such a store in a
temp HOME through the store API (finished runs with real resolved configs, tags, notes, last metrics and
their history, one run folder with a best checkpoint record), then takes turns, R times: `python -c pass`,
today's `ganmgr ls` and `ganmgr show ID`, and the same two commands of a base commit's code (`--base`,
default the commit before issue 16: a `git archive` copy in a temp folder, run by the same interpreter
against the same store). CPU time is user + system of the child process (os.wait4), so a loaded machine
stretches the wall time, not the figure.

Prints per command the median and min CPU seconds, the ratio to `python -c pass` and the ratio of the
base's code to today's. Numbers on whatever machine runs this: not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.code_copy import BEFORE_ISSUE_16, code_copy
from engine.control.config import RECIPES, resolve_config
from store import runs as store_runs
from store.db import dispose_engines

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("synthetic", "cifar10", "mnist", "npz:/data/shared/cifar_subset.npz")


def build_store(home: Path, n: int) -> int:
    """`n` finished runs; returns the id `show` is asked about (one in the middle)."""
    rng = random.Random(0)
    recipes = list(RECIPES)
    configs = {r: resolve_config(r) for r in recipes}
    for i in range(n):
        recipe = recipes[i % len(recipes)]
        cfg = configs[recipe]
        run = store_runs.create_run(
            home, name=f"{recipe}-{i}", recipe=recipe, dataset=DATASETS[i % len(DATASETS)], config=cfg,
            epochs=int(cfg.get("epochs", 10)), tags=[f"t{i % 7}", "bench"] if i % 3 else [],
            notes=f"run {i}: lr sweep point" if i % 5 == 0 else "", managed_by="headless", status="running")
        acc = rng.uniform(10, 90)
        status = ("completed", "completed", "completed", "failed", "cancelled")[i % 5]
        store_runs.set_status(
            home, run.id, status, message="done", epoch=run.epochs, step=run.epochs * 390, progress=1.0,
            last_test_acc=acc, best_test_acc=acc + 1, last_train_acc=acc + 3, images_per_s=rng.uniform(500, 4000),
            last_metrics={"loss_d": rng.uniform(-5, 1), "loss_g": rng.uniform(-2, 3), "gp": rng.uniform(0, 1)})
    dispose_engines()
    return n // 2


def run_cpu(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """User + system CPU of one child process (os.wait4 on it), output checked and dropped."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {err.read().decode()[-300:]}")
        out.seek(0)
        if "tui.cli.main" in argv and not out.read(1):
            raise SystemExit(f"{' '.join(argv)} printed nothing")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--base", default=BEFORE_ISSUE_16, help="the commit today is compared with")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ganmgr-cli-bench-") as tmp:
        tmp_path = Path(tmp)
        home = tmp_path / "home" / "runs"
        env = {**os.environ, "HOME": str(tmp_path / "home"), "GANMGR_HOME": str(home)}
        show_id = build_store(home, a.runs)
        old = code_copy(tmp_path / "base", a.base)
        py = sys.executable
        cases: dict[str, tuple[list[str], Path]] = {
            "python -c pass": ([py, "-c", "pass"], ROOT),
            "ls (today)": ([py, "-m", "tui.cli.main", "ls"], ROOT),
            "show (today)": ([py, "-m", "tui.cli.main", "show", str(show_id)], ROOT),
            "ls (base)": ([py, "-m", "tui.cli.main", "ls"], old),
            "show (base)": ([py, "-m", "tui.cli.main", "show", str(show_id)], old),
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        for argv, cwd in cases.values():  # a warm-up of each: the page cache, the .pyc files
            run_cpu(argv, cwd, env)
        for _ in range(a.reps):
            for name, (argv, cwd) in cases.items():
                times[name].append(run_cpu(argv, cwd, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"CPU seconds (user+sys) on a {a.runs}-run store, {a.reps} interleaved rounds; base = {a.base}")
    for name, v in times.items():
        print(f"  {name:<16} median {med[name]:.3f}  min {min(v):.3f}  "
              f"x{med[name] / med['python -c pass']:.1f} of python -c pass")
    for cmd in ("ls", "show"):
        print(f"  {cmd}: base / today = {med[f'{cmd} (base)'] / med[f'{cmd} (today)']:.1f}x; "
              f"target today <= 0.35 s: {'met' if med[f'{cmd} (today)'] <= 0.35 else 'NOT met'}")


if __name__ == "__main__":
    main()
