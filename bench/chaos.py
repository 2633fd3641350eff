"""`python -m bench.chaos [--minutes N] [--seed S] [--scenario NAME] [--tries N]`: a seeded chaos campaign.

Bounded scenarios against real processes (supervisor, workers, `ganmgr`) and a real store in a temporary
home; each try either holds (what ganmgr promises stayed true) or is lost (say which, and why). One JSON
line per scenario at the end: `scenario`, `tried`, `held`, `lost`, `seed` (and `skipped` with the reason, or
`notes` on what a lost try broke). Progress goes to stderr. The scenarios:

- `kill9`: a queued run (CPU, deterministic=true) killed with SIGKILL at a random step after its first
  checkpoint, then `ganmgr resume`: the resumed run's epoch records and final.pt must equal, bit for bit,
  those of an uninterrupted run of the same config (the campaign's reference, trained once).
- `ckpt_window`: the same, but the kill lands inside a checkpoint write: GANMGR_DEBUG_CKPT_PAUSE holds each
  checkpoint between its fsynced temp file and the rename, and the kill comes while the temp file exists.
  Every checkpoint left must load (weights_only), and the resume must still be bit-equal.
- `supervisor_kill`: two running and two queued runs, the supervisor killed with SIGKILL: the next one
  (started by `ganmgr ls`) adopts the workers and starts the queue; all four complete.
- `writers`: 8 writer processes create runs while 4 readers list them: every run is there with its folder,
  no read fails.
- `disk_full`: a run whose store and folder live on a small tmpfs that is then filled: the worker stops,
  every checkpoint still loads, the store passes `PRAGMA integrity_check`, the supervisor waits for space
  (it must not exit), and once space is back it settles the row by itself. Needs root (mount); else skipped
  with the reason.
- `headless_signals`: `ganmgr run --headless` stopped by SIGINT to its process group (a terminal's Ctrl-C)
  or SIGTERM to it alone (a batch system), alternately: it exits, its row is final, no worker is left, the
  checkpoints load.
- `cancel_children`: `ganmgr cancel` of a run whose worker spawned a child that ignores SIGTERM: nothing of
  the worker's process group is left, the row says cancelled.

--minutes bounds the campaign (each scenario tried at least once, then round robin until the time is
spent, `ckpt_window` ten times a round: ROUND_WEIGHTS); --tries N instead runs exactly N tries of each (tests/test_chaos.py). The seed (default the chaos
seed of the tests, GANMGR_CHAOS_SEED) draws every kill moment, so a lost try reproduces.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.control.config import resolve_config
from engine.control.procs import is_alive
from engine.control.submit import create_run
from engine.control.supervisor_lock import try_lock
from store import runs as store_runs
from store.db import db_path, dispose_engines
from store.lifecycle import TERMINAL_STATUSES
from tests.helpers import (
    ROOT,
    RUN_TIMEOUT,
    chaos_seed,
    clean_up_store,
    cli_argv,
    ganmgr,
    group_members,
    live_records,
    make_npz,
    queue,
    run,
    supervisor_pid,
    tiny_args,
    wait_for,
    wait_status,
    wait_supervisor_gone,
    wait_worker,
    worker_hooks,
)

FINAL = TERMINAL_STATUSES
EPOCHS = 5  # 4 steps an epoch on the tiny npz: 20 steps, a checkpoint at every epoch end
STEPS_PER_EPOCH = 4
DETERMINISTIC = ("--set", "deterministic=true", "--set", "log_every=1", "--set", "log_seconds=0",
                 "--set", "keep_every=0")
CKPT_PAUSE_S = 0.4  # GANMGR_DEBUG_CKPT_PAUSE: long enough for a 10 ms poll to see the temp file every time
WRITERS, READERS, RUNS_PER_WRITER = 8, 4, 5
TMPFS_MB = 24
# tries per round in a timed campaign: kills inside a checkpoint write are the rarest event a user meets and
# the cheapest try (about 11 s), so a 10-minute campaign makes at least 20 of them beside the other six
ROUND_WEIGHTS = {"ckpt_window": 10}


class Lost(Exception):
    """A try in which something ganmgr promises did not hold; the message says what."""


@dataclass
class Tally:
    scenario: str
    seed: int
    tried: int = 0
    held: int = 0
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    def line(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scenario": self.scenario, "tried": self.tried, "held": self.held,
                               "lost": self.tried - self.held, "seed": self.seed}
        if self.skipped:
            out["skipped"] = self.skipped
        if self.notes:
            out["notes"] = self.notes[:10]
        return out


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ the campaign


class Campaign:
    """Shared state of one campaign: the temp folder, the tiny data set, the uninterrupted reference run."""

    def __init__(self, base: Path, seed: int) -> None:
        self.base = base
        self.seed = seed
        self.npz = make_npz(base)
        self.homes: list[Path] = []
        self._reference: dict[str, Any] | None = None
        self._n = 0

    def home(self, label: str) -> Path:
        """A fresh store folder for one try (cleaned up at the end of the campaign whatever happened)."""
        self._n += 1
        h = self.base / f"{label}-{self._n}"
        self.homes.append(h)
        return h

    def clean_up(self) -> None:
        for h in self.homes:
            clean_up_store(h)

    def reference(self) -> dict[str, Any]:
        """The uninterrupted run every resumed one is compared with: its epoch numbers and final weights."""
        if self._reference is None:
            home = self.home("reference")
            rid = queue(home, self.npz, "reference", EPOCHS, *DETERMINISTIC)
            done = wait_status(home, rid, FINAL)
            if done.status != "completed":
                raise RuntimeError(f"the reference run ended {done.status}: {done.error}")
            self._reference = {"epochs": epoch_numbers(Path(done.run_dir)),
                               "final": final_tensors(Path(done.run_dir))}
            wait_supervisor_gone(home)
        return self._reference


def epoch_numbers(run_dir: Path) -> dict[int, dict]:
    """The last `epoch` record of each epoch (a resumed attempt rewrites the epochs after its checkpoint),
    without the wall-clock fields."""
    out = {}
    for r in live_records(run_dir, "epoch"):
        out[r["epoch"]] = {k: v for k, v in r.items() if k not in ("seconds", "images_per_s", "time")}
    return out


def final_tensors(run_dir: Path) -> dict[str, Any]:
    from engine.compute.checkpoint import load_checkpoint

    return load_checkpoint(run_dir / "checkpoints" / "final.pt")["models"]


def same_weights(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(
        a[m].keys() == b[m].keys() and all(torch.equal(a[m][k], b[m][k]) for k in a[m]) for m in a)


def check_checkpoints(run_dir: Path) -> int:
    """Load every checkpoint of the run (weights_only); Lost names the first that does not. The count."""
    from engine.compute.checkpoint import CheckpointError, load_checkpoint

    n = 0
    for p in sorted((run_dir / "checkpoints").glob("*.pt")):
        try:
            load_checkpoint(p)
        except CheckpointError as e:
            raise Lost(str(e)) from None
        n += 1
    return n


def resume_bit_equal(c: Campaign, home: Path, rid: int) -> None:
    """`ganmgr resume`, then the run must complete with the reference's numbers and weights."""
    out = ganmgr(home, "resume", str(rid))
    if out.returncode != 0:
        raise Lost(f"resume refused: {out.stderr.strip()}")
    done = wait_status(home, rid, FINAL)
    if done.status != "completed":
        raise Lost(f"the resumed run ended {done.status}: {done.error}")
    ref = c.reference()
    got = epoch_numbers(Path(done.run_dir))
    if got != ref["epochs"]:
        diff = [e for e in ref["epochs"] if got.get(e) != ref["epochs"][e]]
        raise Lost(f"epoch records differ from the uninterrupted run at epochs {diff}")
    if not same_weights(final_tensors(Path(done.run_dir)), ref["final"]):
        raise Lost("final.pt differs from the uninterrupted run's")


