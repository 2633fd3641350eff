"""TensorBoard event files written with TensorBoard's own writer: a run's numeric record fields as scalars
(tag `KIND/FIELD`, e.g. `epoch/test_acc`, at the record's optimizer step) and its sample grids as images
(tag `samples`, at the step of that epoch's record, else at the epoch number).

TensorBoard is imported only here, and only when an export asks for it. Scalars are stored as TensorBoard
stores them, float32. `epoch` and `step` are the axis, not scalars. The folder is created 0700 and its event
file made 0600 once closed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.control.export.tables import is_number

AXIS_FIELDS = ("epoch", "step")
IMAGE_TAG = "samples"


def record_step(record: dict[str, Any]) -> int | None:
    """The x of a record: its optimizer step, else its epoch (an eval record may carry only the epoch)."""
    for key in AXIS_FIELDS[::-1]:
        v = record.get(key)
        if is_number(v):
            return int(v)
    return None


def record_scalars(record: dict[str, Any]) -> list[tuple[str, float]]:
    """(tag, value) for every numeric field of a record but its axis and time."""
    kind = record.get("kind")
    return [(f"{kind}/{field}", float(value)) for field, value in record.items()
            if field not in AXIS_FIELDS and field != "time" and is_number(value)]


def write_events(logdir: Path, records: Sequence[dict[str, Any]], grids: dict[int, Path],
                 epoch_steps: dict[int, int]) -> tuple[int, int]:
    """Write one event file into `logdir` (created 0700 if missing); returns (scalars, images) written."""
    from PIL import Image
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logdir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(logdir, 0o700)
    before = set(logdir.iterdir())
    now = time.time()
    # a deep queue: with the default 10 the caller waits on the writer thread for every event (3x slower)
    writer = EventFileWriter(str(logdir), max_queue_size=4096, flush_secs=3600, filename_suffix=f".{os.getpid()}")
    scalars = images = 0
    try:
        for r in records:  # one event per record, holding all its scalars (8x fewer events than one each)
            step, values = record_step(r), record_scalars(r)
            if step is None or not values:
                continue
            wall = float(r["time"]) if is_number(r.get("time")) else now
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=v) for tag, v in values])
            writer.add_event(Event(wall_time=wall, step=step, summary=summary))
            scalars += len(values)
        for epoch, path in sorted(grids.items()):
            data = path.read_bytes()
            with Image.open(path) as im:
                width, height = im.size
                colorspace = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}.get(im.mode, 3)
            image = Summary.Image(height=height, width=width, colorspace=colorspace, encoded_image_string=data)
            summary = Summary(value=[Summary.Value(tag=IMAGE_TAG, image=image)])
            writer.add_event(Event(wall_time=path.stat().st_mtime, step=epoch_steps.get(epoch, epoch),
                                   summary=summary))
            images += 1
    finally:
        writer.close()
    for p in set(logdir.iterdir()) - before:
        os.chmod(p, 0o600)
    return scalars, images
