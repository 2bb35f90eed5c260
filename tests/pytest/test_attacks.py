"""test_attacks.py - what a red-team pass found, one regression test per defect:
a careless operator, a careless client, or code inside a sandbox."""

import errno
import os
import subprocess
import time

import pytest

import sbxtest
from sbxtest import Mount, MountError


def test_second_daemon_on_the_same_state_is_refused(mount_factory, tmp_path):
    """An operator starts sbxfs again with the state of one that runs (a second
    fstab line, a remount without unmounting first). Two daemons would each
    attach every sandbox, reap its TTL, number its runs and save its
    sandbox.json: the second must refuse to start and mount nothing; the first
    goes on; after a SIGKILL of the first, a new daemon on that state starts."""
    m = mount_factory()
    b = m.new()
    assert b.run("sh", "echo one\n").stdout == "one\n"

    other = Mount(tmp_path / "other", m.backend, state=m.state, registry=m.registry)
    os.makedirs(other.workdir, exist_ok=True)
    with pytest.raises(MountError) as e:
        other.start()
    assert "in use by another sbxfs" in str(e.value), e.value
    assert not sbxtest.is_mounted(other.mnt)
    assert not other.alive()
    other.checked = len(other.log())    # its refusal is the expected complaint

    # the first daemon is untouched
    assert b.name in m.sandboxes()
    assert b.run("sh", "echo two\n").stdout == "two\n"

    # the lock goes with the daemon, SIGKILL too: the next start gets it
    m2 = m.remount(crash=True)
    b2 = m2.sandbox(b.name)
    assert b2.run("sh", "echo three\n").stdout == "three\n"
    assert m2.ctl("kill " + b.name).ok, m2.errors()


def test_daemon_of_the_other_backend_is_refused_the_state(mount_factory, tmp_path):
    """An operator mounts a state directory again with the other backend. That
    daemon listed every sandbox as stopped, and its `kill` said ok and removed
    the record while the sandbox's processes, cgroups and host id block lived
    on, reachable by no daemon. Now the state says whose it is and the other
    backend's daemon refuses to start (before it needs its engine)."""
    m = mount_factory()
    b = m.new()
    assert b.run("sh", "echo one\n").stdout == "one\n"
    assert m.stop() is None                  # sandboxes outlive the unmount

    other_backend = "docker" if m.backend == "local" else "local"
    other = Mount(tmp_path / "other", other_backend, state=m.state, registry=m.registry)
    os.makedirs(other.workdir, exist_ok=True)
    with pytest.raises(MountError) as e:
        other.start()
    assert "belongs to the %s backend, not %s" % (m.backend, other_backend) in str(e.value), e.value
    assert not sbxtest.is_mounted(other.mnt)
    other.checked = len(other.log())

    m2 = Mount(m.workdir, m.backend, m.opts, m.registry, m.state, m.mnt).start()
    b2 = m2.sandbox(b.name)
    assert b.name in m2.sandboxes()
    assert b2.run("sh", "echo two\n").stdout == "two\n"
    assert m2.ctl("kill " + b.name).ok, m2.errors()


def wait_for(pred, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_truncating_env_empties_it_and_a_refused_write_keeps_it(sb):
    """A careless client clears the environment as it would clear any file:
    `: > env` or `truncate -s 0 env`. Both succeeded and changed nothing, so
    runs kept the variables the user meant to drop. And a refused write
    (`echo BAD > env`, truncated by the shell first) must leave env whole."""
    env = sb.path("env")

    def env_now():
        return sbxtest.read_text(env)

    for clear in (": > env", "truncate -s 0 env"):
        sbxtest.write_file(env, "SECRET=1\nB=2\n")
        assert env_now() == "SECRET=1\nB=2\n"
        subprocess.run(["bash", "-c", clear], cwd=sb.path(), check=True)
        # applied at the last close, which the kernel sends after close() returned
        assert wait_for(lambda: env_now() == ""), (clear, env_now())
        r = sb.run("sh", 'echo "[${SECRET-unset}]"\n')
        assert r.stdout == "[unset]\n", (clear, r)

    sbxtest.write_file(env, "A=1\nB=2\n")
    subprocess.run(["bash", "-c", "echo BAD > env"], cwd=sb.path())   # bash ignores close()'s error
    with pytest.raises(OSError) as e:
        sbxtest.write_file(env, "BAD\n")
    assert e.value.errno == errno.EINVAL
    time.sleep(0.2)          # any late release of those opens has come
    assert env_now() == "A=1\nB=2\n"
    assert sb.run("sh", 'echo "$A$B"\n').stdout == "12\n"

    # an ordinary replacement through the shell is one change, not an empty env then the new one
    subprocess.run(["bash", "-c", "echo C=3 > env"], cwd=sb.path(), check=True)
    assert env_now() == "C=3\n"
    sbxtest.write_file(env, "")


def test_a_run_has_one_name(sb):
    """`runs/N` took whatever strtoull takes: " 1", "+1" and "\\t1" were run 1
    too, each a directory of its own inode that no listing showed."""
    r = sb.run("sh", "echo hi\n")
    assert r.exit == 0
    n = max(int(x) for x in os.listdir(sb.path("runs")))
    assert sbxtest.read_text(sb.path("runs", str(n), "stdout")) == "hi\n"
    for alias in (" %d" % n, "+%d" % n, "\t%d" % n, " +%d" % n, "0%d" % n, "%d " % n, "-%d" % n):
        assert not os.path.exists(sb.path("runs", alias)), repr(alias)