def kill_worker(home: Path, rid: int) -> None:
    v = run(home, rid)
    if v.status != "running" or not is_alive(v.pid, v.pid_start):
        raise Lost(f"run {rid} was not running at the kill ({v.status})")
    os.kill(v.pid, signal.SIGKILL)
    done = wait_status(home, rid, FINAL, RUN_TIMEOUT)
    if done.status not in ("killed", "lost"):
        raise Lost(f"a worker killed with SIGKILL was recorded {done.status}")


# ------------------------------------------------------------------------------------------- scenarios


def kill9(c: Campaign, rng: random.Random) -> str:
    c.reference()
    home = c.home("kill9")
    target = rng.randint(STEPS_PER_EPOCH + 1, EPOCHS * STEPS_PER_EPOCH - 2)
    rid = queue(home, c.npz, "kill9", EPOCHS, *DETERMINISTIC)
    run_dir = Path(wait_worker(home, rid).run_dir)

    def at_target() -> bool:
        steps = [r["step"] for r in live_records(run_dir, "train")]
        if run(home, rid).status != "running":
            raise Lost(f"run {rid} ended before step {target}")
        return bool(steps) and max(steps) >= target

    wait_for(at_target, RUN_TIMEOUT, f"step {target}", interval=0.01)
    kill_worker(home, rid)
    resume_bit_equal(c, home, rid)
    wait_supervisor_gone(home)
    return f"killed at step {target}"


