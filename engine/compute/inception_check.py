"""`python -m engine.compute.inception_check PATH`: can FID/KID/IS load these Inception weights? (exit 0, or 2 and
one line)

`ganmgr settings --inception-weights PATH` runs it once before it stores the path (the CLI never imports
torch): the file is read with torch's weights-only unpickler and put into torch-fidelity's InceptionV3 with a
strict `load_state_dict`, exactly as the worker will (`engine.compute.inception`). The hash is the caller's
check (`engine.control.inception_weights`), done without torch.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

EXIT_OK, EXIT_REFUSED = 0, 2


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m engine.compute.inception_check PATH", file=sys.stderr)
        return EXIT_REFUSED
    warnings.simplefilter("ignore")
    from engine.compute.inception import InceptionWeightsError, build_network, read_state_dict

    path = Path(args[0])
    try:
        build_network(read_state_dict(path), path)
    except InceptionWeightsError as e:
        print(" ".join(str(e).split()))
        return EXIT_REFUSED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
