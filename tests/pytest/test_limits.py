"""test_limits.py - output caps, memory, per-run timeouts (issue 3, point 5).

Run: SBXFS_BIN=build/sbxfs /usr/bin/python3 -m pytest -q tests/pytest/test_limits.py
"""

import json
import os
import threading
import time

import pytest

from sbxtest import read_text, write_file

PRINTER = ("import sys\nchunk = b'x' * (1 << 20)\nw = sys.stdout.buffer.write\n"
           "for _ in range(%d):\n    w(chunk)\nsys.stdout.flush()\nprint('never kept', file=sys.stderr)\n")


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _sample_rss(pid, stop, out):
    while not stop.is_set():
        out.append(_rss_kb(pid))
        time.sleep(0.05)


@pytest.mark.deadline(120)
@pytest.mark.parametrize("where", ["sandbox", "context"])
def test_gigabytes_of_output_are_cut_and_memory_stays_flat(mount_factory, where):
    m = mount_factory(output_max="1M")
    b = m.new()
    base = b.path()
    if where == "context":
        os.mkdir(b.path("contexts", "big"))
        base = b.path("contexts", "big")
    b.run("sh", "true\n")
    before = _rss_kb(m.proc.pid)
    samples, stop = [], threading.Event()
    t = threading.Thread(target=_sample_rss, args=(m.proc.pid, stop, samples))
    t.start()
    t0 = time.monotonic()
    gib = 3 if where == "sandbox" else 2
    try:
        write_file(os.path.join(base, "run.py"), PRINTER % (gib * 1024))
    finally:
        stop.set()
        t.join()
    seconds = time.monotonic() - t0
    info = json.loads(read_text(os.path.join(base, "runs", "1" if where == "context" else "2", "info")))
    assert info["exit"] == 0 and info["stdout_cut"] is True, info
    size = os.stat(os.path.join(base, "stdout")).st_size
    assert (1 << 20) <= size < (1 << 20) + 200, size
    with open(os.path.join(base, "stdout"), "rb") as f:
        f.seek((1 << 20) - 10)
        tail = f.read()
    assert tail.startswith(b"x" * 10) and b"[sbxfs: output cut at 1048576 bytes]" in tail, tail
    # Memory: what the daemon had before, plus well under the output size.
    assert max(samples) - before < 32 * 1024, (before, max(samples), seconds)
    # Disk: only the cap is kept.
    runs_dir = os.path.join(m.state, "sandboxes", b.name) if hasattr(m, "state") else None
    if runs_dir:
        total = 0
        for root, _, files in os.walk(runs_dir):
            if "/runs/" in root + "/":
                total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        assert total < 4 << 20, total
    print("%s: %d GiB in %.1f s, daemon RSS %d -> %d kB" % (where, gib, seconds, before, max(samples)))


def test_cut_marker_only_when_cut(mount_factory):
    m = mount_factory(output_max="64K")
    b = m.new()
    r = b.run("sh", "head -c 65536 /dev/zero | tr '\\0' y\n")
    assert r.stdout == "y" * 65536, len(r.stdout)
    r = b.run("sh", "head -c 65537 /dev/zero | tr '\\0' y\n")
    assert r.stdout.startswith("y" * 65536) and r.stdout.endswith("[sbxfs: output cut at 65536 bytes]\n")
    r = b.run("sh", "head -c 100000 /dev/zero | tr '\\0' e >&2\n")
    assert r.stderr.endswith("[sbxfs: output cut at 65536 bytes]\n") and r.stdout == ""


@pytest.mark.deadline(60)
@pytest.mark.parametrize("lang,first", [("py", "# sbxfs: timeout=1"), ("js", "// sbxfs: timeout=1"),
                                         ("sh", "# sbxfs: timeout=1")])
def test_first_line_overrides_timeout(mount, box, lang, first):
    b = box("timeout=30")
    body = {"py": "import time\ntime.sleep(20)\n", "js": "setTimeout(() => {}, 20000)\n",
            "sh": "sleep 20\n"}[lang]
    r = b.run(lang, first + "\n" + body)
    assert r.exit == 124 and r.seconds < 8, r
    info = json.loads(read_text(b.path("runs", "1", "info")))
    assert info["timed_out"] is True and info["timeout"] == 1, info


@pytest.mark.deadline(60)
def test_sandbox_timeout_applies_and_override_may_raise_it(mount, box):
    b = box("timeout=1")
    r = b.run("sh", "sleep 3; echo late\n")
    assert r.exit == 124 and r.stdout == "", r
    r = b.run("sh", "# sbxfs: timeout=5\nsleep 2; echo late\n")
    assert r.exit == 0 and r.stdout == "late\n", r


def test_timeout_line_elsewhere_is_ignored(mount, box):
    b = box("timeout=30")
    r = b.run("py", "x = 1\n# sbxfs: timeout=1\nimport time\ntime.sleep(1.5)\nprint('ok')\n")
    assert r.exit == 0 and r.stdout == "ok\n", r