def ckpt_window(c: Campaign, rng: random.Random) -> str:
    c.reference()
    home = c.home("ckpt")
    # the n-th checkpoint write: last.pt at every epoch end is certain, best.pt only when the metric improves
    nth = rng.randint(1, EPOCHS)
    env = {"GANMGR_DEBUG_CKPT_PAUSE": str(CKPT_PAUSE_S)}
    rid = queue(home, c.npz, "ckpt", EPOCHS, *DETERMINISTIC, env=env)
    ckpts = Path(wait_worker(home, rid).run_dir) / "checkpoints"
    seen: set[str] = set()

    def nth_write() -> Path | None:
        if run(home, rid).status != "running":
            raise Lost(f"run {rid} ended before checkpoint write {nth}")
        for p in ckpts.glob(".*.pt.*.tmp"):
            seen.add(p.name)
            if len(seen) >= nth:
                return p
        return None

    tmp = wait_for(nth_write, RUN_TIMEOUT, f"checkpoint write {nth}", interval=0.01)
    time.sleep(rng.uniform(0.0, CKPT_PAUSE_S / 2))
    if not tmp.exists():
        raise Lost("the kill missed the write window (the drill's pause is too short for this machine)")
    kill_worker(home, rid)
    n = check_checkpoints(ckpts.parent)
    if not (ckpts / "last.pt").exists():  # killed inside the very first write: nothing to resume from
        out = ganmgr(home, "resume", str(rid))
        if out.returncode != 2:
            raise Lost(f"resume without a checkpoint: exit {out.returncode}")
        wait_supervisor_gone(home)
        return f"killed in write {nth} ({tmp.name}), before any last.pt: resume refused"
    resume_bit_equal(c, home, rid)
    wait_supervisor_gone(home)
    return f"killed in write {nth} ({tmp.name.split('.')[1]}.pt), {n} checkpoints loaded"


def supervisor_kill(c: Campaign, rng: random.Random) -> str:
    home = c.home("superkill")
    assert ganmgr(home, "settings", "--max-concurrent", "2").returncode == 0
    # all four queued before any starts (we hold the lock, so no supervisor does): a 3-epoch run can end
    # before a loaded machine has queued the fourth, and then there is no running worker to wait for
    lock = try_lock(home)
    assert lock is not None, "a supervisor already holds the lock"
    try:
        ids = [queue(home, c.npz, f"s{i}", 3) for i in range(4)]
    finally:
        os.close(lock)
    assert ganmgr(home, "ls").returncode == 0  # starts the supervisor
    wait_worker(home, ids[0])
    wait_worker(home, ids[1])
    time.sleep(rng.uniform(0.0, 1.0))
    pid = supervisor_pid(home)
    if pid is None:
        raise Lost("no supervisor held the lock while runs were running")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: supervisor_pid(home) != pid, 60, "the killed supervisor's lock to be released")
    out = ganmgr(home, "ls")  # any command starts a new supervisor
    if out.returncode != 0:
        raise Lost(f"ganmgr ls after the kill: {out.stderr.strip()}")
    done = [wait_status(home, rid, FINAL) for rid in ids]
    bad = [(d.id, d.status, d.error) for d in done if d.status != "completed"]
    if bad:
        raise Lost(f"runs not completed after the supervisor's kill: {bad}")
    wait_supervisor_gone(home)
    return "4/4 completed"


