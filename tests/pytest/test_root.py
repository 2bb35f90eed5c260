"""test_root.py - the mount root: README, templates/, ctl replies, errors."""

import os

from sbxtest import ROOT_ENTRIES, read_text


def test_root_has_fixed_entries(mount):
    assert ROOT_ENTRIES <= mount.listing()
    assert os.path.isdir(mount.path("templates"))
    for f in ("README", "ctl", "errors"):
        assert os.path.isfile(mount.path(f)), f


def test_readme_explains_layout(mount):
    text = read_text(mount.path("README"))
    assert text.strip(), "README is empty"
    # It is there for an agent that reads it first: it names the control file
    # and the run files.
    for word in ("ctl", "run.py", "files"):
        assert word in text, "README does not mention %r" % word


def test_default_template_describes_runtimes(mount):
    assert "default" in os.listdir(mount.path("templates"))
    p = mount.path("templates", "default")
    if os.path.isdir(p):
        text = "".join(read_text(os.path.join(p, f)) for f in sorted(os.listdir(p))
                       if os.path.isfile(os.path.join(p, f)))
    else:
        text = read_text(p)
    low = text.lower()
    for runtime in ("python", "node", "bash"):
        assert runtime in low, "templates/default does not mention %s:\n%s" % (runtime, text)


def test_ctl_read_before_any_command_is_empty(mount):
    fd = os.open(mount.path("ctl"), os.O_RDWR)
    try:
        assert os.read(fd, 4096) == b""
    finally:
        os.close(fd)


def test_ctl_new_and_kill_replies(mount):
    name = "root-reply-" + os.urandom(4).hex()
    r = mount.ctl("new " + name)
    assert r.ok and r.text == "ok %s\n" % name, r
    r = mount.ctl("kill " + name)
    assert r.ok and r.text == "ok\n", r


def test_ctl_reply_can_be_read_like_cat(mount):
    """A reader that loops until EOF (cat, f.read()) gets the reply once and stops."""
    name = "root-cat-" + os.urandom(4).hex()
    fd = os.open(mount.path("ctl"), os.O_RDWR)
    try:
        os.write(fd, ("new %s\n" % name).encode())
        chunks = []
        for _ in range(8):
            c = os.read(fd, 4096)
            if not c:
                break
            chunks.append(c)
        else:
            raise AssertionError("ctl read never reached EOF: %r" % chunks[:3])
        assert b"".join(chunks) == ("ok %s\n" % name).encode()
    finally:
        os.close(fd)
        mount.ctl("kill " + name)


def test_errors_lists_failures_newest_last(mount):
    tok1, tok2 = os.urandom(4).hex(), os.urandom(4).hex()
    r1 = mount.ctl("frobnicate " + tok1)
    r2 = mount.ctl("frobnicate " + tok2)
    assert not r1.ok and not r2.ok
    lines = read_text(mount.path("errors")).splitlines()
    i1 = [i for i, l in enumerate(lines) if tok1 in l]
    i2 = [i for i, l in enumerate(lines) if tok2 in l]
    assert i1 and i2, lines[-5:]
    assert i1[-1] < i2[-1] == len(lines) - 1
    last = lines[-1]
    # 2026-11-21T22:30:00Z /ctl: COMMAND: REASON
    ts, rest = last.split(" ", 1)
    assert len(ts) == 20 and ts[4] == "-" and ts[10] == "T" and ts.endswith("Z"), last
    assert rest.startswith("/ctl: frobnicate " + tok2), last


def test_successful_commands_are_not_errors(mount):
    before = read_text(mount.path("errors"))
    name = "root-noerr-" + os.urandom(4).hex()
    assert mount.ctl("new " + name).ok
    assert mount.ctl("kill " + name).ok
    assert read_text(mount.path("errors")) == before
