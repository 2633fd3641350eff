"""store.checks: the one rule for tags, notes, run names and setting values (CLI, TUI forms and store)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from store.checks import (
    MAX_NOTE_CHARS,
    check_note,
    check_run_name,
    check_setting,
    normalize_tags,
)
from store.errors import StoreError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "tag",
    ["a", "Z", "0", "x" * 40, "a.b_c:d-e", "sweep:" + "n" * 34, "v1.2", "9-lives", "A:"],
)
def test_tags_accepted(tag: str) -> None:
    assert normalize_tags([tag]) == (tag,)
    assert normalize_tags(tag) == (tag,)


@pytest.mark.parametrize(
    "tag",
    [
        "x" * 41,  # one past the limit
        "bad tag!",
        "has space",
        "-leading",
        ".leading",
        "_leading",
        ":leading",
        "a/b",
        "a+b",
        "`reboot`",
        "$(id)",
        "ümlaut",
        "tab\there",
        "nul\x00",
    ],
)
def test_tags_refused(tag: str) -> None:
    with pytest.raises(StoreError, match="bad tag") as e:
        normalize_tags([tag])
    assert "must be 1-40" in str(e.value)


def test_tag_message_names_the_tag_and_the_rule() -> None:
    with pytest.raises(StoreError) as e:
        normalize_tags("bad tag!")
    assert str(e.value) == "bad tag 'bad tag!': a tag must be 1-40 letters, digits, '.', '_', ':' or '-'"
    with pytest.raises(StoreError) as e:
        normalize_tags(["esc\x1b"])
    assert "'esc\\x1b'" in str(e.value)  # control characters are shown escaped, never sent to the terminal
    with pytest.raises(StoreError) as e:
        normalize_tags(["y" * 100])
    assert "..." in str(e.value) and len(str(e.value)) < 140  # a long tag is cut in the message


def test_tags_split_strip_dedupe_and_keep_order() -> None:
    assert normalize_tags("b, a,,b , c") == ("b", "a", "c")
    assert normalize_tags(["b", "a,c", " a ", ""]) == ("b", "a", "c")
    assert normalize_tags("") == () and normalize_tags([]) == () and normalize_tags(" , ") == ()
    assert normalize_tags(("x" * 40, "y")) == ("x" * 40, "y")
    with pytest.raises(StoreError, match="a tag must be text"):
        normalize_tags([3])  # type: ignore[list-item]


def test_notes_at_the_boundaries() -> None:
    assert check_note("") == ""
    assert check_note("line 1\nline 2\ttab") == "line 1\nline 2\ttab"
    assert check_note("y" * MAX_NOTE_CHARS) == "y" * MAX_NOTE_CHARS
    with pytest.raises(StoreError, match="^the note is longer than 10000 characters$"):
        check_note("y" * (MAX_NOTE_CHARS + 1))
    with pytest.raises(StoreError, match="^--note is longer than 10000 characters$"):
        check_note("y" * (MAX_NOTE_CHARS + 1), "--note")
    for bad in ("bell\x07", "nul\x00", "esc\x1b[2J", "cr\r", "del\x7f"):
        with pytest.raises(StoreError, match="^the note contains control characters$"):
            check_note(bad)
    with pytest.raises(StoreError, match="must be text"):
        check_note(None)  # type: ignore[arg-type]


def test_run_names() -> None:
    assert check_run_name("tiny-gan") == "tiny-gan"
    assert check_run_name("x" * 200) == "x" * 200
    for bad in ("", "   ", "x" * 201, "a\x00b", "two\nlines", "tab\tname"):
        with pytest.raises(StoreError, match="name"):
            check_run_name(bad)


def test_settings() -> None:
    check_setting("max_concurrent", 1)
    check_setting("max_concurrent", 64)
    check_setting("other_key", {"anything": 1})  # unknown settings need only be JSON (checked on write)
    for key, value in [("max_concurrent", 0), ("max_concurrent", 65), ("viz_max_concurrent", True),
                       ("gpus", [0, 0]), ("cancel_grace_s", 0), ("cancel_grace_s", 3601), ("backend", "ssh"),
                       ("max_segments", 1001), ("slurm_poll_s", 0.05), ("runs_root", "relative/path"),
                       ("runs_roots_used", "/not/a/list"), ("slurm_options", [])]:
        with pytest.raises(StoreError, match=key):
            check_setting(key, value)
    with pytest.raises(StoreError, match="bad setting name"):
        check_setting("Bad Key", 1)


def test_checks_import_neither_sqlalchemy_nor_anything_of_ours() -> None:
    """The CLI imports store.checks at startup: it must not pay for SQLAlchemy."""
    probe = ("import sys, store.checks, store.lifecycle, store.views\n"
             "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
             "('sqlalchemy', 'sqlmodel', 'torch', 'textual', 'tui', 'engine'))\n"
             "assert not heavy, heavy\nprint('clean')\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"
