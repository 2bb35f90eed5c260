"""test_isolation.py - what code inside a sandbox cannot see or do, each
asserted from inside (issue 2, Isolation)."""

import errno
import json
import os
import random
import subprocess
import time

import pytest

from sbxtest import host_pids_with_arg, write_file


def run_json(b, code):
    r = b.run("py", code)
    assert r.exit == 0, r
    return json.loads(r.stdout.strip().splitlines()[-1])


PROBE_FILES = """import json, os, sys
out = {}
for p in sys.argv[1:] or %r:
    try:
        with open(p) as f:
            out[p] = 'READ:' + f.read()
    except OSError as e:
        out[p] = e.errno
for d in ('/root', '/tmp'):
    try:
        out['ls ' + d] = os.listdir(d)
    except OSError as e:
        out['ls ' + d] = e.errno
print(json.dumps(out))
"""


@pytest.mark.parametrize("where", ["/root", "/tmp"])
def test_host_marker_files_invisible(sb, where):
    secret = "secret-" + os.urandom(8).hex()
    path = os.path.join(where, "sbxfs-marker-" + os.urandom(4).hex())
    with open(path, "w") as f:
        f.write(secret)
    try:
        out = run_json(sb, PROBE_FILES % ([path],))
        assert isinstance(out[path], int), "sandbox read host file %s: %r" % (path, out[path])
        listing = out["ls " + where]
        assert not (isinstance(listing, list) and os.path.basename(path) in listing), listing
        r = sb.run("sh", "cat %s; ls -a %s\n" % (path, where))
        assert secret not in r.stdout and os.path.basename(path) not in r.stdout, r
    finally:
        os.unlink(path)


def test_host_private_dirs_not_visible(sb, mount):
    """The test's own paths (the work tree, the mount's state, pytest's tmp)
    do not exist inside."""
    paths = [str(mount.state), mount.mnt, os.path.dirname(os.path.abspath(__file__))]
    code = "import os, json\nprint(json.dumps([os.path.exists(p) for p in %r]))\n" % (paths,)
    seen = run_json(sb, code)
    assert not any(seen), list(zip(paths, seen))


def test_host_processes_invisible(sb):
    arg = "%d.%06d" % (3600, random.randrange(10 ** 6))
    host = subprocess.Popen(["sleep", arg])
    try:
        # Popen returns once the child is forked; its cmdline is sleep's only after the exec
        deadline = time.monotonic() + 5
        while not host_pids_with_arg(arg) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert host_pids_with_arg(arg), "positive control: host cannot see its own sleep"
        r = sb.run("sh", "ps -eo args\ncat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '\n")
        assert "ps -eo args" in r.stdout, r  # ps works and sees the sandbox
        assert arg not in r.stdout, "host process visible inside:\n" + r.stdout
        # pid 1 inside is the sandbox's own, not the host's init or the daemon
        pid1 = sb.run("sh", "cat /proc/1/cmdline\n").stdout
        with open("/proc/1/cmdline") as f:
            assert pid1 != f.read()
        with open("/proc/%d/cmdline" % sb.mount.proc.pid) as f:
            assert pid1 != f.read()
    finally:
        host.kill()
        host.wait()


STATUS = """import json, os
st = {}
for line in open('/proc/self/status'):
    k, _, v = line.partition(':')
    st[k] = v.split()
print(json.dumps({'uid': os.getuid(), 'euid': os.geteuid(), 'status': st}))
"""


def test_uid_caps_nonewprivs_seccomp(sb):
    out = run_json(sb, STATUS)
    st = out["status"]
    assert out["uid"] == 1000 and out["euid"] == 1000
    assert set(st["Uid"]) == {"1000"}, st["Uid"]
    for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
        assert int(st[cap][0], 16) == 0, "%s = %s" % (cap, st[cap])
    assert st["NoNewPrivs"] == ["1"]
    assert st["Seccomp"] == ["2"]


def test_bash_sees_same_identity(sb):
    r = sb.run("sh", "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status\n")
    lines = r.stdout.split()
    assert lines[0] == "1000", r
    assert "0000000000000000" in r.stdout and r.stdout.rstrip().endswith("1"), r


MOUNT_UNSHARE_SH = """mkdir -p /tmp/x
command -v mount >/dev/null || echo no-mount
command -v unshare >/dev/null || echo no-unshare
mount -t tmpfs none /tmp/x; echo "mount=$?"
unshare -U true; echo "unshare_U=$?"
unshare -n true; echo "unshare_n=$?"
unshare -m true; echo "unshare_m=$?"
grep -c ' /tmp/x ' /proc/self/mounts
"""


