"""test_escape.py - nothing under files/ reaches the host (issue 4).

Marker files are put on the host in /root, /tmp and /etc; code inside the
sandbox makes symlinks, hard links and races that point at them, and the
host side follows them through files/. Every test asserts that no marker is
read, written, removed or created on the host.
"""

import errno
import os
import time
import uuid

import pytest

from sbxtest import read_text, write_file

HOST_DIRS = ["/root", "/tmp", "/etc"]


@pytest.fixture
def markers():
    """{host path: secret} in /root, /tmp, /etc; checked untouched afterwards."""
    tag = "sbxfs-escape-" + uuid.uuid4().hex[:10]
    made = {}
    for d in HOST_DIRS:
        p = os.path.join(d, tag)
        secret = "HOST-SECRET-%s-%s\n" % (d, uuid.uuid4().hex)
        write_file(p, secret)
        made[p] = secret
    yield tag, made
    bad = []
    for p, secret in made.items():
        try:
            if read_text(p) != secret:
                bad.append("%s was changed" % p)
        except OSError as e:
            bad.append("%s: %s" % (p, e))
        try:
            os.unlink(p)
        except OSError:
            pass
    for d in HOST_DIRS:
        for extra in ("-new", "-link"):
            if os.path.lexists(os.path.join(d, tag + extra)):
                bad.append("created on the host: " + os.path.join(d, tag + extra))
                os.unlink(os.path.join(d, tag + extra))
    assert not bad, bad


def secrets_in(text, made):
    return [p for p, s in made.items() if s.strip() in text]


def try_read(path):
    try:
        return read_text(path)
    except OSError as e:
        return "errno %d" % e.errno


def test_absolute_symlinks_stay_inside(sb, markers):
    tag, made = markers
    lines = []
    for p in made:
        lines.append("ln -sfn %s /home/user/abs-%s" % (p, os.path.basename(os.path.dirname(p))))
    lines.append("ln -sfn /etc/shadow /home/user/shadow")
    lines.append("ln -sfn / /home/user/rootlink")
    assert sb.run("sh", "\n".join(lines) + "\n").exit == 0
    for d in HOST_DIRS:
        link = sb.files("home/user/abs-" + os.path.basename(d))
        got = try_read(link)
        assert not secrets_in(got, made), got
        target = os.readlink(link)
        assert target.startswith(sb.files("")) or not target.startswith("/"), target
        # writing through it creates the file inside the sandbox, not on the host
        write_file(link, "written through files/\n")
        assert read_text(sb.files(d + "/" + tag)) == "written through files/\n"
    # /etc/shadow through files/ is the sandbox's, whatever the host's says
    shadow = try_read(sb.files("home/user/shadow"))
    inside = sb.run("sh", "cat /etc/shadow 2>/dev/null; true\n").stdout
    assert shadow == inside or shadow.startswith("errno"), shadow
    assert set(os.listdir(sb.files("home/user/rootlink"))) == set(os.listdir(sb.files("")))


def test_dotdot_symlinks_stay_inside(sb, markers):
    tag, made = markers
    up = "../" * 40
    code = ("mkdir -p /home/user/deep/a/b\n"
            "ln -sfn %stmp/%s /home/user/deep/a/b/up\n"
            "ln -sfn ../../../../../../.. /home/user/deep/top\n"
            "ln -sfn .. /home/user/parent\n" % (up, tag))
    assert sb.run("sh", code).exit == 0
    got = try_read(sb.files("home/user/deep/a/b/up"))
    assert not secrets_in(got, made), got
    top = sb.files("home/user/deep/top")
    assert set(os.listdir(top)) == set(os.listdir(sb.files(""))), os.listdir(top)
    assert os.path.samefile(sb.files("home/user/parent"), sb.files("home"))
    # and through files/ itself: a link made from the host side
    os.symlink(up + "root/" + tag, sb.files("home/user/host-made"))
    assert not secrets_in(try_read(sb.files("home/user/host-made")), made)
    write_file(sb.files("home/user/host-made"), "inside\n")
    assert read_text(sb.files("root/" + tag)) == "inside\n"


