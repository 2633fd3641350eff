"""The network-filesystem check for the store's SQLite file (issue 8), on mountinfo texts and on this machine."""

from __future__ import annotations

from pathlib import Path

from store.netfs import filesystem_type, network_fs_problem, parse_mountinfo

MOUNTINFO = """\
22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
40 22 0:35 / /home rw,relatime shared:20 - nfs4 fs:/export/home rw,vers=4.2
41 40 259:2 / /home/alice/local\\040disk rw - xfs /dev/vdb1 rw
42 22 0:36 / /scratch rw - lustre 10.0.0.1@tcp:/scratch rw
43 22 0:37 / /tmp rw - tmpfs tmpfs rw
"""


def test_the_longest_mount_point_above_the_path_decides():
    assert parse_mountinfo(MOUNTINFO)[2] == ("/home/alice/local disk", "xfs")
    assert filesystem_type(Path("/home/alice/runs/ganmgr.db"), MOUNTINFO) == "nfs4"
    assert filesystem_type(Path("/home/alice/local disk/ganmgr.db"), MOUNTINFO) == "xfs"
    assert filesystem_type(Path("/homework/ganmgr.db"), MOUNTINFO) == "ext4"  # not under /home
    assert filesystem_type(Path("/scratch/x/ganmgr.db"), MOUNTINFO) == "lustre"


def test_network_filesystems_are_refused_with_the_reason():
    why = network_fs_problem(Path("/home/alice/runs/ganmgr.db"), MOUNTINFO)
    assert why is not None and "network filesystem (nfs4)" in why and "local disk" in why and "\n" not in why
    assert "lustre" in network_fs_problem(Path("/scratch/ganmgr.db"), MOUNTINFO)
    assert network_fs_problem(Path("/home/alice/local disk/ganmgr.db"), MOUNTINFO) is None
    assert network_fs_problem(Path("/tmp/ganmgr.db"), MOUNTINFO) is None
    assert network_fs_problem(Path("/x/ganmgr.db"), "garbage\n") is None  # unknown counts as local


def test_this_machines_temp_dir_is_local(tmp_path):
    fstype = filesystem_type(tmp_path / "not-yet" / "ganmgr.db")  # a missing file: its nearest parent decides
    assert fstype is None or isinstance(fstype, str)
    if Path("/proc/self/mountinfo").exists():
        assert fstype is not None
    assert network_fs_problem(tmp_path / "ganmgr.db") is None


def test_opening_a_store_on_a_network_filesystem_is_refused(tmp_path, monkeypatch):
    """End to end through the store: the first write that would create ganmgr.db refuses, nothing is made."""
    import pytest

    from store import db
    from store import settings as store_settings
    from store.errors import StoreError

    home = tmp_path / "home"
    fake = tmp_path / "mountinfo"
    fake.write_text(f"22 1 259:1 / / rw - ext4 /dev/vda1 rw\n40 22 0:35 / {tmp_path} rw - nfs4 fs:/x rw\n")
    monkeypatch.setattr("store.netfs.MOUNTINFO", fake)
    try:
        with pytest.raises(StoreError) as e:
            store_settings.set_setting(home, "max_concurrent", 2)
        assert "network filesystem (nfs4)" in str(e.value) and "\n" not in str(e.value)
        assert not (home / "ganmgr.db").exists()
        monkeypatch.setattr("store.netfs.MOUNTINFO", Path("/proc/self/mountinfo"))
        assert store_settings.set_setting(home, "max_concurrent", 2)["max_concurrent"] == 2  # a local disk: fine
    finally:
        db.dispose_engines()
