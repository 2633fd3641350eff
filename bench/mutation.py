"""Mutation testing of the science core, one shard per module, resumable: `make mutation` (issue 19).

mutmut (configured in pyproject's [tool.mutmut]) copies `engine/` into `mutants/`, writes every mutant of the
files it may mutate there, and runs the in-process tests that reach a mutated function. This script picks
the science functions of each module (a file's loop plumbing, labels and checkpoint code are left out), runs
each shard's mutants that have no result yet with one worker, and prints killed / survived per module. mutmut
keeps every result in mutants/**/*.meta (a function's results are dropped when its code changes), so an
interrupted run continues where it stopped: run the same command again.

    python -m bench.mutation                      all shards in priority order, then the report
    python -m bench.mutation perturb ascent      only these shards
    python -m bench.mutation --report [--diffs]   the scores (and each survivor's changed line) without running
    python -m bench.mutation --retry survived S   run shard S's survivors again (after new tests; or: timeout)
    python -m bench.mutation --list               the shards and their functions
    python -m bench.mutation --issue-mutants      the two changes issue 19 found unkilled, each on a scratch copy
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
ALL = ("*",)


@dataclass(frozen=True)
class Shard:
    name: str
    path: str  # the source file, relative to the repository root
    functions: tuple[str, ...] = ALL  # function or method names to mutate ("*": all)
    skip: tuple[str, ...] = ()  # names left out (not science: wiring, labels, checkpoints)

    @property
    def module(self) -> str:
        return self.path.removesuffix(".py").replace("/", ".")

    def wants(self, function: str) -> bool:
        return function not in self.skip and (self.functions == ALL or function in self.functions)


# priority order: the visualizations' science, the ACGAN step, noise, lr schedules, augmentation and the
# mode-collapse signals first; the quality/FD modules last (they were being edited when this was written)
SHARDS: tuple[Shard, ...] = (
    Shard("perturb", "engine/compute/viz/perturb.py"),
    Shard("ascent", "engine/compute/viz/ascent.py"),
    Shard("max_class", "engine/compute/viz/max_class.py"),
    Shard("max_features", "engine/compute/viz/max_features.py"),
    Shard("acgan", "engine/compute/recipes/acgan.py",
          skip=("compile_step", "modules", "optimizers", "classifier", "on_epoch_end", "extra_state")),
    Shard("baseline", "engine/compute/recipes/baseline.py", skip=("compile_step", "modules", "optimizers",
                                                                   "classifier")),
    Shard("base_lr", "engine/compute/recipes/base.py", functions=("lr_for_epoch", "begin_epoch")),
    Shard("augment", "engine/compute/data/augment.py"),
    Shard("mode_collapse", "engine/compute/mode_collapse.py"),
    Shard("bce_gan", "engine/compute/recipes/bce_gan.py", skip=("modules", "optimizers", "classifier",
                                                                 "on_epoch_end")),
    Shard("mlp_gan", "engine/compute/recipes/mlp_gan.py"),
    Shard("lab5_gan", "engine/compute/recipes/lab5_gan.py"),
    Shard("dcgan", "engine/compute/recipes/dcgan.py"),
    Shard("models_acgan", "engine/compute/models/acgan.py"),
    Shard("models_dcgan", "engine/compute/models/dcgan.py"),
    Shard("models_mlp", "engine/compute/models/mlp.py"),
    Shard("quality", "engine/compute/viz/quality.py"),
    Shard("frechet", "engine/compute/viz/frechet.py"),
)
BY_NAME = {s.name: s for s in SHARDS}

# mutmut's exit codes (mutmut/stats.py), folded into the columns of the report
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", None: "pending"}


def function_of(key: str, module: str) -> str:
    """'pkg.mod.xǁClassǁmethod__mutmut_3' -> 'method'; 'pkg.mod.x_func__mutmut_1' -> 'func'."""
    mangled = key.removeprefix(module + ".").rsplit("__mutmut_", 1)[0]
    return mangled.rsplit("ǁ", 1)[-1] if "ǁ" in mangled else mangled.removeprefix("x_")


def results(shard: Shard) -> dict[str, int | None]:
    """The shard's mutants and their exit codes (None: not run yet); empty before mutmut generated them."""
    meta = MUTANTS / (shard.path + ".meta")
    try:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
    except FileNotFoundError:
        return {}
    except ValueError:  # mutmut is rewriting it this moment: read again
        time.sleep(0.5)
        codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {k: v for k, v in codes.items() if shard.wants(function_of(k, shard.module))}


