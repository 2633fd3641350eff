"""metrics.jsonl, the one contract between a worker (or a viz job) and everything that watches it.

A worker appends one JSON object per line and flushes per record (`MetricsWriter`); every reader goes
through `MetricsTail` (or `read_all`, `attempt_end`, which use the same line parser), so a half-written
line, a malformed one and a replaced file mean the same thing to the supervisor, the TUI and the viz jobs.
Every record has a `kind`; the kinds are named here once.

Reading follows the file by byte offset, whole lines only: a line without its newline yet waits for the
next read. The file may not exist yet (the run is queued), and it may be truncated or replaced (a resumed
run rewrites it): the offset then starts over at 0 and `resets` counts it, so a chart can clear. One
MetricsTail per reader thread; it reopens the file on every read, which is what lets it notice a
replacement.
"""

from __future__ import annotations

import json
import math
import operator
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import compress, repeat
from pathlib import Path
from typing import Any

import orjson

# The record kinds. A training worker writes start, train (every few steps), epoch, artifact and end; a
# viz job writes start, progress, artifact, result and end. `end` is always the last record of an attempt
# unless the process was killed outright.
START = "start"
TRAIN = "train"
EPOCH = "epoch"
ARTIFACT = "artifact"
PROGRESS = "progress"
RESULT = "result"
END = "end"
# a health rule that acted (warn or stop): rule, action, message, epoch, step, healthy_checkpoint
# (engine/control/health_rules.py)
HEALTH = "health"
# what the run's processes use, every resources_every seconds from the worker's sampler thread: t, cpu_percent,
# rss_mb, gpu (a list per device; absent without NVML), proc_gpu_mem_mb (engine/compute/resources.py)
RESOURCES = "resources"
# sample quality measured between epochs (eval_every): epoch, n, fid, kid, kid_std, is, is_std, fd_clf,
# kid_clf, gan_test_acc, uncalibrated (engine/compute/evaluation.py); a value that cannot be computed is absent
EVAL = "eval"
# the `what` of the artifact record that announces a new checkpoints/best.pt (engine/compute/checkpoint.py)
BEST_WHAT = "best"
# the statuses an `end` record carries (engine/worker.py and the viz jobs write them)
END_STATUSES = ("completed", "failed", "cancelled", "diverged", "stopped")

DEFAULT_MAX_BYTES = 1 << 20
END_SEARCH_BYTES = 256 * 1024  # how far back from the file's end `attempt_end` looks


