"""test_bad_input.py - bad ctl commands fail the write with a fitting errno,
leave the reason readable from the same fd and in `errors`, and change
nothing (issue 2, Bad input)."""

import errno as E
import os

import pytest

from sbxtest import ctl_write, read_text, unique

INVALID = {E.EINVAL}


@pytest.fixture(scope="module")
def existing(_module_mounts):
    m = _module_mounts.current
    b = m.new(unique("exists"))
    yield b.name
    try:
        _module_mounts.current.ctl("kill " + b.name)
    except OSError:
        pass


def _check_failure(mount, ctl_path, cmd, expected, ctl_rel="/ctl"):
    before = mount.listing()
    r = ctl_write(ctl_path, cmd)
    assert not r.ok, "bad command accepted: %r" % (r,)
    assert r.errno in expected, "errno %s, want one of %s: %r" % (
        E.errorcode.get(r.errno, r.errno), [E.errorcode[e] for e in expected], r)
    assert r.text.startswith("error: ") and r.text.endswith("\n"), r
    reason = r.text[len("error: "):].strip()
    assert reason, r
    assert mount.listing() == before, "a failed command changed the root"
    last = read_text(mount.path("errors")).splitlines()[-1]
    assert (" %s: " % ctl_rel) in last, last
    assert reason in last, "reason %r not in the errors line %r" % (reason, last)
    return r, last


BAD_ROOT = [
    ("unknown-command", "frobnicate {u}", INVALID | {E.EOPNOTSUPP}),
    ("new-without-name", "new", INVALID),
    ("kill-without-name", "kill", INVALID),
    ("missing-value", "new {u} mem=", INVALID),
    ("bad-size", "new {u} mem=lots", INVALID),
    ("bad-cpus", "new {u} cpus=fast", INVALID),
    ("bad-ttl", "new {u} ttl=soon", INVALID),
    ("negative-ttl", "new {u} ttl=-5", INVALID | {E.ERANGE}),
    ("unknown-key", "new {u} colour=blue", INVALID),
    ("unknown-template", "new {u} template=no-such-template", INVALID | {E.ENOENT}),
    ("bad-env-key", "new {u} env.1BAD=x", INVALID),
    ("kill-missing", "kill {u}", {E.ENOENT}),
    ("name-dotdot", "new ../x", INVALID),
    ("name-slash", "new a/b", INVALID),
    ("name-65", "new " + "n" * 65, INVALID | {E.ENAMETOOLONG}),
    ("name-hidden", "new .hidden", INVALID),
    ("name-bad-char", "new a*b", INVALID),
    ("name-ctl", "new ctl", INVALID | {E.EEXIST}),
    ("name-README", "new README", INVALID | {E.EEXIST}),
    ("name-templates", "new templates", INVALID | {E.EEXIST}),
    ("name-errors", "new errors", INVALID | {E.EEXIST}),
    ("mem-out-of-range", "new {u} mem=99999999T", INVALID | {E.ERANGE}),
    ("cpus-out-of-range", "new {u} cpus=100000", INVALID | {E.ERANGE}),
    ("cpus-zero", "new {u} cpus=0.001", INVALID | {E.ERANGE}),
    ("pids-out-of-range", "new {u} pids=99999999999999999999", INVALID | {E.ERANGE}),
    ("ttl-out-of-range", "new {u} ttl=99999999999", INVALID | {E.ERANGE}),
    ("unbalanced-quote", "new {u} env.A='open", INVALID),
]


@pytest.mark.parametrize("case,cmd,expected", BAD_ROOT, ids=[c[0] for c in BAD_ROOT])
def test_bad_root_command(mount, case, cmd, expected):
    u = unique("bad")
    r, last = _check_failure(mount, mount.path("ctl"), cmd.format(u=u), expected)
    assert u not in mount.listing()
    assert cmd.format(u=u)[:40] in last, last


def test_new_existing_name_eexist(mount, existing):
    info = read_text(mount.path(existing, "info"))
    _check_failure(mount, mount.path("ctl"), "new " + existing + " mem=64M", {E.EEXIST})
    assert read_text(mount.path(existing, "info")) == info


