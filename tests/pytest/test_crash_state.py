"""test_crash_state.py - what a daemon killed with SIGKILL leaves is finished by the next
start (issue 11, items 2 and 3): a run cut off ends with exit 137 and a line in stderr saying
why; a kill cut off is completed, and the sandbox is never listed again.

Run: SBXFS_BIN=build/sbxfs /usr/bin/python3 -m pytest -q tests/pytest/test_crash_state.py
"""

import json
import os
import threading
import time

import pytest

import sbxtest
from sbxtest import assert_gone, read_text, unique, write_file

STOPPED_LINE = "sbxfs: the daemon stopped during this run"


def wait_for_text(path, text, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if text in read_text(path):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("%r never appeared in %s" % (text, path))


def run_in_background(path, code):
    """Writes code to a run file in a thread; its close() fails when the daemon dies."""
    t = threading.Thread(target=lambda: _swallow(write_file, path, code), daemon=True)
    t.start()
    return t


def _swallow(fn, *args):
    try:
        fn(*args)
    except OSError:
        pass


def assert_ended_by_crash(d, run_no):
    """d: a sandbox or context directory whose run run_no the daemon's death cut off."""
    assert os.path.exists(os.path.join(d, "exit")), "exit is missing after the remount"
    assert read_text(os.path.join(d, "exit")) == "137\n"
    assert read_text(os.path.join(d, "wait")) == "137\n"
    run = os.path.join(d, "runs", str(run_no))
    assert read_text(os.path.join(run, "exit")) == "137\n"
    err = read_text(os.path.join(d, "stderr"))
    assert STOPPED_LINE in err, err
    assert read_text(os.path.join(run, "stderr")) == err
    info = json.loads(read_text(os.path.join(run, "info")))
    assert info["exit"] == 137 and info["interrupted"] is True, info


@pytest.mark.deadline(120)
def test_run_cut_off_by_a_crash_ends_with_137(mount_factory):
    m = mount_factory()
    b = m.new(unique("cr"))
    assert b.run("sh", "echo first\n").exit == 0
    t = run_in_background(b.path("run.sh"), "echo started; sleep 60; echo never\n")
    wait_for_text(b.path("stdout"), "started")
    assert not os.path.exists(b.path("exit"))

    m2 = m.remount(crash=True)
    t.join(10)
    b = m2.sandbox(b.name)
    assert_ended_by_crash(b.path(), 2)
    assert read_text(b.path("stdout")) == "started\n"
    assert read_text(b.path("runs", "1", "exit")) == "0\n", "a finished run was changed"
    # The sandbox goes on: the next run is number 3 and ends normally.
    r = b.run("sh", "echo after\n")
    assert (r.stdout, r.exit) == ("after\n", 0), r
    assert sorted(os.listdir(b.path("runs")), key=int) == ["1", "2", "3"]


@pytest.mark.deadline(120)
def test_context_run_cut_off_by_a_crash_ends_with_137(mount_factory):
    m = mount_factory()
    b = m.new(unique("cc"))
    c = b.path("contexts", "c1")
    os.mkdir(c)
    write_file(os.path.join(c, "run.py"), "x = 41\n")
    t = run_in_background(os.path.join(c, "run.py"),
                          "import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    wait_for_text(os.path.join(c, "stdout"), "started")

    m2 = m.remount(crash=True)
    t.join(10)
    b = m2.sandbox(b.name)
    assert_ended_by_crash(c, 2)
    # The context still works; its interpreter is a new one.
    write_file(os.path.join(c, "run.py"), "print('again')\n")
    assert read_text(os.path.join(c, "stdout")) == "again\n"
    assert read_text(os.path.join(c, "exit")) == "0\n"


def _mark(m, name, flag):
    p = os.path.join(str(m.state), "sandboxes", name, "sandbox.json")
    with open(p) as f:
        st = json.load(f)
    st[flag] = True
    with open(p, "w") as f:
        json.dump(st, f)


@pytest.mark.deadline(120)
@pytest.mark.parametrize("flag", ["killing", "creating"])
def test_kill_cut_off_by_a_crash_is_finished_at_the_next_start(mount_factory, flag):
    """A crash between the record of a kill and its end, or in the middle of a `new` (that
    never said ok): simulated, the record is made by hand while the daemon is dead, and on
    local the agent's socket is already gone as a half-done destroy leaves it. The next
    start finishes it as a kill: never listed, nothing left."""
    m = mount_factory()
    a, keep = m.new(unique("ck")), m.new(unique("ckeep"))
    sid = a.info()["id"]
    paths = a.state_paths()
    m.kill_daemon()
    _mark(m, a.name, flag)
    sock = os.path.join(str(m.state), "sandboxes", a.name, "backend", "agent.sock")
    if m.backend == "local" and os.path.exists(sock):
        os.unlink(sock)
    m2 = m.remount(crash=True)
    assert a.name not in m2.sandboxes()
    assert_gone(m2, a.name, sid, paths)
    assert keep.name in m2.sandboxes()
    r = m2.sandbox(keep.name).run("sh", "echo kept\n")
    assert r.stdout == "kept\n", r


@pytest.mark.deadline(150)
def test_crash_during_a_series_of_kills(mount_factory):
    """Kills in flight when the daemon dies: after the remount each sandbox is either gone
    without a trace or listed and working, never listed but broken."""
    m = mount_factory()
    boxes = [m.new(unique("cs%d" % i)) for i in range(4)]
    ids = {b.name: (b.info()["id"], b.state_paths()) for b in boxes}
    threads = [threading.Thread(target=_swallow, args=(m.ctl, "kill " + b.name), daemon=True)
               for b in boxes]
    for t in threads:
        t.start()
        time.sleep(0.02)
    time.sleep(0.05)
    m2 = m.remount(crash=True)
    for t in threads:
        t.join(10)
    listed = m2.sandboxes()
    for name, (sid, paths) in ids.items():
        if name in listed:
            b = m2.sandbox(name)
            b.wait_status("running", timeout=20)
            r = b.run("sh", "echo alive\n")
            assert r.stdout == "alive\n", (name, r)
            assert m2.ctl("kill " + name).ok
        assert_gone(m2, name, sid, paths)


def test_a_failed_state_write_fails_the_command_and_changes_nothing(mount_factory):
    """A state write that fails (simulated: the sandbox's state directory made immutable, so
    its temporary file cannot be made; a full disk or an I/O error take the same path) fails
    the command with the errno and the reason in `errors`, and nothing changes, on disk or in
    what the mount shows; once the directory is writable again, the same commands work."""
    import errno
    import subprocess

    m = mount_factory()
    b = m.new(unique("sw"), "ttl=600", "timeout=60", "env.A=1")
    assert b.run("sh", "echo first\n").exit == 0   # runs/ exists: runs are not state writes
    d = os.path.join(str(m.state), "sandboxes", b.name)
    subprocess.run(["chattr", "+i", d], check=True)
    try:
        with pytest.raises(OSError) as e:
            write_file(b.path("env"), "A=2\n")
        assert e.value.errno == errno.EPERM
        for cmd in ("ttl 99", "timeout 7"):
            r = b.ctl(cmd)
            assert r.errno == errno.EPERM and "cannot save the state" in r.text, r
        assert "cannot save the state of sandbox '%s'" % b.name in m.errors()
        assert read_text(b.path("env")) == "A=1\n"
        info = b.info()
        assert (info["ttl"], info["timeout"]) == (600, 60), info
        r = b.run("sh", 'echo "$A"\n')
        assert r.stdout == "1\n", r
    finally:
        subprocess.run(["chattr", "-i", d], check=True)
    write_file(b.path("env"), "A=3\n")
    assert b.ctl("ttl 99").ok
    m2 = m.remount(crash=True)
    b = m2.sandbox(b.name)
    assert read_text(b.path("env")) == "A=3\n" and b.info()["ttl"] == 99


def test_new_cut_off_before_its_first_record_is_removed(mount_factory):
    """A crash between the state directory's mkdir and the first sandbox.json (the crash soak
    found it): the next start removes the directory, lists nothing, and the name is free."""
    m = mount_factory()
    name = unique("half")
    m.kill_daemon()
    sbxtest.unmount(m.mnt)
    half = os.path.join(str(m.state), "sandboxes", name)
    os.makedirs(os.path.join(half, "backend"))
    with open(os.path.join(half, ".sandbox.json.tmp-1"), "w") as f:
        f.write("{")
    m2 = sbxtest.Mount(m.workdir, m.backend, m.opts, m.registry, m.state, m.mnt).start()
    assert name not in m2.sandboxes()
    assert not os.path.exists(half)
    assert "skipping sandbox" not in m2.log()
    b = m2.new(name)
    assert b.run("sh", "echo made\n").stdout == "made\n"
    assert m2.ctl("kill " + name).ok
