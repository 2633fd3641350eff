"""The rules for what a caller hands the store: tags, notes, run names, settings and plain values.

One rule per fact: the CLI, the TUI forms and the store all call these, so `ganmgr run --tag` and the
new-run form accept and refuse exactly the same tags. Every refusal is a one-line `StoreError`.
Only the stdlib and `store.errors` are imported here: the CLI imports this module at startup and must not
pay for SQLAlchemy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePosixPath
from typing import Any

from store.errors import StoreError

MAX_TAG_CHARS = 40
TAG_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_TAG_CHARS - 1}}}$")
TAG_RULE = f"a tag must be 1-{MAX_TAG_CHARS} letters, digits, '.', '_', ':' or '-'"
MAX_NOTE_CHARS = 10_000
MAX_NAME_CHARS = 200
BACKENDS = ("local", "slurm")
SETTING_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # control characters other than \t and \n


# ------------------------------------------------------------------------------- tags, notes, names


def normalize_tags(tags: Iterable[str] | str) -> tuple[str, ...]:
    """Tags from a comma-separated string or an iterable: split on commas, stripped, empties dropped,
    de-duplicated with their order kept.

    A tag is 1-40 letters, digits, '.', '_', ':' or '-', starting with a letter or digit (`sweep:NAME`
    fits: a sweep name is at most 34 characters).
    """
    items: Iterable[str] = tags.split(",") if isinstance(tags, str) else tags
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise StoreError(f"a tag must be text, not {item!r}")
        for t in item.split(","):
            t = t.strip()
            if not t:
                continue
            if not TAG_RE.match(t):
                raise StoreError(f"bad tag {quote(t)}: {TAG_RULE}")
            if t not in out:
                out.append(t)
    return tuple(out)


def check_note(text: str, what: str = "the note") -> str:
    """A run's note: free text of at most 10,000 characters; tabs and newlines are its only control
    characters. `what` names it in the message ("--note" in the CLI)."""
    if not isinstance(text, str):
        raise StoreError(f"{what} must be text")
    if len(text) > MAX_NOTE_CHARS:
        raise StoreError(f"{what} is longer than {MAX_NOTE_CHARS} characters")
    if _CONTROL_RE.search(text):
        raise StoreError(f"{what} contains control characters")
    return text


def check_run_name(name: str) -> str:
    """A run's name as the store keeps it: one line of 1-200 characters. (The names a user types are held
    to the stricter config rule, `engine.control.config.NAME_RE`; sweep points and forks derive theirs.)"""
    check_text(name, "name", MAX_NAME_CHARS)
    return name


# ---------------------------------------------------------------------------------- plain values


def check_text(value: Any, what: str, max_len: int) -> None:
    """One line of non-blank text: no tab, newline or other control character."""
    if not isinstance(value, str) or not value.strip():
        raise StoreError(f"{what} must be non-empty text")
    if len(value) > max_len:
        raise StoreError(f"{what} is longer than {max_len} characters")
    if _CONTROL_RE.search(value) or "\n" in value or "\t" in value:
        raise StoreError(f"{what} contains control characters")


def check_int(value: Any, what: str, *, lo: int | None = None) -> None:
    """An int (a bool is refused), at least `lo` when given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreError(f"{what} must be an integer, not {value!r}")
    if lo is not None and value < lo:
        raise StoreError(f"{what} must be >= {lo}, not {value}")


def check_choice(value: Any, what: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise StoreError(f"{what} must be one of {', '.join(choices)}, not {value!r}")


def check_rel_path(path: Any) -> str:
    """An artifact path: relative, inside the run directory, POSIX form."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise StoreError(f"bad artifact path {path!r}")
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or str(p) in ("", "."):
        raise StoreError(f"artifact path {path!r} must be relative to the run directory")
    return str(p)


def to_json(value: Any, what: str, kind: type, *, nan_ok: bool = False) -> str:
    """`value` as the text of a JSON column; `kind` dict or list (or object: anything serialisable)."""
    if kind is not object and not isinstance(value, kind):
        raise StoreError(f"{what} must be a JSON {'object' if kind is dict else 'array'}")
    try:
        return json.dumps(value, sort_keys=kind is dict, allow_nan=nan_ok)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON-serialisable: {exc}") from None


def quote(text: str) -> str:
    """User input for an error message: quoted, control characters escaped, long input cut."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    return "'" + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", shown) + "'"


# -------------------------------------------------------------------------------------- settings


def check_setting(key: Any, value: Any) -> None:
    """A setting's name, and its value when the store knows the setting (others need only be JSON)."""
    if not isinstance(key, str) or not SETTING_NAME_RE.fullmatch(key):
        raise StoreError(f"bad setting name {key!r}")
    check = _SETTING_CHECKS.get(key)
    if check is not None:
        check(value)


def _check_gpus(value: Any) -> None:
    if not isinstance(value, list | tuple) or not all(
        isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in value
    ):
        raise StoreError(f"gpus must be a list of GPU indices (integers >= 0), not {value!r}")
    if len(set(value)) != len(value):
        raise StoreError(f"gpus lists a GPU twice: {list(value)!r}")


def _check_cancel_grace(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise StoreError(f"cancel_grace_s must be a number of seconds above 0 and at most 3600, "
                         f"not {value!r}")


def _check_root(value: Any, key: str) -> None:
    if value is not None and (not isinstance(value, str) or not PurePosixPath(value).is_absolute()
                              or "\x00" in value or len(value) > 4000):
        raise StoreError(f"{key} must be an absolute folder path or null, not {value!r}")


def _check_roots(value: Any, key: str) -> None:
    if not isinstance(value, list):
        raise StoreError(f"{key} must be a list of absolute folder paths, not {value!r}")
    for root in value:
        _check_root(root, key)


def _check_mapping(value: Any, key: str) -> None:
    if not isinstance(value, dict):
        raise StoreError(f"{key} must be a JSON object, not {value!r}")


def _check_int_range(value: Any, key: str, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise StoreError(f"{key} must be an integer from {lo} to {hi}, not {value!r}")


def _check_seconds(value: Any, key: str, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise StoreError(f"{key} must be a number of seconds from {lo:g} to {hi:g}, not {value!r}")


# Settings without a default in `store.settings.DEFAULT_SETTINGS` (cancel_grace_s, viz_max_concurrent...)
# are read with their default by their user (engine.control.submit.cancel_grace_s), so older stores need no
# migration.
_SETTING_CHECKS: dict[str, Callable[[Any], None]] = {
    "max_concurrent": lambda v: _check_int_range(v, "max_concurrent", 1, 64),
    "gpus": _check_gpus,
    "cancel_grace_s": _check_cancel_grace,
    "viz_max_concurrent": lambda v: _check_int_range(v, "viz_max_concurrent", 1, 64),
    "backend": lambda v: check_choice(v, "backend", BACKENDS),
    "slurm_options": lambda v: _check_mapping(v, "slurm_options"),
    "max_segments": lambda v: _check_int_range(v, "max_segments", 1, 1000),
    "slurm_poll_s": lambda v: _check_seconds(v, "slurm_poll_s", 0.1, 600),
    "runs_root": lambda v: _check_root(v, "runs_root"),
    "runs_roots_used": lambda v: _check_roots(v, "runs_roots_used"),
}
