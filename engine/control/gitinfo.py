"""The git commit of the code a run executes, recorded at enqueue so results can be traced to code."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=4)
def source_commit(directory: Path = SOURCE_DIR) -> str | None:
    """'<sha>' or '<sha>-dirty' for the checkout holding ganmgr's code; None outside a git checkout."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                                 timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if not sha:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{sha}-dirty" if dirty else sha
