"""`ganmgr settings`: the store's queue, backend and Slurm defaults, the runs root and the notifications.

Notify URLs hold secrets (tokens, passwords): they are printed redacted (`store.checks.redact_url`), here
and in --json, and a refused one is named by its place and redacted form.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from store import settings as store_settings
from store.checks import (
    DEFAULT_NOTIFY_ON,
    NOTIFY_SHORT_RUN_S,
    check_notify_on,
    check_setting,
    redact_url,
)
from store.db import db_path
from tui.cli.args import EXIT_OK, CliError, shown


def cmd_settings(args: argparse.Namespace, home: Path) -> int:
    from engine.control.submit import cancel_grace_s

    changes = {k: v for k, v in (("max_concurrent", args.max_concurrent), ("gpus", args.gpus),
                                 ("cancel_grace_s", args.cancel_grace),
                                 ("viz_max_concurrent", args.viz_max_concurrent), ("backend", args.backend),
                                 ("max_segments", args.max_segments), ("slurm_poll_s", args.slurm_poll))
               if v is not None}
    if args.slurm_defaults:
        changes["slurm_options"] = _slurm_defaults(home, args.slurm_defaults)
    if args.runs_root is not None:
        changes["runs_root"] = _runs_root_setting(home, args.runs_root)
        from engine.control.runs_root import known_roots

        used = [str(r) for r in known_roots(home)[1:]]  # the folders made under an older root stay valid
        changes["runs_roots_used"] = sorted({*used, *([changes["runs_root"]] if changes["runs_root"] else [])})
    if args.notify is not None:
        changes["notify_urls"] = _notify_urls(args.notify)
    if args.notify_timeout is not None:
        changes["notify_timeout_s"] = args.notify_timeout
    if args.notify_on is not None:
        changes["notify_on"] = (None if args.notify_on.strip().lower() == "default"
                                else check_notify_on(args.notify_on, "--notify-on"))
    if args.inception_weights is not None:
        changes.update(_inception_setting(args.inception_weights, args.allow_uncalibrated))
    elif args.allow_uncalibrated:
        raise CliError("--allow-uncalibrated goes with --inception-weights PATH (the file it accepts)")
    for key, value in changes.items():  # every value checked before the first is written
        check_setting(key, value)
    had_urls = bool(db_path(home).exists() and store_settings.get_settings(home).get("notify_urls"))
    for key, value in changes.items():
        store_settings.set_setting(home, key, value)
    if changes.get("notify_urls") and not had_urls:
        from store.notices import reset_notify_cursor

        reset_notify_cursor(home)  # announce what happens from now on, not the history
    if db_path(home).exists():
        settings = store_settings.get_settings(home)
    else:
        settings = json.loads(json.dumps(store_settings.DEFAULT_SETTINGS))
    settings["cancel_grace_s"] = cancel_grace_s(settings)
    settings.pop("notify_cursor", None)  # bookkeeping, not a setting
    if settings.get("notify_urls"):
        settings["notify_urls"] = [redact_url(u) for u in settings["notify_urls"]]  # never the secrets
    if args.json:
        print(json.dumps(settings, allow_nan=False, sort_keys=True))
        return EXIT_OK
    print(f"max_concurrent  {settings['max_concurrent']}    runs the supervisor keeps going at once")
    gpus = ",".join(str(g) for g in settings.get("gpus") or []) or "none"
    print(f"gpus            {gpus:<4}    handed out through CUDA_VISIBLE_DEVICES ('none': not assigned)")
    print(f"cancel_grace_s  {settings['cancel_grace_s']:<4g}    seconds from SIGTERM to SIGKILL on cancel")
    viz_slots = settings.get("viz_max_concurrent", 1)
    print(f"viz_max_concurrent {viz_slots:<4} visualization jobs the supervisor runs at once")
    print(f"runs_root       {settings.get('runs_root') or home}    where new run folders go")
    print(f"backend         {settings.get('backend', 'local'):<6}  where new runs run (local, slurm)")
    slurm = settings.get("slurm_options") or {}
    if slurm or settings.get("backend") == "slurm":
        words = "  ".join(f"{k}={v}" for k, v in slurm.items()) or "none"
        print(f"slurm_options   {words}")
        print(f"max_segments    {settings.get('max_segments', 20):<6}  jobs a run may span (wall-time limits)")
        print(f"slurm_poll_s    {settings.get('slurm_poll_s', 5):<6g}  seconds between squeue polls")
    print(f"notify          {', '.join(settings.get('notify_urls') or []) or 'none'}    apprise URLs told "
          "of run events (shown redacted)")
    print(f"notify_on       {_notify_on_text(check_notify_on(settings.get('notify_on')))}")
    if "notify_timeout_s" in settings:
        print(f"notify_timeout_s {settings['notify_timeout_s']:<5g}  seconds a notification may take")
    print(f"inception       {inception_line(settings)}")
    if changes:
        from engine.control.launcher import ensure_supervisor
        from engine.control.reconcile import supervisor_work_pending

        if supervisor_work_pending(home):
            ensure_supervisor(home)  # a raised max_concurrent takes effect on its next tick
    return EXIT_OK


def _inception_setting(text: str, allow_uncalibrated: bool) -> dict[str, Any]:
    """`--inception-weights PATH` ('default': torch hub's cache): the file is checked once, here (size,
    sha256, then loaded weights-only into torch-fidelity's network in a child process: the CLI never imports
    torch), so a run never meets an unusable file it was promised."""
    from engine.control.inception_enqueue import check_loadable
    from engine.control.inception_weights import SETTING_ALLOW, SETTING_PATH, weights_status

    if text.strip().lower() == "default":
        if allow_uncalibrated:
            raise CliError("--allow-uncalibrated needs the file it accepts: --inception-weights PATH")
        return {SETTING_PATH: None, SETTING_ALLOW: False}
    if not text.strip() or "\x00" in text:
        raise CliError("--inception-weights needs a file path")
    path = Path(os.path.expanduser(text)).absolute()
    resolved, _, problem = weights_status(str(path), allow_uncalibrated)
    if problem or resolved is None:
        raise CliError(problem or f"Inception weights {path}: not usable")
    problem = check_loadable(Path(resolved))
    if problem:
        raise CliError(problem)
    return {SETTING_PATH: resolved, SETTING_ALLOW: bool(allow_uncalibrated)}


def inception_line(settings: dict[str, Any]) -> str:
    """Which Inception weights FID/KID/IS use here, or why they are off (size and hash: no torch)."""
    from engine.control.inception_weights import SETTING_ALLOW, SETTING_PATH, weights_status

    path, uncalibrated, problem = weights_status(settings.get(SETTING_PATH), bool(settings.get(SETTING_ALLOW)))
    if problem:
        return f"none    FID/KID/IS off: {problem} (`ganmgr doctor` says how to fix it)"
    return f"{path}{' (uncalibrated: numbers not comparable)' if uncalibrated else ''}    FID/KID/IS weights"


def _notify_urls(values: list[str]) -> list[str]:
    """`--notify URL` (repeatable) replaces the list; `--notify none` alone clears it."""
    urls = [v.strip() for v in values]
    if any(u.lower() == "none" for u in urls):
        if len(urls) > 1:
            raise CliError("--notify none clears the notify URLs; give it alone")
        return []
    return urls


def _notify_on_text(notify_on: list[str] | None) -> str:
    if notify_on is None:
        minutes = NOTIFY_SHORT_RUN_S / 60
        return (f"default: {', '.join(e for e in DEFAULT_NOTIFY_ON if e != 'completed')}, and completed "
                f"for runs of {minutes:g} min or more")
    return ", ".join(notify_on) or "nothing"


def _runs_root_setting(home: Path, text: str) -> str | None:
    """`--runs-root DIR`: an absolute folder (made 0700) that may stand on a #SBATCH line; 'home' clears it."""
    from engine.control.errors import BackendError
    from engine.control.slurm_options import safe_path

    if text.strip().lower() == "home":
        return None
    if not text.strip() or "\x00" in text:
        raise CliError("--runs-root needs a folder")
    if not os.path.isabs(os.path.expanduser(text)):
        raise CliError(f"--runs-root {shown(text)} must be an absolute path (the compute nodes resolve it)")
    root = Path(os.path.expanduser(text)).resolve()
    if root.parent == root:
        raise CliError("--runs-root / would make every folder the store's; pick a folder of its own")
    try:
        safe_path(root, "--runs-root")
    except BackendError as e:
        raise CliError(str(e)) from None
    if root == home:
        return None
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"--runs-root {root}: {e.strerror or e}") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise CliError(f"--runs-root {root} is not writable")
    return str(root)


def _slurm_defaults(home: Path, items: list[str]) -> dict[str, Any]:
    """The store's default Slurm options changed by KEY=VALUE items (KEY= drops one), validated whole."""
    from dataclasses import asdict

    from engine.control.errors import BackendError
    from engine.control.slurm_options import SlurmOptions

    current = dict((store_settings.get_settings(home) if db_path(home).exists() else {}).get("slurm_options") or {})
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise CliError(f"--slurm-default {shown(item)} must be KEY=VALUE")
        if not value:
            current.pop(key, None)
            continue
        current[key] = value
    try:
        opts = SlurmOptions.coerce(current)
    except BackendError as e:
        raise CliError(str(e)) from None
    # only the keys given, as coerce reads them (whole numbers as numbers, extra as a list)
    return {k: list(v) if k == "extra" else v for k, v in asdict(opts).items() if k in current}


