"""Parser of `gpus`."""

from __future__ import annotations

from typing import Any


def add_parsers(sub: Any) -> None:
    """`gpus`."""
    gpus = sub.add_parser("gpus", help="this node's GPUs: memory, util and the processes on each (ours by run)",
                          description="List this node's NVIDIA GPUs (NVML) with their memory, utilisation, "
                          "temperature and power, and the processes on each: a ganmgr worker by its run id and "
                          "name, anything else as another user's process. On a node without an NVIDIA GPU it "
                          "says so and exits 0.")
    gpus.add_argument("--json", action="store_true", help="print the GPUs and their processes as JSON")
