"""test_full_disk.py - a full state filesystem corrupts nothing (issue 11 item 4).

The state directory (`-o state=`) lives on a small ext4 of its own, loop-mounted by the test.
Sandboxes are made, then the filesystem is filled: by a sandbox writing all it can, and by a host
file taking every block that is left. Then, as users would see it:
- a neighbour keeps working: what it writes through files/ and from its own code (fsync, sync)
  is kept; its filesystem never goes read-only behind a `running` status (a sandbox whose
  filesystem went read-only says `error` in `status`, with the reason in `info`);
- `new` fails with ENOSPC and the reason in words, and nothing of the failed sandbox is listed;
- a run either runs (its output and `exit` are there) or its close() fails with the errno:
  never a close() that returned 0 for code that did not run;
- `env` written while full is either the old or the new content, never something else;
- once space is free again, and after a SIGKILL and a new mount, every sandbox is listed and
  running, its files are intact, and `new` works; the kernel logged no I/O error, no aborted
  journal and no ext4 error for the sandboxes' disks.
"""

import errno
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import sbxtest
from sbxtest import read_text, unique, write_file

STATEFS_MB = 640
DISK = "128M"           # every sandbox's disk= (the mount's default)


def sh(*argv):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "%s: %s" % (" ".join(argv), r.stderr)
    return r.stdout


@pytest.fixture
def statefs(tmp_path):
    """A STATEFS_MB ext4 loop-mounted at tmp_path/statefs; everything under it is unmounted and
    its loop device freed at the end (a mount or loop device left behind fails the test)."""
    # under /tmp directly, as an operator's would be (not inside pytest's long temporary paths)
    img, mnt = tmp_path / "statefs.img", Path(tempfile.mkdtemp(prefix="sbxfd-", dir="/tmp"))
    with open(img, "wb") as f:
        f.truncate(STATEFS_MB << 20)
    sh("mkfs.ext4", "-q", "-F", "-m", "0", str(img))
    sh("mount", "-o", "loop", str(img), str(mnt))
    loop = [ln.split(":")[0] for ln in sh("losetup", "-j", str(img)).splitlines()]
    yield mnt
    left = []
    inner = [p for p in sbxtest.mountinfo_points() if p.startswith(str(mnt) + "/")]
    for p in sorted(inner, key=len, reverse=True):
        left.append("mount " + p)
        subprocess.run(["umount", "-l", p], capture_output=True)
    subprocess.run(["umount", str(mnt)], capture_output=True)
    if sbxtest.is_mounted(str(mnt)):
        left.append("the state filesystem could not be unmounted")
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    for dev in loop:
        if Path("/sys/block/%s/loop/backing_file" % os.path.basename(dev)).exists():
            subprocess.run(["losetup", "-d", dev], capture_output=True)
    for lb in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if lb.read_text().startswith(str(mnt) + "/"):
                left.append("loop device %s on %s" % (lb.parts[3], lb.read_text().strip()))
        except OSError:
            pass
    if not sbxtest.is_mounted(str(mnt)):
        shutil.rmtree(mnt, ignore_errors=True)
    assert not left, "left after the mount was stopped: %s" % left


def fill(path):
    """Writes zeros to PATH until the filesystem is full; returns the bytes written."""
    chunk = b"\0" * (1 << 20)
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                n += os.write(fd, chunk)
            except OSError as e:
                assert e.errno in (errno.ENOSPC, errno.EDQUOT), e
                break
        try:
            os.fsync(fd)
        except OSError:
            pass
    finally:
        os.close(fd)
    # what ext4 keeps back for metadata can still take small writes: take it too
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        while True:
            try:
                n += os.write(fd, b"\0" * 4096)
            except OSError:
                break
    finally:
        os.close(fd)
    return n


def sandbox_loops(state):
    """Loop devices whose backing file is under the state directory (the sandboxes' disks)."""
    out = set()
    for lb in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if lb.read_text().startswith(str(state) + "/"):
                out.add(lb.parts[3])
        except OSError:
            pass
    return out


def kernel_log():
    r = subprocess.run(["dmesg"], capture_output=True, text=True)
    return r.stdout.splitlines() if r.returncode == 0 else []


def disk_faults(lines, loops):
    pats = ("Buffer I/O error on dev %s", "Aborting journal on device %s",
            "EXT4-fs error (device %s)", "EXT4-fs (%s): Remounting filesystem read-only",
            "I/O error, dev %s")
    return [ln for ln in lines for lp in loops for p in pats if p % lp in ln]


