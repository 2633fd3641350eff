"""Follow a run's `metrics.jsonl` by byte offset: only whole lines, never a half-written record.

The worker appends one JSON object per line and flushes per record, so a reader can see a line without its
newline yet; that tail waits for the next read. The file may not exist yet (the run is queued), and it may
be truncated or replaced (a resumed run rewrites it): the offset then starts over at 0 and `resets` counts
it, so a chart can clear. One MetricsTail per reader thread; it reopens the file on every read, which is
what lets it notice a replacement.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_MAX_BYTES = 1 << 20


class MetricsTail:
    """Incremental reader of a JSON-lines file. Set `offset` to resume where a previous reader stopped
    (e.g. the run row's `metrics_offset`)."""

    def __init__(self, path: Path | str, offset: int = 0) -> None:
        self.path = Path(path)
        self.offset = offset
        self.malformed = 0  # lines skipped because they were not a JSON object
        self.resets = 0  # times the file shrank or was replaced and reading started over
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file last read
        self._skipping = False  # inside an over-long line: discard up to its newline

    def read_new(self, max_bytes: int = DEFAULT_MAX_BYTES) -> list[dict[str, Any]]:
        """The records completed since the last call (at most about `max_bytes` of them)."""
        try:
            f = open(self.path, "rb")  # closed by the `with` below
        except FileNotFoundError:
            return []
        with f:
            st = os.fstat(f.fileno())
            identity = (st.st_dev, st.st_ino)
            if self._identity is not None and identity != self._identity:
                self._restart()
            self._identity = identity
            if st.st_size < self.offset:
                self._restart()
            if st.st_size == self.offset:
                return []
            f.seek(self.offset)
            chunk = f.read(max(1, max_bytes))
        return self._consume(chunk, max(1, max_bytes))

    def _restart(self) -> None:
        self.offset = 0
        self.resets += 1
        self._skipping = False

    def _consume(self, chunk: bytes, max_bytes: int) -> list[dict[str, Any]]:
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(chunk) >= max_bytes:
                # One line longer than a whole read: it can never be parsed here; skip it to its newline.
                if not self._skipping:
                    self.malformed += 1
                self._skipping = True
                self.offset += len(chunk)
            return []
        records: list[dict[str, Any]] = []
        lines = chunk[: end + 1].split(b"\n")[:-1]
        self.offset += end + 1
        for i, line in enumerate(lines):
            if i == 0 and self._skipping:
                self._skipping = False
                continue
            record = _parse(line)
            if record is None:
                if line.strip():
                    self.malformed += 1
                continue
            records.append(record)
        return records


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:  # includes UnicodeDecodeError
        return None
    return value if isinstance(value, dict) else None


def read_all(path: Path | str) -> list[dict[str, Any]]:
    """Every record of a finished file, including a last line that lacks its newline but parses."""
    tail = MetricsTail(path)
    records: list[dict[str, Any]] = []
    while True:
        before = tail.offset
        records.extend(tail.read_new())
        if tail.offset == before:
            break
    # Whatever is left has no newline: a record cut by a crash, or a complete one missing only "\n".
    try:
        with open(tail.path, "rb") as f:
            f.seek(tail.offset)
            rest = f.read()
    except FileNotFoundError:
        return records
    if rest.strip() and not tail._skipping:
        record = _parse(rest)
        if record is not None:
            records.append(record)
    return records
