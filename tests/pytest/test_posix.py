"""test_posix.py - files/ as a POSIX filesystem (issue 4).

Every check runs twice: in a directory under files/home/user of a sandbox and
in a plain local directory, to show the two agree. Checks that only make
sense through the mount (ownership inside, locks seen inside, O_TMPFILE) say
so and are at the end.
"""

import ctypes
import errno
import fcntl
import os
import stat
import struct
import subprocess
import sys
import time
import uuid

import pytest

from sbxtest import read_text, write_file

libc = ctypes.CDLL(None, use_errno=True)
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def renameat2(old, new, flags):
    if libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


@pytest.fixture(params=["files", "local"])
def d(request, tmp_path, sb):
    """A fresh empty directory: under files/ of a sandbox, or a local one."""
    if request.param == "local":
        p = tmp_path / "posix"
        p.mkdir()
        return str(p)
    p = sb.files("home/user/posix-" + uuid.uuid4().hex[:8])
    os.mkdir(p)
    return p


# A POSIX ACL (xattr form, version 2): owner rw, user 4321 r, group r, mask r, other r.
ACL_WITH_USER_4321 = struct.pack("<I", 2) + b"".join(
    struct.pack("<HHI", tag, perm, uid) for tag, perm, uid in
    ((0x01, 6, 0xffffffff), (0x02, 4, 4321), (0x04, 4, 0xffffffff), (0x10, 4, 0xffffffff),
     (0x20, 4, 0xffffffff)))


def j(*a):
    return os.path.join(*a)


# ---- files: create, open flags, read, write ----

def test_create_write_read(d):
    p = j(d, "f")
    write_file(p, b"hello\n")
    assert read_text(p) == "hello\n"
    assert os.stat(p).st_size == 6
    with open(p, "r+b") as f:
        f.seek(2)
        f.write(b"XY")
    assert read_text(p) == "heXYo\n"


def test_o_excl(d):
    p = j(d, "f")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    with pytest.raises(FileExistsError):
        os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600


def test_o_trunc_and_append(d):
    p = j(d, "f")
    write_file(p, b"0123456789")
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    assert os.stat(p).st_size == 0
    write_file(p, b"abc")
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"def")        # O_APPEND writes at the end whatever the offset
    os.close(fd)
    assert read_text(p) == "abcdef"


def test_big_sparse_offsets(d):
    p = j(d, "sparse")
    with open(p, "wb") as f:
        f.write(b"a")
        f.seek(64 << 20)
        f.write(b"z")
    st = os.stat(p)
    assert st.st_size == (64 << 20) + 1
    with open(p, "rb") as f:
        f.seek(64 << 20)
        assert f.read() == b"z"
    fd = os.open(p, os.O_RDONLY)
    try:
        assert os.lseek(fd, 0, os.SEEK_DATA) == 0
        hole = os.lseek(fd, 0, os.SEEK_HOLE)
        assert 0 < hole <= (64 << 20)
        assert os.lseek(fd, hole, os.SEEK_DATA) >= hole
        with pytest.raises(OSError) as e:
            os.lseek(fd, (64 << 20) + 10, os.SEEK_DATA)
        assert e.value.errno == errno.ENXIO
    finally:
        os.close(fd)


def test_truncate_and_ftruncate(d):
    p = j(d, "t")
    write_file(p, b"x" * 100)
    os.truncate(p, 10)
    assert os.stat(p).st_size == 10
    with open(p, "r+b") as f:
        os.ftruncate(f.fileno(), 4096)
    assert os.stat(p).st_size == 4096
    assert open(p, "rb").read() == b"x" * 10 + b"\0" * 4086


def test_fallocate(d):
    p = j(d, "fa")
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, 1 << 20)
        assert os.fstat(fd).st_size == 1 << 20
        assert os.fstat(fd).st_blocks * 512 >= 1 << 20
    finally:
        os.close(fd)


