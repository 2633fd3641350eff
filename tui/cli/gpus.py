"""`ganmgr gpus`: this node's GPUs, their memory and util, and the processes on each tied to our runs.

Reads NVML through engine/control/gpu_overview.py (torch-free, as the TUI's GPU screen does) and the store's
live runs (pid and start time) through the quick read view. A node without an NVIDIA GPU is not an error: one
plain sentence, exit 0.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.control import nvml
from engine.control.gpu_overview import NO_GPU, OurRun, overview
from engine.control.records import json_safe
from store.location import db_path
from tui.cli.args import EXIT_OK


def our_runs(home: Path) -> list[OurRun]:
    """The store's running runs that have a worker pid (none without a store)."""
    if not db_path(home).exists():
        return []
    from store.reads import reads

    with reads(home) as store:
        running = store.list_runs(status="running")
    return [OurRun(r.id, r.name, r.pid, r.pid_start) for r in running if r.pid is not None]


def cmd_gpus(args: argparse.Namespace, home: Path) -> int:
    try:
        rows = overview(our_runs(home))
    except nvml.NvmlUnavailable as e:
        if args.json:
            print(json.dumps({"gpus": [], "reason": str(e)}))
        else:
            print(NO_GPU.format(why=e))
        return EXIT_OK
    if args.json:
        print(json.dumps(json_safe({"gpus": [r.to_dict() for r in rows]}), allow_nan=False))
        return EXIT_OK
    if not rows:
        print("NVML answers but lists no GPU on this node")
    for row in rows:
        print(row.head())
        for p in row.processes:
            print(f"  {p.text()}")
        if not row.processes:
            print("  no processes")
    return EXIT_OK
