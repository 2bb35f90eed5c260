"""test_hostile.py - code that attacks the machinery running it (issue 10):
runs that try never to end, and the host side that ends them anyway."""

import errno
import os
import grp
import json
import pwd
import subprocess
import time

import pytest

import sbxtest

# What the docker backend does not do yet (docs/docker-backend.md, "Differences from local").
DOCKER_IDS_GAP = ("every docker sandbox's runs are host uid 1000 (or, on an engine with "
                  "userns-remap, one remapped uid for all), their run wrapper too")


@pytest.mark.deadline(90)
@pytest.mark.parametrize("how", ["kill -STOP 2", "kill -STOP -1", "kill -STOP 1 2; kill -STOP -1"])
def test_run_that_stops_the_agent_still_times_out(mount, box, how):
    """The code stops the agent and every process it may signal (itself
    included): close() still returns at the timeout with 124, and the next
    run works."""
    b = box("timeout=2")
    r = b.run("sh", "%s 2>/dev/null\nsleep 60\n" % how)
    assert r.exit == 124, r
    assert r.seconds < 2 + 2, r
    r = b.run("sh", "echo alive\n")
    assert r.exit == 0 and r.stdout == "alive\n", r
    assert b.status() == "running\n"


@pytest.mark.deadline(90)
def test_run_of_paused_sandbox_ends_at_its_timeout(box):
    """A run in progress when the sandbox is paused: close() returns at the
    timeout with 124 (the run is killed once the sandbox resumes)."""
    b = box("timeout=3")
    t0 = time.monotonic()
    bg = b.run_bg("sh", "echo started; sleep 60; echo never\n")
    deadline = time.monotonic() + 10
    while b.read("stdout") != "started\n":
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    b.ctl_ok("pause")
    res = bg.finish(timeout=20)
    took = bg.done_at - t0
    assert res.exit == 124, res
    assert 3 - 0.5 < took < 3 + 2, took
    assert b.status() == "paused\n"
    b.ctl_ok("resume")
    r = b.run("sh", "ps -eo args | grep -c '[s]leep 60' || true\n")
    assert r.exit == 0 and r.stdout.strip() == "0", r


# ---- ids of their own (issue 10 item 3) ----

INOTIFY_HOG = """import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
n = 0
while libc.inotify_init1(0) >= 0:
    n += 1
print(n, ctypes.get_errno(), flush=True)
time.sleep(60)
"""

INOTIFY_SOME = """import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
fds = [libc.inotify_init1(0) for _ in range(%d)]
print(sum(fd >= 0 for fd in fds), ctypes.get_errno())
"""


def host_uids(sid):
    uids = set()
    for pid in sbxtest.pids_in_cgroup_of(sid):
        try:
            with open("/proc/%d/status" % pid) as f:
                uids |= {int(x) for l in f if l.startswith("Uid:") for x in l.split()[1:]}
        except OSError:
            pass
    return uids


@pytest.fixture
def uid1000_account():
    """A host account with uid 1000 (made for the test when the host has none, removed after)."""
    made = None
    try:
        pwd.getpwuid(1000)
    except KeyError:
        made = "sbxfs-t1000"
        subprocess.run(["useradd", "-M", "-N", "-u", "1000", "-s", "/usr/sbin/nologin", made], check=True)
    yield 1000
    if made:
        subprocess.run(["userdel", made], check=True)


@pytest.mark.deadline(120)
@pytest.mark.backend_gap("docker", DOCKER_IDS_GAP)
def test_per_user_kernel_limits_are_the_sandboxs_own(mount, box, uid1000_account):
    """One sandbox opens every inotify instance its uid may have; two others and
    the host's uid 1000 still get theirs (each sandbox runs as a host uid of its own)."""
    hog, a, b = box(), box(), box()
    bg = hog.run_bg("py", INOTIFY_HOG)
    deadline = time.monotonic() + 20
    while not hog.read("stdout").strip():
        assert time.monotonic() < deadline, "the hog did not report"
        time.sleep(0.1)
    held, err = hog.read("stdout").split()
    assert int(held) >= 16 and int(err) == errno.EMFILE, (held, err)
    for other in (a, b):
        r = other.run("py", INOTIFY_SOME % 16)
        assert r.exit == 0 and r.stdout.split()[0] == "16", r
    host = subprocess.run(["setpriv", "--reuid=%d" % uid1000_account, "--regid=%d" % uid1000_account,
                           "--clear-groups", "/usr/bin/python3", "-c", INOTIFY_SOME % 16],
                          capture_output=True, text=True, timeout=30)
    assert host.returncode == 0 and host.stdout.split()[0] == "16", host
    hog.ctl_ok("restart")
    bg.finish(timeout=20)


