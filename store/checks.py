"""The rules for what a caller hands the store: tags, notes, run names, settings and plain values.

One rule per fact: the CLI, the TUI forms and the store all call these, so `ganmgr run --tag` and the
new-run form accept and refuse exactly the same tags. Every refusal is a one-line `StoreError`.
Only the stdlib, `store.errors` and `store.lifecycle` are imported here: the CLI imports this module at
startup and must not pay for SQLAlchemy (nor for apprise, imported only when a notify URL is judged).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePosixPath
from typing import Any, TypeVar

from store.errors import StoreError
from store.lifecycle import STATUSES, TERMINAL_STATUSES

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


def _check_file(value: Any, key: str) -> None:
    """An absolute file path or null (whether the file is usable is the caller's check: it needs to read it)."""
    if value is not None and (not isinstance(value, str) or not PurePosixPath(value).is_absolute()
                              or "\x00" in value or len(value) > 4000):
        raise StoreError(f"{key} must be an absolute file path or null, not {value!r}")


def _check_bool(value: Any, key: str) -> None:
    if not isinstance(value, bool):
        raise StoreError(f"{key} must be true or false, not {value!r}")


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
    "notify_urls": lambda v: check_notify_urls(v),  # defined below
    "notify_on": lambda v: check_notify_on(v),
    "notify_cursor": lambda v: _check_notify_cursor(v),
    "notify_timeout_s": lambda v: _check_seconds(v, "notify_timeout_s", 1, 600),
    "inception_weights": lambda v: _check_file(v, "inception_weights"),
    "inception_allow_uncalibrated": lambda v: _check_bool(v, "inception_allow_uncalibrated"),
}


# --------------------------------------------------------------------------------- notifications

# What a notification can be about: a run's terminal statuses (store.lifecycle, in its order), `stopped`
# (a health rule's stop) and the health flags `warn` and `stalled`, which are not statuses: the health rules
# record them as run events (`store.runs.add_event(home, run_id, "warn", "rule: why")`), and the notifier
# and the TUI follow the run events, so any word here that appears as an event's status is announced.
RUN_FLAG_EVENTS = ("warn", "stalled")
NOTIFY_EVENTS: tuple[str, ...] = tuple(dict.fromkeys(
    (*(s for s in STATUSES if s in TERMINAL_STATUSES), "stopped", *RUN_FLAG_EVENTS)))
# The default (`notify_on` unset): every event but `cancelled` (you asked for it), and `completed` only
# for a run that ran at least NOTIFY_SHORT_RUN_S (a smoke test's end is not worth a phone buzz).
DEFAULT_NOTIFY_ON: tuple[str, ...] = tuple(e for e in NOTIFY_EVENTS if e != "cancelled")
NOTIFY_SHORT_RUN_S = 600.0
MAX_NOTIFY_URLS = 20
MAX_NOTIFY_URL_CHARS = 2000
_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,31})://([^\s]+)$")
_HOSTLIKE_RE = re.compile(r"^(localhost|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)(:\d{1,5})?$")


def redact_url(url: str) -> str:
    """A notify URL as it may be shown: scheme and host only (`ntfy://ntfy.example/…`). The rest of an
    apprise URL holds its secrets (tokens, passwords, topics), and so does the host part when it is not a
    host name (`tgram://BOTTOKEN/...`), which is then shown as `…` too."""
    m = _URL_RE.match(url.strip()) if isinstance(url, str) else None
    if m is None:
        return "…"
    scheme, rest = m.group(1).lower(), m.group(2)
    host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    shown = host if _HOSTLIKE_RE.match(host) else "…"
    return f"{scheme}://{shown}/…" if shown != "…" else f"{scheme}://…"


def check_notify_urls(value: Any, what: str = "notify_urls") -> list[str]:
    """The notification URLs: apprise URLs (ntfy://, json://, mailto://, tgram://...), each judged by
    apprise itself when it is installed (imported here, lazily: it costs ~70 ms, and only `settings
    --notify` and the store's write of this setting pay it). A refusal names the URL redacted, never whole."""
    if not isinstance(value, list | tuple):
        raise StoreError(f"{what} must be a list of apprise URLs")
    if len(value) > MAX_NOTIFY_URLS:
        raise StoreError(f"{what}: at most {MAX_NOTIFY_URLS} URLs, not {len(value)}")
    try:
        import apprise
    except ImportError:  # judged by shape alone
        apprise = None
    import logging

    quiet = logging.getLogger("apprise")  # it logs refusals with pieces of the URL: our one line says it
    was_disabled, quiet.disabled = quiet.disabled, True
    try:
        urls: list[str] = []
        for i, url in enumerate(value, 1):
            name = f"notify URL {i} ({redact_url(url) if isinstance(url, str) else type(url).__name__})"
            if not isinstance(url, str) or not _URL_RE.match(url) or len(url) > MAX_NOTIFY_URL_CHARS \
                    or _CONTROL_RE.search(url):
                raise StoreError(f"{name} is not a URL like ntfy://host/topic or json://host:port/path")
            if apprise is not None and apprise.Apprise.instantiate(url) is None:
                raise StoreError(f"{name} is not a URL apprise can send to (see its wiki for the URL forms)")
            if url in urls:
                raise StoreError(f"{name} is given twice")
            urls.append(url)
        return urls
    finally:
        quiet.disabled = was_disabled


def check_notify_on(value: Any, what: str = "notify_on") -> list[str] | None:
    """The events to notify: a subset of NOTIFY_EVENTS (a list, or comma-separated text), or None for the
    default (DEFAULT_NOTIFY_ON, with `completed` for long runs only)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise StoreError(f"{what} must be a list of events ({', '.join(NOTIFY_EVENTS)})")
    out: list[str] = []
    for item in items:
        word = item.strip() if isinstance(item, str) else item
        if word == "":
            continue
        if word not in NOTIFY_EVENTS:
            shown = quote(word) if isinstance(word, str) else repr(word)
            raise StoreError(f"{what}: unknown event {shown}; one of {', '.join(NOTIFY_EVENTS)}")
        if word not in out:
            out.append(word)
    return out


def notify_wanted(event: str, notify_on: list[str] | None, run_seconds: float | None) -> bool:
    """Whether an event of a run that ran `run_seconds` is announced under the `notify_on` setting."""
    if notify_on is not None:
        return event in notify_on
    if event == "completed":
        return run_seconds is not None and run_seconds >= NOTIFY_SHORT_RUN_S
    return event in DEFAULT_NOTIFY_ON


def _check_notify_cursor(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StoreError(f"notify_cursor must be a run event id (an integer >= 0), not {value!r}")


V = TypeVar("V")


def find_by_ref(ref: str | int, by_id: Callable[[int], V | None], by_name: Callable[[str], Sequence[V]]) -> V:
    """A run by numeric id or exact name: an id wins when both could match; no match or a name shared by
    several runs is a StoreError. The one rule of both read paths (`store.runs`, `store.read_view`)."""
    text = str(ref).strip()
    if text.isascii() and text.isdigit() and len(text) <= 18:
        found = by_id(int(text))
        if found is not None:
            return found
    rows = by_name(text)
    if not rows:
        raise StoreError(f"no run {quote(text)}")
    if len(rows) > 1:
        ids = ", ".join(str(r.id) for r in rows)  # type: ignore[attr-defined]
        raise StoreError(f"run name {quote(text)} is ambiguous: ids {ids}; use an id")
    return rows[0]
