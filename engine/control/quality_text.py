"""Sample-quality numbers as text lines, torch-free: `ganmgr viz RUN quality --wait` prints them, and any
other place that shows a `quality` result or an `eval` record can.

Every Inception number computed with weights that are not the real file carries "(uncalibrated)": such a
FID is a distance under some other network, not comparable with any published FID.
"""

from __future__ import annotations

import math
from typing import Any

UNCALIBRATED = "(uncalibrated)"


def _num(v: Any, digits: int) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return f"{v:.{digits}f}"


def _pm(mean: Any, std: Any, digits: int) -> str | None:
    m = _num(mean, digits)
    s = _num(std, digits)
    return None if m is None else (f"{m} ± {s}" if s is not None else m)


def inception_line(fid: Any, kid: Any, kid_std: Any, is_mean: Any, is_std: Any, n: Any, n_real: Any = None,
                   uncalibrated: bool = False) -> str | None:
    """`FID 23.41  KID 0.0123 ± 0.0011  IS 7.12 ± 0.20  (n=1000 generated vs 10000 real)`, marked when
    uncalibrated; None when there is no FID."""
    f = _num(fid, 2)
    if f is None:
        return None
    parts = [f"FID {f}"]
    k = _pm(kid, kid_std, 4)
    if k:
        parts.append(f"KID {k}")
    i = _pm(is_mean, is_std, 2)
    if i:
        parts.append(f"IS {i}")
    size = f"n={n} generated" + (f" vs {n_real} real" if n_real else "") if n else ""
    return "  ".join(parts) + (f"  ({size})" if size else "") + (f"  {UNCALIBRATED}" if uncalibrated else "")


def quality_lines(result: dict[str, Any]) -> list[str]:
    """A `quality` job's result as a few lines: the classifier's scores, then FID/KID/IS or the one line
    saying why they were skipped."""
    lines = []
    acc = _num(result.get("accuracy"), 1)
    fd = _num(result.get("fd"), 3)
    if acc is not None or fd is not None:
        words = [f"classifier {result.get('scorer', '?')}:"]
        if acc is not None:
            words.append(f"GAN-test accuracy {acc}%")
        if fd is not None:
            floor = _num(result.get("fd_real_halves"), 3)
            words.append(f"FD {fd}" + (f" (real-vs-real floor {floor})" if floor else ""))
        kid = _pm(result.get("kid"), result.get("kid_std"), 4)
        if kid:
            words.append(f"KID {kid}")
        if result.get("n"):
            words.append(f"(n={result['n']})")
        lines.append("  ".join(words))
    inc = inception_line(result.get("fid"), result.get("inception_kid"), result.get("inception_kid_std"),
                         result.get("inception_score"), result.get("inception_score_std"),
                         result.get("fid_n"), result.get("fid_n_real"), bool(result.get("uncalibrated")))
    if inc:
        lines.append(f"inception: {inc}")
    elif result.get("note"):
        lines.append(str(result["note"]).splitlines()[0])
    return lines
