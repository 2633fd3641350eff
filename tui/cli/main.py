"""The `ganmgr` command. With no arguments it opens the TUI; subcommands drive the same store.

Never imports torch: configs are validated by `engine.control`, training happens in worker processes.
Every command that touches the store first reconciles liveness (no row stays `running` after its process
died) and starts a supervisor if queued work has none. Bad input is one line on stderr, exit 2, and
nothing is created.
Exit codes: 0 success, 1 a run failed or diverged (`run --headless`), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from engine.control.config import RECIPES, ConfigError, resolve_config
from engine.control.paths import PathError, resolve_home
from store.views import STATUSES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MAX_NOTE_CHARS = 10000
MAX_ARG_CHARS = MAX_NOTE_CHARS + 16  # no argument needs more (a note is the longest); refused before parsing
RUN_REF_RE = re.compile(r"^(?:\d{1,18}|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,39}$")
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


# ------------------------------------------------------------------------------------ argument types


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


# ---------------------------------------------------------------------------------------- the parser


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The config flags shared by `run` (and, later, the form and `fork`): each maps to one config field."""
    g = p.add_argument_group("what to train")
    g.add_argument("--recipe", required=True, help=f"one of: {', '.join(RECIPES)}")
    g.add_argument("--dataset", help="synthetic (embedded, 3x32) | synthetic28 (1x28) | synthetic64 (3x64) | "
                   "cifar10 | mnist | npz:PATH | imagefolder:PATH (default: the recipe's)")
    g.add_argument("--data-root", help="folder holding the cifar10/mnist files (torchvision layout)")
    g.add_argument("--download", action="store_true", default=None,
                   help="let torchvision download the data set into --data-root (online nodes only)")
    g.add_argument("--epochs", type=_int, help="passes over the training set (recipe default: the seed's)")
    g.add_argument("--width", type=_int, help="model width: conv channels (acgan/baseline seed: 196, 128 the faster "
                   "option; dcgan: 64) or hidden units (mlp-gan 300, lab5-gan 256)")
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


def add_queue_options(p: argparse.ArgumentParser) -> None:
    q = p.add_argument_group("queue (not with --headless)")
    q.add_argument("--priority", type=priority, default=None,
                   help="higher starts first (default 0); equal priorities start in the order queued")
    q.add_argument("--max-concurrent", type=max_concurrent, default=None, metavar="N",
                   help="runs the supervisor keeps going at once (kept in the store's settings)")
    q.add_argument("--gpus", type=gpu_list, default=None, metavar="0,1,...",
                   help="GPUs handed out round-robin through CUDA_VISIBLE_DEVICES (kept in the settings)")
    q.add_argument("-q", "--quiet", action="store_true", help="print only the new run's id")


def add_backend_options(p: argparse.ArgumentParser) -> None:
    """Where the run's worker runs: here (local) or as a Slurm batch job (see engine/backends/slurm.py)."""
    b = p.add_argument_group("backend (default: the store's setting `backend`, else local)")
    b.add_argument("--backend", choices=BACKENDS, default=None, help="local: the supervisor's own worker; "
                   "slurm: a batch job submitted by the supervisor (sbatch)")
    for flag, meta, what in SLURM_FLAGS:
        b.add_argument(f"--{flag}", metavar=meta, default=None, help=f"slurm: {what}")
    b.add_argument("--max-segments", type=_int, default=None, metavar="N",
                   help="slurm: jobs a run may span when it reaches the wall-time limit (default: setting, 20)")


BACKENDS = ("local", "slurm")
# (flag, metavar, help); the flag's dest with '-' -> '_' is the SlurmOptions field, except --grace
SLURM_FLAGS = (("partition", "P", "partition"), ("time", "HH:MM:SS", "wall-time limit per job"),
               ("gres", "G", "generic resources, e.g. gpu:1"), ("account", "A", "account to charge"),
               ("qos", "Q", "quality of service"), ("cpus-per-task", "N", "CPUs for the worker"),
               ("mem", "SIZE", "memory, e.g. 16G"),
               ("extra-sbatch", "OPTS", "more sbatch long options, e.g. \"--constraint=a100\""),
               ("grace", "S", "seconds before the limit at which the worker checkpoints (default 120)"))


FLAG_FIELDS = {"dataset": "dataset", "data_root": "data_root", "download": "download", "epochs": "epochs",
               "width": "width", "batch_size": "batch_size", "lr": "lr", "seed": "seed", "device": "device",
               "precision": "precision", "name": "name"}