@pytest.mark.backend_gap("docker", DOCKER_IDS_GAP)
def test_uids_differ_from_each_other_and_from_host_accounts(mount, box):
    a, b = box(), box()
    for x in (a, b):
        assert x.run("sh", "sleep 0.1; id -u\n").stdout == "1000\n"
    ua, ub = host_uids(a.info()["id"]), host_uids(b.info()["id"])
    assert ua and ub and not (ua & ub), (ua, ub)
    accounts = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    assert not ((ua | ub) & accounts), (ua, ub)
    assert 0 not in ua | ub


AGENT_PROBE = """import ctypes, json, os, resource, signal, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
out = {}
def err(f):
    try:
        f()
        return 0
    except OSError as e:
        return e.errno
for pid in (1, 2):
    out['kill-STOP-%d' % pid] = err(lambda: os.kill(pid, signal.SIGSTOP))
    out['kill-KILL-%d' % pid] = err(lambda: os.kill(pid, signal.SIGKILL))
out['ptrace-2'] = [libc.ptrace(0x4206, 2, None, None), ctypes.get_errno()]
out['fd-2'] = err(lambda: os.listdir('/proc/2/fd'))
out['environ-2'] = err(lambda: open('/proc/2/environ').read())
out['mem-2'] = err(lambda: open('/proc/2/mem', 'rb').read(1))
out['prlimit-2'] = err(lambda: resource.prlimit(2, resource.RLIMIT_NOFILE, (1, 1)))
out['prlimit-1'] = err(lambda: resource.prlimit(1, resource.RLIMIT_NPROC, (0, 0)))
# every unix socket the sandbox can name: none is the agent
hello = struct.pack('III', 0x53425841, 1, 0)
answered = []
paths = ['/proc/2/fd/3', '/proc/1/fd/3']
for line in open('/proc/net/unix').read().splitlines()[1:]:
    f = line.split()
    if len(f) >= 8:
        paths.append(f[7].replace('@', '\\0', 1))
for p in paths:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(1)
    try:
        s.connect(p)
        s.sendall(hello)
        if s.recv(12)[:4] == hello[:4]:
            answered.append(p)
    except OSError:
        pass
    s.close()
out['answered'] = answered
out['status-2-uid'] = [l.split()[1] for l in open('/proc/2/status') if l.startswith('Uid:')][0]
print(json.dumps(out))
"""


@pytest.mark.backend_gap("docker", DOCKER_IDS_GAP)
def test_code_cannot_reach_the_agent(sb):
    r = sb.run("py", AGENT_PROBE)
    assert r.exit == 0, r
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out.pop("answered") == [], out
    assert out.pop("status-2-uid") != "1000", out
    rc, e = out.pop("ptrace-2")
    assert rc == -1 and e in (errno.EPERM, errno.EACCES), (rc, e)
    for k, v in out.items():
        assert v in (errno.EPERM, errno.EACCES), (k, v)
    r = sb.run("sh", "echo alive\n")
    assert r.exit == 0 and r.stdout == "alive\n", r


# ---- mounts out of sight (issue 10 item 5, issue 11 item 7) ----

def host_mount_lines():
    with open("/proc/self/mountinfo") as f:
        return f.read().splitlines()


def test_host_mount_table_names_no_sandbox_and_inside_names_no_host_path(mount, box):
    b = box()
    name, sid = b.name, b.info()["id"]
    state = str(mount.state)
    for line in host_mount_lines():
        assert name not in line and sid not in line, line
    r = b.run("sh", "cat /proc/self/mountinfo /proc/mounts\n")
    assert r.exit == 0 and " / / " in r.stdout, r
    for needle in (state, mount.mnt, name + "/", sid, "/sandboxes/", "/templates/"):
        assert needle not in r.stdout, (needle, r.stdout)
    # files/ still reaches the sandbox's root from the host, both ways
    with open(b.files("home/user/from-host"), "w") as f:
        f.write("hi")
    assert b.run("sh", "cat /home/user/from-host\n").stdout == "hi"


