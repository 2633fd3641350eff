"""Parsers of `ls`, `show`, `logs`, `cancel`, `resume`, `fork`, `tag`, `note`, `rm`, `recipes`."""

from __future__ import annotations

from typing import Any

from engine.control.config import RECIPES
from store.lifecycle import STATUSES
from tui.cli.args import _int, priority, run_ref
from tui.cli.parsers.viz import add_checkpoint_options
from tui.run_query import SORT_FIELDS


def add_parsers(sub: Any) -> None:
    """`ls`, `show`, `logs`, `cancel`, `resume`, `fork`, `tag`, `note`, `rm`, `recipes`."""
    ls = sub.add_parser("ls", help="list runs", description="Runs in id order, filtered.")
    ls.add_argument("text", nargs="?", help="only runs whose name, recipe, dataset, notes or tags contain TEXT")
    ls.add_argument("--status", action="append", choices=STATUSES, help="only runs with this status (repeatable)")
    ls.add_argument("--recipe", choices=list(RECIPES), help="only runs of this recipe")
    ls.add_argument("--tag", help="only runs with this tag")
    ls.add_argument("--sweep", help="only the runs of this sweep")
    ls.add_argument("--limit", type=_int, help="the newest N runs only")
    ls.add_argument("--json", action="store_true", help="a JSON list of objects (every column)")
    ls.add_argument("--sort", metavar="FIELD", help=f"order as the TUI's table can: {', '.join(SORT_FIELDS)} "
                    "(default: id)")
    ls.add_argument("--reverse", action="store_true", help="the other way round")

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
                          "the one --checkpoint names: best.pt, final.pt, epoch_NNN.pt) under the parent's config "
                          "changed by --set.")
    fork.add_argument("run", type=run_ref, metavar="ID")
    fork.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                      help="change a config field (repeatable)")
    add_checkpoint_options(fork, "start from the parent's", default="last")
    fork.add_argument("--from-healthy", action="store_true",
                      help="start from the checkpoint the parent kept from before a health rule fired or it "
                           "diverged (checkpoints/healthy.pt or last.pt, as its records say)")
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

    sub.add_parser("recipes", help="list recipes and every config field with its default")
