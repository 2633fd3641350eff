"""The `ganmgr` command. With no arguments it opens the TUI; subcommands drive the same store.

Never imports torch: configs are validated by `engine.control`, training happens in worker processes.
Exit codes: 0 success, 1 a run failed or diverged, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from engine.control.config import RECIPES, ConfigError, resolve_config
from engine.control.paths import PathError, resolve_home

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CliError(Exception):
    """Bad input: printed as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line naming the problem (and where to look for help)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The config flags shared by `run` (and, later, the form and `fork`): each maps to one config field."""
    g = p.add_argument_group("what to train")
    g.add_argument("--recipe", required=True, help=f"one of: {', '.join(RECIPES)}")
    g.add_argument("--dataset", help="synthetic (default, embedded) | cifar10 | mnist | npz:PATH")
    g.add_argument("--data-root", help="folder holding the cifar10/mnist files (torchvision layout)")
    g.add_argument("--download", action="store_true", default=None,
                   help="let torchvision download the data set into --data-root (online nodes only)")
    g.add_argument("--epochs", type=_int, help="passes over the training set (recipe default: the seed's)")
    g.add_argument("--width", type=_int, help="conv feature channels (seed: 196; 128 is the faster option)")
    g.add_argument("--batch-size", type=_int, help="images per step (seed: 128)")
    g.add_argument("--lr", type=_float, help="Adam learning rate (seed: 1e-4)")
    g.add_argument("--seed", type=_int, help="seed of every random draw (default 0)")
    g.add_argument("--device", help="auto (default) | cpu | cuda | cuda:N")
    g.add_argument("--precision", help="auto (default: bf16 on CUDA, fp32 on CPU) | fp32 | tf32 | bf16")
    g.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field (repeatable); 'ganmgr recipes' lists them")
    g.add_argument("--config", dest="config_file", metavar="FILE",
                   help="JSON file of config fields to override (applied before the flags)")
    m = p.add_argument_group("bookkeeping")
    m.add_argument("--name", help="run name (letters, digits, . _ -); default: recipe-dataset")
    m.add_argument("--tag", dest="tags", action="append", default=[], help="tag the run (repeatable)")
    m.add_argument("--note", default="", help="free-text note kept with the run")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


FLAG_FIELDS = {"dataset": "dataset", "data_root": "data_root", "download": "download", "epochs": "epochs",
               "width": "width", "batch_size": "batch_size", "lr": "lr", "seed": "seed", "device": "device",
               "precision": "precision", "name": "name"}


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Recipe defaults <- --config file <- flags <- --set; validated (raises ConfigError)."""
    overrides: dict[str, Any] = {}
    if args.config_file:
        try:
            data = json.loads(Path(args.config_file).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"--config {args.config_file}: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--config {args.config_file} must hold a JSON object")
        overrides.update({k: v for k, v in data.items() if k != "recipe"})
    for attr, field in FLAG_FIELDS.items():
        value = getattr(args, attr, None)
        if value is not None:
            overrides[field] = value
    return resolve_config(args.recipe, overrides, args.assignments)


def validate_tags(tags: Sequence[str]) -> list[str]:
    import re

    out = []
    for t in tags:
        t = t.strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,39}", t):
            raise CliError(f"tag {t!r} must be 1-40 letters, digits, '.', '_', ':' or '-'")
        out.append(t)
    return out


def build_parser() -> Parser:
    p = Parser(prog="ganmgr", description="Terminal experiment manager for GAN research. "
               "With no command it opens the TUI.")
    p.add_argument("--home", help="store folder (default: $GANMGR_HOME, else ./runs)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    run = sub.add_parser("run", help="train a run (--headless: here, in the foreground)",
                         description="Validate a config, create the run's row and folder, and train it. "
                         "With --headless the worker runs in the foreground with a progress bar; "
                         "Ctrl-C checkpoints and exits 130.")
    add_run_options(run)
    run.add_argument("--headless", action="store_true", help="run in the foreground (no queue, no UI)")

    sub.add_parser("recipes", help="list recipes and every config field with its default")
    return p


def cmd_recipes(args: argparse.Namespace) -> int:
    for spec in RECIPES.values():
        print(f"{spec.name}: {spec.summary}")
        defaults = spec.default_config()
        for name, f in spec.all_fields().items():
            print(f"  {name:<16} {json.dumps(defaults[name]):<22} {f.help}")
        print()
    return EXIT_OK


def cmd_run(args: argparse.Namespace, home: Path) -> int:
    cfg = config_from_args(args)
    tags = validate_tags(args.tags)
    if len(args.note) > 10000:
        raise CliError("--note is longer than 10000 characters")
    if not args.headless:
        raise CliError("queued runs need the supervisor, which this version lacks; add --headless")
    from tui.headless import run_headless

    return run_headless(home, cfg, tags=tags, notes=args.note)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        home = resolve_home(args.home)
        if args.command is None:
            parser.print_help()
            return EXIT_OK
        if args.command == "recipes":
            return cmd_recipes(args)
        if args.command == "run":
            return cmd_run(args, home)
        parser.error(f"unknown command {args.command}")
    except (ConfigError, CliError, PathError) as e:
        print(f"ganmgr: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
