"""test_files.py - files/ basics for issue 2: read, write, create, mkdir,
readdir, rename, unlink, stat, ownership; both directions with the sandbox.
(issue 4 goes much further.)"""

import os
import stat

import pytest

from sbxtest import read_text, write_file


def test_files_is_sandbox_root(sb):
    top = set(os.listdir(sb.files()))
    assert {"home", "tmp", "usr", "etc"} <= top, top
    assert os.path.isdir(sb.files("home/user"))


def test_write_outside_read_inside(sb):
    write_file(sb.files("home/user/a.txt"), "hello from the host\n")
    r = sb.run("sh", "cat /home/user/a.txt\n")
    assert r.stdout == "hello from the host\n" and r.exit == 0, r


def test_write_inside_read_outside(sb):
    r = sb.run("py", "open('/home/user/b.txt', 'w').write('hello from inside\\n')\n")
    assert r.exit == 0, r
    assert read_text(sb.files("home/user/b.txt")) == "hello from inside\n"
    # and it changes: no stale content or size
    sb.run("sh", "echo longer content than before > /home/user/b.txt\n")
    assert read_text(sb.files("home/user/b.txt")) == "longer content than before\n"
    assert os.stat(sb.files("home/user/b.txt")).st_size == len("longer content than before\n")


def test_binary_roundtrip(sb):
    data = bytes(range(256)) * 4096  # 1 MiB
    write_file(sb.files("home/user/bin.dat"), data)
    r = sb.run("py", "import hashlib\nprint(hashlib.sha256(open('/home/user/bin.dat','rb').read()).hexdigest())\n")
    import hashlib
    assert r.stdout.strip() == hashlib.sha256(data).hexdigest(), r
    with open(sb.files("home/user/bin.dat"), "rb") as f:
        assert f.read() == data


def test_mkdir_readdir_rename_unlink_stat(sb):
    d = sb.files("home/user/dir1")
    os.mkdir(d)
    assert stat.S_ISDIR(os.stat(d).st_mode)
    write_file(os.path.join(d, "x"), "12345")
    write_file(os.path.join(d, "y"), "")
    assert sorted(os.listdir(d)) == ["x", "y"]
    st = os.stat(os.path.join(d, "x"))
    assert stat.S_ISREG(st.st_mode) and st.st_size == 5
    os.rename(os.path.join(d, "x"), os.path.join(d, "z"))
    assert sorted(os.listdir(d)) == ["y", "z"]
    assert read_text(os.path.join(d, "z")) == "12345"
    os.unlink(os.path.join(d, "y"))
    assert os.listdir(d) == ["z"]
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(d, "y"))
    r = sb.run("sh", "ls /home/user/dir1; cat /home/user/dir1/z\n")
    assert r.stdout == "z\n12345", r
    os.rename(d, sb.files("home/user/dir2"))
    assert sb.run("sh", "ls /home/user/dir2\n").stdout == "z\n"
    os.unlink(sb.files("home/user/dir2/z"))
    os.rmdir(sb.files("home/user/dir2"))
    assert not os.path.exists(sb.files("home/user/dir2"))
    assert sb.run("sh", "test -e /home/user/dir2; echo $?\n").stdout == "1\n"


def test_rename_over_existing(sb):
    """An editor's save: write a temp file and rename it over the old one."""
    p = sb.files("home/user/edit.txt")
    write_file(p, "old\n")
    write_file(p + ".tmp", "new\n")
    os.rename(p + ".tmp", p)
    assert read_text(p) == "new\n"
    assert sb.run("sh", "cat /home/user/edit.txt; ls /home/user | grep -c edit.txt.tmp\n").stdout == "new\n0\n"


def test_created_files_belong_to_user(sb):
    f = sb.files("home/user/owned.txt")
    d = sb.files("home/user/owned-dir")
    write_file(f, "x")
    os.mkdir(d)
    # the id-mapped view: the sandbox user shows as the mount's owner outside
    assert (os.stat(f).st_uid, os.stat(f).st_gid) == (os.getuid(), os.getgid())
    assert os.stat(d).st_uid == os.getuid()
    r = sb.run("sh", "stat -c %u /home/user/owned.txt /home/user/owned-dir\n")
    assert r.stdout == "1000\n1000\n", r
    # the sandbox user can change and remove them
    r = sb.run("sh", "echo more >> /home/user/owned.txt && rm /home/user/owned.txt && "
                     "rmdir /home/user/owned-dir && echo done\n")
    assert r.stdout == "done\n", r


def test_files_inside_owned_by_user_seen_outside(sb):
    """What the sandbox user makes shows as the mount owner's; root's files inside stay root's."""
    sb.run("sh", "echo x > /home/user/from-inside\n")
    st = os.stat(sb.files("home/user/from-inside"))
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert os.stat(sb.files("etc/passwd")).st_uid == 0


def test_missing_file_enoent(sb):
    with pytest.raises(FileNotFoundError):
        open(sb.files("home/user/does-not-exist"))
    with pytest.raises(FileNotFoundError):
        os.listdir(sb.files("no/such/dir"))
