"""What the compare screen shows besides the chart: the config keys on which the compared runs differ."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.control.config import config_diff

IGNORED_KEYS = frozenset({"config_version"})


def differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[Any]]]:
    """(key, value per run) for every key where some run differs from the first (config_diff, pairwise)."""
    if len(configs) < 2:
        return []
    keys: set[str] = set()
    for other in configs[1:]:
        keys.update(config_diff(configs[0], other))
    return [(k, [c.get(k) for c in configs]) for k in sorted(keys - IGNORED_KEYS)]


def default_metric(available: Sequence[str]) -> str | None:
    """The metric a comparison opens on: test accuracy if any run has it, else the first loss."""
    for preferred in ("test_acc", "acc", "loss", "d_real_class"):
        if preferred in available:
            return preferred
    return available[0] if available else None