def test_clean_unmount_leaves_nothing_mounted(mount_factory):
    """After fusermount3 -u, nothing the daemon mounted stays, other than what its
    sandboxes own (nothing at all in the host's table on the local backend)."""
    before = set(host_mount_lines())
    m = mount_factory()
    b = m.new()
    assert b.run("sh", "echo ok\n").stdout == "ok\n"
    state = str(m.state)
    assert m.stop() is None
    after = [l for l in host_mount_lines() if l not in before]
    assert not [l for l in after if state in l or m.mnt in l], after
    # the sandbox is still there and runs
    m = m.remount(crash=True)   # the daemon has exited already: this only mounts again
    assert m.sandbox(b.name).run("sh", "echo again\n").stdout == "again\n"


# ---- a disk that went read-only (issue 11 item 4) ----

def launch_pid(sid):
    """bwrap's outer process of a local sandbox: the one whose root holds the sandbox's disk."""
    for pid in sbxtest.pids_in_cgroup_of(sid):
        if os.path.isdir("/proc/%d/root/disk/upper" % pid):
            return pid
    return None


@pytest.mark.backend_gap("docker", "no disk of its own to go read-only")
def test_read_only_disk_says_error_with_the_reason(box):
    b = box()
    pid = launch_pid(b.info()["id"])
    assert pid, "no launch process found"
    # what the kernel does to an ext4 after an I/O error (errors=remount-ro)
    subprocess.run(["nsenter", "-t", str(pid), "-m", "mount", "-o", "remount,ro", "/disk"], check=True)
    assert b.status() == "error\n"
    info = b.info()
    assert info["status"] == "error" and "read-only" in info["error"], info
    r = b.run("sh", "echo x > /home/user/x\n")
    assert r.exit != 0 and "Read-only file system" in r.stderr, r
    assert b.run("sh", "cat /etc/hostname\n").exit == 0


# ---- names and paths (issue 11 item 5) ----

def test_longest_name_under_a_long_state_directory(mount_factory, tmp_path):
    """A valid 64-character name works wherever the state directory is, however
    long its path (the agent's socket path is then far past sun_path's 108 bytes)."""
    state = tmp_path / ("long-state-directory-" + "x" * 60) / ("and-deeper-" + "y" * 60) / "state"
    m = mount_factory(state=str(state))
    name = "n" * 64
    b = m.new(name)
    assert len(str(state)) + len(name) > 108
    r = b.run("sh", "echo fine\n")
    assert r.exit == 0 and r.stdout == "fine\n", r
    b.ctl_ok("restart")
    b.wait_status("running")
    assert b.run("py", "print(6 * 7)\n").stdout == "42\n"
    m = m.remount(crash=True)
    assert m.sandbox(name).run("sh", "echo again\n").stdout == "again\n"
    assert m.ctl("kill " + name).ok


# ---- a kill cut off by a crash (issue 11 item 3, backend part) ----

@pytest.mark.backend_gap("docker", "the test takes a local sandbox apart by hand")
def test_half_destroyed_sandbox_can_be_killed(mount_factory):
    """A kill cut off by a crash after the processes, the disk image and the agent
    socket went: after a new mount, killing it succeeds and frees what is left."""
    m = mount_factory()
    b = m.new()
    sid = b.info()["id"]
    paths = b.state_paths()
    m.kill_daemon()
    sbxtest.unmount(m.mnt)
    for pid in sbxtest.pids_in_cgroup_of(sid):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while sbxtest.pids_in_cgroup_of(sid):
        assert time.monotonic() < deadline, "the sandbox's processes did not die"
        time.sleep(0.05)
    gone = []
    for root, _, files in os.walk(m.state):
        for f in files:
            if f in ("disk.img", "agent.sock") and sid in root or f in ("disk.img", "agent.sock") and b.name in root:
                os.unlink(os.path.join(root, f))
                gone.append(f)
    assert sorted(gone) == ["agent.sock", "disk.img"], gone
    m = sbxtest.Mount(m.workdir, m.backend, m.opts, m.registry, m.state, m.mnt).start()
    assert b.name in m.sandboxes()
    r = m.ctl("kill " + b.name)
    assert r.ok, r
    assert sbxtest.leftovers(m, b.name, sid, paths) == []
