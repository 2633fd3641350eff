"""The sample grids over epochs as one animated GIF (Pillow): one frame per grid, oldest first, each with
"epoch N" written in a band above the grid (never over the samples), looping; the last frame is held longer.

Used by `ganmgr export --format gif`, the sample viewer's key and the HTML report (which embeds it).
"""

from __future__ import annotations

import io
from pathlib import Path

FRAME_MS = 400
LAST_FRAME_MS = 2000
BAND_PX = 14  # the label band above the grid: the default bitmap font is 11 px tall


def frame(grid: Path, label: str):  # noqa: ANN201 - a PIL image
    """The grid with `label` in a white band above it, as RGB."""
    from PIL import Image, ImageDraw, ImageFont

    with Image.open(grid) as im:
        im = im.convert("RGB")
    out = Image.new("RGB", (im.width, im.height + BAND_PX), "white")
    out.paste(im, (0, BAND_PX))
    ImageDraw.Draw(out).text((3, 1), label, fill="black", font=ImageFont.load_default())
    return out


def gif_bytes(grids: dict[int, Path]) -> bytes:
    """The animation of `grids` (epoch -> PNG path), one frame per epoch in epoch order."""
    if not grids:
        raise ValueError("no sample grids to animate")
    epochs = sorted(grids)
    frames = [frame(grids[e], f"epoch {e}") for e in epochs]
    size = frames[0].size
    frames = [f if f.size == size else f.resize(size) for f in frames]  # a grid whose size changed (rare)
    durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0,
                   optimize=False, disposal=1)
    return buf.getvalue()
