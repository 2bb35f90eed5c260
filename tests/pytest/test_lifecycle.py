"""test_lifecycle.py - create, list, status, info, metrics, kill, pause/resume,
TTL, restart (issue 2, Lifecycle)."""

import json
import os
import time

import pytest

from sbxtest import assert_gone, processes, read_text, unique, write_file


def test_create_by_ctl_lists_and_runs(mount, box):
    b = box()
    assert b.name in os.listdir(mount.mnt)
    assert os.path.isdir(mount.path(b.name))
    assert b.status() == "running\n"
    for f in ("ctl", "status", "info", "metrics", "env", "files", "run.py", "run.js", "run.sh",
              "stdout", "stderr"):
        assert os.path.exists(b.path(f)), f


def test_create_by_mkdir(mount):
    name = unique("mk")
    os.mkdir(mount.path(name))
    b = mount.sandbox(name)
    try:
        assert name in os.listdir(mount.mnt)
        assert b.status() == "running\n"
        info = b.info()
        assert info["name"] == name and info["template"] == "default"
        assert b.run("sh", "echo made-by-mkdir\n").stdout == "made-by-mkdir\n"
    finally:
        mount.ctl("kill " + name)


def test_info_fields(mount, box):
    t0 = time.time()
    b = box("ttl=300", "timeout=7", "mem=256M", "cpus=0.5", "pids=100", "meta.owner=alice")
    info = b.info()
    assert info["name"] == b.name
    assert isinstance(info["id"], str) and info["id"]
    assert info["template"] == "default"
    assert info["backend"] == mount.backend
    assert info["status"] == "running"
    assert info["ttl"] == 300 and info["timeout"] == 7
    assert abs(info["created_unix"] - t0) < 60
    assert info["created"].endswith("Z") and info["created"][10] == "T"
    assert info["expires"].endswith("Z")
    assert abs(info["expires_unix"] - info["created_unix"] - 300) <= 2
    lim = info["limits"]
    assert lim["mem"] == 256 << 20
    assert abs(lim["cpus"] - 0.5) < 1e-9
    assert lim["pids"] == 100
    assert isinstance(lim["disk"], int)
    assert info["meta"] == {"owner": "alice"}


def test_defaults_in_info(mount, box):
    info = box().info()
    lim = info["limits"]
    # formats.md mount defaults
    assert info["ttl"] == 600 and info["timeout"] == 60
    assert lim == {"mem": 512 << 20, "cpus": 1.0, "pids": 256, "disk": 1 << 30}
    assert info["meta"] == {}


def test_quoted_values(mount, box):
    b = box('env.GREETING="hello world"', "meta.owner='a b'")
    assert b.info()["meta"] == {"owner": "a b"}
    assert b.run("sh", 'printf "%s\\n" "$GREETING"\n').stdout == "hello world\n"


def test_metrics_json(mount, box):
    b = box("mem=256M")
    m = json.loads(b.read("metrics"))
    for k in ("cpu_seconds", "cpu_percent", "memory_bytes", "memory_limit_bytes", "pids",
              "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"):
        assert k in m, k
        assert isinstance(m[k], (int, float)) and m[k] >= 0, (k, m[k])
    assert m["memory_limit_bytes"] == 256 << 20


def _kill_check(mount, b, how):
    sid = b.info()["id"]
    state = b.state_paths()
    assert state, "cannot find the state of %s (id %s) under %s" % (b.name, sid, mount.state)
    how()
    assert_gone(mount, b.name, sid, state)


def test_kill_by_ctl(mount):
    b = mount.new(unique("kc"))
    bg = b.run_bg("sh", "sleep 300\n")  # a run in progress must die too
    time.sleep(0.5)

    def how():
        r = mount.ctl("kill " + b.name)
        assert r.ok and r.text == "ok\n", r
    _kill_check(mount, b, how)
    bg.join(10)
    assert not bg.is_alive(), "close() of run.sh still blocked after the kill"


def test_kill_by_rmdir(mount):
    b = mount.new(unique("kr"))
    write_file(b.files("home/user/data.txt"), "x")
    _kill_check(mount, b, lambda: os.rmdir(mount.path(b.name)))


def test_kill_by_sandbox_ctl(mount):
    b = mount.new(unique("ks"))
    _kill_check(mount, b, lambda: b.ctl_ok("kill"))


def _lines(path):
    try:
        return read_text(path).split()
    except FileNotFoundError:
        return []


COUNTER = """i=0
while [ ! -e /home/user/stop ]; do
  i=$((i+1)); echo $i >> /home/user/count; sleep 0.1
done
"""


@pytest.mark.deadline(60)
def test_pause_stops_and_resume_continues(mount, box):
    b = box()
    count = b.files("home/user/count")
    bg = b.run_bg("sh", COUNTER)
    try:
        deadline = time.monotonic() + 10
        while len(_lines(count)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_lines(count)) >= 3, "the counting loop did not start"
        b.ctl_ok("pause")
        assert b.status() == "paused\n"
        time.sleep(0.3)
        n1 = len(_lines(count))
        time.sleep(1.2)
        n2 = len(_lines(count))
        assert n2 == n1, "counter went on while paused: %d -> %d" % (n1, n2)
        b.ctl_ok("resume")
        assert b.status() == "running\n"
        deadline = time.monotonic() + 5
        while len(_lines(count)) <= n1 + 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_lines(count)) > n1 + 3, "counter did not go on after resume"
    finally:
        try:
            write_file(b.files("home/user/stop"), "")
        except OSError:
            pass
    res = bg.finish(20)
    assert res.exit == 0, res


@pytest.mark.deadline(40)
def test_ttl_expiry_kills(mount):
    b = mount.new(unique("ttl"), "ttl=2")
    t0 = time.monotonic()   # before state_paths(): on docker it asks the engine, which takes a while
    sid = b.info()["id"]
    state = b.state_paths()
    assert b.name in mount.sandboxes()
    while b.name in mount.sandboxes() and time.monotonic() - t0 < 8:
        time.sleep(0.2)
    gone_after = time.monotonic() - t0
    assert b.name not in mount.sandboxes(), "sandbox with ttl=2 still there after 8 s"
    assert gone_after >= 1.0, "sandbox with ttl=2 vanished after %.1fs" % gone_after
    assert_gone(mount, b.name, sid, state)


@pytest.mark.deadline(40)
def test_ttl_zero_keeps(mount, box):
    b = box("ttl=2")
    b.ctl_ok("ttl 0")
    info = b.info()
    assert info["ttl"] == 0 and info["expires"] is None and info["expires_unix"] is None
    time.sleep(4)
    assert b.name in mount.sandboxes()
    assert b.status() == "running\n"


def test_restart_keeps_files(mount, box):
    b = box()
    write_file(b.files("home/user/keep.txt"), "kept\n")
    b.run("sh", "echo inside > /home/user/inside.txt\n")
    b.ctl_ok("restart")
    b.wait_status("running")
    assert read_text(b.files("home/user/keep.txt")) == "kept\n"
    r = b.run("sh", "cat /home/user/keep.txt /home/user/inside.txt\n")
    assert r.stdout == "kept\ninside\n" and r.exit == 0, r


def test_restart_ends_processes(mount, box):
    b = box()
    bg = b.run_bg("sh", "sleep 300\n")
    time.sleep(0.5)
    b.ctl_ok("restart")
    bg.join(10)
    assert not bg.is_alive(), "close() of run.sh still blocked after restart"
    b.wait_status("running")
    procs = processes(b)   # without docker's tini, `sleep infinity` and run wrapper
    assert "sleep" not in [p[2] for p in procs], procs
