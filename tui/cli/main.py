"""The `ganmgr` command. With no arguments it opens the TUI; subcommands drive the same store.

Never imports torch: configs are validated by `engine.control`, training happens in worker processes.
Every command that touches the store first reconciles liveness (no row stays `running` after its process
died) and starts a supervisor if queued work has none. Bad input is one line on stderr, exit 2, and
nothing is created.
Exit codes: 0 success, 1 a run failed or diverged (`run --headless`), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from engine.control.errors import BackendError, ConfigError
from engine.control.paths import PathError, resolve_home
from store.db import db_path
from tui.cli import queue, run, settings, viz
from tui.cli.args import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Parser,
    check_argv,
    glue_option_values,
    one_line,
)


def build_parser() -> Parser:
    p = Parser(prog="ganmgr", description="Terminal experiment manager for GAN research. "
               "With no command it opens the TUI.")
    p.add_argument("--home", help="store folder (default: $GANMGR_HOME, else ./runs)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    for room in (run, queue, settings, viz):
        room.add_parsers(sub)
    return p


# Commands that only read: their reconcile never waits for the write lock (issue 17).
READ_ONLY_COMMANDS = frozenset({"ls", "show", "logs"})


def dispatch(args: argparse.Namespace, home: Path) -> int:
    from engine.control.reconcile import reconcile_and_ensure_supervisor

    if db_path(home).exists():
        reconcile_and_ensure_supervisor(home, wait=args.command not in READ_ONLY_COMMANDS)
    handler = COMMANDS[args.command]
    return handler(args, home)


def main(argv: Sequence[str] | None = None) -> int:
    as_program = argv is None  # `ganmgr ...` itself, not a caller in this process (tests)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        check_argv(argv)
    except CliError as e:
        print(f"ganmgr: error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    parser = build_parser()
    args = parser.parse_args(glue_option_values(argv))
    from sqlalchemy.exc import SQLAlchemyError

    from engine.control.submit import SubmitError
    from store.errors import StoreError

    try:
        home = resolve_home(args.home)
        if args.command is None:
            return open_tui(parser, home)
        if args.command == "recipes":
            return queue.cmd_recipes(args)
        code = dispatch(args, home)
        if as_program and args.command in READ_ONLY_COMMANDS:
            leave_now(code)
        return code
    except (ConfigError, BackendError, CliError, PathError, SubmitError, StoreError) as e:
        print(f"ganmgr: error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except SQLAlchemyError as e:
        orig = getattr(e, "orig", None) or e
        print(f"ganmgr: error: the store's database failed: {one_line(str(orig), 300)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `ganmgr ls | head`
        return EXIT_OK


def leave_now(code: int) -> NoReturn:
    """End a read-only command as soon as its output is out: flush it and exit without the interpreter's
    teardown. The teardown (unloading SQLAlchemy and the rest, closing the pool) is ~20% of an `ls`'s CPU
    and, on a machine starved by writers, seconds after the complete output (issue 17 saw polls time out
    there). Nothing is left to undo: every session is closed and nothing was written but what committed;
    SQLite's connections end as a process exit ends them (no checkpoint on close, the WAL stays for the
    other connections, as after any exit without close)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # `ganmgr ls | head`: the reader is gone
            pass
    os._exit(code)


def open_tui(parser: Parser, home: Path) -> int:
    """`ganmgr` alone: the TUI when it is installed, else the help."""
    try:
        from tui.app import run_app
    except ModuleNotFoundError as e:
        if e.name not in ("tui.app", "textual"):
            raise
        parser.print_help()
        return EXIT_OK
    return int(run_app(home) or 0)


COMMANDS = {"run": run.cmd_run, "sweep": run.cmd_sweep, "ls": queue.cmd_ls, "show": queue.cmd_show,
            "logs": queue.cmd_logs, "cancel": queue.cmd_cancel, "resume": queue.cmd_resume, "fork": queue.cmd_fork,
            "tag": queue.cmd_tag, "note": queue.cmd_note, "rm": queue.cmd_rm, "settings": settings.cmd_settings,
            **viz.COMMANDS}


if __name__ == "__main__":
    sys.exit(main())