def test_symlink_never_reaches_sandbox_dir_or_other_sandbox(sb, box, markers):
    other = box()
    write_file(other.files("home/user/theirs"), "OTHER-SANDBOX\n")
    code = ("ln -sfn ../../../../../%s/files/home/user/theirs /home/user/x1\n"
            "ln -sfn /../../%s/files/home/user/theirs /home/user/x2\n"
            "ln -sfn ../../../ctl /home/user/x3\n" % (other.name, other.name))
    assert sb.run("sh", code).exit == 0
    os.symlink("../ctl", sb.files("x4"))
    for rel in ("home/user/x1", "home/user/x2"):
        assert "OTHER-SANDBOX" not in try_read(sb.files(rel))
    for rel in ("home/user/x3", "x4"):
        # writing would be a ctl command if it reached the sandbox's ctl file
        try:
            write_file(sb.files(rel), "kill\n")
        except OSError:
            pass
        assert sb.status() == "running\n"
        assert os.path.realpath(sb.files(rel)).startswith(os.path.realpath(sb.files("")))


def test_hard_links_and_renames_cannot_leave(sb, markers):
    tag, made = markers
    host = "/tmp/" + tag
    with pytest.raises(OSError) as e:
        os.link(host, sb.files("home/user/hl"))
    assert e.value.errno == errno.EXDEV
    write_file(sb.files("home/user/mine"), "mine")
    with pytest.raises(OSError) as e:
        os.link(sb.files("home/user/mine"), "/tmp/" + tag + "-link")
    assert e.value.errno == errno.EXDEV
    with pytest.raises(OSError) as e:
        os.rename(sb.files("home/user/mine"), "/tmp/" + tag + "-new")
    assert e.value.errno == errno.EXDEV
    with pytest.raises(OSError) as e:
        os.rename(host, sb.files("home/user/stolen"))
    assert e.value.errno == errno.EXDEV
    # a hard link made inside to a symlink that points out: still inside
    code = "ln -s /tmp/%s /home/user/sl && ln /home/user/sl /home/user/sl2 && mkdir -p /home/user/h/i/j && ln /home/user/sl /home/user/h/i/j/sl3\n" % tag
    assert sb.run("sh", code).exit == 0
    for rel in ("home/user/sl", "home/user/sl2", "home/user/h/i/j/sl3"):
        assert not secrets_in(try_read(sb.files(rel)), made)


def test_files_root_parent_is_the_sandbox_dir(sb):
    assert os.path.samefile(sb.files("") + "/..", sb.path())
    assert os.path.samefile(sb.files("home/user/../../.."), sb.path())


def test_swap_race(sb, markers):
    """Code inside swaps a directory for a symlink to the host path in a tight
    loop while the host side reads and writes through it."""
    tag, made = markers
    code = ("mkdir -p /home/user/race/real /tmp/%s.d\n"
            "echo inside > /home/user/race/real/%s\n"
            "end=$((SECONDS+4))\n"
            "while [ $SECONDS -lt $end ]; do\n"
            "  mv -T /home/user/race/real /home/user/race/tmp 2>/dev/null\n"
            "  ln -sfn /tmp /home/user/race/real\n"
            "  rm -f /home/user/race/real\n"
            "  ln -sfn ../../../../../../../../../tmp /home/user/race/real\n"
            "  rm -f /home/user/race/real\n"
            "  mv -T /home/user/race/tmp /home/user/race/real 2>/dev/null\n"
            "done\n" % (tag, tag))
    bg = sb.run_bg("sh", code)
    seen, deadline = [], time.monotonic() + 3.5
    target = sb.files("home/user/race/real/" + tag)
    n = 0
    while time.monotonic() < deadline:
        got = try_read(target)
        seen += secrets_in(got, made)
        try:
            write_file(target, "from host\n", os.O_WRONLY | os.O_TRUNC)
        except OSError:
            pass
        n += 1
    bg.finish(30)
    assert not seen, seen
    assert n > 10


def test_path_and_name_limits(sb):
    with pytest.raises(OSError) as e:
        os.stat(sb.files("home/user/" + "a" * 256))
    assert e.value.errno == errno.ENAMETOOLONG
    with pytest.raises(OSError) as e:
        os.symlink("x", sb.files("home/user/" + "b" * 300))
    assert e.value.errno == errno.ENAMETOOLONG
    long_target = "/" + "c/" * 2100
    os.symlink(long_target[:4000], sb.files("home/user/longtarget"))
    with pytest.raises(OSError) as e:
        os.stat(sb.files("home/user/longtarget"))
    assert e.value.errno in (errno.ENAMETOOLONG, errno.ENOENT)
