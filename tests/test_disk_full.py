"""One test for a full disk (engine.control.paths.is_disk_full), through every wrapper it arrives in.

The supervisor waits out a full disk instead of counting it as a failed tick (and giving up after 20);
the real thing, on a filled tmpfs, is the `disk_full` scenario of bench/chaos.py (tests/test_chaos.py).
"""

from __future__ import annotations

import errno
import sqlite3

import sqlalchemy.exc

from engine.control.paths import is_disk_full


def test_enospc_and_edquot_are_a_full_disk():
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))


def test_sqlite_full_is_a_full_disk_even_wrapped_by_sqlalchemy():
    raw = sqlite3.OperationalError("database or disk is full")
    wrapped = sqlalchemy.exc.OperationalError("INSERT INTO run ...", {}, raw)
    assert is_disk_full(raw) and is_disk_full(wrapped)
    assert not is_disk_full(sqlalchemy.exc.OperationalError("x", {}, sqlite3.OperationalError("database is locked")))


def test_a_full_disk_found_in_the_cause_chain():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise RuntimeError("cannot write the record") from e
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(RuntimeError("something else"))
