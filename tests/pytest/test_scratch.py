"""Every client's way of writing works (contract; issue 12 items 1 and 6):
scratch files beside control files, and rename of a scratch file onto a
control file as a write + close of its content. As agents' file tools (the
MCP filesystem server writes NAME.<hex>.tmp and renames it over), `sed -i`,
editors and careless users do it."""

import errno
import json
import os
import subprocess
import time

import pytest

from sbxtest import read_text, unique, write_file


def put(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_EXCL):
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)


def tmp_beside(path):
    """The MCP filesystem server's temporary name: NAME.<hex>.tmp."""
    return "%s.%s.tmp" % (path, os.urandom(8).hex())


def listing(path):
    return set(os.listdir(path))


@pytest.mark.parametrize("lang,code,out", [
    ("run.py", "print('py', 6 * 7)\n", "py 42\n"),
    ("run.js", "console.log('js', 6 * 7)\n", "js 42\n"),
    ("run.sh", "echo sh $((6 * 7))\n", "sh 42\n"),
])
def test_rename_onto_run_file_runs_it_and_returns_when_done(sb, lang, code, out):
    t = tmp_beside(sb.path(lang))
    put(t, code)
    assert os.path.basename(t) in listing(sb.path())
    os.rename(t, sb.path(lang))
    # The rename returned after the run ended: its output and exit are there now.
    assert sb.read("stdout") == out
    assert sb.read("exit") == "0\n"
    assert os.path.basename(t) not in listing(sb.path())
    assert not os.path.exists(t)
    assert sb.read(lang) == code


def test_rename_onto_run_file_in_a_context(sb):
    ctx = "c" + os.urandom(3).hex()
    os.mkdir(sb.path("contexts", ctx))
    try:
        d = sb.path("contexts", ctx)
        for code in ("x = 20\n", "print(x + 22)\n"):
            t = tmp_beside(os.path.join(d, "run.py"))
            put(t, code)
            os.rename(t, os.path.join(d, "run.py"))
        assert read_text(os.path.join(d, "stdout")) == "42\n"
        assert not [n for n in os.listdir(d) if n.endswith(".tmp")]
    finally:
        os.rmdir(sb.path("contexts", ctx))


def test_rename_onto_env_and_stdin(sb):
    t = tmp_beside(sb.path("env"))
    put(t, "GREETING=hello\n")
    os.rename(t, sb.path("env"))
    assert sb.read("env") == "GREETING=hello\n"
    t = tmp_beside(sb.path("stdin"))
    put(t, "from stdin\n")
    os.rename(t, sb.path("stdin"))
    r = sb.run("sh", 'read line; echo "$GREETING $line"\n')
    assert r.stdout == "hello from stdin\n", r
    write_file(sb.path("stdin"), "")
    write_file(sb.path("env"), "")


def test_rename_onto_ctl_runs_commands_and_fails_with_their_errno(mount, sb):
    name = unique("mcp")
    t = tmp_beside(mount.path("ctl"))
    put(t, "new %s ttl=120\n" % name)
    os.rename(t, mount.path("ctl"))
    try:
        assert name in mount.sandboxes()
        assert os.path.basename(t) not in listing(mount.path())
        # A bad command: the rename fails with the command's errno, the scratch is gone anyway.
        t = tmp_beside(mount.path(name, "ctl"))
        put(t, "frobnicate\n")
        with pytest.raises(OSError) as e:
            os.rename(t, mount.path(name, "ctl"))
        assert e.value.errno == errno.EINVAL
        assert not os.path.exists(t)
        assert "frobnicate" in read_text(mount.path("errors"))
        t = tmp_beside(mount.path(name, "ctl"))
        put(t, "timeout 30\n")
        os.rename(t, mount.path(name, "ctl"))
        assert json.loads(read_text(mount.path(name, "info")))["timeout"] == 30
    finally:
        mount.ctl("kill " + name)


