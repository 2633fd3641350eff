"""The one exception the store raises for anything a caller can act on (bad id, refused transition...)."""

from __future__ import annotations


class StoreError(Exception):
    """A one-line, user-facing message: the CLI prints it as is and exits 2, the TUI shows it in a toast."""


class StoreBusy(StoreError):
    """A write refused at once because another connection holds the write lock (only inside
    `store.db.no_wait()`, which read-only commands use so they never queue behind writers)."""
