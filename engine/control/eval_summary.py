"""A run's `eval` records (evaluation during training) as a small summary: the latest values and the best of
each, kept in the row's `last_metrics` under `quality` (engine/control/follow.py folds them), so `ls`, `show`
and the TUI show sample quality without reading metrics.jsonl. Torch-free.

    {"epoch": 12, "n": 10000, "latest": {"fid": 31.2, "fd_clf": 4.1, ...},
     "best": {"fid": {"value": 29.8, "epoch": 10}, ...}, "uncalibrated": false}

"Best" follows `best_direction` (lower FID/KID/fd_clf/kid_clf, higher IS and gan_test_acc). Inception numbers
computed with weights that are not the real file are marked "(uncalibrated)" wherever this text is printed.
"""

from __future__ import annotations

import math
from typing import Any

from engine.control.config import EVAL_CLASSIFIER_METRICS, EVAL_INCEPTION_METRICS, best_direction
from engine.control.quality_text import UNCALIBRATED

QUALITY_KEY = "quality"  # the key of the summary in a row's last_metrics
EVAL_VALUES = (*EVAL_INCEPTION_METRICS, *EVAL_CLASSIFIER_METRICS)  # the record's values a summary follows


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fold_eval(summary: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
    """`summary` updated by one `eval` record (a new dict; the old one is not changed)."""
    latest = {k: float(rec[k]) for k in EVAL_VALUES if _finite(rec.get(k))}
    if not latest:
        return summary
    best = {k: dict(v) for k, v in (summary.get("best") or {}).items() if isinstance(v, dict)}
    epoch = rec.get("epoch") if isinstance(rec.get("epoch"), int) else None
    for k, v in latest.items():
        old = best.get(k)
        if old is None or not _finite(old.get("value")) or _better(k, v, float(old["value"])):
            best[k] = {"value": v, "epoch": epoch}
    out: dict[str, Any] = {"epoch": epoch, "latest": latest, "best": best,
                           "uncalibrated": bool(rec.get("uncalibrated")) if "fid" in latest
                           else bool(summary.get("uncalibrated"))}
    for k in ("n", "n_clf"):
        if isinstance(rec.get(k), int):
            out[k] = rec[k]
    return out


def _better(metric: str, value: float, than: float) -> bool:
    return value < than if best_direction(metric) == "min" else value > than


def run_quality(last_metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The summary in a row's `last_metrics` ({} when the run wrote no eval record)."""
    d = (last_metrics or {}).get(QUALITY_KEY)
    return d if isinstance(d, dict) else {}


def _v(v: Any, metric: str) -> str:
    if not _finite(v):
        return "-"
    if metric == "gan_test_acc":
        return f"{v:.1f}%"
    if metric in ("kid", "kid_clf"):
        return f"{v:.4f}"
    return f"{v:.2f}" if abs(v) < 1000 else f"{v:.0f}"


def headline(summary: dict[str, Any]) -> tuple[str, str] | None:
    """The one value a table cell shows: FID when measured, else fd_clf, else gan_test_acc; (metric, text)
    where text is 'latest/best', marked '*' when the Inception weights are uncalibrated."""
    latest, best = summary.get("latest") or {}, summary.get("best") or {}
    for metric in ("fid", "fd_clf", "gan_test_acc"):
        if metric in latest:
            mark = "*" if metric == "fid" and summary.get("uncalibrated") else ""
            b = (best.get(metric) or {}).get("value")
            return metric, f"{metric} {_v(latest[metric], metric)}/{_v(b, metric)}{mark}"
    return None


def cell_text(summary: dict[str, Any]) -> str:
    """`ls`'s QUALITY cell: 'fid 31.20/29.80' ('*': uncalibrated weights), '-' without an eval record."""
    h = headline(summary)
    return h[1] if h else "-"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """`show`'s lines: the latest evaluation's values with n, then the best of each with its epoch."""
    latest, best = summary.get("latest") or {}, summary.get("best") or {}
    if not latest:
        return []
    mark = f" {UNCALIBRATED}" if summary.get("uncalibrated") else ""
    inc = [f"{m} {_v(latest[m], m)}" for m in EVAL_INCEPTION_METRICS if m in latest]
    clf = [f"{m} {_v(latest[m], m)}" for m in EVAL_CLASSIFIER_METRICS if m in latest]
    parts = []
    if inc:
        parts.append("  ".join(inc) + f" (n={summary.get('n', '?')}){mark}")
    if clf:
        parts.append("  ".join(clf) + f" (n={summary.get('n_clf', summary.get('n', '?'))})")
    lines = [f"epoch {summary.get('epoch')}: " + "    ".join(parts)]
    bests = [f"{m} {_v(best[m].get('value'), m)} (epoch {best[m].get('epoch')})" for m in EVAL_VALUES
             if isinstance(best.get(m), dict)]
    if bests:
        lines.append("best: " + "  ".join(bests) + (mark if any(m in best for m in EVAL_INCEPTION_METRICS) else ""))
    return lines
