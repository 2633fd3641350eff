"""`python -m engine.compute.checkpoint_check PATH`: can the worker load this checkpoint? (exit 0, or 2 and one line)

`ganmgr fork` and `resume` run it before they queue anything (engine/control/submit.py): the CLI and the TUI never
import torch, and this is the worker's own rule (`load_checkpoint`: weights_only=True, a ganmgr checkpoint, a
known format), so a file the queue accepts is one the worker can read, and an unsafe one is refused up front.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

EXIT_OK, EXIT_REFUSED = 0, 2


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m engine.compute.checkpoint_check PATH", file=sys.stderr)
        return EXIT_REFUSED
    warnings.simplefilter("ignore")  # torch's pickle-protocol warnings are not the answer
    from engine.compute.checkpoint import CheckpointError, load_checkpoint

    try:
        load_checkpoint(Path(args[0]), map_location="cpu")
    except CheckpointError as e:
        print(" ".join(str(e).split()))
        return EXIT_REFUSED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
