"""Is a path on a network filesystem? (issue 8: the store's SQLite file must stay on a local disk.)

SQLite's locking (and WAL's shared-memory index) is unreliable over NFS, SMB, Lustre, GPFS and friends:
two processes on two nodes can both believe they hold the write lock. Run folders may live on a shared
filesystem (the worker writes only files); the database may not. Decided from /proc/self/mountinfo (the
mount with the longest mount point above the path), so no syscall beyond reading one file; elsewhere
(macOS, no /proc) the answer is "unknown", which callers treat as local.
"""

from __future__ import annotations

import os
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
# filesystem types whose locking SQLite cannot rely on across machines
NETWORK_FS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
    "ocfs2", "gfs2", "panfs", "pvfs2", "orangefs", "9p", "davfs", "fuse.sshfs", "fuse.ceph-fuse",
    "fuse.glusterfs", "fuse.s3fs", "fuse.rclone", "fuse.gcsfuse", "fuse.beegfs", "fuse.lustre",
})


def _unescape(field: str) -> str:
    r"""mountinfo writes space, tab, newline and backslash in paths as \040, \011, \012 and \134."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every line of a mountinfo text."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        parts = left.split()
        if not sep or len(parts) < 5 or not right.split():
            continue
        out.append((_unescape(parts[4]), right.split()[0]))
    return out


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem holding `path` (or its nearest existing parent); None if unknown."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text()
        except OSError:
            return None
    p = Path(os.path.abspath(path))
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    # symlinks resolved where the path exists; the part not created yet is kept as written
    target = str(existing.resolve() / p.relative_to(existing))
    best, best_type = -1, None
    for mount, fstype in parse_mountinfo(mountinfo):
        prefix = mount.rstrip("/") + "/"
        if (target == mount or (target + "/").startswith(prefix)) and len(mount) > best:
            best, best_type = len(mount), fstype
    return best_type


def network_fs_problem(db_file: Path, mountinfo: str | None = None) -> str | None:
    """One line saying why `db_file` must not hold a store, or None when its filesystem is local/unknown."""
    fstype = filesystem_type(db_file, mountinfo)
    if fstype is None or fstype.lower() not in NETWORK_FS:
        return None
    return (f"the store's database {db_file} would sit on a network filesystem ({fstype}), where SQLite's "
            f"locking is unreliable; put the store (--home or GANMGR_HOME) on a local disk; run folders "
            f"may stay on the shared filesystem")
