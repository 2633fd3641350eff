"""The supervisor's log: one stamped line per event on stdout, which the launcher sends to HOME/supervisor.log."""

from __future__ import annotations

import os
import time


def log(msg: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        print(f"{stamp} supervisor[{os.getpid()}] {msg}", flush=True)
    except OSError:  # the log is best effort: a full disk must not take the supervisor down with it
        pass
