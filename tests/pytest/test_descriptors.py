"""test_descriptors.py - a walk over files/ does not exhaust the daemon's
descriptors (issue 12 item 2; docs/files.md "Descriptors").

The daemon runs with a low RLIMIT_NOFILE (soft = hard, so it cannot raise it),
`find` walks many sandboxes' files/ so the kernel holds far more inodes than
the daemon may open, and afterwards everything still works: new sandboxes,
runs, reads, writes, listings of what was walked.
"""

import os
import shutil
import stat
import subprocess

import pytest

import sbxtest
from sbxtest import read_text, write_file

NOFILE = 2000
SANDBOXES = 20


@pytest.fixture
def lowfd_mount(mount_factory, tmp_path, monkeypatch):
    if not shutil.which("prlimit"):
        pytest.skip("prlimit (util-linux) is not installed")
    wrapper = tmp_path / "sbxfs-lowfd"
    wrapper.write_text('#!/bin/sh\nexec prlimit --nofile=%d:%d %s "$@"\n'
                       % (NOFILE, NOFILE, sbxtest.daemon_binary()))
    wrapper.chmod(0o755)
    monkeypatch.setenv("SBXFS_BIN", str(wrapper))
    m = mount_factory()
    monkeypatch.undo()
    return m


def daemon_fds(m):
    return len(os.listdir("/proc/%d/fd" % m.proc.pid))


def big_dirs(b):
    """Thousands of entries: the Python directories of the host's /usr (local), the whole /usr
    of the trimmed image (docker)."""
    if b.mount.backend != "local":
        return [b.files("usr")]
    libs = sorted(n for n in os.listdir(b.files("usr/lib")) if n.startswith("python3"))
    assert libs, os.listdir(b.files("usr/lib"))
    return [b.files("usr/lib/" + n) for n in libs]


def walk(tops):
    """find with a stat of every entry; its lines, or the failure."""
    r = subprocess.run(["find"] + tops + ["-printf", "%y %s %p\n"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]
    return r.stdout.splitlines()


@pytest.mark.deadline(600)
def test_walk_over_many_sandboxes_with_few_descriptors(lowfd_mount):
    m = lowfd_mount
    with open("/proc/%d/limits" % m.proc.pid) as f:
        assert [l for l in f if l.startswith("Max open files") and " %d " % NOFILE in l], \
            "the daemon runs with the low limit"
    boxes = [m.new() for _ in range(SANDBOXES)]
    seen = 0
    for b in boxes:
        write_file(b.files("home/user/mine.txt"), b.name)
        lines = walk(big_dirs(b))
        seen += len(lines)
        # the daemon never holds more than its bound, whatever the kernel caches
        assert daemon_fds(m) < NOFILE * 3 // 4, daemon_fds(m)
    assert seen > 20 * NOFILE, seen
    # what was walked first (its descriptors long closed) is still there, the same
    first = walk(big_dirs(boxes[0]))
    assert first == walk(big_dirs(boxes[0]))
    for b in boxes:
        assert read_text(b.files("home/user/mine.txt")) == b.name
        assert "lib" in os.listdir(b.files("usr"))
    # and the mount works as before: a new sandbox, a run, a file in and out
    nb = m.new()
    write_file(nb.files("home/user/in.txt"), "hello\n")
    r = nb.run("sh", "cat /home/user/in.txt; echo bye > /home/user/out.txt\n")
    assert r.exit == 0 and r.stdout == "hello\n", r
    assert read_text(nb.files("home/user/out.txt")) == "bye\n"
    r = boxes[-1].run("py", "print(6 * 7)\n")
    assert r.stdout == "42\n", r


def test_a_node_whose_descriptor_was_closed_is_found_again(lowfd_mount):
    """A directory the kernel still holds (a process's cwd, an open handle) keeps working
    after the daemon closed its descriptor, and one moved inside meanwhile gives ESTALE or the
    right answer, never another file's."""
    m = lowfd_mount
    b = m.new()
    os.makedirs(b.files("home/user/a/b"))
    write_file(b.files("home/user/a/b/f"), "deep\n")
    dfd = os.open(b.files("home/user/a/b"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        walk(big_dirs(b))                   # closes the descriptors of a/ and a/b/ in the daemon
        assert os.listdir(dfd) == ["f"]
        assert stat.S_ISDIR(os.fstat(dfd).st_mode)
        assert read_text(b.files("home/user/a/b/f")) == "deep\n"
        r = b.run("sh", "mv /home/user/a /home/user/moved && echo other > /home/user/a\n")
        assert r.exit == 0, r
        walk(big_dirs(b))
        try:
            st = os.fstat(dfd)
            assert stat.S_ISDIR(st.st_mode)
        except OSError as e:
            assert e.errno == 116, e       # ESTALE
        assert read_text(b.files("home/user/moved/b/f")) == "deep\n"
        assert read_text(b.files("home/user/a")) == "other\n"
    finally:
        os.close(dfd)
