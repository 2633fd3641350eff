"""The last bad inputs of issue 17, each refused at the door: exit 2, one line naming it, nothing created.

Deeply nested JSON (`--config`, `--set`, config.json), npz labels and arrays the worker would refuse, and
fork/resume from a checkpoint the worker cannot (or must not) load; and Ctrl-C on a headless run recorded as
the user's interrupt rather than as the SIGTERM forwarded to the worker.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from engine.control.config import resolve_config
from engine.control.datasets import check_dataset_available
from engine.control.errors import ConfigError
from engine.control.run_dir import read_run_config
from engine.control.submit import SubmitError, check_checkpoint, create_run
from engine.control.sweep import parse_axis
from store import runs as store_runs
from store.db import dispose_engines
from tests.helpers import ROOT, cli_argv, make_npz, records

DEEP = "[" * 100_000


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return make_npz(tmp_path_factory.mktemp("refusal-data"))


def runs_in(home: Path) -> list[tuple]:
    """The rows and the run folders a command left behind (none, for a refusal)."""
    rows = []
    if (home / "ganmgr.db").exists():
        with sqlite3.connect(home / "ganmgr.db") as con:
            rows = con.execute("select id, name, status from runs").fetchall()
    folders = sorted(p.name for p in home.iterdir() if p.is_dir()) if home.exists() else []
    return [*rows, *folders]


def refused(capsys, argv: list[str]) -> str:
    """Run main() in this process; assert exit 2 and one line on stderr; return that line."""
    from tui.cli.main import main

    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    err = out.err.strip()
    assert code == 2, (code, out.err[-2000:])
    assert len(err.splitlines()) == 1 and err.startswith("ganmgr"), err[-2000:]
    assert "Traceback" not in err and len(err) < 700
    return err


# ------------------------------------------------------------------------------- deeply nested JSON

def test_config_file_nested_100000_deep_is_one_line_exit_2(tmp_path, capsys):
    home, deep = tmp_path / "store", tmp_path / "deep.json"
    deep.write_text(DEEP)
    for cmd in ("run", "sweep"):
        err = refused(capsys, ["--home", str(home), cmd, "--recipe", "baseline", "--config", str(deep)])
        assert "nested too deeply" in err and str(deep) in err
    assert runs_in(home) == []


def test_set_and_form_values_nested_too_deep_are_config_errors(tmp_path, capsys):
    """`--set betas=[[[...` (the form's inputs go through the same parse_value), in run and sweep."""
    home = tmp_path / "store"
    nested = "[" * 9000  # an argument's length is capped near 10,000 characters; deep enough to recurse out
    for cmd in ("run", "sweep"):
        err = refused(capsys, ["--home", str(home), cmd, "--recipe", "baseline", "--set", f"betas={nested}"])
        assert "betas=" in err
    assert runs_in(home) == []
    with pytest.raises(ConfigError, match="betas="):
        resolve_config("baseline", assignments=[f"betas={DEEP}"])
    with pytest.raises(ConfigError, match="betas="):
        parse_axis("baseline", f"betas={DEEP}")


def test_a_config_json_nested_too_deep_is_a_config_error(tmp_path):
    (tmp_path / "config.json").write_text(DEEP)
    with pytest.raises(ConfigError, match="config.json is unreadable: JSON nested too deeply"):
        read_run_config(tmp_path)


# ------------------------------------------------------------------------ npz labels, shapes, dtypes

def _npz(path: Path, *, y_train=None, y_test=None, x_train=None, **extra) -> Path:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
    labels = np.arange(8, dtype=np.int64) % 4
    np.savez(path, x_train=x if x_train is None else x_train, y_train=labels if y_train is None else y_train,
             x_test=x, y_test=labels if y_test is None else y_test, **extra)
    return path


def _lying_header(path: Path) -> Path:
    """An npz whose y_train header promises 10^12 labels that the file does not hold."""
    import zipfile

    _npz(path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    body = members["y_train.npy"]
    head_len = int.from_bytes(body[8:10], "little")
    header = body[10:10 + head_len].decode("latin1").replace("(8,)", "(1000000000000,)")
    header = header.rstrip("\n").ljust(head_len - 1) + "\n"
    members["y_train.npy"] = body[:10] + header.encode("latin1") + body[10 + head_len:]
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    return path


NPZ_CASES = [
    ("negative", dict(y_train=np.array([0, 1, 2, 3, 0, 1, 2, -1])), "labels span -1..3"),
    ("test-above-train", dict(y_test=np.full(8, 7)), "labels span 0..7, outside the class range 0..3"),
    ("names-too-few", dict(classes=np.array(["a", "b"])), "outside the class range 0..1"),
    ("float-labels", dict(y_train=np.arange(8, dtype=np.float32)), "y_train is float32, expected integer"),
    ("bool-labels", dict(y_train=np.ones(8, dtype=bool)), "y_train is bool, expected integer"),
    ("object-labels", dict(y_train=np.array([0, 1, 2, 3, 0, 1, 2, None], dtype=object)), "y_train is object"),
    ("2d-labels", dict(y_train=np.zeros((8, 1), np.int64)), "y_train has shape (8, 1)"),
    ("hwc-images", dict(x_train=np.zeros((8, 32, 32, 3), np.uint8)), "x_train has shape (8, 32, 32, 3)"),
    ("names-2d", dict(classes=np.array([["a", "b"], ["c", "d"]])), "classes has shape (2, 2)"),
]


@pytest.mark.parametrize("name,arrays,needle", NPZ_CASES, ids=[c[0] for c in NPZ_CASES])
def test_npz_the_worker_would_refuse_is_refused_at_queue_time(tmp_path, name, arrays, needle):
    cfg = resolve_config("baseline", {"dataset": f"npz:{_npz(tmp_path / 'd.npz', **arrays)}"})
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")) as e:
        check_dataset_available(cfg)
    assert "\n" not in str(e.value)


def test_npz_whose_header_promises_more_than_the_file_holds_is_refused(tmp_path):
    cfg = resolve_config("baseline", {"dataset": f"npz:{_lying_header(tmp_path / 'lie.npz')}"})
    with pytest.raises(ConfigError, match="y_train is truncated"):
        check_dataset_available(cfg)


def test_npz_with_good_labels_and_class_names_passes(tmp_path):
    path = _npz(tmp_path / "ok.npz", classes=np.array(["a", "b", "c", "d", "e"]))
    check_dataset_available(resolve_config("baseline", {"dataset": f"npz:{path}"}))


def test_npz_with_label_minus_one_queues_nothing(tmp_path, capsys):
    """The issue's case end to end: `ganmgr run --dataset npz:` with a -1 label, exit 2, no row, no folder."""
    path = _npz(tmp_path / "neg.npz", y_train=np.array([0, 1, 2, 3, 0, 1, 2, -1]))
    home = tmp_path / "store"
    err = refused(capsys, ["--home", str(home), "run", "-q", "--recipe", "baseline", "--dataset", f"npz:{path}",
                           "--width", "8"])
    assert "labels span -1..3" in err and str(path) in err
    assert runs_in(home) == []


# ------------------------------------------------------------------- fork and resume from a bad checkpoint

def _evil(path: Path, marker: Path) -> None:
    import pickle

    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"models": Evil(), "config": {}}, path, pickle_module=pickle)


