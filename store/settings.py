"""Store-wide settings (slots, GPUs, backend, runs root...): JSON values by key, checked by
`store.checks.check_setting` before they are written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import select

from store.checks import check_setting, to_json
from store.db import read_session, write_session
from store.tables import Setting

__all__ = ["DEFAULT_SETTINGS", "get_settings", "set_setting"]

DEFAULT_SETTINGS: dict[str, Any] = {"max_concurrent": 1, "gpus": []}


def get_settings(home: Path) -> dict[str, Any]:
    """Store-wide settings: the defaults overlaid with what was set."""
    settings = json.loads(json.dumps(DEFAULT_SETTINGS))  # a deep copy
    with read_session(home) as s:
        for row in s.exec(select(Setting)).all():
            try:
                settings[row.key] = json.loads(row.value_json)
            except ValueError:
                continue
    return settings


def set_setting(home: Path, key: str, value: Any) -> dict[str, Any]:
    """Validate and store one setting; returns all settings afterwards."""
    check_setting(key, value)
    value_json = to_json(value, f"setting {key}", object)
    with write_session(home) as s:
        s.execute(
            sqlite_insert(Setting)
            .values(key=key, value_json=value_json)
            .on_conflict_do_update(index_elements=["key"], set_={"value_json": value_json})
        )
    return get_settings(home)
