"""Where a store's database file lives: importable without the database layer (SQLAlchemy), so a command
can tell whether a store exists before paying for that import."""

from __future__ import annotations

from pathlib import Path

DB_NAME = "ganmgr.db"


def db_path(home: Path) -> Path:
    """Where the store of a runs home lives."""
    return Path(home) / DB_NAME
