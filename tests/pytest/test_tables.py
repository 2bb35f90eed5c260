"""Synthetic files are table rows (fusefs/dirtab.h): one row makes a file.

The root table has a row, "test-table", that is present only when the daemon
runs with SBXFS_TEST_TABLE=1. Nothing else in the code knows about it, so
what this shows about it (listed, looked up, read, refused on write, not a
sandbox name) is what the generic table code gives every row.
"""
import errno
import os

import pytest


def _listing(path):
    with os.scandir(path) as it:
        return {e.name: e for e in it}


def test_a_table_row_is_a_file(mount_factory, monkeypatch):
    monkeypatch.setenv("SBXFS_TEST_TABLE", "1")
    m = mount_factory()
    p = m.path("test-table")
    entries = _listing(m.path(""))
    assert "test-table" in entries, sorted(entries)
    assert entries["test-table"].is_file()
    st = os.stat(p)
    assert oct(st.st_mode & 0o777) == oct(0o444)
    # The row's family is README's: same bytes, size from the family's stat.
    readme = open(m.path("README"), "rb").read()
    assert open(p, "rb").read() == readme
    assert st.st_size == len(readme)
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC):
        with pytest.raises(PermissionError):
            os.open(p, flags)
    with pytest.raises(OSError) as e:
        os.truncate(p, 0)
    assert e.value.errno in (errno.EACCES, errno.EPERM)
    with pytest.raises(OSError) as e:
        os.unlink(p)
    assert e.value.errno in (errno.EPERM, errno.EACCES)
    # A root row's name is reserved: no sandbox can take it.
    r = m.ctl("new test-table")
    assert not r.ok and "reserved" in r.text, r
    with pytest.raises(OSError):
        os.mkdir(p)


def test_a_row_that_is_not_present_is_not_there(mount):
    # The fixture's daemon runs without SBXFS_TEST_TABLE: the row is absent.
    assert "test-table" not in os.listdir(mount.path(""))
    with pytest.raises(FileNotFoundError):
        os.stat(mount.path("test-table"))
    with pytest.raises(FileNotFoundError):
        open(mount.path("test-table"))


def test_readdir_inode_numbers_match_lookup_once_looked_up(mount, box):
    """One place makes inode numbers: a listing shows the looked-up node's number."""
    b = box()
    d = mount.path(b.name)
    looked = {n: os.stat(os.path.join(d, n)).st_ino for n in ("ctl", "status", "stdout", "runs")}
    listed = {e.name: e.inode() for e in os.scandir(d)}
    for n, ino in looked.items():
        assert listed[n] == ino, (n, listed[n], ino)
    assert len(set(listed.values())) == len(listed), listed
