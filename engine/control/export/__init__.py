"""`ganmgr export`'s writing side, torch-free: a run's records as CSV or JSON lines, TensorBoard event files,
and the sample grids as an animated GIF. The CLI (tui/cli/export.py), the sample viewer and the HTML report
call these; records are read only through engine/control/records.py.

This package's own names are constants only, so the CLI's parser can import them without the writers.
"""

from __future__ import annotations

from engine.control.records import EPOCH, EVAL, TRAIN

FORMATS = ("csv", "jsonl", "tensorboard", "gif")
# the record kinds an export can take, and the field that joins several runs' records of that kind
KINDS = (TRAIN, EPOCH, EVAL)
JOIN_KEY = {TRAIN: "step", EPOCH: "epoch", EVAL: "epoch"}
DEFAULT_KIND = EPOCH