def parse_record(line: bytes) -> dict[str, Any] | None:
    """One line as a record; None for anything that is not a JSON object (invalid UTF-8 included).

    orjson parses a line in about a third of the standard library's time (a million-line file is most of
    a run screen's opening, issue 16); the few lines it refuses and `json` accepts (NaN, Infinity, a huge
    integer: never written by `MetricsWriter`, possible in a file edited by hand) still parse as before."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(line)
        except ValueError:  # includes UnicodeDecodeError
            return None
    return value if isinstance(value, dict) else None


def _parse_all(lines: list[bytes]) -> list[dict[str, Any]] | None:
    """Every line parsed by orjson in one `map` (no Python code per line: most of a big backlog's
    reading), or None when any line is not a plain JSON object: the caller then goes line by line."""
    try:
        values = list(map(_orjson_loads, lines))
    except orjson.JSONDecodeError:
        return None
    if set(map(type, values)) - {dict}:
        return None
    return values


_orjson_loads = orjson.loads


def written_prefix(kind: str) -> bytes:
    """How every line `MetricsWriter` writes for a record of `kind` begins (the kind comes first, compact
    separators), so a reader can tell the kind of a line without parsing it."""
    return b'{"kind":' + json.dumps(kind).encode() + b","


def keep_last_of(lines: list[bytes], prefix: bytes) -> list[bytes]:
    """`lines` without those that begin with `prefix`, except the last of them (C-level passes: a slice
    of a million-line backlog is filtered in about a millisecond)."""
    flags = list(map(bytes.startswith, lines, repeat(prefix)))
    try:
        last = len(flags) - 1 - flags[::-1].index(True)
    except ValueError:  # none
        return lines
    flags[last] = False
    return list(compress(lines, map(operator.not_, flags)))


class MetricsTail:
    """Incremental reader of a JSON-lines file. Set `offset` to resume where a previous reader stopped
    (e.g. the run row's `metrics_offset`)."""

    def __init__(self, path: Path | str, offset: int = 0, latest_only: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self.offset = offset
        # kinds of which a read returns only the newest record (a reader that folds them "latest wins"):
        # their lines as MetricsWriter writes them are dropped unparsed, a third of a training run's lines
        self._latest_prefixes = tuple(written_prefix(k) for k in latest_only)
        self.skipped = 0  # lines dropped unparsed for latest_only (records read, not returned)
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

    def read_backlog(self, max_reads: int | None = None,
                     max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[dict[str, Any]]:
        """Every record completed so far, read slice by slice (`read_new`) until the offset stops moving,
        at most `max_reads` slices (a finished process's long backlog, without holding it all at once)."""
        reads = 0
        while max_reads is None or reads < max_reads:
            before = self.offset
            yield from self.read_new(max_bytes)
            reads += 1
            if self.offset == before:
                return

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
        if self._skipping and lines:
            self._skipping = False
            lines = lines[1:]
        for prefix in self._latest_prefixes:
            n = len(lines)
            lines = keep_last_of(lines, prefix)
            self.skipped += n - len(lines)
        fast = _parse_all(lines)
        if fast is not None:
            return fast
        for line in lines:
            record = parse_record(line)
            if record is None:
                if line.strip():
                    self.malformed += 1
                continue
            records.append(record)
        return records


def read_all(path: Path | str) -> list[dict[str, Any]]:
    """Every record of a finished file, including a last line that lacks its newline but parses."""
    tail = MetricsTail(path)
    records = list(tail.read_backlog())
    # Whatever is left has no newline: a record cut by a crash, or a complete one missing only "\n".
    try:
        with open(tail.path, "rb") as f:
            f.seek(tail.offset)
            rest = f.read()
    except FileNotFoundError:
        return records
    if rest.strip() and not tail._skipping:
        record = parse_record(rest)
        if record is not None:
            records.append(record)
    return records


def attempt_end(path: Path, since: float | None, tail_bytes: int = END_SEARCH_BYTES) -> dict[str, Any] | None:
    """The `end` record of the current attempt (written at or after `since`), from the file's last bytes.

    A resumed run appends to the same file, so an older attempt's `end` record is history, not this one's."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - tail_bytes))
            chunk = fh.read()
    except OSError:
        return None
    for line in reversed(chunk.split(b"\n")):
        rec = parse_record(line)
        if rec is None or rec.get("kind") != END:
            continue
        t = rec.get("time")
        if since is None or not isinstance(t, (int, float)) or t >= since:
            return rec
        return None  # the newest end record is older than this attempt
    return None


def last_record(path: Path, marker: bytes, accept: Callable[[dict[str, Any]], bool],
                chunk_bytes: int = 65536) -> dict[str, Any] | None:
    """The newest record that `accept`s, read backward from the file's end: cheap even when the record is far
    back in a long file (only lines holding the bytes `marker` are parsed). None when none does."""
    try:
        with open(path, "rb") as fh:
            pos = os.fstat(fh.fileno()).st_size
            carry = b""
            while pos > 0:
                start = max(0, pos - chunk_bytes)
                fh.seek(start)
                lines = (fh.read(pos - start) + carry).split(b"\n")
                carry = lines.pop(0) if start > 0 else b""
                for line in reversed(lines):
                    if marker in line:
                        rec = parse_record(line)
                        if rec is not None and accept(rec):
                            return rec
                pos = start
    except OSError:
        return None
    return None


def last_artifact(path: Path, what: str, chunk_bytes: int = 65536) -> dict[str, Any] | None:
    """The newest `artifact` record of `what` (e.g. "best")."""
    return last_record(path, json.dumps(what).encode(),
                       lambda rec: rec.get("kind") == ARTIFACT and rec.get("what") == what, chunk_bytes)


def line_end_offset(path: Path) -> int:
    """Offset just past the last newline of `path` (0 if none or missing): where a new attempt's records
    begin once the worker has cut a half-written last line."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            pos = size
            while pos > 0:
                start = max(0, pos - 65536)
                fh.seek(start)
                chunk = fh.read(pos - start)
                i = chunk.rfind(b"\n")
                if i >= 0:
                    return start + i + 1
                pos = start
    except OSError:
        return 0
    return 0


# ------------------------------------------------------------------------------------------- writing


def json_safe(v: Any) -> Any:
    """JSON has no NaN/inf: a non-finite float is written as null (the divergence record says why)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


class MetricsWriter:
    """The writer's side (torch-free): one JSON object per line, append-only, flushed per record.
    `who` names the writer on stderr ("worker", "viz")."""

    def __init__(self, path: Path, who: str = "worker"):
        self.path = path
        self.who = who
        self._repair_tail()
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the worker's life
        # the resources sampler thread writes beside the training loop: one whole line at a time (reentrant,
        # so a signal handler that writes while its own thread holds the lock cannot deadlock)
        self._lock = threading.RLock()

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
        line = json.dumps(json_safe(record), separators=(",", ":"), allow_nan=False)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def sync(self) -> None:
        with self._lock:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()
                self._fh.close()

    def end(self, status: str, error: str | None = None, **fields: Any) -> None:
        """Write the last record (`end`, fsync'd) and close; `fields` go with it (a divergence's step and
        healthy checkpoint). A full disk must not hide the real status in a traceback: a failed write is one
        line on stderr, and the caller still exits with its code."""
        rec: dict[str, Any] = {"kind": END, "status": status, "time": time.time()}
        if error:
            rec["error"] = error
        rec.update({k: v for k, v in fields.items() if k not in rec})
        try:
            self.write(rec)
            self.sync()
        except OSError as e:
            print(f"{self.who}: could not write the end record: {e}", file=sys.stderr)
        self.close()

    def exit_with(self, status: str, code: int, error: str | None = None, **fields: Any) -> int:
        """`end`, then `code` for the process to exit with: `return metrics.exit_with("failed", 2, why)`."""
        self.end(status, error, **fields)
        return code
