"""test_locks.py - blocking locks through files/ hold no worker thread
(issue 10 item 4; docs/files.md "Locks").

A sandbox holds an flock on a file; a thousand host threads block on the same
lock through files/. Meanwhile another sandbox's `status` answers within
100 ms, ctl and files/ of other sandboxes work, Ctrl-C on a blocked `flock`
returns at once, and a kill of the holding sandbox answers within 1 s.
"""

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from sbxtest import read_text, write_file

WAITERS = 1000


class Blocked(threading.Thread):
    """Opens path and takes an exclusive lock (flock or a POSIX write lock), blocking."""

    def __init__(self, path, kind):
        super().__init__(daemon=True)
        self.path, self.kind = path, kind
        self.result = None

    def run(self):
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError as e:
            self.result = e.errno
            return
        try:
            if self.kind == "flock":
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                fcntl.lockf(fd, fcntl.LOCK_EX)
            self.result = 0
        except OSError as e:
            self.result = e.errno
        finally:
            os.close(fd)


def hold_inside(b, rel):
    """A background run that holds an flock on /rel inside until it is killed."""
    bg = b.run_bg("sh", "exec flock -x /%s -c 'touch /%s.held; sleep 600'\n" % (rel, rel))
    deadline = time.monotonic() + 20
    while not os.path.exists(b.files(rel + ".held")):
        assert time.monotonic() < deadline, "the sandbox did not take the lock"
        time.sleep(0.05)
    return bg


def timed(fn):
    t0 = time.monotonic()
    out = fn()
    return out, time.monotonic() - t0


@pytest.mark.deadline(180)
@pytest.mark.parametrize("kind", ["flock", "posix"])
def test_thousand_blocked_lockers_leave_the_mount_answering(box, mount, kind):
    holder, other = box(), box()
    rel = "home/user/lk"
    write_file(holder.files(rel), "x")
    if kind == "posix":
        # a POSIX lock inside, through Python in the sandbox, held until killed
        bg = holder.run_bg("py", "import fcntl, time\nf = open('/%s', 'r+')\nfcntl.lockf(f, fcntl.LOCK_EX)\n"
                                 "open('/%s.held', 'w').close()\ntime.sleep(600)\n" % (rel, rel))
        deadline = time.monotonic() + 20
        while not os.path.exists(holder.files(rel + ".held")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    else:
        bg = hold_inside(holder, rel)
    waiters = [Blocked(holder.files(rel), kind) for _ in range(WAITERS)]
    for w in waiters:
        w.start()
    time.sleep(1.0)
    assert all(w.result is None for w in waiters), "the lock is held: nobody got it"
    # the rest of the mount answers at once
    for _ in range(5):
        st, took = timed(lambda: read_text(other.path("status")))
        assert st == "running\n" and took < 0.1, took
    write_file(other.files("home/user/free"), "yes\n")
    assert read_text(other.files("home/user/free")) == "yes\n"
    r = other.run("sh", "echo alive\n")
    assert r.stdout == "alive\n", r
    # Ctrl-C on a blocked locker from the host returns at once
    if kind == "flock":
        p = subprocess.Popen(["flock", "-x", holder.files(rel), "true"])
    else:
        p = subprocess.Popen([sys.executable, "-c", "import fcntl, sys\nf = open(sys.argv[1], 'r+')\n"
                              "fcntl.lockf(f, fcntl.LOCK_EX)\n", holder.files(rel)],
                             stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    assert p.poll() is None, "the locker should be blocked"
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    p.wait(5)
    assert time.monotonic() - t0 < 1.0 and p.returncode != 0
    # kill of the holding sandbox answers within 1 s; the waiters then end
    r, took = timed(lambda: mount.ctl("kill " + holder.name))
    assert r.ok and took < 1.0, (r, took)
    for w in waiters:
        w.join(30)
    assert not [w for w in waiters if w.is_alive()], "waiters still blocked after the kill"
    bg.join(30)


def test_interrupted_lock_wait_leaves_no_lock(sb):
    """A waiter interrupted before it got the lock does not get it later behind the caller's back:
    after the holder lets go, a non-blocking lock from another open succeeds."""
    rel = "home/user/lk-int"
    write_file(sb.files(rel), "x")
    holder = os.open(sb.files(rel), os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    p = subprocess.Popen(["flock", "-x", sb.files(rel), "sleep", "600"])
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    p.wait(5)
    fcntl.flock(holder, fcntl.LOCK_UN)
    os.close(holder)
    time.sleep(0.2)
    fd = os.open(sb.files(rel), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
