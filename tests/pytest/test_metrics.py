"""test_metrics.py - the root `metrics` file (Prometheus text format, checked
by promtool), its counters as the test acts; the daemon's log (-o log=FILE,
log_level=); sbxfs --version (issue 18)."""

import errno
import os
import re
import subprocess
import time

import pytest

from sbxtest import daemon_binary, read_text, unique

SAMPLE_RE = re.compile(r'^([a-z_:][a-z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(m):
    text = read_text(m.path("metrics"))
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        g = SAMPLE_RE.match(line)
        assert g, "not a sample line: %r" % line
        out[g.group(1) + (g.group(2) or "")] = float(g.group(3))
    return text, out


def promtool_check(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, "promtool: %s%s" % (p.stdout, p.stderr)


def test_promtool_accepts_it_and_counters_move(mount):
    text, before = scrape(mount)
    promtool_check(text)
    assert all(k.startswith("sbxfs_") for k in before)
    for name in ("sbxfs_sandboxes", "sbxfs_sandboxes_created_total", "sbxfs_sandboxes_killed_total",
                 "sbxfs_sandboxes_expired_total", "sbxfs_runs_total", "sbxfs_run_duration_seconds",
                 "sbxfs_create_duration_seconds", "sbxfs_failed_commands_total",
                 "sbxfs_process_open_fds", "sbxfs_process_resident_memory_bytes",
                 "sbxfs_fuse_requests_total"):
        assert "# TYPE %s " % name in text and "# HELP %s " % name in text, name

    b = mount.new(unique("mt"))
    assert b.run("py", "print(1)\n").exit == 0
    assert b.run("sh", "exit 3\n").exit == 3
    b.ctl_ok("pause")
    bad = mount.ctl("new %s template=no-such-template" % unique("mt"))
    assert bad.errno == errno.ENOENT, bad
    text, mid = scrape(mount)
    promtool_check(text)

    def d(key, a=before, z=mid):
        return z.get(key, 0) - a.get(key, 0)

    assert d("sbxfs_sandboxes_created_total") == 1
    assert d('sbxfs_create_duration_seconds_count') == 1
    assert d('sbxfs_runs_total{language="python",outcome="ok"}') == 1
    assert d('sbxfs_runs_total{language="bash",outcome="failed"}') == 1
    assert d('sbxfs_run_duration_seconds_count{language="python",outcome="ok"}') == 1
    assert d('sbxfs_failed_commands_total{errno="ENOENT"}') == 1
    assert d('sbxfs_sandboxes{state="paused"}') == 1
    assert d('sbxfs_fuse_requests_total{opcode="lookup"}') > 0
    assert mid["sbxfs_process_resident_memory_bytes"] > 1 << 20
    assert mid["sbxfs_process_open_fds"] > 3

    b.ctl_ok("resume")
    assert mount.ctl("kill " + b.name).ok
    _, after = scrape(mount)
    assert after["sbxfs_sandboxes_killed_total"] - mid["sbxfs_sandboxes_killed_total"] == 1
    assert after['sbxfs_sandboxes{state="paused"}'] == before['sbxfs_sandboxes{state="paused"}']


def test_a_timed_out_run_and_a_ttl_expiry_count(mount):
    _, before = scrape(mount)
    b = mount.new(unique("mt"), "timeout=1")
    assert b.run("sh", "sleep 5\n").exit == 124
    b.ctl_ok("ttl 1")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _, after = scrape(mount)    # counted when the kill has ended, after the name went
        if after["sbxfs_sandboxes_expired_total"] > before["sbxfs_sandboxes_expired_total"]:
            break
        time.sleep(0.2)
    assert not os.path.exists(mount.path(b.name))
    assert after['sbxfs_runs_total{language="bash",outcome="timeout"}'] - \
        before['sbxfs_runs_total{language="bash",outcome="timeout"}'] == 1
    assert after["sbxfs_sandboxes_expired_total"] - before["sbxfs_sandboxes_expired_total"] == 1


def test_reading_it_is_cheap(mount):
    names = [mount.new(unique("mt")).name for _ in range(20)]
    try:
        times = []
        for _ in range(20):
            t0 = time.monotonic()
            read_text(mount.path("metrics"))
            times.append(time.monotonic() - t0)
        times.sort()
        assert times[len(times) // 2] < 0.005, "median read of metrics took %.1f ms" % (
            times[len(times) // 2] * 1000)
    finally:
        for n in names:
            mount.ctl("kill " + n)


def test_a_failed_command_is_in_the_log_file(mount_factory, tmp_path):
    log = tmp_path / "sbxfs.log"
    m = mount_factory(log=str(log), log_level="info")
    name = unique("mt")
    r = m.ctl("new %s template=no-such-template" % name)
    assert r.errno == errno.ENOENT, r
    text = log.read_text()
    line = [x for x in text.splitlines() if name in x]
    assert len(line) == 1, text
    assert re.match(r"^\d{4}-\d\d-\d\dT\S+Z sbxfs: warning: /ctl: .*new %s template=no-such-template.*: "
                    r"no template 'no-such-template'" % name, line[0]), line[0]
    # log_level=info: the lifecycle too.
    b = m.new(unique("mt"))
    assert m.ctl("kill " + b.name).ok
    text = log.read_text()
    assert re.search(r"sbxfs: info: sandbox '%s': created template=default\n" % b.name, text), text
    assert re.search(r"sbxfs: info: sandbox '%s': killed\n" % b.name, text), text
    # With a log file, the daemon's stderr stays quiet.
    assert name not in m.log()


def test_bad_log_options_refuse_to_start(tmp_path):
    for opt, words in (("log=relative/path", "absolute path"), ("log_level=loud", "log_level 'loud'")):
        p = subprocess.run([daemon_binary(), "-f", "-o", "state=%s,%s" % (tmp_path / "st", opt),
                            str(tmp_path)], capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and words in p.stderr, (opt, p.stderr)


def test_version_names_sbxfs_and_libfuse():
    p = subprocess.run([daemon_binary(), "--version"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0
    assert re.match(r"^sbxfs \d+\.\d+\.\d+ \(libfuse 3\.\d+\.\d+\)\n$", p.stdout), p.stdout


def test_the_example_exporter_serves_it(mount):
    import socket
    import urllib.request
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ex = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "metrics-exporter.py")
    p = subprocess.Popen(["python3", ex, mount.mnt, str(port)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                    body = r.read().decode()
                    ctype = r.headers["Content-Type"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert ctype.startswith("text/plain; version=0.0.4")
        assert "sbxfs_sandboxes_created_total" in body
        promtool_check(body)
    finally:
        p.kill()
        p.wait()


@pytest.mark.deadline(90)
def test_in_the_background_warnings_go_to_syslog(tmp_path):
    """Without -f (daemonised) and without log=, a failed command reaches syslog: the daemon
    runs in a private mount namespace whose /dev has a stand-in /dev/log socket."""
    import shutil
    import socket
    import threading
    if not shutil.which("unshare"):
        pytest.fail("unshare (util-linux) is missing")
    dev, state, mnt = tmp_path / "dev", tmp_path / "state", tmp_path / "mnt"
    for d in (dev, state, mnt):
        d.mkdir()
    for node in ("fuse", "null", "zero", "urandom", "random", "loop-control"):
        if os.path.exists("/dev/" + node):
            subprocess.run(["cp", "-a", "/dev/" + node, str(dev)], check=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(dev / "log"))
    sock.settimeout(0.5)
    got = []
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            try:
                got.append(sock.recv(4096).decode(errors="replace"))
            except socket.timeout:
                pass

    t = threading.Thread(target=listen)
    t.start()
    name = unique("sl")
    script = ('mount --bind "$1" /dev && "$2" -o "state=$3" "$4" && '
              '{ echo "new $5 template=no-such-template" > "$4/ctl"; fusermount3 -u "$4"; }')
    try:
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                            str(dev), daemon_binary(), str(state), str(mnt), name],
                           capture_output=True, text=True, timeout=60)
        deadline = time.monotonic() + 10
        while not any(name in g for g in got) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        t.join()
        sock.close()
        # A daemon left behind (a failure above) is found by its unique state path.
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and str(state) in open("/proc/%s/cmdline" % pid).read():
                    os.kill(int(pid), 9)
            except OSError:
                pass
    lines = [g for g in got if name in g]
    assert len(lines) == 1, (got, p.stdout, p.stderr)
    # <28>: facility daemon (3 * 8) + warning (4); the tag sbxfs[PID].
    assert re.match(r"^<28>.* sbxfs\[\d+\]: warning: /ctl: .*no template 'no-such-template'", lines[0]), lines
