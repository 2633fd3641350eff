"""`ganmgr run --headless` as a real subprocess: bad input never creates a row or a folder; runs complete."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import ROOT, cli_argv, tiny_npz


def ganmgr(home: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cli_argv("--home", str(home), *args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def rows(home: Path) -> list:
    db = home / "ganmgr.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return con.execute("select id, name, status from runs").fetchall()


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz", n_train=128, n_test=64)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    (d / "garbage.npz").write_bytes(b"this is not a zip archive")
    np.savez(d / "float.npz", x_train=np.zeros((4, 3, 32, 32), np.float32), y_train=np.zeros(4, np.uint8),
             x_test=np.zeros((4, 3, 32, 32), np.float32), y_test=np.zeros(4, np.uint8))
    np.savez(d / "nokey.npz", x_train=np.zeros((4, 3, 32, 32), np.uint8))
    (d / "empty_root").mkdir()
    (d / "cfg.json").write_text("[1, 2]")
    return {p.name: p for p in d.iterdir()}


BAD = [
    (["--recipe", "gan"], "unknown recipe 'gan'"),
    (["--recipe", "baseline", "--set", "widht=8"], "unknown field 'widht'"),
    (["--recipe", "baseline", "--epochs", "-1"], "epochs=-1 must be >= 1"),
    (["--recipe", "baseline", "--epochs", "two"], "'two' is not an integer"),
    (["--recipe", "baseline", "--width", "0"], "width=0 must be >= 1"),
    (["--recipe", "baseline", "--batch-size", "0"], "batch_size=0 must be >= 2"),
    (["--recipe", "baseline", "--lr=-1e-4"], "lr=-0.0001 must be > 0"),
    (["--recipe", "baseline", "--dataset", "cifar10", "--data-root", "/nonexistent/cifar"],
     "data root /nonexistent/cifar does not exist"),
    (["--recipe", "baseline", "--dataset", "cifar10", "--data-root", "{empty_root}"], "lacks the cifar10 files"),
    (["--recipe", "baseline", "--dataset", "mnist"], "needs --data-root"),
    (["--recipe", "baseline", "--dataset", "npz:{garbage.npz}"], "is unreadable"),
    (["--recipe", "baseline", "--dataset", "npz:/nonexistent/x.npz"], "does not exist"),
    (["--recipe", "baseline", "--dataset", "npz:{float.npz}"], "expected uint8 images"),
    (["--recipe", "baseline", "--dataset", "npz:{nokey.npz}"], "lacks the arrays"),
    (["--recipe", "baseline", "--dataset", "imagenet"], "not a known data source"),
    (["--recipe", "baseline", "--device", "tpu"], "must be auto, cpu, cuda"),
    (["--recipe", "baseline", "--precision", "fp8"], "must be one of"),
    (["--recipe", "baseline", "--name", "../../etc"], "name="),
    (["--recipe", "baseline", "--name", "a/b"], "name="),
    (["--recipe", "baseline", "--set", "betas=0.5"], "exactly 2 values"),
    (["--recipe", "acgan-wgangp", "--set", "n_z=4"], "n_z=4"),
    (["--recipe", "baseline", "--set", "noequals"], "key=value"),
    (["--recipe", "baseline", "--config", "/nonexistent.json"], "--config /nonexistent.json"),
    (["--recipe", "baseline", "--config", "{cfg.json}"], "must hold a JSON object"),
    (["--recipe", "baseline", "--tag", "bad tag!"], "tag 'bad tag!'"),
    (["--recipe", "baseline", "--bogus"], "unrecognized arguments: --bogus"),
    (["--epochs", "3"], "--recipe"),
]


@pytest.mark.parametrize("args,needle", BAD, ids=[n for _, n in BAD])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, bad_files, args, needle):
    home = tmp_path / "store"
    for name, path in bad_files.items():
        args = [a.replace("{" + name + "}", str(path)) for a in args]
    out = ganmgr(home, "run", "--headless", *args)
    assert out.returncode == 2, out.stderr
    err = out.stderr.strip()
    assert needle in err
    assert len(err.splitlines()) == 1, err
    assert not home.exists() or (rows(home) == [] and [p.name for p in home.iterdir()
                                                        if p.is_dir()] == [])


@pytest.mark.slow
def test_headless_gan_run_completes_and_appears_in_the_store(tmp_path, npz):
    home = tmp_path / "store"
    out = ganmgr(home, "run", "--headless", "--recipe", "acgan-wgangp", "--dataset", f"npz:{npz}",
                 "--epochs", "2", "--width", "8", "--batch-size", "32", "--name", "tiny-gan", "--tag", "smoke")
    assert out.returncode == 0, out.stdout + out.stderr
    assert rows(home) == [(1, "tiny-gan", "completed")]
    run_dir = home / "1-tiny-gan"
    assert (run_dir / "samples" / "epoch_002.png").exists()
    assert (run_dir / "checkpoints" / "last.pt").exists() and (run_dir / "checkpoints" / "final.pt").exists()
    assert "completed" in out.stdout
    assert oct(run_dir.stat().st_mode & 0o777) == "0o700"
    assert oct((run_dir / "metrics.jsonl").stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(home / "ganmgr.db") as con:
        epoch, progress, tags, commit = con.execute(
            "select epoch, progress, tags, git_commit from runs").fetchone()
    assert epoch == 2 and progress == pytest.approx(1.0) and "smoke" in tags
    with sqlite3.connect(home / "ganmgr.db") as con:
        files = {r[0] for r in con.execute("select path from artifacts where kind = 'samples'")}
    assert files == {"samples/epoch_001.png", "samples/epoch_002.png"}  # the run screen lists them


@pytest.mark.slow
def test_headless_ctrl_c_checkpoints_and_exits_130(tmp_path, npz):
    home = tmp_path / "store"
    proc = subprocess.Popen(cli_argv("--home", str(home), "run", "--headless", "--recipe", "acgan-wgangp",
                                     "--dataset", f"npz:{npz}", "--epochs", "50", "--width", "8",
                                     "--batch-size", "32"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    run_dir = home / "1-acgan-wgangp-tiny"
    deadline = time.time() + 300
    while time.time() < deadline:
        m = run_dir / "metrics.jsonl"
        if m.exists() and '"kind":"epoch"' in m.read_text():
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    proc.communicate(timeout=300)
    assert proc.returncode == 130
    assert rows(home)[0][2] == "cancelled"
    from engine.compute.checkpoint import load_checkpoint

    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] >= 1


def test_headless_failure_exits_1_with_the_reason(tmp_path, npz):
    home = tmp_path / "store"
    out = ganmgr(home, "run", "--headless", "--recipe", "baseline", "--dataset", f"npz:{npz}",
                 "--batch-size", "4096", "--width", "8")
    assert out.returncode == 1
    assert rows(home)[0][2] == "failed"
    assert "fewer than one batch" in out.stdout


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_baseline_reaches_90_percent_on_synthetic_in_3_epochs_at_width_32(tmp_path):
    """The issue's learnability bar, through the real command on the embedded data set."""
    home = tmp_path / "store"
    out = ganmgr(home, "run", "--headless", "--recipe", "baseline", "--epochs", "3", "--width", "32",
                 "--name", "learn", timeout=2300)
    assert out.returncode == 0, out.stdout + out.stderr
    import json

    epochs = [json.loads(line) for line in (home / "1-learn" / "metrics.jsonl").read_text().splitlines()
              if '"kind":"epoch"' in line]
    assert len(epochs) == 3
    assert epochs[-1]["test_acc"] >= 90.0, [e["test_acc"] for e in epochs]