def test_mount_and_unshare_fail(sb):
    r = sb.run("sh", MOUNT_UNSHARE_SH)
    vals = dict(l.split("=") for l in r.stdout.splitlines() if "=" in l)
    tools = ("mount", "unshare_U", "unshare_n", "unshare_m")
    if sb.mount.backend == "docker":
        # The docker default image has no mount(8) (docs/docker-backend.md); the
        # mount(2) call itself is refused in test_syscalls_refused.
        assert "no-mount" in r.stdout and vals.get("mount") == "127", r
        tools = tools[1:]
    else:
        assert "no-mount" not in r.stdout, r
    assert "no-unshare" not in r.stdout, r
    for k in tools:
        assert vals.get(k) not in (None, "0", "127"), (k, r)
    assert r.stdout.splitlines()[-1] == "0", r


SYSCALLS = """import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
out = {}
os.makedirs('/tmp/y', exist_ok=True)
def call(name, f, *a):
    rc = f(*a)
    out[name] = [rc, ctypes.get_errno()]
call('mount', libc.mount, b'none', b'/tmp/y', b'tmpfs', 0, None)
for flag, v in (('unshare_user', 0x10000000), ('unshare_net', 0x40000000), ('unshare_ns', 0x20000)):
    call(flag, libc.unshare, v)
# PTRACE_SEIZE: the same permission check as PTRACE_ATTACH, without stopping pid 1
# when it is allowed (docker)
call('ptrace_attach_1', libc.ptrace, 0x4206, 1, None, None)
out['pid1'] = [open('/proc/1/comm').read().strip(),
               [l.split()[1] for l in open('/proc/1/status') if l.startswith('Uid:')]]
print(json.dumps(out))
"""


def test_syscalls_refused(sb):
    out = run_json(sb, SYSCALLS)
    pid1 = out.pop("pid1")
    if sb.mount.backend == "docker":
        # The engine's default seccomp profile allows ptrace (kernel >= 4.8), but pid 1 is
        # the container's own tini as root (no capability), out of the run's reach like the
        # keeper: the sandbox may trace its own runs' processes only (docs/docker-backend.md).
        assert pid1 == ["docker-init", ["0"]], pid1
    for k, (rc, err) in out.items():
        assert rc == -1, "%s succeeded inside the sandbox" % k
        assert err in (errno.EPERM, errno.EACCES, errno.ENOSYS, errno.EINVAL, errno.ESRCH), (k, err)


NET = """import errno, json, socket
out = {'ifaces': sorted(n for _, n in socket.if_nameindex())}
s = socket.socket(); s.settimeout(5)
try:
    s.connect(('10.0.0.1', 80)); out['connect'] = 'connected'
except OSError as e:
    out['connect'] = e.errno
with open('/proc/net/route') as f:
    out['routes'] = f.read().splitlines()[1:]
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname(), timeout=5)
a, _ = srv.accept(); c.sendall(b'ping'); out['loopback'] = a.recv(4).decode()
print(json.dumps(out))
"""


def test_network_loopback_only(sb):
    out = run_json(sb, NET)
    assert out["ifaces"] == ["lo"], out
    assert out["routes"] == [], out
    assert out["connect"] == errno.ENETUNREACH, out
    assert out["loopback"] == "ping", out
    r = sb.run("sh", "for ip in /usr/sbin/ip /sbin/ip /usr/bin/ip; do "
                     "[ -x $ip ] && { $ip -o link; exit; }; done; echo no-ip\n")
    if "no-ip" not in r.stdout:
        links = [l for l in r.stdout.splitlines() if l.strip()]
        assert links and all(": lo:" in l for l in links), r


HOG = """chunks = []
for i in range(100):
    chunks.append(b'x' * (16 << 20))
print('survived', len(chunks))
"""


@pytest.mark.deadline(60)
def test_memory_hog_killed_sandbox_survives(mount, box):
    b = box("mem=64M")
    r = b.run("py", HOG)
    assert "survived" not in r.stdout, r
    assert r.exit is not None and r.exit != 0, r
    assert r.exit in (137, 1) or r.exit > 128, r  # SIGKILL by the OOM killer, or MemoryError
    assert b.status() == "running\n"
    r = b.run("py", "print(1)\n")
    assert r.stdout == "1\n" and r.exit == 0, r


FORK_COUNT = """import errno, json, os, time
kids, err = [], None
for i in range(200):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
for k in kids:
    os.kill(k, 9)
for k in kids:
    os.waitpid(k, 0)
print(json.dumps({'forked': len(kids), 'errno': err}))
"""

FORK_BOMB = "for i in $(seq 200); do sleep 5 & done\nwait\n"