def _truncated(path: Path, _marker: Path) -> None:
    import torch

    torch.save({"models": {"G": {"w": torch.zeros(10_000)}}, "config": {}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path, _marker: Path) -> None:
    path.write_bytes(b"\x80\x04not a checkpoint")


@pytest.fixture
def failed_run(tmp_path, npz):
    """Run 1: failed after epoch 0, with a checkpoints/last.pt each test fills in."""
    home = tmp_path / "store"
    cfg = resolve_config("baseline", {"dataset": f"npz:{npz}", "epochs": 2, "width": 8, "batch_size": 32,
                                      "name": "parent"})
    view = create_run(home, cfg, status="running", managed_by="headless")
    store_runs.set_status(home, view.id, "failed", message="test")
    dispose_engines()
    return home, Path(view.run_dir) / "checkpoints" / "last.pt"


BAD_CHECKPOINTS = [(_evil, "is refused"), (_truncated, "is unreadable"), (_garbage, "is unreadable")]


@pytest.mark.slow  # each command starts torch in the checker (a few seconds)
@pytest.mark.parametrize("make,needle", BAD_CHECKPOINTS, ids=["malicious", "truncated", "garbage"])
def test_fork_and_resume_from_a_bad_checkpoint_queue_nothing(failed_run, tmp_path, capsys, make, needle):
    home, last = failed_run
    marker = tmp_path / "pwned"
    make(last, marker)
    before = runs_in(home)
    for cmd, what in ((["resume", "1"], "run 1 cannot be resumed"), (["fork", "1"], "run 1 cannot be forked")):
        err = refused(capsys, ["--home", str(home), *cmd])
        assert what in err and needle in err and str(last) in err, err
        assert "weights_only" not in err and "will likely succeed" not in err, err
    assert runs_in(home) == before  # no row, no folder, no staged copy, the parent still failed
    assert [p.name for p in home.glob(".fork-*")] == []
    assert not marker.exists()


def test_the_checker_accepts_a_checkpoint_the_worker_can_load(tmp_path):
    import torch

    good = tmp_path / "good.pt"
    torch.save({"format": 1, "models": {"G": {"w": torch.zeros(3)}}, "config": {"recipe": "baseline"}}, good)
    check_checkpoint(good, "run 1 cannot be forked")  # no SubmitError
    with pytest.raises(SubmitError, match="does not exist"):
        check_checkpoint(tmp_path / "missing.pt", "run 1 cannot be forked")


# ----------------------------------------------------------------------------- Ctrl-C on a headless run

@pytest.mark.slow
def test_ctrl_c_on_a_headless_run_is_recorded_as_the_users_interrupt(tmp_path, npz):
    """A terminal's Ctrl-C sends SIGINT to the whole foreground group; the headless command used to forward a
    SIGTERM on top, and the worker recorded that ("stopped by signal 15")."""
    home = tmp_path / "store"
    proc = subprocess.Popen(cli_argv("--home", str(home), "run", "--headless", "--recipe", "baseline",
                                     "--dataset", f"npz:{npz}", "--epochs", "500", "--width", "8",
                                     "--batch-size", "32", "--device", "cpu", "--set", "threads=1",
                                     "--name", "ctrlc"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    run_dir = home / "1-ctrlc"
    deadline = time.time() + 300
    while time.time() < deadline and not (
            (run_dir / "metrics.jsonl").exists() and '"kind":"start"' in (run_dir / "metrics.jsonl").read_text()):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    proc.communicate(timeout=300)
    assert proc.returncode == 130
    end = records(run_dir, "end")[-1]
    assert (end["status"], end.get("error")) == ("cancelled", "interrupted by the user (SIGINT)")
    with sqlite3.connect(home / "ganmgr.db") as con:
        row = con.execute("select status, error, exit_code from runs").fetchone()
    assert row == ("cancelled", "interrupted by the user (SIGINT)", 128 + signal.SIGINT)



def test_create_run_itself_refuses_the_npz(tmp_path):
    """The check runs in create_run (the forms, sweeps and fork call it), not only in the CLI."""
    path = _npz(tmp_path / "neg.npz", y_train=np.array([0, 1, 2, 3, 0, 1, 2, -1]))
    home = tmp_path / "store"
    with pytest.raises(ConfigError, match="labels span"):
        create_run(home, resolve_config("baseline", {"dataset": f"npz:{path}"}))
    assert runs_in(home) == []
