"""conftest.py - fixtures that mount the real sbxfs daemon.

Run from the repository root:  /usr/bin/python3 -m pytest tests/pytest
Environment: SBXFS_BIN (daemon, default build/sbxfs), SBXFS_BACKENDS (comma
separated, default "local"). See README.md in this directory.

Fixtures:
  mount          a mount shared by the tests of one module (parametrised by backend);
                 checked after every test: daemon alive, nothing bad on its stderr
  box            factory: box(*"key=value") creates a sandbox on `mount`, killed afterwards
  mount_factory  factory for private mounts: mount_factory(**opts) (parametrised by backend)
Markers: @pytest.mark.backend_gap(BACKEND, REASON) - the test cannot pass on BACKEND (a
difference listed in docs/docker-backend.md); there it must fail (strict xfail). Other
modules' gaps are in BACKEND_GAPS below.
Every test has a deadline (default 60 s, @pytest.mark.deadline(S) to change):
when it passes, the daemons are SIGKILLed so a hung FUSE call returns, and the
test fails.
"""

import os
import re
import shutil
import signal
import tempfile
import threading

import pytest

import sbxtest
from sbxtest import FAULT_RE, Mount, MountError

DEFAULT_DEADLINE = 60.0
_own_basetemp = []
_stray_containers = []

# Tests of other modules that cannot pass on a backend: (backend, regular expression matched
# against "FILE::TEST[PARAMS]", reason, strict). Each is in the table "Differences from local"
# of docs/docker-backend.md. A test module of one's own says the same with
# @pytest.mark.backend_gap(BACKEND, REASON). On that backend the test still runs and must fail
# (xfail, strict): when the gap closes it passes, the suite fails, and this table and the docs
# are brought up to date. strict=False is for a race that fails a test only sometimes.
BACKEND_GAPS = [
    ("docker", r"test_watch\.py::test_lines_for_changes_inside\[",
     "a race: docker's watch marks each new directory below /home/user a moment after it appears; "
     "a directory made, used and removed within that moment (mkdir, mv into it, rm, rmdir in a row, "
     "on a loaded machine) shows only its own created/deleted lines", False),
    ("docker", r"test_editors\.py::test_git_workflow\[",
     "the docker default image has no git (a trimmed image; SBXFS_ROOTFS_EXTRA=git adds it)", True),
    ("docker", r"test_contexts\.py::test_matplotlib_figures_saved_as_png\[",
     "the docker default image has no matplotlib (SBXFS_ROOTFS_EXTRA=python3-matplotlib adds it)",
     True),
]


def pytest_configure(config):
    # A private temporary directory per run: pytest's shared numbered dirs
    # (/tmp/pytest-of-USER) are pruned by every run, and a concurrent run
    # would rename a directory under which our daemon has state mounted.
    if not config.option.basetemp and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="sbxfs-pytest-")
        _own_basetemp.append(config.option.basetemp)



def item_backend(item):
    """The backend a collected test runs on, or None for a test without a mount."""
    cs = getattr(item, "callspec", None)
    if cs is None:
        return None
    for fx in ("_module_mounts", "mount_factory"):
        if fx in cs.params:
            return cs.params[fx]
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        be = item_backend(item)
        if be is None:
            continue
        gaps = [(m.args[1], True) for m in item.iter_markers("backend_gap") if m.args[0] == be]
        nodeid = item.nodeid.rsplit("/", 1)[-1]
        gaps += [(r, strict) for b, rx, r, strict in BACKEND_GAPS
                 if b == be and re.match(rx, nodeid)]
        if gaps:
            item.add_marker(pytest.mark.xfail(reason="%s: %s" % (be, "; ".join(r for r, _ in gaps)),
                                              strict=all(st for _, st in gaps)))