def test_fsync_fdatasync(d):
    p = j(d, "s")
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"data")
        os.fsync(fd)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def test_copy_file_range(d):
    src, dst = j(d, "src"), j(d, "dst")
    data = os.urandom(3 << 20)
    write_file(src, data)
    fi = os.open(src, os.O_RDONLY)
    fo = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        done = 0
        while done < len(data):
            n = os.copy_file_range(fi, fo, len(data) - done)
            assert n > 0
            done += n
    finally:
        os.close(fi)
        os.close(fo)
    assert open(dst, "rb").read() == data


# ---- names: mknod, mkdir, rmdir, unlink, rename, link, symlink ----

def test_mknod_fifo_and_regular(d):
    fifo, reg = j(d, "fifo"), j(d, "reg")
    os.mkfifo(fifo, 0o644)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    os.mknod(reg, 0o640 | stat.S_IFREG)
    st = os.stat(reg)
    assert stat.S_ISREG(st.st_mode) and st.st_size == 0
    # a fifo through the mount is a fifo: the kernel handles it
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    os.write(w, b"pipe")
    assert os.read(r, 10) == b"pipe"
    os.close(w)
    os.close(r)


def test_mkdir_rmdir(d):
    sub = j(d, "a")
    os.mkdir(sub, 0o750)
    assert stat.S_IMODE(os.stat(sub).st_mode) == 0o750
    with pytest.raises(FileExistsError):
        os.mkdir(sub)
    write_file(j(sub, "x"), "x")
    with pytest.raises(OSError) as e:
        os.rmdir(sub)
    assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(NotADirectoryError):
        os.rmdir(j(sub, "x"))
    with pytest.raises(IsADirectoryError):
        os.unlink(sub)
    os.unlink(j(sub, "x"))
    os.rmdir(sub)
    assert not os.path.exists(sub)
    os.makedirs(j(d, "p", "q", "r"))
    assert os.path.isdir(j(d, "p", "q", "r"))
    assert os.stat(j(d, "p")).st_nlink == 3


def test_rename_plain_and_over(d):
    a, b = j(d, "a"), j(d, "b")
    write_file(a, "A")
    write_file(b, "B")
    os.rename(a, b)
    assert read_text(b) == "A" and not os.path.exists(a)
    os.mkdir(j(d, "d1"))
    os.mkdir(j(d, "d2"))
    os.rename(b, j(d, "d1", "moved"))
    assert read_text(j(d, "d1", "moved")) == "A"
    write_file(j(d, "d2", "x"), "x")
    with pytest.raises(OSError) as e:
        os.rename(j(d, "d1"), j(d, "d2"))
    assert e.value.errno in (errno.ENOTEMPTY, errno.EEXIST)
    os.rename(j(d, "d1"), j(d, "d3"))
    assert os.listdir(j(d, "d3")) == ["moved"]


def test_rename_noreplace(d):
    a, b = j(d, "a"), j(d, "b")
    write_file(a, "A")
    write_file(b, "B")
    with pytest.raises(FileExistsError):
        renameat2(a, b, RENAME_NOREPLACE)
    renameat2(a, j(d, "c"), RENAME_NOREPLACE)
    assert read_text(j(d, "c")) == "A" and read_text(b) == "B"


def test_rename_exchange(d):
    a, b = j(d, "a"), j(d, "b")
    write_file(a, "A")
    os.mkdir(b)
    renameat2(a, b, RENAME_EXCHANGE)
    assert os.path.isdir(a) and read_text(b) == "A"
    with pytest.raises(FileNotFoundError):
        renameat2(a, j(d, "none"), RENAME_EXCHANGE)


def test_hard_link(d):
    a, b = j(d, "a"), j(d, "b")
    write_file(a, "same")
    os.link(a, b)
    sa, sb_ = os.stat(a), os.stat(b)
    assert sa.st_ino == sb_.st_ino and sa.st_nlink == 2
    write_file(b, "changed", os.O_WRONLY | os.O_TRUNC)
    assert read_text(a) == "changed"
    os.unlink(a)
    assert os.stat(b).st_nlink == 1
    with pytest.raises(FileExistsError):
        os.link(b, b)


