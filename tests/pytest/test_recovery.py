"""test_recovery.py - a daemon killed with SIGKILL, or unmounted, loses nothing;
a new mount re-attaches every sandbox (issue 2, Recovery)."""

import json
import os
import time

import pytest

from sbxtest import Mount, assert_gone, read_text, unique, write_file


@pytest.mark.deadline(90)
def test_sigkill_and_remount_keeps_everything(mount_factory):
    m = mount_factory()
    a = m.new(unique("ra"), "env.FOO=alpha", "ttl=600")
    b = m.new(unique("rb"))
    write_file(a.files("home/user/r.txt"), "file of a\n")
    write_file(b.files("home/user/r.txt"), "file of b\n")
    b.run("sh", "mkdir -p /home/user/sub && echo made inside > /home/user/sub/in.txt\n")
    write_file(b.path("env"), "BAR=beta\n")
    ids = {x.name: x.info()["id"] for x in (a, b)}
    state = {x.name: x.state_paths() for x in (a, b)}
    for n, s in state.items():
        assert s, "cannot find the state of %s under %s" % (n, m.state)
    expires = a.info()["expires_unix"]

    m2 = m.remount(crash=True)
    a, b = m2.sandbox(a.name), m2.sandbox(b.name)
    assert {a.name, b.name} <= set(os.listdir(m2.mnt))
    for x in (a, b):
        x.wait_status("running", timeout=10)
        assert x.info()["id"] == ids[x.name]
    assert a.info()["expires_unix"] == expires, "remaining TTL changed across the remount"
    assert read_text(a.files("home/user/r.txt")) == "file of a\n"
    assert read_text(b.files("home/user/r.txt")) == "file of b\n"
    assert read_text(b.files("home/user/sub/in.txt")) == "made inside\n"
    assert "FOO=alpha" in read_text(a.path("env")).splitlines()
    assert read_text(b.path("env")).splitlines() == ["BAR=beta"]
    r = a.run("sh", 'echo "$FOO"; cat /home/user/r.txt\n')
    assert r.stdout == "alpha\nfile of a\n" and r.exit == 0, r
    r = b.run("py", "import os\nprint(os.environ['BAR'], open('/home/user/r.txt').read(), end='')\n")
    assert r.stdout == "beta file of b\n", r

    r = m2.ctl("kill " + a.name)
    assert r.ok, r
    assert_gone(m2, a.name, ids[a.name], state[a.name])
    os.rmdir(m2.path(b.name))
    assert_gone(m2, b.name, ids[b.name], state[b.name])


@pytest.mark.deadline(60)
def test_sandbox_processes_survive_daemon_crash(mount_factory):
    """The daemon dies while a run is in progress: the new mount re-attaches
    the sandbox and runs code in it."""
    m = mount_factory()
    b = m.new(unique("rp"))
    bg = b.run_bg("sh", "for i in $(seq 30); do echo $i >> /home/user/tick; sleep 0.1; done\n")
    time.sleep(0.5)
    m2 = m.remount(crash=True)
    bg.join(10)
    b = m2.sandbox(b.name)
    b.wait_status("running", timeout=10)
    r = b.run("sh", "echo still here\n")
    assert r.stdout == "still here\n", r


@pytest.mark.deadline(60)
def test_clean_unmount_keeps_sandboxes(mount_factory):
    m = mount_factory()
    b = m.new(unique("ru"), "env.K=v")
    write_file(b.files("home/user/u.txt"), "unmounted\n")
    b.run("sh", "echo last run\n")
    m2 = m.remount(crash=False)
    b = m2.sandbox(b.name)
    assert b.name in os.listdir(m2.mnt)
    b.wait_status("running", timeout=10)
    assert read_text(b.files("home/user/u.txt")) == "unmounted\n"
    r = b.run("sh", 'echo "$K"\n')
    assert r.stdout == "v\n", r


@pytest.mark.deadline(60)
def test_mount_options_set_defaults(mount_factory):
    m = mount_factory(ttl="0", timeout="5", mem="128M", pids="50")
    b = m.new(unique("ro"))
    info = b.info()
    assert info["ttl"] == 0 and info["expires"] is None
    assert info["timeout"] == 5
    assert info["limits"]["mem"] == 128 << 20 and info["limits"]["pids"] == 50


@pytest.mark.deadline(60)
def test_hand_edited_env_in_state_loads(mount_factory):
    """A careless edit of sandbox.json while unmounted (a null and a number in env) must not
    crash the next daemon: the strings stay the sandbox's environment, the rest is ignored."""
    m = mount_factory()
    b = m.new(unique("he"), "env.A=1", "env.B=2")
    path = os.path.join(m.state, "sandboxes", b.name, "sandbox.json")
    assert m.stop() is None
    with open(path) as f:
        st = json.load(f)
    assert st["env"] == ["A=1", "B=2"], st["env"]
    st["env"] = ["A=1", None, 5, {"x": 1}, "B=2"]
    with open(path, "w") as f:
        json.dump(st, f)
    m2 = Mount(m.workdir, m.backend, m.opts, m.registry, m.state, m.mnt).start()
    b = m2.sandbox(b.name)
    b.wait_status("running", timeout=10)
    assert read_text(b.path("env")).splitlines() == ["A=1", "B=2"]
    r = b.run("sh", 'echo "$A $B"\n')
    assert r.stdout == "1 2\n" and r.exit == 0, r
