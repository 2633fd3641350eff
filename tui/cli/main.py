"""The `ganmgr` command. With no arguments it opens the TUI; subcommands drive the same store.

Never imports torch: configs are validated by `engine.control`, training happens in worker processes.
Every command that touches the store first reconciles liveness (no row stays `running` after its process
died) and starts a supervisor if queued work has none. Bad input is one line on stderr, exit 2, and
nothing is created.
Exit codes: 0 success, 1 a run failed or diverged (`run --headless`), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from engine.control.errors import BackendError, ConfigError
from engine.control.paths import PathError, resolve_home
from store.errors import StoreError
from store.location import db_path
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

# The commands. A new command: its `add_parsers(sub)` in a light module listed in PARSERS (imported for every
# command, so `ganmgr --help` lists them all: argument types and constants only, never the store's database
# layer or anything heavy), and its handler as "module:function" in COMMANDS (imported only when it runs).
PARSERS = ("tui.cli.parsers.run", "tui.cli.parsers.queue", "tui.cli.parsers.settings", "tui.cli.parsers.viz",
           "tui.cli.parsers.export", "tui.cli.parsers.gpus", "tui.cli.parsers.doctor")
COMMANDS: dict[str, str] = {
    "run": "tui.cli.run:cmd_run",
    "sweep": "tui.cli.run:cmd_sweep",
    "ls": "tui.cli.listing:cmd_ls",
    "show": "tui.cli.listing:cmd_show",
    "logs": "tui.cli.queue:cmd_logs",
    "cancel": "tui.cli.queue:cmd_cancel",
    "resume": "tui.cli.queue:cmd_resume",
    "fork": "tui.cli.queue:cmd_fork",
    "tag": "tui.cli.queue:cmd_tag",
    "note": "tui.cli.queue:cmd_note",
    "rm": "tui.cli.queue:cmd_rm",
    "settings": "tui.cli.settings:cmd_settings",
    "viz": "tui.cli.viz:cmd_viz",
    "jobs": "tui.cli.viz:cmd_jobs",
    "report": "tui.cli.viz:cmd_report",
    "export": "tui.cli.export:cmd_export",
    "gpus": "tui.cli.gpus:cmd_gpus",
    "doctor": "tui.cli.doctor:cmd_doctor",
}
# Commands that need no store (the handler takes only the arguments).
STORELESS_COMMANDS: dict[str, str] = {"recipes": "tui.cli.queue:cmd_recipes"}


def build_parser() -> Parser:
    p = Parser(prog="ganmgr", description="Terminal experiment manager for GAN research. "
               "With no command it opens the TUI.")
    p.add_argument("--home", help="store folder (default: $GANMGR_HOME, else ./runs)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in PARSERS:
        importlib.import_module(module).add_parsers(sub)
    return p


def handler(command: str) -> Callable[..., int]:
    """The function that runs `command`, importing its module now (and only its module)."""
    module, _, func = (COMMANDS.get(command) or STORELESS_COMMANDS[command]).partition(":")
    return getattr(importlib.import_module(module), func)


# Commands that only read: their reconcile never waits for the write lock (issue 17).
READ_ONLY_COMMANDS = frozenset({"ls", "show", "logs", "export", "gpus", "doctor"})


def dispatch(args: argparse.Namespace, home: Path) -> int:
    if db_path(home).exists() and not (args.command in READ_ONLY_COMMANDS and store_is_quiet(home)):
        from engine.control.reconcile import reconcile_and_ensure_supervisor

        reconcile_and_ensure_supervisor(home, wait=args.command not in READ_ONLY_COMMANDS)
    return handler(args.command)(args, home)


def store_is_quiet(home: Path) -> bool:
    """Nothing queued or running and no notifications to judge: a read command's reconcile would do nothing,
    so it is skipped, and with it the import of the database layer (`store.read_view`)."""
    from store.read_view import read_view

    with read_view(home) as view:
        return view is not None and view.quiet()


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
    try:
        home = resolve_home(args.home)
        if args.command is None:
            return open_tui(parser, home)
        if args.command in STORELESS_COMMANDS:
            return handler(args.command)(args)
        code = dispatch(args, home)
        if as_program and args.command in READ_ONLY_COMMANDS:
            leave_now(code)
        return code
    except (ConfigError, BackendError, CliError, PathError, StoreError) as e:
        print(f"ganmgr: error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `ganmgr ls | head`
        return EXIT_OK
    except Exception as e:
        message = usage_error(e)
        if message is None:
            raise
        print(f"ganmgr: error: {message}", file=sys.stderr)
        return EXIT_USAGE


def usage_error(e: Exception) -> str | None:
    """The one line for a refusal raised by a module only some commands import (a refused submit, the
    database failing), else None. A class whose module was never imported cannot have raised: looking it up
    in sys.modules keeps those imports (SQLAlchemy's is a third of a second) off the commands that never
    use them."""
    submit = sys.modules.get("engine.control.submit")
    if submit is not None and isinstance(e, submit.SubmitError):
        return one_line(str(e))
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if (sa_exc is not None and isinstance(e, sa_exc.SQLAlchemyError)) or isinstance(e, sqlite3.Error):
        orig = getattr(e, "orig", None) or e
        return f"the store's database failed: {one_line(str(orig), 300)}"
    return None


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


if __name__ == "__main__":
    sys.exit(main())
