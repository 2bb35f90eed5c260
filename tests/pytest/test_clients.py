"""Generic clients on the files of a sandbox (issue 12 items 5, 6, 7):
`tail -f stdout` across runs, O_NONBLOCK readers of the files that wait,
vim saving run.py (no "changed since reading", its swap file beside it),
and run files whose attributes stay put between writes."""

import errno
import os
import select
import shutil
import subprocess
import time

import pytest

from sbxtest import read_text, write_file


def test_run_file_attributes_are_those_of_the_last_code_written(sb):
    code = "print('attrs')\n"
    write_file(sb.path("run.py"), code)
    st1 = os.stat(sb.path("run.py"))
    assert st1.st_size == len(code)
    time.sleep(1.2)
    st2 = os.stat(sb.path("run.py"))
    assert (st2.st_size, st2.st_mtime_ns) == (st1.st_size, st1.st_mtime_ns)
    assert read_text(sb.path("run.py")) == code
    # `>>` appends to the code last written (it writes at the size stat reports)
    with open(sb.path("run.py"), "a") as f:
        f.write("print('more')\n")
    assert sb.read("stdout") == "attrs\nmore\n"
    st3 = os.stat(sb.path("run.py"))
    assert st3.st_size == len(code) + len("print('more')\n") and st3.st_mtime_ns > st1.st_mtime_ns


def test_tail_f_opened_between_runs_follows_the_next_run(sb):
    sb.run("py", "for i in range(5): print('old-line-%d' % i + 'x' * 40)\n")
    tail = subprocess.Popen(["tail", "-f", "-s", "0.2", sb.path("stdout")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)          # tail has shown the old run and polls
        sb.run("py", "import time\nprint('new-1', flush=True)\ntime.sleep(1.5)\nprint('new-2')\n")
        time.sleep(2.0)
    finally:
        tail.terminate()
        out, err = tail.communicate(timeout=10)
    assert out.startswith("old-line-0"), out
    first_new = out.find("new-1")
    assert first_new > 0 and "new-2" in out, (out, err)
    assert "old-line" not in out[first_new:], "the old run was replayed: %r" % out


def _nonblock_read(path, want_eagain=True):
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        data = b""
        t0 = time.monotonic()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return data, True, time.monotonic() - t0
            if not chunk:
                return data, False, time.monotonic() - t0
            data += chunk
    finally:
        os.close(fd)


def test_nonblocking_read_of_watch_gives_what_is_there(sb):
    data, eagain, took = _nonblock_read(sb.path("watch"))
    assert eagain and took < 2.0, (data, eagain, took)
    # Blocking readers still wait: cat at the end does not return.
    r = subprocess.run(["timeout", "1", "cat", sb.path("watch")], capture_output=True)
    assert r.returncode == 124      # cat was still waiting after a second


def test_nonblocking_read_of_wait(sb):
    bg = sb.run_bg("sh", "sleep 2; echo done\n")
    try:
        time.sleep(0.5)
        data, eagain, took = _nonblock_read(sb.path("wait"))
        assert eagain and data == b"" and took < 1.0, (data, eagain, took)
    finally:
        bg.finish(30)
    data, eagain, _ = _nonblock_read(sb.path("wait"))
    assert not eagain and data == b"0\n"


def test_poll_on_wait_says_readable_when_the_run_ends(sb):
    bg = sb.run_bg("sh", "sleep 2\n")
    fd = os.open(sb.path("wait"), os.O_RDONLY | os.O_NONBLOCK)
    try:
        time.sleep(0.5)
        p = select.poll()
        p.register(fd, select.POLLIN)
        assert p.poll(0) == [], "wait is readable while a run is in progress"
        t0 = time.monotonic()
        events = p.poll(10000)
        took = time.monotonic() - t0
        assert events and events[0][1] & select.POLLIN, events
        assert 0.5 < took < 5, took
        assert os.read(fd, 100) == b"0\n"
    finally:
        os.close(fd)
        bg.finish(30)
    # idle: readable at once; files/ answers poll too (regular files are always ready)
    for path in (sb.path("wait"), sb.files("etc/hostname")):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            p = select.poll()
            p.register(fd, select.POLLIN)
            assert p.poll(1000), path
        finally:
            os.close(fd)


def _tmux(*args):
    return subprocess.run(["tmux"] + list(args), capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(not shutil.which("tmux") or not shutil.which("vim"), reason="needs tmux and vim")
def test_vim_saves_run_py_without_warning(sb, tmp_path):
    session = "sbxfs-vim-" + os.urandom(3).hex()
    write_file(sb.path("run.py"), "print(1)\n")
    r = _tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "30", "-c", sb.path(),
              "env HOME=%s vim -u NONE -i NONE -N run.py" % tmp_path)
    assert r.returncode == 0, r.stderr
    try:
        def screen():
            return _tmux("capture-pane", "-p", "-t", session).stdout

        deadline = time.monotonic() + 10
        while "print(1)" not in screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "print(1)" in screen(), screen()
        assert ".run.py.swp" in os.listdir(sb.path())       # the swap file lives beside the file
        for n in (2, 3, 4):
            _tmux("send-keys", "-t", session, "ggdGi" + "print(%d)" % n, "Escape", ":w", "Enter")
            deadline = time.monotonic() + 20
            while sb.read("stdout") != "%d\n" % n and time.monotonic() < deadline:
                time.sleep(0.1)
            assert sb.read("stdout") == "%d\n" % n, screen()
            time.sleep(1.1)            # a second later: a changing mtime would show now
            s = screen()
            assert "changed since reading" not in s and "WARNING" not in s, s
            assert "E510" not in s and "E212" not in s, s
        _tmux("send-keys", "-t", session, ":q", "Enter")
        deadline = time.monotonic() + 10
        while _tmux("has-session", "-t", session).returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ".run.py.swp" not in os.listdir(sb.path())
        assert not [n for n in os.listdir(sb.path()) if n.endswith("~") or n == "4913"]
    finally:
        _tmux("kill-session", "-t", session)


@pytest.mark.skipif(not shutil.which("tmux") or not shutil.which("vim"), reason="needs tmux and vim")
def test_vim_saves_a_file_in_files_without_warning(sb, tmp_path):
    name = "vim-%s.txt" % os.urandom(3).hex()
    path = sb.files("home/user/" + name)
    write_file(path, "one\n")
    session = "sbxfs-vimf-" + os.urandom(3).hex()
    r = _tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "30", "-c", os.path.dirname(path),
              "env HOME=%s vim -u NONE -i NONE -N %s" % (tmp_path, name))
    assert r.returncode == 0, r.stderr
    try:
        def screen():
            return _tmux("capture-pane", "-p", "-t", session).stdout

        deadline = time.monotonic() + 10
        while "one" not in screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        for word in ("two", "three"):
            _tmux("send-keys", "-t", session, "ggdGi" + word, "Escape", ":w", "Enter")
            deadline = time.monotonic() + 10
            while read_text(path) != word + "\n" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert read_text(path) == word + "\n", screen()
            time.sleep(1.1)
            s = screen()
            assert "changed since reading" not in s and "WARNING" not in s and "E5" not in s, s
        r = sb.run("sh", "cat /home/user/%s\n" % name)
        assert r.stdout == "three\n", r
    finally:
        _tmux("kill-session", "-t", session)