def _writer(home: str, npz: str, w: int, n: int, out: Any) -> None:
    """One writer process: `n` runs created (held, so nothing trains); the ids or the error."""
    cfg = resolve_config("baseline", {"dataset": f"npz:{npz}", "epochs": 1, "width": 8, "batch_size": 32})
    ids, errors = [], []
    for j in range(n):
        try:
            ids.append(create_run(Path(home), {**cfg, "name": f"w{w}-{j}"}, held=True).id)
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            errors.append(f"{type(e).__name__}: {e}")
    out.put(("w", w, ids, errors))


def _reader(home: str, stop: Any, out: Any) -> None:
    """One reader process: list the runs and read one row until told to stop; reads done and errors."""
    from store import runs as runs_

    reads, errors = 0, []
    while not stop.is_set():
        try:
            rows = runs_.list_runs(Path(home))
            if rows:
                runs_.get_run(Path(home), rows[-1].id)
            reads += 1
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            errors.append(f"{type(e).__name__}: {e}")
    out.put(("r", reads, errors))


def writers(c: Campaign, rng: random.Random) -> str:
    home = c.home("writers")
    cfg = resolve_config("baseline", {"dataset": f"npz:{c.npz}", "epochs": 1, "width": 8, "batch_size": 32})
    create_run(home, {**cfg, "name": "first"}, held=True)  # the store exists before the crowd arrives
    ctx = multiprocessing.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    order = list(range(WRITERS))
    rng.shuffle(order)  # the start order, so contention differs between tries
    procs = [ctx.Process(target=_reader, args=(str(home), stop, out)) for _ in range(READERS)]
    procs += [ctx.Process(target=_writer, args=(str(home), str(c.npz), w, RUNS_PER_WRITER, out)) for w in order]
    for p in procs:
        p.start()
    results = [out.get(timeout=RUN_TIMEOUT) for _ in range(WRITERS)]
    stop.set()
    results += [out.get(timeout=RUN_TIMEOUT) for _ in range(READERS)]
    for p in procs:
        p.join(60)
    errors = [e for r in results for e in r[-1]]
    ids = [i for r in results if r[0] == "w" for i in r[2]]
    dispose_engines()
    rows = {v.id: v for v in store_runs.list_runs(home)}
    missing = [i for i in ids if i not in rows or not (Path(rows[i].run_dir) / "config.json").is_file()]
    expected = WRITERS * RUNS_PER_WRITER
    if errors or missing or len(ids) != expected:
        raise Lost(f"{len(ids)}/{expected} runs created, {len(missing)} without row or folder; errors: "
                   f"{errors[:3]}")
    reads = sum(r[1] for r in results if r[0] == "r")
    return f"{expected} runs by {WRITERS} writers, {reads} reads by {READERS} readers, 0 errors"