def test_symlink_readlink(d):
    write_file(j(d, "target"), "T")
    os.symlink("target", j(d, "rel"))
    os.mkdir(j(d, "sub"))
    os.symlink("../target", j(d, "sub", "up"))
    assert os.readlink(j(d, "rel")) == "target"
    assert read_text(j(d, "rel")) == "T"
    assert read_text(j(d, "sub", "up")) == "T"
    assert stat.S_ISLNK(os.lstat(j(d, "rel")).st_mode)
    os.symlink("nowhere", j(d, "dangling"))
    assert os.path.lexists(j(d, "dangling")) and not os.path.exists(j(d, "dangling"))
    os.unlink(j(d, "rel"))
    assert os.path.exists(j(d, "target"))


def test_readdir_many(d):
    names = {"f%04d" % i for i in range(1500)} | {"with space", "\u00e9t\u00e9", "a\x01b", "x\xff"[:1]}
    for n in names:
        write_file(j(d, n), n.encode("utf-8", "surrogateescape"))
    assert set(os.listdir(d)) == names
    with os.scandir(d) as it:
        kinds = {e.name: e.is_file() for e in it}
    assert all(kinds.values()) and set(kinds) == names


def test_odd_byte_names(d):
    raw = os.fsencode(d) + b"/" + b"\xff\xfe\n\t odd"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    assert b"\xff\xfe\n\t odd" in os.listdir(os.fsencode(d))
    os.unlink(raw)


def test_name_max_and_path_max(d):
    with pytest.raises(OSError) as e:
        open(j(d, "n" * 256), "w")
    assert e.value.errno == errno.ENAMETOOLONG
    write_file(j(d, "n" * 255), "ok")
    with pytest.raises(OSError) as e:
        os.mkdir(j(d, "n" * 256))
    assert e.value.errno == errno.ENAMETOOLONG
    deep = d + ("/" + "p" * 200) * 22      # over PATH_MAX (4096)
    with pytest.raises(OSError) as e:
        os.stat(deep)
    assert e.value.errno == errno.ENAMETOOLONG


# ---- attributes ----

def test_chmod(d):
    p = j(d, "m")
    write_file(p, "x")
    for mode in (0o600, 0o755, 0o4755, 0o1777, 0o000):
        os.chmod(p, mode)
        assert stat.S_IMODE(os.stat(p).st_mode) == mode
    os.chmod(p, 0o644)


