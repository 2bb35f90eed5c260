"""test_events.py - the root `events` file (issue 18): one line per lifecycle
event, a backlog that survives a daemon SIGKILL, reads that wait at the end
(interrupted at once by Ctrl-C, O_NONBLOCK gets EAGAIN), inotify IN_MODIFY,
and blocked readers that cost a create nothing."""

import errno
import os
import re
import signal
import statistics
import subprocess
import threading
import time

import pytest

from sbxtest import read_text, unique

LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+)(?: (.*))?$")


def backlog(m):
    """What a non-blocking reader gets now: every line kept."""
    fd = os.open(m.path("events"), os.O_RDONLY | os.O_NONBLOCK)
    data = b""
    try:
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return data.decode()


def events_of(m, name):
    out = []
    for line in backlog(m).splitlines():
        g = LINE_RE.match(line)
        assert g, "malformed events line %r" % line
        if g.group(3) == name:
            out.append((g.group(2), g.group(4) or ""))
    return out


def wait_for_event(m, name, event, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if event in [e for e, _ in events_of(m, name)]:
            return
        time.sleep(0.1)
    raise AssertionError("no %r event for %s in %r" % (event, name, events_of(m, name)))


def test_scripted_lifecycle_in_order(mount):
    a = mount.new(unique("ev"), "ttl=600")
    b = mount.new(unique("ev"))
    a.ctl_ok("pause")
    a.ctl_ok("resume")
    a.ctl_ok("restart")
    a.ctl_ok("ttl 1")
    assert mount.ctl("kill " + b.name).ok
    wait_for_event(mount, a.name, "expired")
    got = events_of(mount, a.name)
    assert [e for e, _ in got] == ["created", "paused", "resumed", "restarted", "expired"], got
    assert got[0][1] == "template=default", got
    assert [e for e, _ in events_of(mount, b.name)] == ["created", "killed"]
    # The time stamps are UTC and in order.
    stamps = [LINE_RE.match(line).group(1) for line in backlog(mount).splitlines()]
    assert stamps == sorted(stamps)


def test_failed_create_is_not_an_event_but_mkdir_is(mount):
    name = unique("ev")
    r = mount.ctl("new %s template=no-such-template" % name)
    assert r.errno == errno.ENOENT, r
    assert events_of(mount, name) == []
    os.mkdir(mount.path(name))
    os.rmdir(mount.path(name))
    assert [e for e, _ in events_of(mount, name)] == ["created", "killed"]


@pytest.mark.deadline(90)
def test_backlog_survives_sigkill_and_remount(mount_factory):
    m = mount_factory()
    a = m.new(unique("ev"))
    a.ctl_ok("pause")
    before = events_of(m, a.name)
    m2 = m.remount(crash=True)
    assert events_of(m2, a.name) == before == [("created", "template=default"), ("paused", "")]
    m2.sandbox(a.name).ctl_ok("resume")
    assert m2.ctl("kill " + a.name).ok
    assert [e for e, _ in events_of(m2, a.name)] == ["created", "paused", "resumed", "killed"]
    # On disk: one line per event, each after its owner ("-": not yet known).
    log = (m2.state / "events.log").read_text()
    assert ("- " in log) and a.name in log


def test_nonblocking_reader_at_the_end_gets_eagain(mount):
    fd = os.open(mount.path("events"), os.O_RDONLY | os.O_NONBLOCK)
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, size, os.SEEK_SET)
        with pytest.raises(BlockingIOError):
            os.read(fd, 100)
    finally:
        os.close(fd)


def test_blocked_reader_gets_the_next_line_and_ctrl_c_returns_at_once(mount):
    size = os.stat(mount.path("events")).st_size
    fd = os.open(mount.path("events"), os.O_RDONLY)
    got = []

    def reader():
        got.append(os.pread(fd, 4096, size))

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.5)
    assert t.is_alive(), "a read at the end did not wait: %r" % got
    name = unique("ev")
    mount.new(name)
    t.join(10)
    os.close(fd)
    assert not t.is_alive()
    assert re.match(r"^\S+ created %s template=default\n$" % name, got[0].decode()), got

    # Ctrl-C: cat blocked at the end returns at once.
    p = subprocess.Popen(["cat", mount.path("events")], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.7)
        assert p.poll() is None, "cat did not wait at the end of events"
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        p.wait(5)
        assert time.monotonic() - t0 < 0.5
        assert p.returncode == -signal.SIGINT
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    mount.ctl("kill " + name)


def test_tail_f_and_inotifywait_see_new_events(mount):
    tail = subprocess.Popen(["tail", "-n", "0", "-f", mount.path("events")], stdout=subprocess.PIPE,
                            text=True)
    inw = subprocess.Popen(["inotifywait", "-q", "-t", "20", "-e", "modify", mount.path("events")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)     # both are set up
        name = unique("ev")
        mount.new(name)
        out, err = inw.communicate(timeout=20)
        assert inw.returncode == 0 and "MODIFY" in out, (out, err)
        line = tail.stdout.readline()
        assert " created %s " % name in line, line
    finally:
        for p in (tail, inw):
            if p.poll() is None:
                p.kill()
            p.wait()
    mount.ctl("kill " + name)


def create_ms(mount, n=8):
    times = []
    for _ in range(n):
        name = unique("evc")
        t0 = time.monotonic()
        mount.new(name)
        times.append((time.monotonic() - t0) * 1000)
        assert mount.ctl("kill " + name).ok
    return statistics.median(times)


@pytest.mark.deadline(120)
def test_100_blocked_readers_do_not_slow_create(mount):
    """100 `cat events` at its end, as 100 followers would be: each create wakes
    them all (they print the line and wait again), and costs what it costs
    without them; they hold no daemon thread; SIGKILL ends each at once."""
    base = create_ms(mount)
    cats = [subprocess.Popen(["cat", mount.path("events")], stdout=subprocess.PIPE)
            for _ in range(100)]
    try:
        time.sleep(1.5)
        assert all(p.poll() is None for p in cats)
        nthreads = len(os.listdir("/proc/%d/task" % mount.proc.pid))
        assert nthreads < 60, "%d daemon threads with 100 blocked readers" % nthreads
        loaded = create_ms(mount)
        assert loaded <= base * 2.5 + 50, "create took %.1f ms with 100 readers, %.1f ms without" % (
            loaded, base)
        name = unique("evc")
        mount.new(name)
        mount.ctl("kill " + name)
        time.sleep(1.0)
    finally:
        for p in cats:
            p.kill()
        t0 = time.monotonic()
        outs = [p.communicate(timeout=10)[0].decode() for p in cats]
        assert time.monotonic() - t0 < 5
    for out in outs:
        assert " created %s " % name in out and " killed %s" % name in out, out[-300:]


def test_poll_says_when_a_line_comes(mount):
    """An event loop polls `events`: not readable at the end, readable when a line comes."""
    import select
    fd = os.open(mount.path("events"), os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                if not os.read(fd, 1 << 16):
                    break
            except BlockingIOError:
                break
        p = select.poll()
        p.register(fd, select.POLLIN)
        assert p.poll(0) == [], "readable at the end of events"
        name = unique("ev")
        threading.Timer(0.5, lambda: mount.new(name)).start()
        t0 = time.monotonic()
        got = p.poll(10000)
        assert got and got[0][1] & select.POLLIN, got
        assert time.monotonic() - t0 < 5
        assert " created %s " % name in os.read(fd, 4096).decode()
        assert p.poll(0) == []
    finally:
        os.close(fd)
    time.sleep(0.3)
    mount.ctl("kill " + name)
