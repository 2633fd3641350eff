"""End to end: the real `ganmgr` in a real terminal (tmux), driven by keystrokes only.

Queue a tiny run through the form, watch the table until the supervisor has trained it to `completed`,
open it, and find the chart titles and the sample grid in what the terminal shows. Skipped (with the
reason) where tmux is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, cli_argv, tiny_npz

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install -y tmux)"),
]


class Tmux:
    """One private tmux server (its own socket) holding one session."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.socket = f"ganmgr-test-{os.getpid()}-{time.monotonic_ns()}"
        self.env = env
        self.tmp = tmp

    def cmd(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], capture_output=True,
                             text=True, env=self.env, timeout=30, check=False)
        if check and out.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def start(self, argv: list[str], width: int = 160, height: int = 48) -> None:
        # Several arguments after the options: tmux runs the command directly, without a shell.
        wrapped = ["bash", "-c", '"$@"; echo "ganmgr-exit=$?"; sleep 30', "ganmgr", *argv]
        self.cmd("new-session", "-d", "-s", "e2e", "-x", str(width), "-y", str(height), "-c", str(ROOT), *wrapped)
        self.cmd("set-option", "-t", "e2e", "remain-on-exit", "on")

    def keys(self, *keys: str) -> None:
        self.cmd("send-keys", "-t", "e2e", *keys)

    def text(self, text: str) -> None:
        self.cmd("send-keys", "-t", "e2e", "-l", text)

    def screen(self) -> str:
        return self.cmd("capture-pane", "-p", "-t", "e2e")

    def wait_for(self, needle: str, timeout: float, what: str) -> str:
        end = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < end:
            shown = self.screen()
            if needle in shown:
                return shown
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what} ({needle!r}); the terminal shows:\n{shown}")

    def wait_gone(self, needle: str, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while needle in self.screen():
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what} to go away")
            time.sleep(0.2)

    def close(self) -> None:
        self.cmd("kill-server", check=False)


@pytest.fixture
def tmux(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "DISPLAY", "WAYLAND_DISPLAY")}
    env["TERM"] = "xterm-256color"
    t = Tmux(tmp_path, env)
    yield t
    t.close()


def test_queue_a_run_with_keystrokes_and_watch_it_complete(tmux: Tmux, tmp_path: Path) -> None:
    home = tmp_path / "store"
    npz = tiny_npz(tmp_path / "tiny.npz", n_train=64, n_test=32)
    tmux.start(cli_argv("--home", str(home)))

    tmux.wait_for("Welcome to ganmgr", 60, "the welcome on an empty store")
    tmux.keys("Escape")
    # (A key sent right after Escape would arrive as Alt+key: wait until the welcome has closed.)
    tmux.wait_gone("Welcome to ganmgr", 10, "the welcome")
    tmux.keys("n")
    tmux.wait_for("New run", 10, "the new-run form")
    # Focus starts on the recipe (acgan-wgangp by default); each Tab selects the next input's text,
    # so typing replaces it.
    for text in (f"npz:{npz}", None, "1", "8", "32", None, None, "cpu", "e2e-tiny"):
        tmux.keys("Tab")
        time.sleep(0.15)
        if text is not None:
            tmux.text(text)
            time.sleep(0.15)
    shown = tmux.screen()
    assert "e2e-tiny" in shown and "must be" not in shown, shown
    tmux.keys("C-s")
    tmux.wait_for("e2e-tiny", 20, "the queued run in the table")

    shown = tmux.wait_for("✓ completed", 300, "the run to complete")
    assert "e2e-tiny" in shown
    tmux.keys("Enter")  # the cursor sits on the new run
    shown = tmux.wait_for("samples · epoch 1", 30, "the run screen with its sample grid")
    for needle in ("─ losses ─", "━ gp", "━ d_fake_source", "━ d_real_source", "━ d_real_class",
                   "━ d_fake_class", "─ accuracy % ─", "━ train acc", "━ test acc", "samples/epoch_001.png",
                   "log.txt", "x: step"):
        assert needle in shown, f"{needle!r} missing from:\n{shown}"
    assert "▀" in shown or "▄" in shown, "the sample grid is not drawn with half blocks:\n" + shown
    tmux.keys("q")
    # the app runs under `bash -c '"$@"; echo ganmgr-exit=$?'` (see start): tmux's own pane_dead_status
    # is not always filled in, the echoed exit code is
    tmux.wait_for("ganmgr-exit=0", 20, "ganmgr to quit with exit code 0")

