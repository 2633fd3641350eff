"""The worker's side of metrics.jsonl: one JSON object per line, append-only, flushed per record."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any


def _clean(v: Any) -> Any:
    """JSON has no NaN/inf: a non-finite float is written as null (the divergence record says why)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


class MetricsWriter:
    def __init__(self, path: Path):
        self.path = path
        self._repair_tail()
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the worker's life

    def _repair_tail(self) -> None:
        """A crash mid-line leaves a partial record; cut it so the next record starts on its own line."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with open(self.path, "rb+") as fh:
            fh.seek(max(0, size - 65536))
            tail = fh.read()
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            fh.truncate(size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= 65536 else size))

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(_clean(record), separators=(",", ":"), allow_nan=False)
        self._fh.write(line + "\n")
        self._fh.flush()

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            self._fh.close()

    def end(self, status: str, error: str | None = None, *, who: str = "worker") -> None:
        """Write the last record (`end`, fsync'd) and close. A full disk must not hide the real status in a
        traceback: a failed write is one line on stderr, and the caller still exits with its code."""
        rec: dict[str, Any] = {"kind": "end", "status": status, "time": time.time()}
        if error:
            rec["error"] = error
        try:
            self.write(rec)
            self.sync()
        except OSError as e:
            print(f"{who}: could not write the end record: {e}", file=sys.stderr)
        self.close()
