"""Argument types, the one-line parser, CliError and the exit codes: what every `ganmgr` command shares.

Imports nothing of the commands, so each command module (and the TUI's forms) can use it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from store.checks import MAX_NOTE_CHARS

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130




MAX_ARG_CHARS = MAX_NOTE_CHARS + 16  # no argument needs more (a note is the longest); refused before parsing


RUN_REF_RE = re.compile(r"^(?:\d{1,18}|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$")




PRIORITY_LIMIT = 1_000_000


class CliError(Exception):
    """Bad input: printed as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line naming the problem (and where to look for help)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def one_line(text: str, limit: int = 500) -> str:
    """A message as one printable line: control characters escaped, long input cut."""
    flat = re.sub(r"[\x00-\x1f\x7f]", lambda m: "\\n" if m.group() == "\n" else f"\\x{ord(m.group()):02x}",
                  str(text))
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def shown(text: str, limit: int = 60) -> str:
    """User input quoted for an error message."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not an integer") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a number") from None


def run_ref(text: str) -> str:
    """A run's id or exact name; anything else (paths, shell syntax, control characters) is refused."""
    if not RUN_REF_RE.match(text):
        raise argparse.ArgumentTypeError(f"bad run id {shown(text)}: give a run's number or its exact name")
    return text


def priority(text: str) -> int:
    value = _int(text)
    if not -PRIORITY_LIMIT <= value <= PRIORITY_LIMIT:
        raise argparse.ArgumentTypeError(f"priority {value} is outside ±{PRIORITY_LIMIT}")
    return value


def max_concurrent(text: str) -> int:
    value = _int(text)
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"--max-concurrent {value} must be from 1 to 64")
    return value


def gpu_list(text: str) -> list[int]:
    """'0,1,3' -> [0, 1, 3]; '' or 'none' -> [] (no GPU assignment)."""
    if text.strip().lower() in ("", "none"):
        return []
    out: list[int] = []
    for part in text.split(","):
        p = part.strip()
        if not p.isascii() or not p.isdigit() or len(p) > 3:
            raise argparse.ArgumentTypeError(f"--gpus {shown(text)}: give GPU indices like 0,1 (or 'none')")
        if int(p) in out:
            raise argparse.ArgumentTypeError(f"--gpus {shown(text)} lists GPU {int(p)} twice")
        out.append(int(p))
    return out


def grace_seconds(text: str) -> float:
    value = _float(text)
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"--cancel-grace {shown(text)} must be above 0 and at most 3600 seconds")
    return value


def epoch_number(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"--epoch {value} must be 1 or more")
    return value


def check_argv(argv: Sequence[str]) -> None:
    """Refuse absurd arguments before parsing: NUL characters (they cannot come through exec, but can
    through an in-process call) and arguments longer than any option needs. Each option's own check
    (names 64 characters, tags 40, run ids 64...) names the problem more precisely."""
    for a in argv:
        if "\x00" in a:
            raise CliError(f"argument {shown(a)} contains a NUL character")
        if len(a) > MAX_ARG_CHARS:
            raise CliError(f"argument {shown(a)} is {len(a)} characters long; at most {MAX_ARG_CHARS}")


# Options whose value itself starts with '--' (`--extra-sbatch "--constraint=a100"`): argparse would take
# the value for an option, so `--extra-sbatch VALUE` is glued into `--extra-sbatch=VALUE` before parsing.
DASHED_VALUE_OPTIONS = ("--extra-sbatch",)


def glue_option_values(argv: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in DASHED_VALUE_OPTIONS and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        if argv[i] == "--":
            out.extend(argv[i:])
            break
        out.append(argv[i])
        i += 1
    return out
