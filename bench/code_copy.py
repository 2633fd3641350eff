"""An older commit's code in a temp folder, for the benches that measure today against it.

`git archive` of the commit (tracked files only; the working tree is not touched), run by the same
interpreter on the same files. The default is the last commit before issue 16's work on command start-up
and charts: once that work is committed, HEAD would compare today with itself.
"""

from __future__ import annotations

import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE_ISSUE_16 = "e76187a"


def code_copy(dest: Path, rev: str = BEFORE_ISSUE_16) -> Path:
    """The tree of `rev` extracted into `dest`."""
    data = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest
