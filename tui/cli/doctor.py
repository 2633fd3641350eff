"""`ganmgr doctor`: can FID/KID/IS run here, and if not, the one thing that fixes it.

Compute nodes are offline and the Inception weights are normally downloaded at run time, so this is the
question a user has before a long run with `eval_every`. Answered without importing torch (the CLI starts
in a second): torch-fidelity is looked up, not imported; the weights file is checked by size and sha256
(`engine.control.inception_weights`), then loaded weights-only into torch-fidelity's network in a child
process (`python -m engine.compute.inception_check`) unless `--no-load`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
from pathlib import Path
from typing import Any

from tui.cli.args import EXIT_FAILED, EXIT_OK


def inception_report(home: Path, *, load: bool = True) -> dict[str, Any]:
    """{"usable", "path", "uncalibrated", "sha256", "bytes", "torch_fidelity", "reason", "fix"}."""
    from engine.control.inception_enqueue import check_loadable, inception_settings
    from engine.control.inception_weights import fix_hint, sha256_file, weights_status

    out: dict[str, Any] = {"usable": False, "path": None, "uncalibrated": False, "sha256": None, "bytes": None,
                           "torch_fidelity": None, "reason": None, "fix": None}
    if importlib.util.find_spec("torch_fidelity") is None:
        out.update(reason="torch-fidelity is not installed", fix="pip install 'torch-fidelity>=0.4,<0.5'")
        return out
    out["torch_fidelity"] = importlib.metadata.version("torch-fidelity")
    setting, allow = inception_settings(home)
    path, uncalibrated, problem = weights_status(setting, allow)
    if problem or path is None:
        out.update(reason=problem or "no Inception weights", fix=fix_hint())
        return out
    out.update(path=path, uncalibrated=uncalibrated, sha256=sha256_file(Path(path)),
               bytes=Path(path).stat().st_size)
    if load:
        problem = check_loadable(Path(path))
        if problem:
            out.update(reason=problem, fix=fix_hint())
            return out
    out["usable"] = True
    return out


def cmd_doctor(args: argparse.Namespace, home: Path) -> int:
    r = inception_report(home, load=not args.no_load)
    if args.json:
        print(json.dumps({"inception": r}, sort_keys=True))
        return EXIT_OK if r["usable"] else EXIT_FAILED
    tf = f"torch-fidelity {r['torch_fidelity']}" if r["torch_fidelity"] else "torch-fidelity missing"
    if r["usable"]:
        mark = ("  (uncalibrated: not the real file; numbers are marked and not comparable with published "
                "ones)" if r["uncalibrated"] else "")
        checked = "" if args.no_load else ", loads weights-only"
        print(f"FID/KID/IS: yes ({tf}; weights {r['path']}, {r['bytes'] / 1e6:.1f} MB, "
              f"sha256 {r['sha256'][:8]}...{checked}){mark}")
        return EXIT_OK
    print(f"FID/KID/IS: no ({tf}): {r['reason']}")
    print(f"fix: {r['fix']}")
    return EXIT_FAILED