def test_utimens(d):
    p = j(d, "u")
    write_file(p, "x")
    os.utime(p, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(p)
    assert st.st_atime_ns == 1_000_000_123 and st.st_mtime_ns == 2_000_000_456
    subprocess.run(["touch", "-d", "2001-02-03 04:05:06", p], check=True)
    assert time.gmtime(os.stat(p).st_mtime)[:1] == (2001,)
    os.symlink("u", j(d, "l"))
    os.utime(j(d, "l"), ns=(5_000_000_000, 6_000_000_000), follow_symlinks=False)
    assert os.lstat(j(d, "l")).st_mtime_ns == 6_000_000_000
    assert os.stat(p).st_mtime_ns != 6_000_000_000


def test_user_xattrs(d):
    p = j(d, "x")
    write_file(p, "x")
    os.setxattr(p, "user.one", b"1")
    os.setxattr(p, "user.two", b"\x00binary\xff")
    assert os.getxattr(p, "user.one") == b"1"
    assert os.getxattr(p, "user.two") == b"\x00binary\xff"
    assert {"user.one", "user.two"} <= set(os.listxattr(p))
    with pytest.raises(FileExistsError):
        os.setxattr(p, "user.one", b"2", os.XATTR_CREATE)
    os.removexattr(p, "user.one")
    with pytest.raises(OSError) as e:
        os.getxattr(p, "user.one")
    assert e.value.errno == errno.ENODATA


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_create_modes_under_umask(d, umask):
    """The caller's umask applies, once: not the daemon's on top (0777 gave 0755)."""
    old = os.umask(umask)
    try:
        os.close(os.open(j(d, "f777"), os.O_CREAT | os.O_WRONLY, 0o777))
        os.close(os.open(j(d, "f666"), os.O_CREAT | os.O_WRONLY, 0o666))
        os.mkdir(j(d, "d777"), 0o777)
        os.mkdir(j(d, "d1777"), 0o1777)
        os.mkfifo(j(d, "fifo"), 0o666)
    finally:
        os.umask(old)
    got = {n: stat.S_IMODE(os.stat(j(d, n)).st_mode) for n in ("f777", "f666", "d777", "d1777", "fifo")}
    assert got == {"f777": 0o777 & ~umask, "f666": 0o666 & ~umask, "d777": 0o777 & ~umask,
                   "d1777": 0o1777 & ~umask, "fifo": 0o666 & ~umask}


def test_set_id_bits_at_create_and_after_chmod(d):
    """Set-uid/set-gid given at create survive (the chown after create cleared them), and chmod
    sets them; a directory made in a set-group-id directory inherits the bit."""
    old = os.umask(0)
    try:
        os.close(os.open(j(d, "suid"), os.O_CREAT | os.O_WRONLY, 0o4777))
        os.close(os.open(j(d, "sgid"), os.O_CREAT | os.O_WRONLY, 0o2755))
        os.close(os.open(j(d, "both"), os.O_CREAT | os.O_WRONLY, 0o6711))
        os.mkdir(j(d, "g"), 0o775)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(j(d, "suid")).st_mode) == 0o4777
    assert stat.S_IMODE(os.stat(j(d, "sgid")).st_mode) == 0o2755
    assert stat.S_IMODE(os.stat(j(d, "both")).st_mode) == 0o6711
    write_file(j(d, "later"), "x")
    os.chmod(j(d, "later"), 0o4750)
    assert stat.S_IMODE(os.stat(j(d, "later")).st_mode) == 0o4750
    os.chmod(j(d, "g"), 0o2775)
    os.mkdir(j(d, "g", "sub"), 0o755)
    assert stat.S_IMODE(os.stat(j(d, "g", "sub")).st_mode) == 0o2755
    write_file(j(d, "g", "file"), "x")
    assert stat.S_IMODE(os.stat(j(d, "g", "file")).st_mode) & 0o6000 == 0


def _changes(paths, op):
    """Which of (mtime, ctime) of each path op changes, as the filesystem tells."""
    before = {p: os.lstat(p) for p in paths}
    time.sleep(0.05)        # past the filesystem's timestamp granularity
    op()
    out = {}
    for p in paths:
        q = op.renamed.get(p, p) if hasattr(op, "renamed") else p
        a = os.lstat(q)
        out[os.path.basename(p)] = (a.st_mtime_ns != before[p].st_mtime_ns,
                                    a.st_ctime_ns != before[p].st_ctime_ns)
    return out


