"""`python -m engine.supervisor --home HOME`: the queue's daemon; its rooms live in engine.daemon."""

from __future__ import annotations

import sys

from engine.daemon.loop import main

if __name__ == "__main__":
    sys.exit(main())
