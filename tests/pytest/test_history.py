"""test_history.py - runs/N/ of a sandbox and of its contexts (issue 3, point 2).

Run: SBXFS_BIN=build/sbxfs /usr/bin/python3 -m pytest -q tests/pytest/test_history.py
"""

import json
import os

from sbxtest import read_text, write_file


def _runs(path):
    return sorted(os.listdir(path), key=int)


def test_run_entries_and_info(mount, box):
    b = box()
    r = b.run("py", "print('out')\nimport sys\nprint('err', file=sys.stderr)\nsys.exit(2)\n")
    assert r.exit == 2
    d = b.path("runs", "1")
    assert sorted(os.listdir(d)) == ["code", "exit", "info", "stderr", "stdout"]
    assert read_text(os.path.join(d, "code")).startswith("print('out')")
    assert read_text(os.path.join(d, "stdout")) == "out\n"
    assert read_text(os.path.join(d, "stderr")) == "err\n"
    assert read_text(os.path.join(d, "exit")) == "2\n"
    info = json.loads(read_text(os.path.join(d, "info")))
    for key in ("language", "context", "start", "end", "duration_ms", "timed_out", "exit"):
        assert key in info, (key, info)
    assert info["language"] == "python" and info["context"] is None and info["exit"] == 2
    assert info["timed_out"] is False and 0 <= info["duration_ms"] < 10000
    assert info["start"].endswith("Z") and info["start"] <= info["end"]
    b.run("js", "console.log(1)\n")
    b.run("sh", "echo 1\n")
    langs = [json.loads(read_text(b.path("runs", n, "info")))["language"] for n in _runs(b.path("runs"))]
    assert langs == ["python", "javascript", "bash"]


def test_history_is_kept_to_the_count_and_survives_remount(mount_factory):
    m = mount_factory(history="3")
    b = m.new("hist")
    os.mkdir(b.path("contexts", "c"))
    for i in range(5):
        write_file(b.path("run.sh"), "echo %d\n" % i)
        write_file(b.path("contexts", "c", "run.py"), "print(%d)\n" % i)
    assert _runs(b.path("runs")) == ["3", "4", "5"]
    assert _runs(b.path("contexts", "c", "runs")) == ["3", "4", "5"]
    assert read_text(b.path("runs", "3", "stdout")) == "2\n"
    ci = json.loads(read_text(b.path("contexts", "c", "runs", "5", "info")))
    assert ci["context"] == "c" and ci["language"] == "python"
    for crash in (False, True):
        m = m.remount(crash=crash)
        h = os.path.join(m.mnt, "hist")
        assert _runs(os.path.join(h, "runs")) == ["3", "4", "5"]
        assert _runs(os.path.join(h, "contexts", "c", "runs")) == ["3", "4", "5"]
        assert read_text(os.path.join(h, "stdout")) == "4\n"
        assert read_text(os.path.join(h, "contexts", "c", "stdout")) == "4\n"
        assert read_text(os.path.join(h, "exit")) == "0\n"
    write_file(os.path.join(h, "run.sh"), "echo new\n")
    assert _runs(os.path.join(h, "runs")) == ["4", "5", "6"]
    assert read_text(os.path.join(h, "run.sh")) == "echo new\n"


def test_run_file_reads_back_last_code(mount, box):
    b = box()
    os.mkdir(b.path("contexts", "r"))
    write_file(b.path("contexts", "r", "run.sh"), "echo ctx\n")
    assert read_text(b.path("contexts", "r", "run.sh")) == "echo ctx\n"
    assert read_text(b.path("run.sh")) == ""