def tally(codes: dict[str, int | None]) -> dict[str, int]:
    out = {"killed": 0, "survived": 0, "timeout": 0, "no tests": 0, "pending": 0, "other": 0}
    for code in codes.values():
        status = STATUS.get(code, "other")
        out[status if status in out else "other"] += 1
    return out


def mutmut(names: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    # names given explicitly are always (re)run by mutmut: pass only those without a result
    return subprocess.Popen([sys.executable, "-m", "mutmut", "run", "--max-children", "1", *names], cwd=ROOT,
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def generate() -> None:
    """Let mutmut copy the sources and write the mutants (and collect which tests reach which function)."""
    MUTANTS.mkdir(exist_ok=True)
    log = MUTANTS / "setup.log"
    first = SHARDS[0]
    print("generating mutants and collecting test coverage (first run: a few minutes) ...", flush=True)
    # one known-killed mutant keeps this step short; its result is kept
    proc = mutmut([f"{first.module}.x_perturb_batch__mutmut_1"], log)
    if proc.wait() != 0:
        sys.exit(f"mutmut failed (exit {proc.returncode}); see {log}")


def run_shard(shard: Shard, names: list[str]) -> None:
    log = MUTANTS / f"shard-{shard.name}.log"
    started = time.monotonic()
    print(f"[{shard.name}] running {len(names)} mutants (log: {log.relative_to(ROOT)})", flush=True)
    proc = mutmut(names, log)
    try:
        while proc.poll() is None:
            time.sleep(15)
            t = tally({k: v for k, v in results(shard).items()})
            done = t["killed"] + t["survived"] + t["timeout"] + t["no tests"] + t["other"]
            print(f"[{shard.name}] {done}/{done + t['pending']}  killed {t['killed']}  survived {t['survived']}"
                  f"  {time.monotonic() - started:.0f} s", flush=True)
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    if proc.returncode != 0:
        print(f"[{shard.name}] mutmut exited {proc.returncode}; see {log.relative_to(ROOT)}", flush=True)


# the two one-line changes issue 19 found every test passing with (mutmut's operators do not write these
# exact lines): (path, line as written, line as changed)
ISSUE_MUTANTS = (
    ("engine/compute/viz/perturb.py", "alternative = (y + 1) % num_classes", "alternative = y % num_classes"),
    ("engine/compute/viz/ascent.py", "x = x + lr * grad - weight_decay * x * x.abs()",
     "x = x + lr * grad - weight_decay * x"),
)
ISSUE_TESTS = ("tests/test_science_mutants_viz.py", "tests/test_viz_units.py")


def check_issue_mutants() -> int:
    """Apply each of ISSUE_MUTANTS to a scratch copy of engine/ and tests/ and run the fast tests there:
    each must fail (killed). Returns the number that survived."""
    import shutil
    import tempfile

    survived = 0
    for path, line, changed in ISSUE_MUTANTS:
        with tempfile.TemporaryDirectory(prefix="issue-mutant-") as tmp:
            for folder in ("engine", "tests"):
                shutil.copytree(ROOT / folder, Path(tmp) / folder, ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy2(ROOT / "pyproject.toml", Path(tmp) / "pyproject.toml")
            target = Path(tmp) / path
            source = target.read_text()
            if source.count(line) != 1:
                sys.exit(f"{path}: the line {line!r} is not there once; update ISSUE_MUTANTS")
            target.write_text(source.replace(line, changed))
            out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                                  "-m", "not slow and not slurm and not gpu", *ISSUE_TESTS], cwd=tmp,
                                 env=dict(os.environ, PYTHONPATH=tmp), capture_output=True, text=True)
            failed = [ln.split(" ", 1)[1].split(" - ")[0] for ln in out.stdout.splitlines()
                      if ln.startswith("FAILED ")]
            killed = out.returncode == 1 and bool(failed)
            survived += not killed
            print(f"{'killed  ' if killed else 'SURVIVED'} {path}: {line!r} -> {changed!r}"
                  + (f" (by {failed[0]})" if failed else f" (pytest exit {out.returncode})"), flush=True)
    return survived


def diff_line(name: str) -> str:
    """The mutant's changed line(s), from `mutmut show`."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=ROOT, capture_output=True,
                         text=True).stdout
    lines = [ln for ln in out.splitlines() if ln.startswith(("-", "+")) and not ln.startswith(("---", "+++"))]
    return "  ".join(" ".join(ln.split()) for ln in lines)


def report(shards: list[Shard], diffs: bool) -> None:
    total = {"killed": 0, "survived": 0, "timeout": 0, "no tests": 0, "pending": 0, "other": 0}
    print(f"{'module':<16}{'mutants':>8}{'killed':>8}{'survived':>9}{'timeout':>8}{'no test':>8}{'pending':>8}"
          f"{'score':>8}")
    for shard in shards:
        codes = results(shard)
        t = tally(codes)
        for k in total:
            total[k] += t[k]
        ran = len(codes) - t["pending"]
        score = f"{100.0 * (t['killed'] + t['timeout']) / ran:.1f}%" if ran else "-"
        print(f"{shard.name:<16}{len(codes):>8}{t['killed']:>8}{t['survived']:>9}{t['timeout']:>8}"
              f"{t['no tests']:>8}{t['pending']:>8}{score:>8}")
        if diffs:
            for name, code in sorted(codes.items()):
                if STATUS.get(code) in ("survived", "no tests"):
                    print(f"    {STATUS[code]:<8} {name.removeprefix(shard.module + '.')}: {diff_line(name)}")
    ran = sum(total.values()) - total["pending"]
    score = f"{100.0 * (total['killed'] + total['timeout']) / ran:.1f}%" if ran else "-"
    print(f"{'all':<16}{sum(total.values()):>8}{total['killed']:>8}{total['survived']:>9}{total['timeout']:>8}"
          f"{total['no tests']:>8}{total['pending']:>8}{score:>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mutation", description=__doc__.splitlines()[0])
    parser.add_argument("shards", nargs="*", help=f"shard names (default all): {', '.join(BY_NAME)}")
    parser.add_argument("--report", action="store_true", help="print the scores without running anything")
    parser.add_argument("--diffs", action="store_true", help="with the report: each survivor's changed line")
    parser.add_argument("--retry", choices=("survived", "timeout", "no tests"), action="append", default=[],
                        help="also run the mutants with this result again (after new tests, or a busy machine)")
    parser.add_argument("--list", action="store_true", help="the shards and their functions")
    parser.add_argument("--issue-mutants", action="store_true",
                        help="check that the fast tests kill the two one-line changes issue 19 names")
    args = parser.parse_args(argv)
    unknown = [s for s in args.shards if s not in BY_NAME]
    if unknown:
        parser.error(f"unknown shard {unknown[0]!r}; choose from {', '.join(BY_NAME)}")
    shards = [BY_NAME[s] for s in args.shards] or list(SHARDS)
    if args.issue_mutants:
        return 1 if check_issue_mutants() else 0
    if args.list:
        for s in shards:
            what = "all functions" if s.functions == ALL else ", ".join(s.functions)
            print(f"{s.name:<16}{s.path}: {what}" + (f" except {', '.join(s.skip)}" if s.skip else ""))
        return 0
    if not args.report:
        if not all((MUTANTS / (s.path + ".meta")).is_file() for s in shards):
            generate()
        for shard in shards:
            codes = results(shard)
            wanted = ("pending", *args.retry)
            names = sorted(k for k, v in codes.items() if STATUS.get(v) in wanted)
            if names:
                run_shard(shard, names)
                left = [k for k, v in results(shard).items() if k in names and STATUS.get(v) == "pending"]
                if left:  # e.g. a test file caught half-written by an editor: collection failed; once more
                    time.sleep(10)
                    run_shard(shard, left)
            else:
                print(f"[{shard.name}] nothing to run ({len(codes)} mutants have results)", flush=True)
    report(shards, args.diffs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