def test_times_of_rename_link_unlink_truncate_utimensat(d):
    """mtime and ctime change where a local filesystem changes them; the same expectations hold
    on the native directory (the other parameter) in the same run."""
    sub, other = j(d, "sub"), j(d, "other")
    os.mkdir(sub)
    os.mkdir(other)
    for n in ("a", "b", "c", "t", "u"):
        write_file(j(sub, n), "0123456789")

    def rename():
        os.rename(j(sub, "a"), j(other, "a2"))
    rename.renamed = {j(sub, "a"): j(other, "a2")}
    assert _changes([sub, other, j(sub, "a")], rename) == \
        {"sub": (True, True), "other": (True, True), "a": (False, True)}

    assert _changes([sub, other, j(sub, "b")], lambda: os.link(j(sub, "b"), j(other, "b2"))) == \
        {"sub": (False, False), "other": (True, True), "b": (False, True)}
    assert _changes([other, j(sub, "b")], lambda: os.unlink(j(other, "b2"))) == \
        {"other": (True, True), "b": (False, True)}
    assert _changes([sub, j(sub, "t")], lambda: os.truncate(j(sub, "t"), 3)) == \
        {"sub": (False, False), "t": (True, True)}
    assert _changes([j(sub, "u")], lambda: os.utime(j(sub, "u"), ns=(5 * 10**9, 7 * 10**9))) == \
        {"u": (True, True)}
    assert os.stat(j(sub, "u")).st_mtime_ns == 7 * 10**9
    assert _changes([j(sub, "c")], lambda: os.utime(j(sub, "c"))) == {"c": (True, True)}


def test_statvfs(d):
    sv = os.statvfs(d)
    assert sv.f_bsize > 0 and sv.f_blocks > 0 and sv.f_namemax == 255


# ---- locks ----

HOLD = r"""
import fcntl, os, sys, time
f = open(sys.argv[1], "r+")
kind = sys.argv[2]
if kind == "flock":
    fcntl.flock(f, fcntl.LOCK_EX)
else:
    fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def _holder(path, kind):
    p = subprocess.Popen([sys.executable, "-c", HOLD, path, kind], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"locked\n"
    return p


@pytest.mark.parametrize("kind", ["flock", "posix"])
def test_locks_conflict_between_processes(d, kind):
    p = j(d, "lock")
    write_file(p, "x")
    holder = _holder(p, kind)
    try:
        with open(p, "r+") as f:
            with pytest.raises(BlockingIOError):
                if kind == "flock":
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                else:
                    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        holder.stdin.close()
        holder.wait(10)
    with open(p, "r+") as f:      # released when the holder exits
        if kind == "flock":
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


# ---- only through the mount ----

def test_owner_and_ls_agree_inside(sb):
    """ls -ln outside and inside agree but for the id-mapped owner: the sandbox user (1000
    inside) shows as the mount's owner outside."""
    base = "home/user/own-" + uuid.uuid4().hex[:6]
    os.makedirs(sb.files(base + "/sub"))
    write_file(sb.files(base + "/f"), "x")
    os.mkfifo(sb.files(base + "/fifo"))
    os.symlink("f", sb.files(base + "/l"))
    os.link(sb.files(base + "/f"), sb.files(base + "/hard"))
    outside = subprocess.run(["ls", "-ln", "--time-style=+%s", sb.files(base)],
                             capture_output=True, text=True, check=True).stdout
    inside = sb.run("sh", "ls -ln --time-style=+%%s /%s\n" % base)
    assert inside.exit == 0, inside

    def cols(text, owner):
        rows = []
        for l in text.splitlines()[1:]:
            c = l.split()
            rows.append((c[0], c[1], owner.get(c[2], c[2]), owner.get(c[3], c[3]), c[-1]))
        return sorted(rows)

    mapped = {"1000": str(os.getuid())}
    assert cols(outside, {}) == cols(inside.stdout, mapped), (outside, inside.stdout)
    for name in ("sub", "fifo", "l", "f"):
        assert os.lstat(sb.files(base + "/" + name)).st_uid == os.getuid()


def test_chown_gives_the_sandbox_user(sb):
    """chown through files/, to anyone (the caller, root, a foreign id), gives the sandbox user:
    id 1000 inside, the mount's owner outside; a symlink's own owner only, never its target's."""
    base = "home/user/chown-" + uuid.uuid4().hex[:6]
    os.mkdir(sb.files(base))
    p = sb.files(base + "/f")
    write_file(p, "x")
    for uid, gid in ((4321, 4321), (0, 0), (os.getuid(), os.getgid()), (1000, 1000)):
        os.chown(p, uid, gid)
        st = os.stat(p)
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), (uid, gid)
    os.chmod(p, 0o4755)
    os.chown(p, 0, -1)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o755     # chown clears set-uid, as natively
    os.symlink("/etc/passwd", sb.files(base + "/l"))
    os.chown(sb.files(base + "/l"), 0, 0, follow_symlinks=False)
    r = sb.run("sh", "stat -c '%%u %%g' /%s/f; stat -c %%u /%s/l\n" % (base, base))
    assert r.stdout == "1000 1000\n1000\n", r
    assert os.stat(sb.files("etc/passwd")).st_uid == 0     # the target kept its owner


