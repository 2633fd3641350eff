"""Small builders and waits shared by the tests (and the benchmarks): tiny data sets, run folders for real
worker processes, the `ganmgr` command against a private store, the seed of the chaos timings.

Test modules import from here (or from tests/tui_helpers.py), never from one another.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.control.config import RECIPES, resolve_config
from engine.control.procs import is_alive, process_start_token
from engine.control.supervisor_lock import lock_is_held, lock_path
from store import runs as store_runs
from store.db import dispose_engines
from store.views import RunView

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 300  # seconds a tiny queued run may take on a busy 2-core machine


# ------------------------------------------------------------------------------------ chaos timings

CHAOS_SEED_VAR = "GANMGR_CHAOS_SEED"
DEFAULT_CHAOS_SEED = 13


def chaos_seed() -> int:
    """The seed of every random timing in the chaos tests (kill moments, delays): fixed, so a failure
    reproduces; GANMGR_CHAOS_SEED=N tries another. The `chaos_rng` fixture (conftest.py) draws from it and
    prints it when its test fails."""
    text = os.environ.get(CHAOS_SEED_VAR, "").strip()
    if not text:
        return DEFAULT_CHAOS_SEED
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{CHAOS_SEED_VAR}={text!r} is not a whole number") from None


# ------------------------------------------------------------------------------ data and run folders


def tiny_npz(path: Path, n_train: int = 256, n_test: int = 128, channels: int = 3, size: int = 32,
             seed: int = 0) -> Path:
    """A small slice of the synthetic set as an npz, so a test epoch is a few steps."""
    from engine.compute.data.synthetic import make_synthetic

    s = make_synthetic(n_train=n_train, n_test=n_test, seed=seed, channels=channels, size=size)
    np.savez(path, x_train=s.x_train, y_train=s.y_train.astype(np.uint8), x_test=s.x_test,
             y_test=s.y_test.astype(np.uint8))
    return path


def make_npz(folder: Path) -> Path:
    """The tiny data set of every queued test run: 4 steps of 32 per epoch."""
    return tiny_npz(folder / "tiny.npz", n_train=128, n_test=64)


def make_run_dir(base: Path, recipe: str, *assignments: str) -> Path:
    run_dir = base / "run"
    for sub in ("", "samples", "checkpoints"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    cfg = resolve_config(recipe, assignments=list(assignments))
    (run_dir / "config.json").write_text(json.dumps(cfg))
    return run_dir


def worker_cmd(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "engine.worker", str(run_dir)]


def run_worker(run_dir: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(worker_cmd(run_dir), cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def records(run_dir: Path, kind: str | None = None) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    out = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in out if kind is None or r["kind"] == kind]


def live_records(run_dir: Path, kind: str) -> list[dict]:
    """Like `records`, for a file a running job is still writing: no file yet is no records, and a line
    still being written is skipped."""
    path = run_dir / "metrics.jsonl"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("kind") == kind:
            out.append(rec)
    return out


def random_inception_weights(path: Path, seed: int = 0) -> Path:
    """torch-fidelity's InceptionV3 state dict, randomly initialised (He init), saved as torch.save writes it:
    the real file's format, not its values (accepted only as uncalibrated). Tests have no real weights."""
    import torch

    from engine.compute.inception import _InceptionV3

    torch.manual_seed(seed)
    net = _InceptionV3(None)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    torch.save(net.state_dict(), path)
    return path


# ----------------------------------------------------------------------- the command and its queue


def cli_argv(*args: str) -> list[str]:
    """argv for the real `ganmgr` command run as a subprocess."""
    return [sys.executable, "-m", "tui.cli.main", *args]