@contextlib.contextmanager
def tmpfs(path: Path, mb: int) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m,mode=0700", "tmpfs", str(path)], check=True,
                   capture_output=True, text=True)
    try:
        yield
    finally:
        clean_up_store(path / "store")
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def disk_full_skip() -> str | None:
    """Why the disk-full scenario cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root to mount a tmpfs"
    probe = Path(tempfile.mkdtemp(prefix="chaos-mount-probe-"))
    try:
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True,
                             text=True)
        if out.returncode != 0:
            return f"mount -t tmpfs refused: {out.stderr.strip() or out.returncode}"
        subprocess.run(["umount", str(probe)], capture_output=True)
        return None
    except FileNotFoundError:
        return "no mount command"
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def fill(folder: Path) -> Path:
    """Fill the filesystem of `folder` to the last byte; the filler file."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):  # unbuffered: nothing left to flush on a full disk
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def disk_full(c: Campaign, rng: random.Random) -> str:
    mnt = c.home("diskfull")
    with tmpfs(mnt, TMPFS_MB):
        home = mnt / "store"
        rid = queue(home, c.npz, "full", 200)
        run_dir = Path(wait_worker(home, rid).run_dir)
        wait_for((run_dir / "checkpoints" / "last.pt").exists, RUN_TIMEOUT, "the first checkpoint")
        time.sleep(rng.uniform(0.0, 1.0))
        v = run(home, rid)
        filler = fill(mnt)
        try:  # the worker's next checkpoint (or record) fails: it must stop, not train on blind
            wait_for(lambda: not is_alive(v.pid, v.pid_start), 120, "the worker to stop on the full disk")
        except AssertionError:
            raise Lost("the worker kept running 120 s on a full disk") from None
        n = check_checkpoints(run_dir)
        con = sqlite3.connect(db_path(home))
        try:
            integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            con.close()
        if integrity != "ok":
            raise Lost(f"the store failed its integrity check: {integrity}")
        time.sleep(rng.uniform(0.0, 3.0))  # a few of the supervisor's ticks on the full disk
        supervisor = supervisor_pid(home)
        if supervisor is None:
            raise Lost("the supervisor exited on the full disk (it must wait for space)")
        filler.unlink()
        # no command needed: the supervisor that waited out the full disk settles the row itself
        done = wait_status(home, rid, FINAL, RUN_TIMEOUT)
        ls = ganmgr(home, "ls", "--json")
        if ls.returncode != 0 or not any(r["id"] == rid for r in json.loads(ls.stdout)):
            raise Lost(f"ganmgr ls after the disk was freed: {ls.stderr.strip()}")
        status, error = done.status, (done.error or "").splitlines()[-1:] or [""]
        slog = home / "supervisor.log"
        waited = "waiting for space" in (slog.read_text(errors="replace") if slog.exists() else "")
        assert ganmgr(home, "cancel", str(rid)).returncode in (0, 2)
        wait_supervisor_gone(home, timeout=60)
    return (f"ended {status} ({error[0][:80]}); supervisor {supervisor} "
            f"{'waited out the full disk' if waited else 'saw no full store'}; {n} "
            f"checkpoints loaded, store ok")


