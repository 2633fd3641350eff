"""ganmgr's store: SQLModel tables over SQLite (WAL), unit-of-work functions, frozen views.

Modules: `db` (engines, sessions, migrations), `tables` (the schema), `views` (what crosses threads),
`runs` (runs, their events and artifacts), `viz_jobs`, `settings`, `lifecycle` (status words and
transitions), `queue` (the queue order), `checks` (tags, notes, names, setting values: stdlib only),
`errors`, `netfs`.

Imports neither torch nor textual (checked by tests/test_store_layering.py). Importing the package opens
no database: engines are created on first use by `store.db.get_engine(home)`.
"""

from store.errors import StoreError

__all__ = ["StoreError"]