def _faults(text):
    """The lines of a daemon log that fail a test, each with what follows it
    (a sanitizer report is many lines)."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if FAULT_RE.search(line):
            out.append("\n".join(lines[i:i + 15]) if "Sanitizer" in line else line)
            if len(out) >= 5:
                break
    return out


def _teardown_mounts(registry):
    """Kill every sandbox, unmount, wait for the daemon, scan all its logs.
    Returns a list of complaints."""
    complaints = []
    current = [m for m in registry if m.alive()]
    if not current and any(m.mounted for m in registry):
        # The daemon died: mount again once so its sandboxes can be killed.
        try:
            current = [registry[-1].remount(crash=True)]
        except (MountError, OSError, AssertionError) as e:
            complaints.append("could not remount to clean up: %s" % e)
    for m in current:
        m.kill_all()
        c = m.stop()
        if c:
            complaints.append(c)
    for m in registry:
        f = _faults(m.log()[m.checked:])
        if f:
            complaints.append("daemon stderr (%s):\n%s" % (m.log_path, "\n".join(f)))
    return complaints


class ModuleMounts:
    def __init__(self, workdir, backend):
        self.registry = []
        self.current = Mount(workdir, backend, registry=self.registry)
        self.died_in = None


@pytest.fixture(scope="module", params=sbxtest.backends())
def _module_mounts(request, tmp_path_factory):
    mm = ModuleMounts(tmp_path_factory.mktemp("m-" + request.param), request.param)
    failure = None
    try:
        mm.current.start()
    except MountError as e:
        failure = str(e)
    if failure:
        pytest.fail(failure, pytrace=False)
    yield mm
    complaints = _teardown_mounts(mm.registry)
    if complaints:
        pytest.fail("module mount teardown:\n" + "\n".join(complaints), pytrace=False)


def _check_after(m, offset, what):
    problems = [sbxtest.watchdog_note] if sbxtest.watchdog_note else []
    log = m.log()[offset:]
    f = _faults(log)
    if f:
        problems.append("daemon stderr during %s:\n%s" % (what, "\n".join(f)))
    if not m.alive() and not sbxtest.watchdog_note:
        problems.append("daemon died during %s (status %s)\n--- daemon stderr ---\n%s"
                        % (what, m.proc.returncode, log[-4000:]))
    return problems


@pytest.fixture
def mount(_module_mounts):
    mm = _module_mounts
    m = mm.current
    if not m.alive():
        # An earlier test crashed or hung the daemon and has failed for it;
        # give this test a working mount on the same state.
        failure = None
        try:
            m = mm.current = m.remount(crash=True)
        except MountError as e:
            failure = str(e)
        if failure:
            pytest.fail(failure, pytrace=False)
    offset = m.checked
    yield m
    m.checked = len(m.log())
    problems = _check_after(m, offset, "this test")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def box(mount):
    """box('mem=64M', ...) -> Sandbox, killed when the test ends."""
    made = []

    def make(*kvs, name=None):
        b = mount.new(name or sbxtest.unique(), *kvs)
        made.append(b)
        return b

    yield make
    for b in made:
        try:
            if b.name in mount.sandboxes():
                mount.ctl("kill " + b.name)
        except OSError:
            pass


@pytest.fixture(params=sbxtest.backends())
def mount_factory(request, tmp_path_factory):
    registry = []
    n = [0]

    def make(**opts):
        n[0] += 1
        wd = tmp_path_factory.mktemp("f-%s-%d" % (request.param, n[0]))
        return sbxtest.start_or_fail(Mount(wd, request.param, opts=opts, registry=registry))

    yield make
    complaints = _teardown_mounts(registry)
    if complaints:
        pytest.fail("\n".join(complaints), pytrace=False)


@pytest.fixture(autouse=True)
def _deadline(request):
    marker = request.node.get_closest_marker("deadline")
    seconds = float(marker.args[0]) if marker else DEFAULT_DEADLINE
    fired = []

    sbxtest.watchdog_note = None

    def fire():
        fired.append(True)
        sbxtest.watchdog_note = ("test exceeded its %.0f s deadline; the watchdog killed the "
                                 "daemons with SIGKILL" % seconds)
        for pid in list(sbxtest.LIVE_DAEMONS):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # a daemon stuck in the kernel survives SIGKILL and holds its mount: abort the
        # connections too, or the hung call (and the whole run) never returns
        for pid in list(sbxtest.LIVE_DAEMONS):
            if pid in sbxtest.CONN_OF:
                sbxtest.abort_connection(sbxtest.CONN_OF[pid])

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    yield
    t.cancel()
    if fired:
        pytest.fail("test exceeded its %.0f s deadline; daemons were killed with SIGKILL" % seconds,
                    pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    """Safety net: nothing of ours stays mounted or running."""
    for pid, proc in list(sbxtest.LIVE_DAEMONS.items()):
        if proc.poll() is None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.wait(10)
            except Exception:
                pass
        sbxtest.LIVE_DAEMONS.pop(pid, None)
    base = None
    try:
        base = str(session.config._tmp_path_factory.getbasetemp())
    except Exception:
        pass
    for pt in sorted(sbxtest.mountinfo_points(), key=len, reverse=True):
        if pt in sbxtest.ALL_MOUNTPOINTS or (base and pt.startswith(base + "/")):
            try:
                sbxtest.unmount(pt)
            except Exception:
                pass
    if base and "docker" in sbxtest.backends():
        # containers of this session's sandboxes (their state directory is under base)
        # must be gone: remove any, and fail the session for it
        eng = sbxtest.Engine.of()
        try:
            stray = [c for c in eng.containers("sbxfs=1")
                     if c["Labels"].get("sbxfs.state_root", "").startswith(base + "/")]
        except (OSError, AssertionError):
            stray = []
        for c in stray:
            eng.call("DELETE", "/containers/%s?force=1&v=1" % c["Id"])
        if stray:
            _stray_containers.extend("%s (%s)" % (c["Names"][0], c["Labels"].get("sbxfs.name"))
                                     for c in stray)
            session.exitstatus = 1
    if _own_basetemp:
        left = [p for p in sbxtest.mountinfo_points() if p.startswith(_own_basetemp[0] + "/")]
        if exitstatus == 0 and not left:
            shutil.rmtree(_own_basetemp[0], ignore_errors=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _stray_containers:
        terminalreporter.write_line("FAILED: sbxfs containers left on the engine after the "
                                    "session (removed now): " + ", ".join(_stray_containers))
    if _own_basetemp and os.path.exists(_own_basetemp[0]):
        terminalreporter.write_line("sbxfs test directory (daemon logs): %s" % _own_basetemp[0])


# One sandbox shared by the tests of a module that do not disturb each other
# (`sb`); a module that wants its own asks for `box` instead.
@pytest.fixture(scope="module")
def shared(_module_mounts):
    m = _module_mounts.current
    b = m.new(None)
    yield b
    try:
        _module_mounts.current.ctl("kill " + b.name)
    except OSError:
        pass


@pytest.fixture
def sb(mount, shared):
    shared.mount = mount
    return shared