def headless_signals(c: Campaign, rng: random.Random) -> str:
    home = c.home("headless")
    sig = signal.SIGINT if rng.random() < 0.5 else signal.SIGTERM
    logf = (c.base / f"{home.name}.out").open("w")
    proc = subprocess.Popen(cli_argv("--home", str(home), "run", "--headless", *tiny_args(c.npz, "hl", 200)),
                            cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        rid = wait_for(lambda: store_runs.list_runs(home) if (home / "ganmgr.db").exists() else None, RUN_TIMEOUT,
                       "the headless run's row")[0].id
        v = wait_for(lambda: (r := run(home, rid)).pid and r, RUN_TIMEOUT, "the headless worker")
        wait_for((Path(v.run_dir) / "checkpoints" / "last.pt").exists, RUN_TIMEOUT, "the first checkpoint")
        time.sleep(rng.uniform(0.0, 0.5))
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # a terminal's Ctrl-C reaches the whole foreground group
        else:
            proc.send_signal(sig)  # a batch system's SIGTERM reaches ganmgr only
        rc = proc.wait(RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        logf.close()
    done = run(home, rid)
    if done.status not in FINAL:
        raise Lost(f"headless exited {rc} but its row says {done.status}")
    if group_members(proc.pid) or is_alive(done.pid, done.pid_start):
        raise Lost("a process of the headless run outlived it")
    n = check_checkpoints(Path(done.run_dir))
    if rc == 0:
        raise Lost(f"headless exited 0 after {sig.name}")
    wait_supervisor_gone(home)
    return f"{sig.name}: exit {rc}, row {done.status}, {n} checkpoints loaded"


def cancel_children(c: Campaign, rng: random.Random) -> str:
    home = c.home("cancel")
    pidfile = home.with_name(home.name + "-child.pid")
    env = worker_hooks(home.with_name(home.name + "-site"), child_pidfile=pidfile)
    assert ganmgr(home, "settings", "--cancel-grace", "5").returncode == 0
    rid = queue(home, c.npz, "cancel", 200, env=env)
    v = wait_worker(home, rid)
    wait_for(pidfile.exists, RUN_TIMEOUT, "the worker's child")
    child = int(pidfile.read_text())
    time.sleep(rng.uniform(0.0, 2.0))
    out = ganmgr(home, "cancel", str(rid))
    if out.returncode != 0:
        raise Lost(f"cancel: {out.stderr.strip()}")
    try:
        wait_for(lambda: group_members(v.pid) == [], 5 + RUN_TIMEOUT, "the worker's process group to be gone")
    except AssertionError:
        raise Lost(f"left in the worker's process group after cancel: {group_members(v.pid)}") from None
    done = wait_status(home, rid, FINAL)
    if done.status != "cancelled":
        raise Lost(f"cancelled run recorded {done.status}")
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, 0)
        if Path(f"/proc/{child}").exists() and "Z" not in Path(f"/proc/{child}/stat").read_text().split()[2]:
            raise Lost(f"the worker's child {child} is still alive")
    wait_supervisor_gone(home)
    return "group empty, child gone, row cancelled"


SCENARIOS: dict[str, Callable[[Campaign, random.Random], str]] = {
    "kill9": kill9,
    "ckpt_window": ckpt_window,
    "supervisor_kill": supervisor_kill,
    "writers": writers,
    "disk_full": disk_full,
    "headless_signals": headless_signals,
    "cancel_children": cancel_children,
}
SKIPS: dict[str, Callable[[], str | None]] = {"disk_full": disk_full_skip}


def one_try(c: Campaign, name: str, rng: random.Random, tally: Tally) -> None:
    tally.tried += 1
    try:
        what = SCENARIOS[name](c, rng)
    except (Lost, AssertionError, RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
        tally.notes.append(f"try {tally.tried}: {type(e).__name__}: {e}")
        say(f"{name} try {tally.tried}: LOST: {e}")
        return
    tally.held += 1
    say(f"{name} try {tally.tried}: held ({what})")


def campaign(names: list[str], *, seed: int, minutes: float | None = None, tries: int | None = None,
             base: Path | None = None) -> list[dict[str, Any]]:
    """Run the scenarios `names`: exactly `tries` each, or round robin until `minutes` are spent (each at
    least once). One result dict per scenario (the JSON line)."""
    tallies = {n: Tally(n, seed) for n in names}
    for n in names:
        why = SKIPS.get(n, lambda: None)()
        if why:
            tallies[n].skipped = why
            say(f"{n}: skipped ({why})")
    live = [n for n in names if not tallies[n].skipped]
    rngs = {n: random.Random(f"{seed}:{n}") for n in names}  # one stream per scenario: --scenario reproduces
    with tempfile.TemporaryDirectory(prefix="ganmgr-chaos-", dir=base) as tmp:
        c = Campaign(Path(tmp), seed)
        try:
            deadline = time.monotonic() + (minutes or 0) * 60
            rounds = 0
            while live:
                rounds += 1
                for n in live:
                    for _ in range(1 if tries is not None else ROUND_WEIGHTS.get(n, 1)):
                        one_try(c, n, rngs[n], tallies[n])
                if tries is not None:
                    if rounds >= tries:
                        break
                elif time.monotonic() >= deadline:
                    break
        finally:
            c.clean_up()
    return [tallies[n].line() for n in names]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="time to spend (default 10; each scenario "
                                                               "runs at least once)")
    p.add_argument("--tries", type=int, default=None, help="exactly N tries of each scenario instead")
    p.add_argument("--seed", type=int, default=None, help="default: GANMGR_CHAOS_SEED, else 13")
    p.add_argument("--scenario", choices=sorted(SCENARIOS), action="append",
                   help="only this scenario (repeatable)")
    args = p.parse_args(argv)
    seed = chaos_seed() if args.seed is None else args.seed
    names = args.scenario or list(SCENARIOS)
    say(f"chaos campaign: seed {seed}, scenarios {', '.join(names)}, "
        f"{f'{args.tries} tries each' if args.tries else f'{args.minutes:g} minutes'}")
    lines = campaign(names, seed=seed, minutes=args.minutes, tries=args.tries)
    for line in lines:
        print(json.dumps(line), flush=True)
    return 1 if any(line["lost"] for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