def run_or_errno(box, lang, code):
    """A run as a user makes it. Either close() fails (-> its errno, which must be ENOSPC here),
    or the run ran (-> None, RunResult). A close() that returned 0 while `stdout` and `exit` are not this
    run's is a run that did not run."""
    marker = "run-%s" % os.urandom(4).hex()
    try:
        r = box.run(lang, code.replace("MARK", marker))
    except OSError as e:
        assert e.errno == errno.ENOSPC, "close() of a run failed with %s, not ENOSPC; errors:\n%s" % (
            errno.errorcode.get(e.errno, e.errno), box.mount.errors()[-1000:])
        return e.errno, None
    assert marker in r.stdout + r.stderr and r.exit is not None, (
        "close() returned 0 but stdout/stderr/exit are not this run's (%r): the run did not run "
        "or its output was lost" % r)
    return None, r


PROBE = "echo MARK; echo probe > /home/user/probe && sync && cat /home/user/probe\n"


def check_writable_or_error(box, may_refuse=False):
    """The sandbox's own filesystem takes a write and a sync (from its own code), or its status
    says error with the reason in info. may_refuse: a run may fail with ENOSPC (state full)."""
    err, r = run_or_errno(box, "sh", PROBE)
    if err is not None:
        assert may_refuse, "a run failed with ENOSPC although the state filesystem has room"
        return True
    if r.stdout.endswith("probe\n") and r.exit == 0:
        return True
    st = box.status()
    assert st == "error\n", ("%s cannot write its own filesystem (%r) and its status says %r"
                             % (box.name, r, st))
    info = box.info()
    assert info.get("error") or info.get("reason"), info
    return False


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.deadline(240)
def test_full_state_filesystem(statefs, mount_factory):
    log_before = len(kernel_log())
    m = mount_factory(state=str(statefs / "state"), disk=DISK)
    a = m.new(unique("nb"))
    b = m.new(unique("fill"))
    kept = {}
    for i in range(3):
        p = a.files("home/user/kept-%d.bin" % i)
        write_file(p, os.urandom(256 << 10))
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        kept[p] = sha(p)
    r = a.run("sh", "head -c 8M /dev/urandom > /home/user/inside.bin && sync && "
                    "sha256sum /home/user/inside.bin | cut -c1-64\n")
    assert r.exit == 0, r
    inside_sha = r.stdout.strip()
    old_env = "KEEP=1\n"
    write_file(a.path("env"), old_env)
    loops = sandbox_loops(statefs)

    # fill: the sandbox writes all it can, then a host file takes every block left
    r = b.run("sh", "dd if=/dev/zero of=/home/user/big bs=1M count=4096 2>&1 | tail -1; sync\n")
    hog = statefs / "hog"
    try:
        fill(hog)
        loops |= sandbox_loops(statefs)
        # the neighbour writes through files/ while the state filesystem is full
        p = a.files("home/user/during.bin")
        data = os.urandom(1 << 20)
        write_file(p, data)
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        assert open(p, "rb").read() == data
        # and from its own code (or the run is refused with ENOSPC: its output has no room)
        assert check_writable_or_error(a, may_refuse=True), "the neighbour went read-only"
        err, r = run_or_errno(a, "py", "print('MARK')\nprint(sum(range(10)))\n")
        assert err or (r.stdout.endswith("45\n") and r.exit == 0), r
        # new is refused, with the reason in words
        name = unique("nospace")
        rr = m.ctl("new " + name)
        assert rr.errno == errno.ENOSPC, rr
        assert rr.text.startswith("error: ") and len(rr.text) > 20, rr
        assert name not in m.sandboxes()
        # env written while full: all or nothing
        try:
            write_file(a.path("env"), "NEW=2\n")
            new_env = "NEW=2\n"
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
            new_env = None
        assert read_text(a.path("env")) in (old_env, new_env)
        for x in (a, b):
            st = x.status()
            assert st in ("running\n", "error\n"), (x.name, st)
    finally:
        if hog.exists():
            hog.unlink()
        os.sync()

    # space again: everything works, nothing was lost
    assert check_writable_or_error(a), "the neighbour %s went read-only" % a.name
    check_writable_or_error(b)
    for p, h in kept.items():
        assert sha(p) == h, "%s changed" % p
    r = a.run("sh", "sha256sum /home/user/inside.bin | cut -c1-64\n")
    assert r.stdout.strip() == inside_sha, r
    c = m.new(unique("after"))
    assert c.run("sh", "echo fresh\n").stdout == "fresh\n"

    # and after a crash
    m2 = m.remount(crash=True)
    for x in (a, b, c):
        y = m2.sandbox(x.name)
        assert x.name in m2.sandboxes()
        y.wait_status("running", timeout=15)
    a2 = m2.sandbox(a.name)
    for p, h in kept.items():
        assert sha(p) == h, "%s changed after the remount" % p
    r = a2.run("sh", "sha256sum /home/user/inside.bin | cut -c1-64\n")
    assert r.stdout.strip() == inside_sha, r
    assert check_writable_or_error(a2)

    log = kernel_log()
    faults = disk_faults(log[log_before:] if len(log) >= log_before else log, loops)
    assert not faults, "the kernel logged faults on the sandboxes' disks:\n" + "\n".join(faults[:20])
