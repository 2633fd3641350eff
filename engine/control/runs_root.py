"""Where run folders live: HOME, or the store's `runs_root` setting (torch-free).

On a Slurm cluster the store (SQLite) must stay on the login node's local disk, while the compute nodes
must see the run folders: `ganmgr settings --runs-root /scratch/me/ganmgr-runs` puts new run folders (and a
sweep's array scripts) on the shared filesystem and leaves the store in HOME. A folder made before the
setting changed keeps its place, so a run's folder is accepted inside HOME or inside any root the store
has used (the setting `runs_roots_used`, kept by `ganmgr settings --runs-root`).
"""

from __future__ import annotations

from pathlib import Path

from engine.control.paths import PathError, ensure_inside
from store import settings as store_settings
from store.db import db_path


def runs_root(home: Path) -> Path:
    """The folder new run folders go into (created 0700 when first used)."""
    if db_path(home).exists():
        root = store_settings.get_settings(home).get("runs_root")
        if isinstance(root, str) and root:
            return Path(root)
    return home


def known_roots(home: Path) -> list[Path]:
    """HOME, the runs root, and every runs root the store used before (their folders stay valid)."""
    roots = [home]
    if db_path(home).exists():
        settings = store_settings.get_settings(home)
        for r in [settings.get("runs_root"), *(settings.get("runs_roots_used") or [])]:
            if isinstance(r, str) and r and Path(r) not in roots:
                roots.append(Path(r))
    return roots


def ensure_run_folder(home: Path, path: Path) -> Path:
    """`path` resolved, refused unless it lies inside HOME or inside a runs root the store has used."""
    roots = known_roots(home)
    for r in roots:
        try:
            return ensure_inside(r, path)
        except PathError:
            continue
    raise PathError(f"{path} is outside the runs root {' and '.join(str(r.resolve()) for r in roots)}")