def read_config_file(path: str) -> dict[str, Any]:
    """`--config FILE`: a JSON object (a run's config.json will do), or a one-line ConfigError."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"--config {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a JSON object")
    return data


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Recipe defaults <- --config file <- flags <- --set; validated (raises ConfigError)."""
    overrides: dict[str, Any] = {}
    if args.config_file:
        data = read_config_file(args.config_file)
        overrides.update({k: v for k, v in data.items() if k != "recipe"})
    for attr, field in FLAG_FIELDS.items():
        value = getattr(args, attr, None)
        if value is not None:
            overrides[field] = value
    return resolve_config(args.recipe, overrides, args.assignments)


def validate_tags(tags: Sequence[str]) -> list[str]:
    out = []
    for t in tags:
        t = t.strip()
        if not TAG_RE.fullmatch(t):
            raise CliError(f"tag {shown(t)} must be 1-40 letters, digits, '.', '_', ':' or '-'")
        out.append(t)
    return out


def validate_note(text: str, what: str = "--note") -> str:
    if len(text) > MAX_NOTE_CHARS:
        raise CliError(f"{what} is longer than {MAX_NOTE_CHARS} characters")
    if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text):
        raise CliError(f"{what} contains control characters")
    return text


def build_parser() -> Parser:
    p = Parser(prog="ganmgr", description="Terminal experiment manager for GAN research. "
               "With no command it opens the TUI.")
    p.add_argument("--home", help="store folder (default: $GANMGR_HOME, else ./runs)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    run = sub.add_parser("run", help="queue a run (or train it here with --headless)",
                         description="Validate a config, create the run's row and folder, and queue it: a "
                         "supervisor starts it when a slot is free, and it keeps going after you log out. "
                         "With --headless the worker runs in the foreground with a progress bar instead; "
                         "Ctrl-C checkpoints and exits 130.")
    add_run_options(run)
    add_queue_options(run)
    add_backend_options(run)
    run.add_argument("--headless", action="store_true", help="train in the foreground (no queue, no UI)")

    sweep = sub.add_parser("sweep", help="queue a grid of runs: --set key=v1,v2 ... (one Slurm array)",
                           description="Expand every --set KEY=V1,V2 into a grid (the product, last key fastest; "
                           "'|' separates values of list fields), validate every point, then queue one run "
                           "per point named NAME-i and tagged sweep and sweep:NAME. On the slurm backend "
                           "the points are submitted as one job array. --name names the sweep.")
    add_run_options(sweep)
    add_backend_options(sweep)
    sweep.add_argument("--priority", type=priority, default=None, help="queue priority of every run")
    sweep.add_argument("--max-parallel", type=_int, metavar="K", default=None,
                       help="slurm: at most K of the sweep's runs at once (the array's %%K)")
    sweep.add_argument("--dry-run", action="store_true", help="print the grid; create nothing")
    sweep.add_argument("-q", "--quiet", action="store_true", help="print only the new runs' ids")

    ls = sub.add_parser("ls", help="list runs", description="Runs in id order, filtered.")
    ls.add_argument("text", nargs="?", help="only runs whose name, recipe, dataset, notes or tags contain TEXT")
    ls.add_argument("--status", action="append", choices=STATUSES, help="only runs with this status (repeatable)")
    ls.add_argument("--recipe", choices=list(RECIPES), help="only runs of this recipe")
    ls.add_argument("--tag", help="only runs with this tag")
    ls.add_argument("--sweep", help="only the runs of this sweep")
    ls.add_argument("--limit", type=_int, help="the newest N runs only")
    ls.add_argument("--json", action="store_true", help="a JSON list of objects (every column)")

    show = sub.add_parser("show", help="a run's config, history, metrics and paths")
    show.add_argument("run", type=run_ref, metavar="ID")
    show.add_argument("--json", action="store_true", help="as one JSON object")

    logs = sub.add_parser("logs", help="print a run's log.txt", description="Print a run's log (worker "
                          "stdout+stderr). -f keeps following it until the run ends.")
    logs.add_argument("run", type=run_ref, metavar="ID")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until the run ends")
    logs.add_argument("-n", "--lines", type=_int, help="start with the last N lines")

    cancel = sub.add_parser("cancel", help="cancel a queued or running run",
                            description="A queued run is cancelled at once. A running worker gets SIGTERM "
                            "(it finishes its step, checkpoints and stops); SIGKILL follows after the grace "
                            "period (settings --cancel-grace, default 30 s).")
    cancel.add_argument("run", type=run_ref, metavar="ID", nargs="?")
    cancel.add_argument("--sweep", metavar="NAME", help="every queued or running run of the sweep NAME")

    resume = sub.add_parser("resume", help="queue a finished run again; it continues from its last checkpoint")
    resume.add_argument("run", type=run_ref, metavar="ID")

    fork = sub.add_parser("fork", help="a new run from a run's checkpoint with a changed config",
                          description="Queue a new run that starts from another run's weights (last.pt, or "
                          "epoch_NNN.pt with --epoch) under the parent's config changed by --set.")
    fork.add_argument("run", type=run_ref, metavar="ID")
    fork.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                      help="change a config field (repeatable)")
    fork.add_argument("--epoch", type=epoch_number, help="start from checkpoints/epoch_NNN.pt of this epoch")
    fork.add_argument("--name", help="the new run's name (default: PARENT-fork)")
    fork.add_argument("--tag", dest="tags", action="append", default=[], help="tag the new run (repeatable)")
    fork.add_argument("--note", default="", help="note kept with the new run")
    fork.add_argument("--priority", type=priority, default=0, help="queue priority (default 0)")
    fork.add_argument("-q", "--quiet", action="store_true", help="print only the new run's id")

    tag = sub.add_parser("tag", help="add (or --remove) tags")
    tag.add_argument("run", type=run_ref, metavar="ID")
    tag.add_argument("tags", nargs="+", metavar="TAG")
    tag.add_argument("--remove", action="store_true", help="remove these tags instead")

    note = sub.add_parser("note", help="set (or --append to) a run's note")
    note.add_argument("run", type=run_ref, metavar="ID")
    note.add_argument("text", metavar="TEXT")
    note.add_argument("--append", action="store_true", help="add TEXT as a new line instead of replacing")

    rm = sub.add_parser("rm", help="delete finished or queued runs: their rows and folders",
                        description="Asks first (in a terminal); never deletes a running run.")
    rm.add_argument("runs", type=run_ref, nargs="+", metavar="ID")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask")

    settings = sub.add_parser("settings", help="show or change the store's queue settings")
    settings.add_argument("--max-concurrent", type=max_concurrent, metavar="N", help="runs at once")
    settings.add_argument("--gpus", type=gpu_list, metavar="0,1,...", help="GPUs to hand out ('none': no assignment)")
    settings.add_argument("--cancel-grace", type=grace_seconds, metavar="S", help="seconds from SIGTERM to SIGKILL")
    settings.add_argument("--viz-max-concurrent", type=max_concurrent, metavar="N",
                          help="visualization jobs at once (their own slots; default 1)")
    settings.add_argument("--backend", choices=BACKENDS, help="where new runs run unless `run --backend` says")
    settings.add_argument("--max-segments", type=_int, metavar="N",
                          help="slurm: jobs a run may span across wall-time limits (default 20)")
    settings.add_argument("--slurm-poll", type=_float, metavar="S", help="slurm: seconds between squeue polls")
    settings.add_argument("--slurm-default", dest="slurm_defaults", action="append", default=[],
                          metavar="KEY=VALUE", help="slurm: a default option for new runs (partition=gpu, "
                          "time=04:00:00...; KEY= removes it; repeatable)")
    settings.add_argument("--runs-root", metavar="DIR", help="where new run folders go, e.g. a shared "
                          "filesystem the Slurm nodes see ('home': back to the store's folder)")
    settings.add_argument("--json", action="store_true", help="as JSON")

    sub.add_parser("recipes", help="list recipes and every config field with its default")

    from tui.cli.viz import add_viz_parsers

    add_viz_parsers(sub, run_ref, epoch_number, priority)
    return p


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


def main(argv: Sequence[str] | None = None) -> int:
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
    from tui.cli import queue as commands

    try:
        home = resolve_home(args.home)
        if args.command is None:
            return open_tui(parser, home)
        if args.command == "recipes":
            return commands.cmd_recipes(args)
        return commands.dispatch(args, home)
    except (ConfigError, CliError, PathError, SubmitError, StoreError) as e:
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
    # `python -m tui.cli.main`: run the importable module's main, so tui.cli.queue and this file share one
    # CliError class (this file as __main__ would be a second copy of the module)
    from tui.cli.main import main as _main

    sys.exit(_main())