def test_only_user_xattrs(sb):
    p = sb.files("home/user/xa-" + uuid.uuid4().hex[:6])
    write_file(p, "x")
    for name in ("trusted.x", "security.x", "system.x"):
        with pytest.raises(OSError) as e:
            os.setxattr(p, name, b"1")
        assert e.value.errno == errno.EPERM, name
    # ACLs are not supported (EOPNOTSUPP, on which cp -a falls back to the mode quietly)
    for target, name in ((p, "system.posix_acl_access"),
                         (os.path.dirname(p), "system.posix_acl_default")):
        with pytest.raises(OSError) as e:
            os.setxattr(target, name, ACL_WITH_USER_4321)
        assert e.value.errno == errno.EOPNOTSUPP, name
    assert all(n.startswith("user.") for n in os.listxattr(p))


def test_lock_taken_outside_is_seen_inside(sb):
    rel = "home/user/lk-" + uuid.uuid4().hex[:6]
    write_file(sb.files(rel), "x")
    with open(sb.files(rel), "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        r = sb.run("sh", "flock -n /%s true; echo $?\n" % rel)
        assert r.stdout == "1\n", r
        fcntl.lockf(f, fcntl.LOCK_EX)
        r = sb.run("py", "import fcntl\nf=open('/%s','r+')\ntry:\n fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB)\n"
                         " print('got')\nexcept OSError:\n print('busy')\n" % rel)
        assert r.stdout == "busy\n", r
    r = sb.run("sh", "flock -n /%s true; echo $?\n" % rel)
    assert r.stdout == "0\n", r


def test_o_tmpfile_not_supported(sb):
    """FUSE has no tmpfile operation in libfuse 3.14: O_TMPFILE fails cleanly."""
    with pytest.raises(OSError) as e:
        os.open(sb.files("home/user"), os.O_TMPFILE | os.O_RDWR, 0o600)
    assert e.value.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)


def test_fresh_after_inside_writes(sb):
    """Kernel caching is on; what code inside writes is seen at once anyway."""
    rel = "home/user/fresh-" + uuid.uuid4().hex[:6]
    p = sb.files(rel)
    write_file(p, "one\n")
    assert read_text(p) == "one\n"
    for i in range(5):
        text = "round %d %s\n" % (i, "x" * i * 1000)
        r = sb.run("sh", "printf '%s' > /%s\n" % (text.replace("\n", "\\n"), rel))
        assert r.exit == 0, r
        assert os.stat(p).st_size == len(text)
        assert read_text(p) == text
    sb.run("sh", "rm /%s; mkdir /%s; echo in > /%s/inner\n" % (rel, rel, rel))
    assert os.path.isdir(p) and read_text(p + "/inner") == "in\n"
    sb.run("sh", "rm -r /%s\n" % rel)
    assert not os.path.exists(p)
    assert os.path.basename(p) not in os.listdir(sb.files("home/user"))


def test_fresh_same_size_rewrite(sb):
    rel = "home/user/same-" + uuid.uuid4().hex[:6]
    p = sb.files(rel)
    write_file(p, "AAAA")
    with open(p) as f:
        assert f.read() == "AAAA"
    sb.run("sh", "printf BBBB > /%s\n" % rel)
    with open(p) as f:
        assert f.read() == "BBBB"
    sb.run("sh", "chmod 600 /%s\n" % rel)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