def test_mkdir_existing_and_bad(mount, existing):
    with pytest.raises(FileExistsError):
        os.mkdir(mount.path(existing))
    before = mount.listing()
    for bad in (".hidden", "x" * 65):
        with pytest.raises(OSError) as ei:
            os.mkdir(mount.path(bad))
        assert ei.value.errno in (E.EINVAL, E.ENAMETOOLONG, E.EPERM), ei.value
    assert mount.listing() == before
    with pytest.raises(FileNotFoundError):
        os.rmdir(mount.path(unique("nosuch")))


def test_binary_garbage(mount):
    garbage = b"\x00\xff\x01\x1b[2Jgarbage\xfe\n"
    r, last = _check_failure(mount, mount.path("ctl"), garbage, INVALID)
    assert "\\x00" in last or "\\xff" in last or "\\xFF" in last, last
    assert "\x00" not in last and "\x1b" not in last


@pytest.mark.deadline(60)
def test_huge_write(mount):
    big = b"new " + b"A" * (4 << 20) + b"\n"
    expected = {E.E2BIG, E.EINVAL, E.EFBIG, E.EMSGSIZE, E.ENOSPC, E.ENAMETOOLONG}
    r, last = _check_failure(mount, mount.path("ctl"), big, expected)
    assert len(last) < 1000, "errors line not cut: %d bytes" % len(last)
    # still serving
    name = unique("after-big")
    assert mount.ctl("new " + name).ok
    assert mount.ctl("kill " + name).ok


def test_multi_line_stops_at_first_bad(mount):
    a, b, c = unique("ml"), unique("ml"), unique("ml")
    before = mount.listing()
    r = ctl_write(mount.path("ctl"), "new %s\nnew %s\nbogus-%s\nnew %s\n" % (a, b, c, c))
    try:
        assert r.errno == E.EINVAL, r
        # The reply may say "ok" for the lines before; it ends with the error.
        last = r.text.splitlines()[-1]
        assert last.startswith("error: ") and "bogus-" + c in last, r
        assert "ok " + c not in r.text, r
        after = mount.listing()
        assert after - before == {a, b}, after - before
        assert c not in after
        assert "bogus-" + c in read_text(mount.path("errors")).splitlines()[-1]
    finally:
        for n in (a, b):
            mount.ctl("kill " + n)


def test_multi_line_all_good(mount):
    a, b = unique("mg"), unique("mg")
    r = ctl_write(mount.path("ctl"), "new %s\nnew %s\n" % (a, b))
    assert r.ok, r
    assert {a, b} <= mount.listing()
    r = ctl_write(mount.path("ctl"), "kill %s\nkill %s\n" % (a, b))
    assert r.ok, r
    assert not ({a, b} & mount.listing())


BAD_SANDBOX = [
    ("unknown", "frobnicate", INVALID | {E.EOPNOTSUPP}),
    ("ttl-missing", "ttl", INVALID),
    ("ttl-bad", "ttl soon", INVALID),
    ("timeout-bad", "timeout -1", INVALID | {E.ERANGE}),
    ("set-bad-size", "set mem=lots", INVALID),
    ("set-unknown-key", "set colour=blue", INVALID),
    ("set-cpus-range", "set cpus=100000", INVALID | {E.ERANGE}),
    ("set-missing", "set", INVALID),
    ("garbage", "\x00\x01\x02", INVALID),
]


@pytest.mark.parametrize("case,cmd,expected", BAD_SANDBOX, ids=[c[0] for c in BAD_SANDBOX])
def test_bad_sandbox_command(mount, existing, case, cmd, expected):
    info = read_text(mount.path(existing, "info"))
    status = read_text(mount.path(existing, "status"))
    _check_failure(mount, mount.path(existing, "ctl"), cmd, expected, ctl_rel="/%s/ctl" % existing)
    assert read_text(mount.path(existing, "info")) == info
    assert read_text(mount.path(existing, "status")) == status


def test_set_applies_limits(mount, box):
    b = box()
    b.ctl_ok("set mem=128M")
    b.ctl_ok("set pids=77")
    lim = b.info()["limits"]
    assert lim["mem"] == 128 << 20 and lim["pids"] == 77
