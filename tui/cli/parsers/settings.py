"""Parser of `settings`."""

from __future__ import annotations

from typing import Any

from store.checks import BACKENDS, NOTIFY_EVENTS, NOTIFY_SHORT_RUN_S
from tui.cli.args import _float, _int, gpu_list, grace_seconds, max_concurrent


def add_parsers(sub: Any) -> None:
    """`settings`."""
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
    settings.add_argument("--notify", action="append", metavar="URL",
                          help="an apprise URL told when a run ends or a health rule fires (ntfy://host/topic, "
                          "json://host/path, mailto://..., tgram://...); repeat for several; replaces the list; "
                          "'none' clears it. Shown redacted")
    settings.add_argument("--notify-on", metavar="LIST",
                          help=f"events to notify, comma-separated: {','.join(NOTIFY_EVENTS)}; 'default': all "
                          f"but cancelled, and completed only for runs of {NOTIFY_SHORT_RUN_S / 60:g} min or more")
    settings.add_argument("--notify-timeout", type=_float, metavar="S",
                          help="seconds a notification may take before it is given up (1-600, default 10)")
    settings.add_argument("--inception-weights", metavar="PATH",
                          help="the Inception weights file for FID/KID/IS (torch-fidelity's "
                          "weights-inception-2015-12-05-6726825d.pth; checked once: loadable, sha256 6726825d...); "
                          "'default': the file in torch hub's cache. `ganmgr doctor` says how to get it offline")
    settings.add_argument("--allow-uncalibrated", action="store_true",
                          help="with --inception-weights: accept a file whose sha256 is not the real one; every "
                          "FID/KID/IS computed with it is marked uncalibrated")
    settings.add_argument("--json", action="store_true", help="as JSON")
