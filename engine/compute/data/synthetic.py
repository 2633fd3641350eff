"""The embedded `synthetic` set: ten procedurally drawn shape classes, generated once per node into a cache.

It needs no download and no data root, so every recipe trains anywhere; `synthetic28` (1x28) and
`synthetic64` (3x64) are the same generator at the MNIST and DCGAN shapes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from engine.compute.data.splits import Splits, make_splits
from engine.control.class_names import SYNTHETIC_CLASSES
from engine.control.datasets import NPZ_KEYS, SYNTHETIC_SHAPES
from engine.control.paths import write_bytes_atomic

# Bump whenever the generator's output changes: it is part of the cache key, so old caches are ignored.
SYNTHETIC_VERSION = "shapes-v3"
SYNTHETIC_TRAIN = 24_000
SYNTHETIC_TEST = 2_000


def load_synthetic_variant(spec: str, *, cache_dir: Path | None = None) -> Splits:
    """`synthetic`, `synthetic28` or `synthetic64` (engine.control.datasets.SYNTHETIC_SHAPES) at full size."""
    channels, size = SYNTHETIC_SHAPES[spec]
    splits = load_synthetic(SYNTHETIC_TRAIN, SYNTHETIC_TEST, channels=channels, size=size, cache_dir=cache_dir)
    return splits if spec == "synthetic" else dataclasses.replace(splits, source=spec)


def synthetic_cache_dir() -> Path:
    """$GANMGR_CACHE if set, else ~/.cache/ganmgr (so every run on a node shares one generated set)."""
    env = os.environ.get("GANMGR_CACHE")
    return Path(os.path.expanduser(env)) if env else Path.home() / ".cache" / "ganmgr"


def synthetic_cache_path(n_train: int = SYNTHETIC_TRAIN, n_test: int = SYNTHETIC_TEST, seed: int = 0,
                         channels: int = 3, size: int = 32, cache_dir: Path | None = None) -> Path:
    """The cache file for these parameters; the name carries the version and every parameter."""
    key = f"{SYNTHETIC_VERSION}-n{n_train}-t{n_test}-s{seed}-c{channels}-z{size}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return (cache_dir or synthetic_cache_dir()) / f"synthetic-{key}-{digest}.npz"


def load_synthetic(n_train: int = SYNTHETIC_TRAIN, n_test: int = SYNTHETIC_TEST, seed: int = 0,
                   channels: int = 3, size: int = 32, *, cache_dir: Path | None = None) -> Splits:
    """`make_synthetic` through an on-disk cache: generated once per node, later loads take milliseconds.

    An unreadable or inconsistent cache file is regenerated; an unwritable cache folder only costs time.
    """
    path = synthetic_cache_path(n_train, n_test, seed, channels, size, cache_dir)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in NPZ_KEYS}
        want = {"x_train": (n_train, channels, size, size), "x_test": (n_test, channels, size, size),
                "y_train": (n_train,), "y_test": (n_test,)}
        if all(arrays[k].shape == s for k, s in want.items()) and arrays["x_train"].dtype == np.uint8:
            return make_splits(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                               SYNTHETIC_CLASSES, "synthetic", f"synthetic cache {path}")
    except (FileNotFoundError, zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError):
        pass  # missing or corrupt: rebuild below
    splits = make_synthetic(n_train, n_test, seed, channels, size)
    try:
        _save_cache(path, splits)
    except OSError:
        pass  # a read-only home still trains, it just regenerates next time
    return splits


def _save_cache(path: Path, splits: Splits) -> None:
    """The npz written atomically: readers on the node see the old file or the whole new one."""
    buf = io.BytesIO()
    np.savez(buf, **{k: getattr(splits, k) for k in NPZ_KEYS})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, buf.getbuffer())


def make_synthetic(n_train: int = SYNTHETIC_TRAIN, n_test: int = SYNTHETIC_TEST, seed: int = 0,
                   channels: int = 3, size: int = 32) -> Splits:
    """Generate the embedded shapes set (deterministic by the RNG seed; train and test from independent streams).

    Ten shape classes, balanced, each drawn with a random position, scale, rotation (where it does not
    change the class), foreground and background colour (the class never depends on colour), background
    gradient and noise, anti-aliased edges and sometimes a small distractor stroke. `channels=1, size=28`
    gives the MNIST-shaped variant.
    """
    if channels not in (1, 3):
        raise ValueError(f"synthetic images have 1 or 3 channels, not {channels}")
    if size < 8:
        raise ValueError(f"synthetic images need a size of at least 8, not {size}")
    if n_train < 1 or n_test < 1:
        raise ValueError("synthetic splits need at least one image each")
    parts = []
    for stream, n in ((0, n_train), (1, n_test)):
        rng = np.random.default_rng([seed, stream])
        y = rng.permutation(np.arange(n) % len(SYNTHETIC_CLASSES)).astype(np.int64)
        parts.append((_render(y, rng, channels, size), y))
    (x_train, y_train), (x_test, y_test) = parts
    return Splits(x_train, y_train, x_test, y_test, SYNTHETIC_CLASSES, "synthetic")


def _smooth_cover(d_px: np.ndarray) -> np.ndarray:
    """Coverage of a pixel by a shape from its signed distance in pixels (inside < 0): smoothstep AA."""
    a = np.clip(0.5 - d_px, 0.0, 1.0)
    return a * a * (3.0 - 2.0 * a)


def _bands(t: np.ndarray, period: np.ndarray, phase: float) -> np.ndarray:
    """Signed distance (local units) to a set of parallel bands half a period wide."""
    f = (t / period + phase) % 1.0
    return (np.abs(f - 0.5) - 0.25) * period


def _render(labels: np.ndarray, rng: np.random.Generator, channels: int, size: int) -> np.ndarray:
    """Draw one image per label, in chunks that keep the float intermediates small and in cache."""
    out = np.empty((labels.shape[0], channels, size, size), np.uint8)
    for i in range(0, labels.shape[0], _CHUNK):
        out[i:i + _CHUNK] = _render_chunk(labels[i:i + _CHUNK], rng, channels, size)
    return out


_CHUNK = 1024


def _render_chunk(labels: np.ndarray, rng: np.random.Generator, channels: int, size: int) -> np.ndarray:
    """Draw one image per label; vectorized over all images of a class at once."""
    n = labels.shape[0]
    px = 2.0 / size  # one pixel in normalized coordinates ([-1, 1] across the image)
    coords = (np.arange(size, dtype=np.float32) + 0.5) * px - 1.0
    gx = coords[None, None, :]
    gy = coords[None, :, None]

    # background: a colour, a linear gradient in a random direction, fine noise
    bg = rng.random((n, 3), dtype=np.float32)
    fg = _contrasting_colours(bg, rng)
    ang = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    amp = rng.uniform(0.0, 0.25, (n, 1)).astype(np.float32) * rng.uniform(0.5, 1.0, (n, 3)).astype(np.float32)
    ramp = (np.cos(ang)[:, None, None] * gx + np.sin(ang)[:, None, None] * gy) * 0.5  # [n, H, W] in +-0.7
    img = np.multiply(amp[:, :, None, None], ramp[:, None])  # in-place from here: fewer passes over memory
    img += bg[:, :, None, None]

    cover = np.zeros((n, size, size), np.float32)
    for k in range(len(SYNTHETIC_CLASSES)):
        sel = np.flatnonzero(labels == k)
        if sel.size:
            cover[sel] = _shape_cover(k, sel.size, rng, gx, gy, px)
    # foreground with a slight shading across the object so it is not a flat stencil
    shade = 1.0 + rng.uniform(-0.12, 0.12, (n, 1, 1)).astype(np.float32) * ramp
    fgimg = np.multiply(fg[:, :, None, None], shade[:, None])
    np.clip(fgimg, 0.0, 1.0, out=fgimg)
    fgimg -= img
    fgimg *= cover[:, None]
    img += fgimg  # img * (1 - cover) + fg * cover
    del fgimg

    # distractor: a short thin stroke of a random colour in half of the images
    has = rng.random(n) < 0.5
    m = int(has.sum())
    if m:
        idx = np.flatnonzero(has)
        c = rng.uniform(-0.85, 0.85, (m, 2)).astype(np.float32)
        th = rng.uniform(0, np.pi, m).astype(np.float32)
        half = rng.uniform(1.5, 3.0, m).astype(np.float32) * px
        d = _capsule(gx - c[:, 0, None, None], gy - c[:, 1, None, None], th, half) - 0.5 * px
        a = _smooth_cover(d / px)
        col = rng.random((m, 3), dtype=np.float32)
        sub = img[idx]
        img[idx] = sub + (col[:, :, None, None] - sub) * a[:, None]

    # pixel noise, uniform with a standard deviation up to 0.05 (uniform draws are ~3x cheaper than normal)
    sigma = rng.uniform(0.0, 0.05 * np.sqrt(12.0), (n, 1, 1, 1)).astype(np.float32)
    noise = rng.random(img.shape, dtype=np.float32)
    noise -= 0.5
    noise *= sigma
    img += noise
    del noise
    if channels == 1:
        img = 0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]
    img *= 255.0
    img += 0.5
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)


def _contrasting_colours(bg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random foreground colours whose luminance differs from the background's by at least 0.4."""
    w = np.array([0.299, 0.587, 0.114], np.float32)
    n = bg.shape[0]
    cand = rng.random((n, 32, 3), dtype=np.float32)
    ok = np.abs(cand @ w - (bg @ w)[:, None]) >= 0.4
    first = np.argmax(ok, axis=1)
    fg = cand[np.arange(n), first]
    none = ~ok.any(axis=1)
    fg[none] = np.where((bg[none] @ w)[:, None] > 0.5, 0.05, 0.95)  # mid-grey background: go dark or light
    return fg


