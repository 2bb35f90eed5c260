"""test_input_limits.py - bad input is refused when it is written, with the errno and the
reason in `errors`, instead of breaking later runs (issue 11 item 5): env sizes and counts,
`new ... env.K=V`, and the header line of a run (`# sbxfs: timeout=N`).

Run: SBXFS_BIN=build/sbxfs /usr/bin/python3 -m pytest -q tests/pytest/test_input_limits.py
"""

import errno
import os

import pytest

from sbxtest import read_text, unique, write_file

ENV_MAX_VARS = 1000
ENV_MAX_ENTRY = 64 * 1024
ENV_MAX_TOTAL = 512 * 1024


def write_fails(path, data, want_errno):
    with pytest.raises(OSError) as e:
        write_file(path, data)
    assert e.value.errno == want_errno, (path, e.value)


def test_env_entry_over_the_limit_is_refused(mount, box):
    b = box()
    write_file(b.path("env"), "KEEP=1\n")
    write_fails(b.path("env"), "BIG=" + "x" * ENV_MAX_ENTRY + "\n", errno.E2BIG)
    assert "'BIG'" in mount.errors() and "at most 65536" in mount.errors()
    # Nothing changed, and runs go on working.
    assert read_text(b.path("env")) == "KEEP=1\n"
    r = b.run("sh", 'echo "$KEEP"\n')
    assert (r.stdout, r.exit) == ("1\n", 0), r


def test_too_many_env_lines_are_refused(mount, box):
    b = box()
    text = "".join("V%d=%d\n" % (i, i) for i in range(ENV_MAX_VARS + 1))
    write_fails(b.path("env"), text, errno.E2BIG)
    assert "more than 1000 variables" in mount.errors()
    # The limit itself is accepted, and a run gets all of them.
    ok = "".join("V%d=%d\n" % (i, i) for i in range(ENV_MAX_VARS))
    write_file(b.path("env"), ok)
    r = b.run("sh", 'echo "$V0 $V999"\n')
    assert (r.stdout, r.exit) == ("0 999\n", 0), r


def test_env_total_over_the_limit_is_refused(mount, box):
    b = box()
    text = "".join("K%d=%s\n" % (i, "y" * 60000) for i in range(9))
    write_fails(b.path("env"), text, errno.E2BIG)
    assert "in all: at most %d" % ENV_MAX_TOTAL in mount.errors()


def test_new_with_env_over_the_limit_is_refused(mount):
    # One ctl line is at most 64 KiB, so `new` cannot pass the env limits but by its line.
    name = unique("big")
    r = mount.ctl("new %s env.BIG=%s" % (name, "z" * (ENV_MAX_ENTRY + 1)))
    assert r.errno == errno.E2BIG and "too long" in r.text, r
    assert name not in mount.sandboxes()
    r = mount.ctl('new %s env.NL="a\\nb"' % name)
    assert r.errno == errno.EINVAL and "newline" in r.text, r
    assert name not in mount.sandboxes()
    assert "newline" in mount.errors()


@pytest.mark.parametrize("header,want,words", [
    ("# sbxfs: timeout=-1", errno.EINVAL, "'-1'"),
    ("# sbxfs: timeout=99999999999999999999", errno.ERANGE, "out of range"),
    ("# sbxfs: timeout=abc", errno.EINVAL, "'abc'"),
    ("# sbxfs: timeout=0", errno.ERANGE, "at least 1 second"),
    ("# sbxfs: timeuot=5", errno.EINVAL, "unknown key 'timeuot'"),
])
def test_bad_header_line_is_refused(mount, box, header, want, words):
    b = box()
    assert b.run("sh", "echo before\n").exit == 0
    write_fails(b.path("run.sh"), header + "\necho never\n", want)
    errs = mount.errors().splitlines()
    assert errs and "run header" in errs[-1] and words in errs[-1], errs[-3:]
    # Nothing ran: the latest run is still the one before.
    assert read_text(b.path("stdout")) == "before\n"
    assert os.listdir(b.path("runs")) == ["1"]


def test_good_header_lines(box):
    b = box("timeout=60")
    r = b.run("sh", "# sbxfs: timeout=1\nsleep 5\n")
    assert r.exit == 124 and r.seconds < 4, r
    r = b.run("js", "// sbxfs: timeout=2m\nconsole.log('ok')\n")
    assert (r.stdout, r.exit) == ("ok\n", 0), r
    # A huge timeout (10 years) is a timeout, not a wrapped or negative wait.
    r = b.run("py", "# sbxfs: timeout=3650d\nprint('long')\n")
    assert (r.stdout, r.exit) == ("long\n", 0), r
    # Not on the first line, or not a comment that starts with sbxfs: no header.
    r = b.run("sh", "echo x\n# sbxfs: timeout=-1\n")
    assert r.exit == 0, r
