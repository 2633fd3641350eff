"""engine.control.records: whole lines only, malformed lines skipped, truncation/replacement, the writer."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.control.records import (
    END,
    EPOCH,
    TRAIN,
    MetricsTail,
    MetricsWriter,
    attempt_end,
    line_end_offset,
    read_all,
)


def line(**record: object) -> bytes:
    return (json.dumps(record) + "\n").encode()


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def test_missing_file_then_records(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.read_new() == [] and tail.offset == 0
    append(path, line(kind="train", step=1) + line(kind="train", step=2))
    assert [r["step"] for r in tail.read_new()] == [1, 2]
    assert tail.read_new() == []
    assert tail.offset == path.stat().st_size


def test_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    full = line(kind="epoch", epoch=1, test_acc=51.5)
    append(path, line(kind="train", step=1) + full[:10])
    tail = MetricsTail(path)
    assert tail.read_new() == [{"kind": "train", "step": 1}]
    offset = tail.offset
    assert tail.read_new() == [] and tail.offset == offset  # the half line is not consumed
    append(path, full[10:-1])  # everything but the newline: still not a whole line
    assert tail.read_new() == []
    append(path, b"\n")
    assert tail.read_new() == [{"kind": "epoch", "epoch": 1, "test_acc": 51.5}]
    assert tail.malformed == 0


def test_malformed_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append(path, line(step=1) + b"{not json\n" + b"\n" + b"[1, 2]\n" + b"\xff\xfe\n" + line(step=2))
    tail = MetricsTail(path)
    assert tail.read_new() == [{"step": 1}, {"step": 2}]
    assert tail.malformed == 3  # the blank line is not counted


def test_truncation_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append(path, line(step=1) + line(step=2) + line(step=3))
    tail = MetricsTail(path)
    assert len(tail.read_new()) == 3
    with open(path, "wb") as f:  # same inode, shorter
        f.write(line(step=10))
    assert tail.read_new() == [{"step": 10}]
    assert tail.resets == 1


def test_replacement_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append(path, line(step=1) + line(step=2))
    tail = MetricsTail(path)
    assert len(tail.read_new()) == 2
    new = tmp_path / "metrics.jsonl.tmp"
    new.write_bytes(line(step=100) + line(step=101) + line(step=102))  # longer than the old file
    os.replace(new, path)
    assert [r["step"] for r in tail.read_new()] == [100, 101, 102]
    assert tail.resets == 1


def test_resume_at_a_stored_offset(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    first = line(step=1) + line(step=2)
    append(path, first + line(step=3))
    tail = MetricsTail(path, offset=len(first))
    assert tail.read_new() == [{"step": 3}]
    other = MetricsTail(path)
    other.offset = len(line(step=1))
    assert [r["step"] for r in other.read_new()] == [2, 3]
    assert tail.resets == other.resets == 0


def test_max_bytes_bounds_a_read_and_the_rest_follows(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append(path, b"".join(line(step=i) for i in range(100)))
    tail = MetricsTail(path)
    got: list[int] = []
    while batch := tail.read_new(max_bytes=64):
        assert len(batch) <= 64 // len(line(step=1)) + 1
        got += [r["step"] for r in batch]
    assert got == list(range(100))


def test_a_line_longer_than_a_read_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append(path, line(step=1) + line(blob="x" * 500) + line(step=2))
    tail = MetricsTail(path)
    got: list[dict] = []
    for _ in range(50):
        got += tail.read_new(max_bytes=100)
    assert got == [{"step": 1}, {"step": 2}]
    assert tail.malformed == 1


def test_read_all(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    assert read_all(path) == []
    append(path, line(step=1) + b"garbage\n" + line(step=2) + b'{"kind": "end", "status": "completed"}')
    assert read_all(path) == [{"step": 1}, {"step": 2}, {"kind": "end", "status": "completed"}]
    append(path, b"\n" + b'{"cut by a cra')
    assert read_all(path)[-1] == {"kind": "end", "status": "completed"}


def test_backlog_is_read_in_slices_until_the_end(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append(path, b"".join(line(step=i) for i in range(10)))
    tail = MetricsTail(path)
    assert len(line(step=0)) == 12
    assert [r["step"] for r in tail.read_backlog(max_reads=2, max_bytes=30)] == [0, 1, 2, 3]  # 2 lines a slice
    assert [r["step"] for r in tail.read_backlog()] == list(range(4, 10))


def test_the_writer_cuts_a_half_line_and_ends_with_an_end_record(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append(path, line(kind=TRAIN, step=1) + b'{"kind": "train", "st')  # a crash mid-record
    writer = MetricsWriter(path)
    writer.write({"kind": EPOCH, "epoch": 1, "loss": float("nan")})
    writer.end("failed", "boom")
    got = read_all(path)
    assert [r["kind"] for r in got] == [TRAIN, EPOCH, END]
    assert got[1]["loss"] is None  # JSON has no NaN
    assert got[2]["status"] == "failed" and got[2]["error"] == "boom"
    assert attempt_end(path, since=got[2]["time"]) == got[2]
    assert attempt_end(path, since=got[2]["time"] + 1) is None  # an older attempt's end is history
    assert line_end_offset(path) == path.stat().st_size