def _capsule(x: np.ndarray, y: np.ndarray, theta: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Distance to a segment through the origin at angle theta with half-length `half`."""
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    t = np.clip(x * c + y * s, -half[:, None, None], half[:, None, None])
    return np.hypot(x - t * c, y - t * s)


def _shape_cover(k: int, m: int, rng: np.random.Generator, gx: np.ndarray, gy: np.ndarray,
                 px: float) -> np.ndarray:
    """Coverage [m, H, W] of `m` random instances of class k; local units are multiples of the scale."""
    big = k in (5, 6, 7)  # pattern classes need room for their bands
    s = rng.uniform(0.5, 0.75, m) if big else rng.uniform(0.45, 0.72, m)
    s = s.astype(np.float32)
    lim = np.maximum(0.92 - s, 0.0)
    cx = rng.uniform(-1, 1, m).astype(np.float32) * lim
    cy = rng.uniform(-1, 1, m).astype(np.float32) * lim
    if k in (0, 1, 9):  # rotation never changes these classes
        th = rng.uniform(0, 2 * np.pi, m)
    elif k == 3:  # triangles point up or down (tilted a little); any angle would make them much harder
        th = rng.uniform(-0.25, 0.25, m) + np.pi * rng.integers(0, 2, m)
    else:  # keep squares square, pluses upright, stripes horizontal/vertical and diamonds upright
        th = rng.uniform(-0.25, 0.25, m)
    th = th.astype(np.float32)
    c, sn = np.cos(th)[:, None, None], np.sin(th)[:, None, None]
    dx = (gx - cx[:, None, None]) / s[:, None, None]
    dy = (gy - cy[:, None, None]) / s[:, None, None]
    u = c * dx + sn * dy  # rotate into the shape's frame
    v = -sn * dx + c * dy

    def r(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, (m, 1, 1)).astype(np.float32)

    if k == 0:  # filled disc
        d = np.hypot(u, v) - 0.9
    elif k == 1:  # ring
        d = np.abs(np.hypot(u, v) - r(0.7, 0.8)) - r(0.16, 0.26)
    elif k == 2:  # square outline (a filled square is too close to a disc for a small net to learn fast)
        d = np.abs(np.maximum(np.abs(u), np.abs(v)) - r(0.65, 0.75)) - r(0.14, 0.22)
    elif k == 3:  # equilateral triangle
        d = _triangle(u, v)
    elif k == 4:  # plus / cross (a plus turned 45 degrees is an x: same class)
        w = r(0.2, 0.3)
        d = np.minimum(np.maximum(np.abs(u) - 1.0, np.abs(v) - w), np.maximum(np.abs(v) - 1.0, np.abs(u) - w))
    elif k in (5, 6, 7):  # stripes / checkerboard inside a square patch
        nb = rng.integers(3, 5, (m, 1, 1)).astype(np.float32)  # 3 or 4 periods across the patch
        period = 1.8 / nb
        patch = np.maximum(np.abs(u), np.abs(v)) - 0.9
        if k == 5:
            d = np.maximum(patch, _bands(v, period, 0.25))
        elif k == 6:
            d = np.maximum(patch, _bands(u, period, 0.25))
        else:
            au = _smooth_cover(_bands(u, period, 0.25) * (s[:, None, None] / px))
            av = _smooth_cover(_bands(v, period, 0.25) * (s[:, None, None] / px))
            inside = _smooth_cover(patch * (s[:, None, None] / px))
            return inside * (au * (1 - av) + av * (1 - au))
    elif k == 8:  # upright diamond (rhombus taller than wide)
        a, b = r(0.5, 0.65), 1.0
        d = (np.abs(u) / a + np.abs(v) / b - 1.0) * (a * b / np.sqrt(a * a + b * b))
    else:  # two blobs
        rb = r(0.32, 0.42)
        sep = r(0.55, 0.7)
        d = np.minimum(np.hypot(u - sep, v), np.hypot(u + sep, v)) - rb
    return _smooth_cover(d * (s[:, None, None] / px))


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance to an equilateral triangle of circumradius 1.1 centred at the origin (exact on edges)."""
    # three half-planes at distance 0.55 (the inradius) with outward normals 120 degrees apart
    d = None
    for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
        h = u * np.float32(np.cos(a)) + v * np.float32(np.sin(a)) - 0.55
        d = h if d is None else np.maximum(d, h)
    return d

