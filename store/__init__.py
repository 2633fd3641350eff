"""ganmgr's store: SQLModel tables over SQLite (WAL), unit-of-work functions, frozen views, metrics tail.

Imports neither torch nor textual (checked by tests/test_store_layering.py). Importing the package opens
no database: engines are created on first use by `store.db.get_engine(home)`.
"""

from store.errors import StoreError

__all__ = ["StoreError"]