def ganmgr(home: Path, *args: str, timeout: float = 120, env: dict | None = None,
           input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cli_argv("--home", str(home), *args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, input=input)


def tiny_args(npz: Path, name: str, epochs: int = 2, *extra: str) -> list[str]:
    return ["--recipe", "baseline", "--dataset", f"npz:{npz}", "--epochs", str(epochs), "--width", "8",
            "--batch-size", "32", "--device", "cpu", "--set", "threads=1", "--name", name, *extra]


def queue(home: Path, npz: Path, name: str, epochs: int = 2, *extra: str, env: dict | None = None) -> int:
    """`ganmgr run -q ...` (queued, returns at once); the new run's id."""
    out = ganmgr(home, "run", "-q", *tiny_args(npz, name, epochs, *extra), env=env)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


def run(home: Path, run_id: int) -> RunView:
    view = store_runs.get_run(home, run_id)
    assert view is not None
    return view


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll until `pred()` is truthy and return its value. The timeout is a generous deadline for a thing
    that never happens, not a measure of speed."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_status(home: Path, run_id: int, statuses: set[str], timeout: float = RUN_TIMEOUT) -> RunView:
    return wait_for(lambda: (v := run(home, run_id)).status in statuses and v, timeout,
                    f"run {run_id} to be {'/'.join(sorted(statuses))} (is {run(home, run_id).status})")


def wait_worker(home: Path, run_id: int, timeout: float = RUN_TIMEOUT) -> RunView:
    """The row once its worker's pid is recorded and alive."""
    return wait_for(lambda: (v := run(home, run_id)).status == "running" and is_alive(v.pid, v.pid_start) and v,
                    timeout, f"run {run_id}'s worker to start")


def supervisor_pid(home: Path) -> int | None:
    """The pid of the supervisor holding the store's lock, or None."""
    if not lock_is_held(home):
        return None
    text = lock_path(home).read_text().strip()
    return int(text) if text.isdigit() else None


def wait_supervisor_gone(home: Path, timeout: float = 30) -> None:
    """The lock is free and no supervisor or worker of this store is left."""
    wait_for(lambda: not lock_is_held(home), timeout, "the supervisor to release its lock")
    wait_for(lambda: processes_of(home) == [], 10, "every process of the store to exit")


def processes_of(home: Path) -> list[int]:
    """Pids of live processes whose command line names this store (supervisors and workers)."""
    needle = str(home).encode()
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                if needle in Path(f"/proc/{name}/cmdline").read_bytes() and process_start_token(int(name)):
                    out.append(int(name))
            except OSError:
                continue
    return out


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            data = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        if int(rest[2]) == pgid and rest[0] != "Z":
            out.append(int(name))
    return out


def clean_up_store(home: Path) -> None:
    """Kill whatever supervisor or worker of `home` a failed test left behind."""
    dispose_engines()
    for pid in processes_of(home):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ----------------------------------------------------------------------- hooks inside real workers

WORKER_HOOKS = '''
"""Test hook loaded by every Python started with this folder on PYTHONPATH; acts only in workers."""
import os
import subprocess
import sys


def _hook():
    try:
        argv = open("/proc/self/cmdline", "rb").read().split(b"\\0")
    except OSError:
        return
    if b"engine.worker" not in argv:
        return
    if os.environ.get("GANMGR_TEST_BLOCK_SIGTERM"):  # a worker stuck where SIGTERM cannot reach it
        import signal
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    pidfile = os.environ.get("GANMGR_TEST_CHILD_PIDFILE")
    if pidfile:  # a child in the worker's process group that ignores SIGTERM (a stray loader process)
        child = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                  "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"])
        with open(pidfile + ".tmp", "w") as fh:
            fh.write(str(child.pid))
        os.replace(pidfile + ".tmp", pidfile)


_hook()
'''


def worker_hooks(folder: Path, *, child_pidfile: Path | None = None,
                 block_sigterm: bool = False) -> dict[str, str]:
    """The environment for a command (and the supervisor and workers it starts) whose workers misbehave on
    purpose: `child_pidfile` gives each worker a child in its process group that ignores SIGTERM (its pid is
    written there); `block_sigterm` makes the worker itself deaf to SIGTERM."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(WORKER_HOOKS)
    env = {"PYTHONPATH": str(folder)}
    if child_pidfile is not None:
        env["GANMGR_TEST_CHILD_PIDFILE"] = str(child_pidfile)
    if block_sigterm:
        env["GANMGR_TEST_BLOCK_SIGTERM"] = "1"
    return env


# ------------------------------------------------------------- the course's ACGAN step, transcribed


def course_gradient_penalty(netD, real, fake, alpha, lam=10.0):
    """The course's calc_gradient_penalty, with alpha given instead of drawn."""
    import torch

    b = real.shape[0]
    alpha = alpha.view(b, 1).expand(b, real.nelement() // b).contiguous().view(*real.shape)
    interpolates = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    disc_interpolates, _ = netD(interpolates)
    gradients = torch.autograd.grad(outputs=disc_interpolates, inputs=interpolates,
                                    grad_outputs=torch.ones(disc_interpolates.size()),
                                    create_graph=True, retain_graph=True, only_inputs=True)[0]
    gradients = gradients.view(gradients.size(0), -1)
    return ((gradients.norm(2, dim=1) - 1) ** 2).mean() * lam


def draws(gen_state, b, n_z, nc):
    """Replays the engine's draw order (labels, noise, then alpha) from a copy of its generator."""
    import torch

    g = torch.Generator()
    g.set_state(gen_state)
    labels = torch.randint(0, nc, (b,), generator=g)
    noise = torch.randn(b, n_z, generator=g)
    onehot = torch.zeros(b, nc)
    onehot[torch.arange(b), labels] = 1
    noise[:, :nc] = onehot
    alpha = torch.rand(b, 1, 1, 1, generator=g)
    return labels, noise, alpha


def close(a, b, rtol=1e-5, atol=1e-6):
    import torch

    return torch.allclose(torch.as_tensor(a), torch.as_tensor(b), rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------ data files, models and GAN runs

CPU_RUN = ("device=cpu", "threads=1", "keep_every=0")  # run settings of the recipe tests' real workers


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """MNIST's idx format: magic (0, 0, type 0x08 = ubyte, ndim), big-endian int32 dims, then the bytes."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        blob = gzip.compress(blob)
    path.write_bytes(blob)


def layer_table(seq: Any) -> list[tuple]:
    """(kind, sizes...) per layer of an nn.Sequential: Linear in/out, conv in/out/kernel/stride/padding/bias,
    activation slopes."""
    from torch import nn

    out: list[tuple] = []
    for m in seq:
        if isinstance(m, nn.Linear):
            out.append(("linear", m.in_features, m.out_features))
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            kind = "convT" if isinstance(m, nn.ConvTranspose2d) else "conv"
            out.append((kind, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0],
                        m.bias is not None))
        elif isinstance(m, nn.LeakyReLU):
            out.append(("leaky", m.negative_slope))
        elif isinstance(m, nn.BatchNorm2d):
            out.append(("bn", m.num_features))
        else:
            out.append((type(m).__name__.lower(),))
    return out


def check_run(run_dir: Path, recipe: str, *, grid: tuple[int, int], image: int, epochs: int = 1,
              min_steps: int = 100) -> list[dict]:
    """The run directory contract for a BCE GAN run; returns its epoch records."""
    import torch
    from PIL import Image

    from engine.compute.checkpoint import load_checkpoint
    from engine.compute.recipes.bce_gan import build_gan_models

    recs = records(run_dir)
    assert recs[0]["kind"] == "start" and recs[-1]["kind"] == "end" and recs[-1]["status"] == "completed"
    metrics = set(RECIPES[recipe].train_metrics)
    train = records(run_dir, "train")
    assert train and all(metrics <= set(r) for r in train)
    for r in train:
        assert 0 <= r["d_real"] <= 1 and 0 <= r["d_fake"] <= 1 and r["d_loss"] > 0 and r["g_loss"] > 0
    eps = records(run_dir, "epoch")
    assert [e["epoch"] for e in eps] == list(range(1, epochs + 1))
    assert eps[-1]["step"] >= min_steps
    for e in eps:
        assert "test_acc" not in e and "train_acc" not in e  # no classifier, no accuracy
        assert {f"mean_{m}" for m in metrics} <= set(e)
        assert 0 < e["diversity"] < 5
    cols, rows = grid
    for n in range(1, epochs + 1):
        with Image.open(run_dir / "samples" / f"epoch_{n:03d}.png") as im:
            assert im.size == (cols * (image + 2) + 2, rows * (image + 2) + 2)
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert set(last["models"]) == {"D", "G"} and set(last["optimizers"]) == {"D", "G"}
    final = load_checkpoint(run_dir / "checkpoints" / "final.pt")
    assert final["recipe"] == recipe and final["data_shape"][1:] == [image, image]
    # the networks rebuild from the checkpoint alone and draw images of the data's shape
    g, d = build_gan_models(recipe, final["config"], final["data_shape"][0], image)
    g.load_state_dict(final["models"]["G"])
    d.load_state_dict(final["models"]["D"])
    with torch.no_grad():
        assert tuple(g.eval()(torch.randn(2, final["config"]["n_z"])).shape) == (2, *final["data_shape"])
    arts = {r["path"] for r in records(run_dir, "artifact")}
    assert {f"samples/epoch_{epochs:03d}.png", "checkpoints/final.pt"} <= arts
    return eps