@pytest.mark.deadline(90)
def test_fork_bomb_stops_at_pids(mount, box):
    b = box("pids=64", "timeout=8")
    out = run_json(b, FORK_COUNT)
    assert out["errno"] == errno.EAGAIN, out
    assert 10 <= out["forked"] < 64, out

    bg = b.run_bg("sh", FORK_BOMB)
    slowest = 0.0
    t_end = time.monotonic() + 4
    time.sleep(0.5)
    while time.monotonic() < t_end and bg.is_alive():
        t0 = time.monotonic()
        subprocess.run(["true"], check=True, timeout=10)
        os.listdir(mount.mnt)
        slowest = max(slowest, time.monotonic() - t0)
        time.sleep(0.2)
    r = bg.finish(30)
    assert slowest < 1.0, "host command took %.2fs during the fork bomb" % slowest
    assert "Resource temporarily unavailable" in r.stderr or "retry" in r.stderr, r
    time.sleep(0.5)
    r = b.run("py", "print(1)\n")
    assert r.stdout == "1\n", r


DD = """dd if=/dev/zero of=/home/user/fill bs=1M count=64 2>&1; echo "dd_rc=$?"
stat -c %s /home/user/fill
"""

ENOSPC_PY = """import errno, json
try:
    with open('/home/user/fill2', 'wb') as f:
        for i in range(64):
            f.write(b'x' * (1 << 20))
            f.flush()
    print(json.dumps({'errno': None}))
except OSError as e:
    print(json.dumps({'errno': e.errno}))
"""


@pytest.mark.deadline(60)
def test_disk_limit_enospc(mount, box):
    b = box("disk=32M")
    r = b.run("sh", DD)
    if mount.backend == "docker":
        # Not enforced on docker: overlay2 quotas need xfs with pquota under the
        # engine's data root (docs/docker-backend.md). What is written is still counted.
        assert r.exit == 0 and "dd_rc=0" in r.stdout.splitlines(), r
        assert int(r.stdout.splitlines()[-1]) == 64 << 20, r
        assert json.loads(b.read("metrics"))["disk_used_bytes"] >= 64 << 20
        assert b.info()["limits"]["disk"] == 32 << 20
        return
    assert "No space left on device" in r.stdout, r
    lines = r.stdout.splitlines()
    assert "dd_rc=0" not in lines, r
    assert int(lines[-1]) <= 40 << 20, r
    assert run_json(b, ENOSPC_PY)["errno"] == errno.ENOSPC
    r = b.run("sh", "rm -f /home/user/fill /home/user/fill2 && echo ok > /home/user/small && cat /home/user/small\n")
    assert r.stdout == "ok\n", r


def test_sandboxes_cannot_see_each_other(mount, box):
    a, b = box(), box()
    marker = "marker-" + os.urandom(4).hex()
    write_file(a.files("home/user/" + marker), "from A")
    assert a.run("sh", "cat /home/user/%s\n" % marker).stdout == "from A"  # positive control
    r = b.run("sh", "ls -a /home/user /tmp; cat /home/user/%s\n" % marker)
    assert marker not in r.stdout and "from A" not in r.stdout, r
    assert not os.path.exists(b.files("home/user/" + marker))

    arg = "%d.%06d" % (600, random.randrange(10 ** 6))
    bg = a.run_bg("sh", "sleep %s &\nwhile [ ! -e /home/user/stop ]; do sleep 0.1; done\nkill $!\n" % arg)
    try:
        deadline = time.monotonic() + 10
        while not host_pids_with_arg(arg) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert host_pids_with_arg(arg), "A's process did not start"
        r = b.run("sh", "ps -eo args\ncat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '\n")
        assert arg not in r.stdout, "B sees A's process:\n" + r.stdout
    finally:
        write_file(a.files("home/user/stop"), "")
    bg.finish(20)


def test_no_host_environment(sb, mount):
    code = "import os, json\nprint(json.dumps(dict(os.environ)))\n"
    env = run_json(sb, code)
    assert "SBXFS_TEST_HOST_SECRET" not in env, env
    assert mount.secret not in json.dumps(env)
    daemon_env = dict(os.environ)
    # variables the daemon sets on purpose may happen to equal the host's
    allowed = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "PWD", "SHLVL", "_", "OLDPWD",
               "TERM", "LC_CTYPE"}
    leaked = {k: v for k, v in env.items() if k not in allowed and daemon_env.get(k) == v}
    assert not leaked, "host environment leaked into the run: %s" % leaked
    r = sb.run("sh", "cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'\n")
    assert mount.secret not in r.stdout, "the sandbox's pid 1 carries the daemon's environment"


def test_no_host_fd_leak(sb):
    r = sb.run("sh", "ls /proc/self/fd\n")
    assert sorted(r.stdout.split()) == ["0", "1", "2", "3"], r
    r = sb.run("py", "import os\nprint(sorted(int(x) for x in os.listdir('/proc/self/fd')))\n")
    assert r.stdout == "[0, 1, 2, 3]\n", r

