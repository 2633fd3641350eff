"""What a run asks of Slurm, validated without Slurm or torch: the CLI, the forms and the daemon share it.

Every value that will stand on a `#SBATCH` line of a batch script is checked here against a strict pattern
(no whitespace, quotes, `$`, backquote, `;`, `%` or backslash), so nothing in a run's options or paths can
inject shell code. `SlurmOptions.coerce` is the one rule for the options of `ganmgr run --backend slurm`,
the settings' defaults and the TUI's new-run form; `safe_path` the one rule for a path in a script.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from engine.control.errors import BackendError

DEFAULT_GRACE_S = 120  # the warning comes this long before the limit (Slurm may send it up to 60 s earlier)
MAX_ARRAY = 10000
INT_FIELDS = ("cpus_per_task", "grace_s", "max_parallel")

# Patterns for everything that ends up on a #SBATCH line: no whitespace, quotes, '$', '`', ';', '%' or '\'.
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}"
NAME_RE = re.compile(rf"^{_NAME}$")
PARTITION_RE = re.compile(rf"^{_NAME}(,{_NAME}){{0,15}}$")
TIME_RE = re.compile(r"^(\d{1,7}(:\d{1,2}){0,2}|\d{1,5}-\d{1,2}(:\d{1,2}){0,2}|UNLIMITED|INFINITE)$")
GRES_RE = re.compile(r"^[A-Za-z0-9_]+(:[A-Za-z0-9_.-]+){0,2}(,[A-Za-z0-9_]+(:[A-Za-z0-9_.-]+){0,2}){0,7}$")
MEM_RE = re.compile(r"^\d{1,9}[KMGT]?$")
EXTRA_RE = re.compile(r"^--([a-z][a-z0-9-]{0,39})(=([A-Za-z0-9_.:,/@+=-]{1,200}))?$")
PATH_RE = re.compile(r"^/[A-Za-z0-9_./+,:@=-]{0,4000}$")

# sbatch options ganmgr sets itself: an --extra-sbatch must not change where output goes, the warning,
# the working directory or the array layout
RESERVED = frozenset({"output", "error", "input", "open-mode", "signal", "array", "chdir", "wrap", "parsable",
                      "export-file", "batch", "wait", "test-only", "help", "usage", "version"})
# options with a field of their own (SlurmOptions): through --extra-sbatch they would skip its checks
OWN_FIELDS = frozenset({"partition", "time", "gres", "account", "qos", "cpus-per-task", "mem", "job-name"})


@dataclass(frozen=True)
class SlurmOptions:
    """What a run asks of Slurm. Every field is validated; `extra` holds long options (`--key=value`)."""

    partition: str | None = None
    time: str | None = None  # sbatch --time: MIN, MIN:SEC, H:MIN:SEC, D-H, D-H:MIN, D-H:MIN:SEC
    gres: str | None = None  # e.g. gpu:1, gpu:a100:2
    account: str | None = None
    qos: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None  # e.g. 16G
    grace_s: int = DEFAULT_GRACE_S  # the warning signal's lead before the wall-time limit
    job_name: str | None = None
    extra: tuple[str, ...] = field(default_factory=tuple)
    max_parallel: int | None = None  # a sweep's array: at most this many tasks at once (`--array=...%K`)

    @classmethod
    def coerce(cls, options: SlurmOptions | Mapping[str, Any] | None) -> SlurmOptions:
        """A validated SlurmOptions from itself, a mapping (the store's JSON, CLI flags) or None."""
        if options is None:
            return cls().validated()
        if isinstance(options, SlurmOptions):
            return options.validated()
        if not isinstance(options, Mapping):
            raise BackendError(f"slurm options must be a mapping, not {type(options).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise BackendError(f"unknown slurm option {unknown[0]!r}; known: {', '.join(sorted(known))}")
        values = dict(options)
        for name in INT_FIELDS:  # flags and form fields arrive as text: "8" is 8 (anything else is refused below)
            if isinstance(values.get(name), str) and values[name].strip().isdigit():
                values[name] = int(values[name])
        extra = values.get("extra")
        if isinstance(extra, str):
            values["extra"] = parse_extra(extra)
        elif extra is not None:
            if not isinstance(extra, (list, tuple)) or not all(isinstance(x, str) for x in extra):
                raise BackendError("slurm option extra must be a list of --key=value strings")
            values["extra"] = tuple(extra)
        else:
            values.pop("extra", None)
        return cls(**values).validated()

    def validated(self) -> SlurmOptions:
        for name, pattern, what in (("partition", PARTITION_RE, "a partition name (or a comma list)"),
                                    ("account", NAME_RE, "an account name"), ("qos", NAME_RE, "a QOS name"),
                                    ("job_name", NAME_RE, "a job name"),
                                    ("time", TIME_RE, "a Slurm time (MIN, H:MM:SS, D-HH:MM:SS or UNLIMITED)"),
                                    ("gres", GRES_RE, "a GRES list such as gpu:1 or gpu:a100:2"),
                                    ("mem", MEM_RE, "a memory size such as 16G or 4000M")):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str) or not pattern.match(value):
                raise BackendError(f"slurm {name}={value!r} is not {what}")
        if self.cpus_per_task is not None and (
                isinstance(self.cpus_per_task, bool) or not isinstance(self.cpus_per_task, int)
                or not 1 <= self.cpus_per_task <= 4096):
            raise BackendError(f"slurm cpus_per_task={self.cpus_per_task!r} must be an integer 1-4096")
        if isinstance(self.grace_s, bool) or not isinstance(self.grace_s, int) or not 0 <= self.grace_s <= 65535:
            raise BackendError(f"slurm grace_s={self.grace_s!r} must be whole seconds, 0-65535")
        limit = time_limit_seconds(self.time) if self.time else None
        if limit is not None and self.grace_s and self.grace_s >= limit:
            raise BackendError(f"slurm grace_s={self.grace_s} must be shorter than the time limit "
                               f"{self.time} ({limit} s)")
        if self.max_parallel is not None and (isinstance(self.max_parallel, bool)
                                              or not isinstance(self.max_parallel, int)
                                              or not 1 <= self.max_parallel <= MAX_ARRAY):
            raise BackendError(f"slurm max_parallel={self.max_parallel!r} must be an integer 1-{MAX_ARRAY}")
        for opt in self.extra:
            check_extra(opt)
        return replace(self, extra=tuple(self.extra))

    def sbatch_options(self) -> list[str]:
        """The `--key=value` options these fields stand for (the warning signal included)."""
        out = []
        for name, flag in (("partition", "partition"), ("time", "time"), ("gres", "gres"),
                           ("account", "account"), ("qos", "qos"), ("cpus_per_task", "cpus-per-task"),
                           ("mem", "mem")):
            value = getattr(self, name)
            if value is not None:
                out.append(f"--{flag}={value}")
        if self.grace_s:
            out.append(f"--signal=B:TERM@{self.grace_s}")
        out.extend(self.extra)
        return out


def parse_extra(text: str) -> tuple[str, ...]:
    """`--extra-sbatch "--constraint=a100 --exclusive"`: split like a shell would, each option checked."""
    try:
        items = shlex.split(text)
    except ValueError as e:
        raise BackendError(f"--extra-sbatch {text!r} does not parse: {e}") from None
    for item in items:
        check_extra(item)
    return tuple(items)


def check_extra(opt: str, *, own_fields: bool = True) -> str:
    """One `--key[=value]` for sbatch. sbatch (getopt_long) takes any unique prefix of an option, so
    `--out=` is `--output=`: a key that starts a reserved name is refused as well as the name itself.
    `own_fields=False` lets the supervisor's own overrides (`--time=` of a resubmission) through."""
    m = EXTRA_RE.match(opt) if isinstance(opt, str) else None
    if m is None:
        raise BackendError(f"extra sbatch option {opt!r} must look like --key=value (letters, digits and "
                           f"_ . : , / @ + = - only, no spaces or quotes)")
    key = m.group(1)
    for name in sorted(RESERVED):
        if name.startswith(key):
            alias = "" if name == key else f" (short for --{name})"
            raise BackendError(f"extra sbatch option --{key}{alias} is set by ganmgr and cannot be changed")
    if own_fields:
        for name in sorted(OWN_FIELDS):
            if name.startswith(key):
                alias = "" if name == key else f" (short for --{name})"
                raise BackendError(f"extra sbatch option --{key}{alias} has its own option in ganmgr; use "
                                   f"that (it is checked there)")
    return opt


def time_limit_seconds(text: str) -> int | None:
    """Seconds in an sbatch --time value; None for UNLIMITED/INFINITE."""
    if text in ("UNLIMITED", "INFINITE"):
        return None
    if not TIME_RE.match(text):
        raise BackendError(f"slurm time={text!r} is not a Slurm time (MIN, H:MM:SS, D-HH:MM:SS)")
    days = 0
    clock = text.split("-", 1)[-1].split(":")
    if any(int(p) >= 60 for p in clock[1:]):  # minutes and seconds after the first field (sbatch refuses 1:99)
        raise BackendError(f"slurm time={text!r} has minutes or seconds of 60 or more")
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
        parts = [int(p) for p in text.split(":")]
        h, m, s = (parts + [0, 0])[:3]
        return ((days * 24 + h) * 60 + m) * 60 + s
    parts = [int(p) for p in text.split(":")]
    if len(parts) == 1:
        return parts[0] * 60
    if len(parts) == 2:
        return parts[0] * 60 + parts[1]
    return (parts[0] * 60 + parts[1]) * 60 + parts[2]


def safe_path(path: Path, what: str) -> str:
    """An absolute path that may stand on a #SBATCH line (sbatch has its own quoting there)."""
    text = str(path)
    if not PATH_RE.match(text) or "/../" in text + "/":
        raise BackendError(f"{what} {text!r} cannot go into a batch script: use a path of letters, digits "
                           f"and _ . / + , : @ = - (no spaces or %)")
    return text


def options_from_flags(defaults: Any, given: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """(the Slurm options as stored, max_segments): `given` (flag name -> value: `run`'s flags, or the
    TUI form's fields, the same names) over `defaults` (the store's `slurm_options`), validated whole by
    SlurmOptions.coerce. Shared by `ganmgr run`/`sweep` and the TUI's new-run form, so both accept and
    refuse exactly the same things; a refusal is a one-line BackendError naming the flag or option."""
    max_segments = given.get("max-segments")
    if max_segments is not None:
        if not isinstance(max_segments, int):
            try:
                max_segments = int(str(max_segments).strip())
            except ValueError:
                raise BackendError(f"--max-segments {repr(str(max_segments))} must be a whole number") from None
        if not 1 <= max_segments <= 1000:
            raise BackendError(f"--max-segments {max_segments} must be from 1 to 1000")
    options = dict(defaults or {})
    for flag, value in given.items():
        if flag == "max-segments":
            continue
        options[{"grace": "grace_s", "extra-sbatch": "extra"}.get(flag, flag.replace("-", "_"))] = value
    opts = SlurmOptions.coerce(options)
    stored = {k: v for k, v in asdict(opts).items() if v is not None}
    stored["extra"] = list(opts.extra)
    return stored, max_segments
