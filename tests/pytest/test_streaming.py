"""test_streaming.py - output that grows while a run is in progress, `wait`,
inotify on completion, background runs, stdin, batches, 1,000 blocked
readers (issue 3, points 3, 4 and the wait part of the tests).

Run: SBXFS_BIN=build/sbxfs /usr/bin/python3 -m pytest -q tests/pytest/test_streaming.py
"""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from sbxtest import read_text, write_file


def _bg_write(path, code):
    """`echo CODE > path &`: a shell that stays in close() until the run ends."""
    return subprocess.Popen(["sh", "-c", 'printf "%s" "$1" > "$0"', path, code])


def _readline(f, timeout):
    """A line from a pipe, or b"" after timeout seconds (a follower must not hang the test)."""
    import select
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([f], [], [], left)[0]:
            break
        c = os.read(f.fileno(), 1)
        if not c:
            break
        buf += c
    return buf


def _wait_for(pred, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


@pytest.mark.parametrize("where", ["sandbox", "context"])
def test_tail_f_sees_first_line_before_second_is_printed(mount, box, where):
    b = box()
    base = b.path()
    if where == "context":
        os.mkdir(b.path("contexts", "s"))
        base = b.path("contexts", "s")
    code = ("import time\nprint('first')\n"
            "while not __import__('os').path.exists('/tmp/go'):\n    time.sleep(0.02)\nprint('second')\n")
    bg = _bg_write(os.path.join(base, "run.py"), code)
    tail = subprocess.Popen(["tail", "-n", "+1", "-s", "0.05", "-f", os.path.join(base, "stdout")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = _readline(tail.stdout, 15)
        assert line == b"first\n", line
        # `second` cannot have been printed yet: the run waits for /tmp/go.
        assert bg.poll() is None
        write_file(b.files("tmp/go"), "")
        assert _readline(tail.stdout, 15) == b"second\n"
    finally:
        tail.kill()
        tail.wait()
    assert bg.wait(20) == 0
    assert read_text(os.path.join(base, "stdout")) == "first\nsecond\n"


@pytest.mark.parametrize("where", ["sandbox", "context"])
def test_wait_blocks_until_idle(mount, box, where):
    b = box()
    base = b.path()
    if where == "context":
        os.mkdir(b.path("contexts", "w"))
        base = b.path("contexts", "w")
    assert read_text(os.path.join(base, "wait")) == ""   # nothing ran yet: at once
    bg = _bg_write(os.path.join(base, "run.sh"), "sleep 1.5; exit 3\n")
    time.sleep(0.3)
    t0 = time.monotonic()
    text = read_text(os.path.join(base, "wait"))
    assert time.monotonic() - t0 > 0.8
    assert text == "3\n"
    assert bg.wait(10) == 0
    t0 = time.monotonic()
    assert read_text(os.path.join(base, "wait")) == "3\n"
    assert time.monotonic() - t0 < 0.5


@pytest.mark.skipif(not shutil.which("inotifywait"), reason="inotifywait not installed (inotify-tools)")
@pytest.mark.parametrize("where", ["sandbox", "context"])
def test_inotifywait_sees_exit_appear(mount, box, where):
    b = box()
    base = b.path()
    if where == "context":
        os.mkdir(b.path("contexts", "n"))
        base = b.path("contexts", "n")
    b.run("sh", "true\n")
    watch = subprocess.Popen(["inotifywait", "-q", "-e", "create", "--format", "%f", base],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.3)   # the watch is set up
    bg = _bg_write(os.path.join(base, "run.sh"), "sleep 0.5; echo done\n")
    try:
        out, err = watch.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        watch.kill()
        raise AssertionError("inotifywait saw nothing within 15 s")
    assert out.decode().split() == ["exit"], (out, err)
    assert bg.wait(10) == 0
    assert read_text(os.path.join(base, "exit")) == "0\n"
    assert read_text(os.path.join(base, "stdout")) == "done\n"


def test_background_run_can_be_followed(mount, box):
    b = box()
    sh = subprocess.Popen(["bash", "-c", 'echo "sleep 0.5; echo bg" > "$0/run.sh" & '
                           'sleep 0.2; [ -e "$0/exit" ] && echo early; cat "$0/wait"; cat "$0/stdout"',
                           b.path()], stdout=subprocess.PIPE)
    out, _ = sh.communicate(timeout=20)
    assert out == b"0\nbg\n", out


def test_stdin_file_feeds_runs(mount, box):
    b = box()
    write_file(b.path("stdin"), "3\n4\n")
    r = b.run("py", "import sys\nprint(sum(int(l) for l in sys.stdin))\n")
    assert r.stdout == "7\n", r
    r = b.run("sh", "cat\n")
    assert r.stdout == "3\n4\n", r
    runs = sorted(os.listdir(b.path("runs")), key=int)
    assert read_text(b.path("runs", runs[-1], "stdin")) == "3\n4\n"
    write_file(b.path("stdin"), "")
    assert b.run("sh", "cat; echo end\n").stdout == "end\n"


@pytest.mark.deadline(90)
def test_twenty_concurrent_writers_give_twenty_runs(mount, box):
    b = box()
    path = b.path("run.py")
    fds = [os.open(path, os.O_WRONLY | os.O_TRUNC) for _ in range(20)]
    for i, fd in enumerate(fds):
        os.write(fd, ("import time\nfor k in range(3):\n    print('w%d', k, flush=True)\n"
                      "    time.sleep(0.01)\n" % i).encode())
    errors = []

    def close(fd):
        try:
            os.close(fd)
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=close, args=(fd,)) for fd in fds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    runs = sorted(os.listdir(b.path("runs")), key=int)
    assert len(runs) == 20, runs
    seen = set()
    for n in runs:
        code = read_text(b.path("runs", n, "code"))
        who = code.split("'")[1]
        out = read_text(b.path("runs", n, "stdout"))
        assert out == "".join("%s %d\n" % (who, k) for k in range(3)), (n, out)
        assert read_text(b.path("runs", n, "exit")) == "0\n"
        seen.add(who)
    assert seen == {"w%d" % i for i in range(20)}
    starts = [json.loads(read_text(b.path("runs", n, "info")))["start_ms"] for n in runs]
    assert starts == sorted(starts)


def _sandbox_traffic(mount, stop, stats):
    """Other sandboxes created, run and read at normal speed meanwhile."""
    while not stop.is_set():
        t0 = time.monotonic()
        b = mount.new()
        r = b.run("sh", "echo hi\n")
        assert r.stdout == "hi\n"
        assert read_text(b.path("status")) == "running\n"
        mount.ctl("kill " + b.name)
        stats.append(time.monotonic() - t0)


@pytest.mark.deadline(180)
def test_thousand_blocked_waiters_and_sigint(mount, box):
    b = box()
    bg = _bg_write(b.path("run.sh"), "while [ ! -e /tmp/end ]; do sleep 0.05; done\n")
    time.sleep(0.3)
    # A baseline for "normal speed" before the readers pile up.
    base = []
    stop = threading.Event()
    for _ in range(3):
        t0 = time.monotonic()
        x = mount.new()
        x.run("sh", "echo hi\n")
        mount.ctl("kill " + x.name)
        base.append(time.monotonic() - t0)
    readers = []
    for _ in range(1000):
        readers.append(subprocess.Popen(["cat", b.path("wait")], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL))
    time.sleep(1.0)
    assert all(p.poll() is None for p in readers), "a wait reader returned while the run is going"
    stats = []
    stop.clear()
    t = threading.Thread(target=_sandbox_traffic, args=(mount, stop, stats))
    t.start()
    time.sleep(4)
    # Ctrl-C on one blocked reader returns it at once.
    victim = readers.pop()
    t0 = time.monotonic()
    victim.send_signal(signal.SIGINT)
    victim.wait(5)
    assert time.monotonic() - t0 < 1.0
    stop.set()
    t.join(60)
    assert stats, "no sandbox was created while readers were blocked"
    assert sorted(stats)[len(stats) // 2] < max(2.0, 5 * sorted(base)[1]), (base, stats)
    # End the run: every reader gets the exit text.
    write_file(b.files("tmp/end"), "")
    assert bg.wait(40) == 0
    outs = [p.communicate(timeout=30)[0] for p in readers]
    assert all(o == b"0\n" for o in outs), set(outs)
