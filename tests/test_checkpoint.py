"""Checkpoints are written atomically: an interrupted write leaves the previous file loadable."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from engine.compute.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tests.helpers import ROOT


def _state(value: float, n: int = 10) -> dict:
    return {"config": {"recipe": "baseline"}, "models": {"D": {"w": torch.full((n,), value)}}, "epoch": 1}


def test_round_trip_with_weights_only(tmp_path):
    p = tmp_path / "last.pt"
    save_checkpoint(p, _state(1.0))
    got = load_checkpoint(p)
    assert torch.equal(got["models"]["D"]["w"], torch.ones(10)) and got["format"] == 1


def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    p = tmp_path / "last.pt"
    save_checkpoint(p, _state(1.0))

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(CheckpointError, match="disk full while writing .*last.pt; the previous checkpoint is kept"):
        save_checkpoint(p, _state(2.0))
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(p)["models"]["D"]["w"], torch.ones(10))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["last.pt"]  # no temp file left behind


@pytest.mark.slow
def test_killed_writer_never_leaves_a_broken_checkpoint(tmp_path):
    """SIGKILL a process in the middle of writing a large checkpoint, ten times at different moments."""
    p = tmp_path / "last.pt"
    save_checkpoint(p, _state(1.0))
    script = textwrap.dedent(f"""
        import sys, torch
        from pathlib import Path
        from engine.compute.checkpoint import save_checkpoint
        state = {{"config": {{}}, "models": {{"D": {{"w": torch.full((10_000_000,), 2.0)}}}}}}
        print("ready", flush=True)
        while True:
            save_checkpoint(Path({str(p)!r}), state)
    """)
    for i in range(10):
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.05 + 0.037 * i)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        got = load_checkpoint(p)  # never raises: the file is the old one or a complete new one
        w = got["models"]["D"]["w"]
        assert (w.numel() == 10 and float(w[0]) == 1.0) or (w.numel() == 10_000_000 and float(w[-1]) == 2.0)


@pytest.mark.parametrize("content,needle", [(b"", "unreadable"), (b"not a zip at all", "unreadable")])
def test_corrupt_checkpoint_is_a_one_line_error(tmp_path, content, needle):
    p = tmp_path / "last.pt"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=needle) as e:
        load_checkpoint(p)
    assert "\n" not in str(e.value)


def test_truncated_checkpoint_is_an_error(tmp_path):
    p = tmp_path / "last.pt"
    save_checkpoint(p, _state(1.0, n=100_000))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(p)


def test_foreign_pickle_is_refused(tmp_path):
    """weights_only=True: a pickle that would run code is refused, not executed."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    p = tmp_path / "last.pt"
    torch.save({"models": Evil(), "config": {}}, p, pickle_module=pickle)
    with pytest.raises(CheckpointError):
        load_checkpoint(p)
    assert not (tmp_path / "pwned").exists()


def test_a_refused_checkpoint_gets_ganmgrs_message_never_torchs_advice(tmp_path):
    """torch's text says weights_only=False "will likely succeed": dangerous advice for a file just refused
    as unsafe. The worker's error (and `fork`/`resume`'s refusal) is ganmgr's own line, naming what was found."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    p = tmp_path / "last.pt"
    torch.save({"models": Evil(), "config": {}}, p, pickle_module=pickle)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    msg = str(e.value)
    assert "is refused" in msg and "GLOBAL posix.system" in msg and "\n" not in msg, msg
    assert "weights_only" not in msg and "likely succeed" not in msg and "trusted source" not in msg, msg
    assert not (tmp_path / "pwned").exists()
