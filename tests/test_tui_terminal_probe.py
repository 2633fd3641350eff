"""The TUI's terminal probe (textual-image asks the terminal about graphics and its cell size before Textual
starts) in a real pseudo-terminal: one that never answers, one that cannot be asked, and one that answers.

A terminal that does not answer must not get textual-image's `TimeoutError` traceback printed into it, nor
crash the start; the TUI falls back to half blocks quietly. The child is a real process on a real pty
(os.openpty); this test plays the terminal, answering or not.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT

PROBE = ("import sys\n"
         "from tui.widgets.image_panel import image_widget_class\n"
         "cls = image_widget_class()\n"
         "open(sys.argv[1], 'w').write(f'{cls.__module__}.{cls.__name__}')\n")


def probe_in_pty(tmp_path: Path, *, size: tuple[int, int, int, int] | None, stdin_is_terminal: bool = True,
                 answers: dict[bytes, bytes] | None = None) -> tuple[int, bytes, str]:
    """Run the TUI's probe (`image_widget_class()`, what `run_app` calls first) on a pty of `size` (rows,
    cols, x pixels, y pixels; None leaves it 0x0); `answers` maps a query to the terminal's reply.
    Returns the exit code, everything the child wrote to the terminal, and the widget class it chose."""
    master, slave = os.openpty()
    if size is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size))
    result = tmp_path / "chosen.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "STY", "GANMGR_IMAGES")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen([sys.executable, "-c", PROBE, str(result)], cwd=ROOT, env=env,
                            stdin=slave if stdin_is_terminal else subprocess.DEVNULL, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    written, answered = b"", set()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed its side
                    break
                if not chunk:
                    break
                written += chunk
                for query, reply in (answers or {}).items():
                    if query in written and query not in answered:
                        answered.add(query)
                        os.write(master, reply)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, written, result.read_text() if result.exists() else ""


QUIET_CASES = {
    "no-answer": dict(size=(24, 80, 0, 0)),  # no pixel size: the cell size is asked with CSI 16t, unanswered
    "size-0x0": dict(size=None),  # textual-image divides by the column count
    "stdin-not-a-terminal": dict(size=(24, 80, 0, 0), stdin_is_terminal=False),  # termios.error on stdin
}


@pytest.mark.parametrize("case", list(QUIET_CASES))
def test_a_terminal_that_does_not_answer_gets_half_blocks_and_no_traceback(tmp_path, case):
    code, written, chosen = probe_in_pty(tmp_path, **QUIET_CASES[case])
    text = written.decode(errors="replace")
    assert code == 0, text
    assert "Traceback" not in text and "TimeoutError" not in text and "Failed to get cell size" not in text, text
    assert chosen == "textual_image.widget.HalfcellImage"


def test_a_terminal_that_answers_sixel_keeps_it(tmp_path):
    """The fallback is for silence only: a terminal that says it does Sixel (and has a pixel size) gets it."""
    code, written, chosen = probe_in_pty(tmp_path, size=(24, 80, 800, 480), answers={b"\x1b[c": b"\x1b[?62;4c"})
    assert code == 0, written
    assert chosen == "textual_image.widget.sixel.Image"  # textual-image's Sixel widget
