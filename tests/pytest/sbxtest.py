"""sbxtest.py - helpers for the sbxfs behaviour suite.

Starts the real daemon on a temporary mount point and talks to it only through
the files a user sees (interface.md, docs/formats.md). Imported by conftest.py
and by the test modules; the standard library only.
"""

import errno
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOT_ENTRIES = {"README", "ctl", "templates", "errors", "events", "metrics"}
MOUNT_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

# Lines in the daemon's stderr that fail a test (libfuse's own test idea).
FAULT_RE = re.compile(
    r"AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:|^sbxfs: error",
    re.MULTILINE)

# Every daemon and mount point this process started, for the session safety net.
LIVE_DAEMONS = {}      # pid -> Popen
CONN_OF = {}           # pid -> FUSE connection number of its mount
FUSECTL = "/sys/fs/fuse/connections"
ALL_MOUNTPOINTS = set()
watchdog_note = None   # set when a test's deadline passed
_counter = [0]
_counter_lock = threading.Lock()


def daemon_binary():
    return os.environ.get("SBXFS_BIN") or str(REPO / "build" / "sbxfs")


def backends():
    raw = os.environ.get("SBXFS_BACKENDS", "local")
    return [b.strip() for b in raw.split(",") if b.strip()]


def unique(prefix="t"):
    """A sandbox name no other test uses: PREFIX-xxxxxxxx."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def read_text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    """Writes data with open/write/close, as a shell redirection does.
    The close is checked: for run.* files it is the moment the run happens."""
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(path, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)


def mountinfo_lines():
    with open("/proc/self/mountinfo") as f:
        return f.read().splitlines()


def mountinfo_points():
    pts = []
    for line in mountinfo_lines():
        fields = line.split()
        if len(fields) > 4:
            pts.append(fields[4].replace("\\040", " "))
    return pts


def is_mounted(path):
    return os.path.realpath(path) in mountinfo_points()


def unmount(path):
    """fusermount3 -u, falling back to a lazy umount."""
    if not is_mounted(path):
        return
    r = subprocess.run(["fusermount3", "-u", str(path)], capture_output=True, timeout=30)
    if r.returncode != 0 and is_mounted(path):
        subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True, timeout=30)
    if is_mounted(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def abort_connection(conn):
    """Aborts a FUSE connection, so every call waiting on it returns ENOTCONN: what an operator
    does when a dead daemon's mount hangs (a daemon thread stuck in the kernel, or a fork of the
    daemon, can keep /dev/fuse open after SIGKILL). Mounts fusectl when it is not."""
    d = os.path.join(FUSECTL, str(conn))
    if not os.path.exists(d):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", FUSECTL], capture_output=True, timeout=10)
    try:
        with open(os.path.join(d, "abort"), "w") as f:
            f.write("1")
    except OSError:
        pass


class Reply:
    """What one ctl write gave: the errno of the write (None on success) and
    the text read back from the same open file."""

    def __init__(self, cmd, err, text):
        self.cmd, self.errno, self.text = cmd, err, text

    @property
    def ok(self):
        return self.errno is None

    def __repr__(self):
        en = errno.errorcode.get(self.errno, self.errno) if self.errno else None
        return "Reply(cmd=%r, errno=%s, text=%r)" % (self.cmd[:120], en, self.text)


def ctl_write(path, cmd):
    """One command on one open file: os.write, then os.read of the reply from
    the same fd (no lseek: a read after a write gives that write's reply)."""
    data = cmd.encode() if isinstance(cmd, str) else cmd
    fd = os.open(path, os.O_RDWR)
    try:
        err = None
        try:
            n = os.write(fd, data)
            if n != len(data):
                err = -1  # a short write of a command: recorded as a failure
        except OSError as e:
            err = e.errno
        text = os.read(fd, 65536).decode("utf-8", "replace")
    finally:
        os.close(fd)
    return Reply(data, err, text)


class RunResult:
    def __init__(self, stdout, stderr, exit_text, seconds):
        self.stdout, self.stderr, self.exit_text, self.seconds = stdout, stderr, exit_text, seconds

    @property
    def exit(self):
        return int(self.exit_text.strip()) if self.exit_text.strip() else None

    def __repr__(self):
        return "RunResult(exit=%r, %.2fs, stdout=%r, stderr=%r)" % (
            self.exit_text, self.seconds, self.stdout[-2000:], self.stderr[-2000:])


LANG_FILE = {"py": "run.py", "js": "run.js", "sh": "run.sh"}


class BackgroundRun(threading.Thread):
    """A run whose close() blocks in another thread."""

    def __init__(self, box, lang, code):
        super().__init__(daemon=True)
        self.box, self.lang, self.code = box, lang, code
        self.error = None
        self.done_at = None

    def run(self):
        try:
            write_file(self.box.path(LANG_FILE[self.lang]), self.code)
        except BaseException as e:  # reported by finish()
            self.error = e
        self.done_at = time.monotonic()

    def finish(self, timeout=30):
        self.join(timeout)
        assert not self.is_alive(), "background run did not end within %ss" % timeout
        if self.error:
            raise self.error
        return self.box.result()


class Sandbox:
    def __init__(self, mount, name):
        self.mount, self.name = mount, name

    def path(self, *parts):
        return os.path.join(self.mount.mnt, self.name, *parts)

    def files(self, rel=""):
        return os.path.join(self.mount.mnt, self.name, "files", rel.lstrip("/"))

    def ctl(self, cmd):
        return ctl_write(self.path("ctl"), cmd)

    def ctl_ok(self, cmd):
        r = self.ctl(cmd)
        assert r.ok and r.text == "ok\n", r
        return r

    def read(self, rel):
        return read_text(self.path(rel))

    def status(self):
        return self.read("status")

    def wait_status(self, want, timeout=10.0):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.status()
            if st == want + "\n":
                return st
            time.sleep(0.1)
        raise AssertionError("status of %s is %r, want %r" % (self.name, st, want))

    def info(self):
        return json.loads(self.read("info"))

    def result(self):
        ex = self.path("exit")
        return RunResult(self.read("stdout"), self.read("stderr"),
                         read_text(ex) if os.path.exists(ex) else "", 0.0)

    def run(self, lang, code):
        t0 = time.monotonic()
        write_file(self.path(LANG_FILE[lang]), code)
        t = time.monotonic() - t0
        res = self.result()
        res.seconds = t
        return res

    def run_bg(self, lang, code):
        b = BackgroundRun(self, lang, code)
        b.start()
        return b

    def state_paths(self):
        """What of this sandbox is on the host, to check that a kill removes it: its entries
        under the state directory and, on docker, its container's own directories of the
        engine (container dir, overlay2 layer and its -init layer; see docker_footprint)."""
        sid = self.info()["id"]
        paths = self.mount.state_paths(self.name, sid)
        if self.mount.backend == "docker":
            paths += docker_footprint(self.mount, sid)
        return paths


class Mount:
    """One daemon on one mount point. remount() keeps state and mount point."""

    def __init__(self, workdir, backend, opts=None, registry=None, state=None, mnt=None):
        self.workdir = Path(workdir)
        self.backend = backend
        self.opts = dict(opts or {})
        self.state = Path(state) if state else self.workdir / "state"
        self.mnt = str(mnt) if mnt else str(self.workdir / "mnt")
        self.registry = registry if registry is not None else []
        self.secret = "sbxfs-host-secret-" + uuid.uuid4().hex
        self.proc = None
        self.conn = None          # the FUSE connection number once mounted
        self.mounted = False      # ctl appeared once
        self.checked = 0          # log bytes already scanned by a test
        self.log_path = None
        self.registry.append(self)

    # -- daemon ---------------------------------------------------------
    def option_string(self):
        o = {"state": str(self.state), "backend": self.backend}
        o.update(self.opts)
        return ",".join("%s=%s" % kv for kv in o.items())

    def start(self):
        os.makedirs(self.mnt, exist_ok=True)
        os.makedirs(self.state, exist_ok=True)
        with _counter_lock:
            _counter[0] += 1
            n = _counter[0]
        self.log_path = self.workdir / ("daemon-%d.log" % n)
        env = dict(os.environ)
        env["SBXFS_TEST_HOST_SECRET"] = self.secret
        argv = [daemon_binary(), "-f", "-o", self.option_string(), self.mnt]
        with open(self.log_path, "wb") as log:
            try:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             start_new_session=True, env=env)
            except OSError as e:
                raise MountError("cannot start %s: %s" % (argv[0], e))
        LIVE_DAEMONS[self.proc.pid] = self.proc
        ALL_MOUNTPOINTS.add(os.path.realpath(self.mnt))
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                LIVE_DAEMONS.pop(self.proc.pid, None)
                raise MountError("sbxfs exited with status %s before mounting %s\n"
                                 "command: %s\n--- daemon stderr ---\n%s" % (
                                     self.proc.returncode, self.mnt, " ".join(argv), self.log()))
            if os.path.exists(os.path.join(self.mnt, "ctl")):
                self.mounted = True
                self.conn = os.minor(os.stat(self.mnt).st_dev)
                CONN_OF[self.proc.pid] = self.conn
                return self
            time.sleep(0.05)
        self.kill_daemon()
        unmount(self.mnt)
        raise MountError("%s/ctl did not appear within %.0fs\n--- daemon stderr ---\n%s" % (
            self.mnt, MOUNT_TIMEOUT, self.log()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def log_size(self):
        try:
            return self.log_path.stat().st_size
        except (OSError, AttributeError):
            return 0

    def kill_daemon(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            # not dead: a thread stuck in the kernel keeps the connection, and every call on
            # the mount (this process's too) would hang for good
            if self.conn is not None:
                abort_connection(self.conn)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        LIVE_DAEMONS.pop(self.proc.pid, None)

    def stop(self):
        """Clean unmount; the daemon must exit by itself (SIGKILL after 10 s).
        Returns a complaint or None."""
        complaint = None
        unmount(self.mnt)
        if self.proc is not None:
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                complaint = "daemon did not exit within %ss of the unmount; killed" % STOP_TIMEOUT
                self.kill_daemon()
            LIVE_DAEMONS.pop(self.proc.pid, None)
        return complaint

    def remount(self, crash=True):
        """SIGKILL the daemon (or unmount it cleanly), unmount the dead mount,
        start a new daemon on the same state and mount point."""
        if crash:
            self.kill_daemon()
            unmount(self.mnt)
        else:
            c = self.stop()
            assert c is None, c
        m = Mount(self.workdir, self.backend, self.opts, self.registry, self.state, self.mnt)
        return m.start()

    # -- using it ---------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def ctl(self, cmd):
        return ctl_write(self.path("ctl"), cmd)

    def listing(self):
        return set(os.listdir(self.mnt))

    def sandboxes(self):
        return self.listing() - ROOT_ENTRIES

    def new(self, name=None, *kvs):
        name = name or unique()
        cmd = " ".join(["new", name] + list(kvs))
        r = self.ctl(cmd)
        assert r.ok and r.text == "ok %s\n" % name, r
        return Sandbox(self, name)

    def sandbox(self, name):
        return Sandbox(self, name)

    def errors(self):
        return read_text(self.path("errors"))

    def kill_all(self):
        try:
            names = self.sandboxes()
        except OSError:
            return
        for n in names:
            try:
                self.ctl("kill " + n)
            except OSError:
                pass

    def state_paths(self, name, sid):
        """Paths under the state directory that belong to one sandbox: their
        name is the sandbox's id or name, or contains the id."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.state):
            depth = len(Path(dirpath).relative_to(self.state).parts)
            for e in dirnames + filenames:
                stem = e.split(".")[0]
                if sid in e or e == name or stem == name:
                    found.append(os.path.join(dirpath, e))
            if depth >= 3:
                dirnames[:] = []
            else:
                dirnames[:] = [d for d in dirnames if sid not in d and d != name]
        return found


class MountError(Exception):
    pass


def start_or_fail(m):
    """Starts m; a daemon that does not come up fails the test with its own words."""
    try:
        return m.start()
    except MountError as e:
        failure = str(e)
    pytest.fail(failure, pytrace=False)


def cgroup_dirs_of(sid):
    found = []
    for ctrl in Path("/sys/fs/cgroup").iterdir():
        for dirpath, dirnames, _ in os.walk(ctrl):
            for d in dirnames:
                if sid in d:
                    found.append(os.path.join(dirpath, d))
    return found


def pids_in_cgroup_of(sid):
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cgroup" % p) as f:
                if sid in f.read():
                    found.append(int(p))
        except OSError:
            pass
    return found


def sandbox_user_ids(box):
    """The host uid and gid that files/ shows for the sandbox user (1000 inside): on the
    local backend a uid of the sandbox's own block (docs/local-backend.md, "Users"), on
    docker 1000. Its home directory belongs to it."""
    st = os.stat(box.files("home/user"))
    return st.st_uid, st.st_gid


def host_pids_with_arg(arg):
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                if arg.encode() in f.read():
                    found.append(int(p))
        except OSError:
            pass
    return found


def leftovers(mount, name, sid, state_paths):
    """What of a killed sandbox is still on the host: a list of strings.
    On docker the cgroups are the engine's, named by the container's id (the basename
    of its container directory, which Sandbox.state_paths() lists), and the engine
    must not know a container labelled with the sandbox's id any more."""
    left = []
    if name in mount.listing():
        left.append("%s still listed at the root" % name)
    needles = [sid] + [p for p in state_paths]
    for line in mountinfo_lines():
        if any(n in line for n in needles):
            left.append("mount: " + line)
    keys = [sid] + [os.path.basename(p) for p in state_paths
                    if re.fullmatch(r"[0-9a-f]{64}", os.path.basename(p))]
    for k in keys:
        left += ["cgroup: " + d for d in cgroup_dirs_of(k)]
        left += ["process %d still in the sandbox's cgroup" % p for p in pids_in_cgroup_of(k)]
    if mount.backend == "docker":
        left += ["container: %s %s" % (c["Names"], c["State"])
                 for c in Engine.of(mount).containers("sbxfs.id=" + sid)]
    left += ["state: " + p for p in state_paths if os.path.lexists(p)]
    left += ["state: " + p for p in mount.state_paths(name, sid)]
    return left


def assert_gone(mount, name, sid, state_paths, timeout=5.0):
    assert name not in mount.listing(), "%s still listed" % name
    assert not os.path.exists(os.path.join(mount.mnt, name)), "%s still reachable" % name
    deadline = time.monotonic() + timeout
    while True:
        left = leftovers(mount, name, sid, state_paths)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, "killed sandbox %s (id %s) left behind:\n  %s" % (name, sid, "\n  ".join(left))


# -- backend differences the tests assert (docs/docker-backend.md, "Differences from local") --

def processes(b):
    """The processes a run sees in sandbox b (ps inside it, from the run's own shell):
    a list of (pid, ppid, comm, args), without the backend's own machinery:
      docker: pid 1 /sbin/docker-init (the engine's tini), its child `sleep infinity`
              that keeps the container up, and the `/bin/sh -c ... sbxfs-run` wrapper
              of this run (exec.c); they are asserted to be there, as documented.
      local:  nothing is left out (pid 1 bwrap and the sbxfs-agent stay in the list)."""
    r = b.run("sh", "ps -eo pid=,ppid=,comm=,args=\n")
    assert r.exit == 0, r
    procs = []
    for line in r.stdout.splitlines():
        f = line.split(None, 3)
        if len(f) >= 3:
            procs.append((int(f[0]), int(f[1]), f[2], f[3] if len(f) > 3 else ""))
    if b.mount.backend != "docker":
        return procs
    init = [p for p in procs if p[0] == 1]
    assert init and init[0][2] == "docker-init", "pid 1 of a docker sandbox: %s" % procs
    keeper = [p for p in procs if p[1] == 1 and p[3] == "sleep infinity"]
    assert len(keeper) == 1, "the container's `sleep infinity` under tini: %s" % procs
    wrapper = [p for p in procs if p[2] == "sh" and " sbxfs-run " in p[3]]
    assert wrapper, "the run's sbxfs-run wrapper: %s" % procs
    drop = {init[0][0], keeper[0][0]} | {p[0] for p in wrapper}
    return [p for p in procs if p[0] not in drop]


class Engine:
    """A Docker Engine API client on the standard library: unix:// or tcp://."""

    def __init__(self, url):
        self.url = url

    @classmethod
    def of(cls, mount=None):
        return cls(docker_host(mount))

    def _conn(self, timeout):
        if self.url.startswith("unix://"):
            path = self.url[len("unix://"):]

            class UnixConn(http.client.HTTPConnection):
                def connect(self):
                    self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    self.sock.settimeout(timeout)
                    self.sock.connect(path)
            return UnixConn("docker", timeout=timeout)
        hostport = self.url.split("://", 1)[-1].rstrip("/")
        return http.client.HTTPConnection(hostport, timeout=timeout)

    def call(self, method, path, body=None, timeout=30):
        """(status, parsed JSON or None)."""
        c = self._conn(timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data,
                      headers={"Content-Type": "application/json"} if data else {})
            resp = c.getresponse()
            raw = resp.read()
        finally:
            c.close()
        try:
            return resp.status, (json.loads(raw) if raw.strip() else None)
        except ValueError:
            return resp.status, raw.decode("utf-8", "replace")

    def answers(self):
        try:
            return self.call("GET", "/_ping", timeout=3)[0] == 200
        except OSError:
            return False

    def containers(self, *labels):
        """Every container (running or not) with all these labels (KEY or KEY=VALUE)."""
        q = json.dumps({"label": list(labels)})
        st, out = self.call("GET", "/containers/json?all=1&filters=" +
                            urllib.parse.quote(q))
        assert st == 200, (st, out)
        return out

    def inspect(self, name):
        """The container's inspect JSON, or None when the engine has no such container."""
        st, out = self.call("GET", "/containers/%s/json" % name)
        if st == 404:
            return None
        assert st == 200, (st, out)
        return out


def docker_host(mount=None):
    """The engine a docker mount talks to: its docker_host= option, else $DOCKER_HOST,
    else the engine's default socket (as the daemon decides, docs/docker-backend.md)."""
    if mount is not None and mount.opts.get("docker_host"):
        return mount.opts["docker_host"]
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def docker_footprint(mount, sid):
    """The host paths of a docker sandbox's container (a local engine only): its container
    directory (named by the container's id) and its overlay2 layer directories."""
    if not docker_host(mount).startswith("unix://"):
        return []
    c = Engine.of(mount).inspect("sbxfs-" + sid)
    if not c:
        return []
    paths = []
    data = (c.get("GraphDriver") or {}).get("Data") or {}
    for k in ("UpperDir", "MergedDir"):
        if data.get(k):
            layer = os.path.dirname(data[k])
            paths += [layer, layer + "-init"]
    # the container's own directory: .../containers/CID (beside its hostname file)
    if c.get("HostnamePath"):
        paths.append(os.path.dirname(c["HostnamePath"]))
    return sorted(set(p for p in paths if os.path.lexists(p)))
