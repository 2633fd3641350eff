"""Parsers of `run` and `sweep`: the config, queue, backend and Slurm flags."""

from __future__ import annotations

import argparse
from typing import Any

from engine.control.config import RECIPES
from store.checks import BACKENDS
from tui.cli.args import _float, _int, gpu_list, max_concurrent, priority


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The config flags shared by `run` (and, later, the form and `fork`): each maps to one config field."""
    g = p.add_argument_group("what to train")
    g.add_argument("--recipe", required=True, help=f"one of: {', '.join(RECIPES)}")
    g.add_argument("--dataset", help="synthetic (embedded, 3x32) | synthetic28 (1x28) | synthetic64 (3x64) | "
                   "cifar10 | mnist | npz:PATH | imagefolder:PATH (default: the recipe's)")
    g.add_argument("--data-root", help="folder holding the cifar10/mnist files (torchvision layout)")
    g.add_argument("--download", action="store_true", default=None,
                   help="let torchvision download the data set into --data-root (online nodes only)")
    g.add_argument("--epochs", type=_int, help="passes over the training set (recipe default: the course's)")
    g.add_argument("--width", type=_int, help="model width: conv channels (acgan/baseline course: 196, 128 the faster "
                   "option; dcgan: 64) or hidden units (mlp-gan 300, lab5-gan 256)")
    g.add_argument("--batch-size", type=_int, help="images per step (course: 128)")
    g.add_argument("--lr", type=_float, help="Adam learning rate (course: 1e-4)")
    g.add_argument("--seed", type=_int, help="seed of every random draw (default 0)")
    g.add_argument("--device", help="auto (default) | cpu | cuda | cuda:N")
    g.add_argument("--precision", help="auto (default: bf16 on CUDA, fp32 on CPU) | fp32 | tf32 | bf16")
    g.add_argument("--gpu-mem", type=_float, metavar="GB", help="GPU memory the run needs: the supervisor starts "
                   "it on a GPU with that much free, several runs per GPU when they fit (default: a whole GPU)")
    g.add_argument("--eval-baseline", metavar="RUN", help="a completed baseline run (id or name) on the same data "
                   "whose classifier scores the samples at each evaluation (eval_every): fd_clf, kid_clf, gan_test_acc")
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


# (flag, metavar, help); the flag's dest with '-' -> '_' is the SlurmOptions field, except --grace
SLURM_FLAGS = (("partition", "P", "partition"), ("time", "HH:MM:SS", "wall-time limit per job"),
               ("gres", "G", "generic resources, e.g. gpu:1"), ("account", "A", "account to charge"),
               ("qos", "Q", "quality of service"), ("cpus-per-task", "N", "CPUs for the worker"),
               ("mem", "SIZE", "memory, e.g. 16G"),
               ("extra-sbatch", "OPTS", "more sbatch long options, e.g. \"--constraint=a100\""),
               ("grace", "S", "seconds before the limit at which the worker checkpoints (default 120)"))


def add_parsers(sub: Any) -> None:
    """`run` and `sweep`."""
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