def test_sed_in_place_on_env(sb):
    write_file(sb.path("env"), "A=1\nB=2\n")
    r = subprocess.run(["sed", "-i", "s/B=2/B=3/", sb.path("env")], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert sb.read("env") == "A=1\nB=3\n"
    assert not [n for n in os.listdir(sb.path()) if n.startswith("sed")]
    write_file(sb.path("env"), "")


def test_scratch_file_lives_like_a_file(mount, sb):
    for d in (mount.path(), sb.path()):
        p = os.path.join(d, "notes-" + os.urandom(3).hex())
        put(p, "one\n")
        st = os.stat(p)
        assert st.st_size == 4 and (st.st_mode & 0o777) == 0o600
        with open(p, "a") as f:
            f.write("two\n")
        assert read_text(p) == "one\ntwo\n"
        os.truncate(p, 3)
        assert read_text(p) == "one"
        os.rename(p, p + ".bak")          # scratch onto a free name: still a scratch file
        assert os.path.basename(p + ".bak") in listing(d) and os.path.basename(p) not in listing(d)
        os.unlink(p + ".bak")
        assert os.path.basename(p + ".bak") not in listing(d)
        with pytest.raises(FileNotFoundError):
            os.stat(p + ".bak")


def test_scratch_refusals(mount, sb):
    p = sb.path("x-" + os.urandom(3).hex())
    put(p, "print(1)\n")
    try:
        with pytest.raises(FileExistsError):
            put(p, "again")
        with pytest.raises(FileExistsError):
            put(sb.path("status"), "x")
        # onto a read-only file, a directory: refused, the scratch stays
        with pytest.raises(PermissionError):
            os.rename(p, sb.path("status"))
        with pytest.raises(IsADirectoryError):
            os.rename(p, sb.path("runs"))
        with pytest.raises(OSError) as e:
            os.rename(p, sb.path("files", "home", "user", "x"))
        assert e.value.errno == errno.EXDEV
        assert os.path.exists(p)
        # control files are not scratch files: not removed, not renamed
        with pytest.raises(PermissionError):
            os.unlink(sb.path("env"))
        with pytest.raises(PermissionError):
            os.rename(sb.path("env"), sb.path("env2"))
        # a name the table has but does not show now (exit before a run) is not for scratch files
        fresh = mount.new(unique("fresh"))
        try:
            with pytest.raises(PermissionError):
                put(fresh.path("exit"), "0\n")
        finally:
            mount.ctl("kill " + fresh.name)
    finally:
        os.unlink(p)


def test_scratch_bytes_are_bounded(sb):
    p = sb.path("big-" + os.urandom(3).hex())
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.pwrite(fd, b"x", (16 << 20) - 1)       # up to the run-file cap: fine
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"x", 16 << 20)
        assert e.value.errno == errno.EFBIG
        with pytest.raises(OSError) as e:
            os.ftruncate(fd, (16 << 20) + 1)
        assert e.value.errno == errno.EFBIG
    finally:
        os.close(fd)
        os.unlink(p)
    made = []
    try:
        with pytest.raises(OSError) as e:
            for i in range(200):
                q = sb.path("many-%03d" % i)
                put(q, "")
                made.append(q)
        assert e.value.errno == errno.ENOSPC
        assert len(made) == 64
    finally:
        for q in made:
            os.unlink(q)
    # The total over the whole daemon is bounded too (64 MiB): four full files fill it.
    fds, names = [], []
    try:
        with pytest.raises(OSError) as e:
            for i in range(6):
                q = sb.path("fill-%d" % i)
                fd = os.open(q, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                fds.append(fd)
                names.append(q)
                for off in range(0, 16 << 20, 1 << 20):
                    os.pwrite(fd, b"y" * (1 << 20), off)
        assert e.value.errno == errno.ENOSPC
    finally:
        for fd in fds:
            os.close(fd)
        for q in names:
            os.unlink(q)


def test_scratch_left_alone_is_dropped(mount_factory):
    m = mount_factory(scratch_ttl="2")
    b = m.new(unique("ttl"))
    p = b.path("left-" + os.urandom(3).hex())
    held = b.path("held-" + os.urandom(3).hex())
    put(p, "bytes")
    put(held, "kept")
    fd = os.open(held, os.O_RDONLY)
    try:
        assert os.path.basename(p) in listing(b.path())
        time.sleep(3.5)
        names = listing(b.path())
        assert os.path.basename(p) not in names
        assert os.path.basename(held) in names        # open: not left alone
        assert os.read(fd, 10) == b"kept"
        with pytest.raises(FileNotFoundError):
            os.stat(p)
    finally:
        os.close(fd)
        os.unlink(held)


@pytest.mark.deadline(60)
def test_kill_by_rename_onto_root_ctl_and_sandbox_ctl(mount):
    """The kernel holds the directory's lock during the rename: the kill's
    invalidation of NAME must not wait for it (it did: the mount hung)."""
    a, b = mount.new(unique("rk")), mount.new(unique("rk"))
    t = tmp_beside(mount.path("ctl"))
    put(t, "kill %s\n" % a.name)
    os.rename(t, mount.path("ctl"))
    t = tmp_beside(b.path("ctl"))
    put(t, "kill\n")
    os.rename(t, b.path("ctl"))
    names = mount.sandboxes()
    assert a.name not in names and b.name not in names, names
    for x in (a, b):
        with pytest.raises(FileNotFoundError):
            os.stat(x.path("status"))
    assert "ctl" in os.listdir(mount.path())
