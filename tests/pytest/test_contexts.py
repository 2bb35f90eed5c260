"""test_contexts.py - contexts/CTX/: persistent interpreters (issue 3, point 1 and 6).

Run: SBXFS_BIN=build/sbxfs /usr/bin/python3 -m pytest -q tests/pytest/test_contexts.py
"""

import json
import os
import subprocess
import time

import pytest

from sbxtest import read_text, write_file

LANG_FILE = {"py": "run.py", "js": "run.js", "sh": "run.sh"}


class Ctx:
    def __init__(self, box, name):
        self.box, self.name = box, name
        self.dir = box.path("contexts", name)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def run(self, lang, code):
        write_file(self.path(LANG_FILE[lang]), code)
        ex = self.path("exit")
        return (read_text(self.path("stdout")), read_text(self.path("stderr")),
                int(read_text(ex)) if os.path.exists(ex) else None)

    def result(self):
        return read_text(self.path("result"))


@pytest.fixture
def ctx(mount, box):
    def make(name="c1", b=None):
        b = b or box()
        os.mkdir(b.path("contexts", name))
        return Ctx(b, name)
    return make


def test_mkdir_lists_files_and_rmdir_removes(ctx):
    c = ctx()
    assert os.listdir(c.box.path("contexts")) == ["c1"]
    names = set(os.listdir(c.dir))
    assert {"run.py", "run.js", "run.sh", "stdout", "stderr", "wait", "result", "runs", "results",
            "stdin"} <= names, names
    assert "exit" not in names
    os.rmdir(c.dir)
    assert os.listdir(c.box.path("contexts")) == []
    assert not os.path.exists(c.dir)


def test_mkdir_twice_and_bad_names(ctx):
    c = ctx()
    with pytest.raises(FileExistsError):
        os.mkdir(c.dir)
    for bad in (".hidden", "a" * 65):
        with pytest.raises(OSError):
            os.mkdir(c.box.path("contexts", bad))
    with pytest.raises(FileNotFoundError):
        os.rmdir(c.box.path("contexts", "nope"))


def test_python_state_and_result(ctx):
    c = ctx()
    assert c.run("py", "x = 2\nx * 21\n") == ("", "", 0)
    assert c.result() == "42\n"
    out, err, code = c.run("py", "import math\nprint(x, math.pi > 3)\n")
    assert (out, code) == ("2 True\n", 0), err
    assert c.result() == ""   # no final expression
    c.run("py", "{'a': [1, 'two']}\n")
    assert c.result() == "{'a': [1, 'two']}\n"


@pytest.mark.deadline(120)
def test_state_persists_across_100_runs(ctx):
    c = ctx()
    c.run("py", "n = 0\n")
    for _ in range(100):
        write_file(c.path("run.py"), "n += 1\n")
    out, err, code = c.run("py", "print(n)\n")
    assert (out, code) == ("100\n", 0), err
    assert len(os.listdir(c.path("runs"))) <= 20


def test_exception_keeps_state(ctx):
    c = ctx()
    c.run("py", "kept = 'yes'\n")
    out, err, code = c.run("py", "def f():\n    raise ValueError('boom')\nf()\n")
    assert code == 1
    assert "Traceback" in err and "ValueError: boom" in err and "python_ctx" not in err, err
    assert c.run("py", "print(kept)\n")[0] == "yes\n"
    out, err, code = c.run("py", "def broken(:\n")
    assert code == 1 and "SyntaxError" in err, err
    assert c.run("py", "print(kept)\n")[0] == "yes\n"


def test_sys_exit_sets_exit_and_keeps_state(ctx):
    c = ctx()
    c.run("py", "v = 7\n")
    assert c.run("py", "import sys\nsys.exit(3)\n")[2] == 3
    assert c.run("py", "print(v)\n")[0] == "7\n"


def test_two_contexts_are_isolated(ctx, box):
    b = box()
    a, z = ctx("a", b), ctx("z", b)
    a.run("py", "secret = 1\n")
    a.run("sh", "export ONLY_A=1; cd /tmp\n")
    out, err, code = z.run("py", "print('secret' in globals())\n")
    assert out == "False\n", err
    assert z.run("sh", 'echo "${ONLY_A:-unset} $PWD"\n')[0] == "unset /home/user\n"
    assert a.run("sh", 'echo "${ONLY_A:-unset} $PWD"\n')[0] == "1 /tmp\n"


def test_bash_keeps_cwd_env_functions(ctx):
    c = ctx()
    c.run("sh", "cd /tmp\nexport K=v\ngreet() { echo \"hi $1\"; }\nalias ll='echo ll'\n")
    out, err, code = c.run("sh", 'pwd; echo "$K"; greet you\n')
    assert (out, code) == ("/tmp\nhi you\n" if False else "/tmp\nv\nhi you\n", 0), err
    assert c.run("sh", "false\n")[2] == 1
    assert c.run("sh", "echo still $K\n")[0] == "still v\n"


def test_node_state_and_top_level_await(ctx):
    c = ctx()
    out, err, code = c.run("js", "let a = 5;\nconst b = await Promise.resolve(6);\n"
                                 "function twice(x) { return 2 * x; }\nconsole.log(a * b);\n")
    assert (out, code) == ("30\n", 0), err
    out, err, code = c.run("js", "console.log(twice(a + b));\n")
    assert (out, code) == ("22\n", 0), err
    out, err, code = c.run("js", "null.boom\n")
    assert code == 1 and "TypeError" in err, err
    assert c.run("js", "console.log(a)\n")[0] == "5\n"
    c.run("js", "const fs = require('fs');\nfs.existsSync('/home/user')\n")
    assert c.result() == "true\n"


@pytest.mark.deadline(60)
def test_timeout_restarts_and_says_so(ctx):
    c = ctx()
    c.run("py", "before = 1\n")
    t0 = time.monotonic()
    out, err, code = c.run("py", "# sbxfs: timeout=1\nimport time\nprint('start', flush=True)\ntime.sleep(30)\n")
    assert time.monotonic() - t0 < 10
    assert code == 124 and out == "start\n", (out, err)
    assert "timed out" in err and "restarted" in err, err
    info = json.loads(read_text(c.path("runs", sorted(os.listdir(c.path("runs")), key=int)[-1], "info")))
    assert info["timed_out"] is True and info["exit"] == 124 and info["context"] == "c1", info
    out, err, code = c.run("py", "print('before' in globals())\n")
    assert (out, code) == ("False\n", 0), err


def test_interpreter_exit_is_reported_and_restarted(ctx):
    c = ctx()
    out, err, code = c.run("py", "import os\nos._exit(5)\n")
    assert code == 5 and "ended" in err, err
    assert c.run("py", "print(1)\n")[0] == "1\n"
    out, err, code = c.run("sh", "exit 4\n")
    assert code == 4, err
    assert c.run("sh", "echo back\n")[0] == "back\n"


def test_subprocess_output_and_stdin(ctx):
    c = ctx()
    out, err, code = c.run("py", "import subprocess\nsubprocess.run(['echo', 'child'])\nprint('parent')\n")
    assert out == "child\nparent\n", err
    write_file(c.path("stdin"), "line one\nline two\n")
    out, err, code = c.run("py", "import sys\nprint(sys.stdin.read().upper(), end='')\n")
    assert out == "LINE ONE\nLINE TWO\n", err
    assert c.run("sh", "wc -l\n")[0].strip() == "2"


def test_rmdir_stops_interpreters(ctx):
    c = ctx()
    c.run("sh", "echo $$ > /tmp/ctx_shell_pid\n")
    pid = read_text(c.box.files("tmp/ctx_shell_pid")).strip()
    assert c.box.run("sh", "kill -0 %s && echo alive\n" % pid).stdout == "alive\n"
    os.rmdir(c.dir)
    r = c.box.run("sh", "kill -0 %s 2>/dev/null && echo alive || echo gone\n" % pid)
    assert r.stdout == "gone\n", r


def test_rmdir_during_a_run(ctx):
    c = ctx()
    bg = subprocess.Popen(["sh", "-c", "echo 'import time; time.sleep(30)' > '%s'" % c.path("run.py")])
    time.sleep(1.0)
    t0 = time.monotonic()
    os.rmdir(c.dir)
    assert bg.wait(10) is not None
    assert time.monotonic() - t0 < 5
    assert not os.path.exists(c.dir)


def test_context_history_survives_remount(mount_factory):
    m = mount_factory()
    b = m.new("keep")
    os.mkdir(b.path("contexts", "k"))
    write_file(b.path("contexts", "k", "run.py"), "print('saved')\n7 * 6\n")
    m = m.remount(crash=False)
    c = os.path.join(m.mnt, "keep", "contexts", "k")
    assert os.listdir(os.path.join(m.mnt, "keep", "contexts")) == ["k"]
    assert read_text(os.path.join(c, "stdout")) == "saved\n"
    assert read_text(os.path.join(c, "result")) == "42\n"
    assert read_text(os.path.join(c, "runs", "1", "exit")) == "0\n"
    write_file(os.path.join(c, "run.py"), "print('again')\n")
    assert read_text(os.path.join(c, "stdout")) == "again\n"
    assert sorted(os.listdir(os.path.join(c, "runs"))) == ["1", "2"]


def _has_matplotlib():
    try:
        return subprocess.run(["/usr/bin/python3", "-c", "import matplotlib"], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.mark.skipif(not _has_matplotlib(), reason="matplotlib is not installed (apt-get install python3-matplotlib)")
@pytest.mark.deadline(90)
def test_matplotlib_figures_saved_as_png(ctx):
    c = ctx()
    out, err, code = c.run("py", "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\n"
                                 "plt.figure()\nplt.bar([1, 2], [3, 4])\nNone\n")
    assert code == 0, err
    runs = sorted(os.listdir(c.path("runs")), key=int)
    files = os.listdir(c.path("runs", runs[-1]))
    assert "figure-1.png" in files and "figure-2.png" in files, files
    with open(c.path("runs", runs[-1], "figure-1.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    results = sorted(os.listdir(c.path("results")))
    assert results == ["%s-figure-1.png" % runs[-1], "%s-figure-2.png" % runs[-1]], results
    with open(c.path("results", results[0]), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # Figures are closed once saved: the next run leaves none.
    c.run("py", "x = 1\n")
    runs = sorted(os.listdir(c.path("runs")), key=int)
    assert not [f for f in os.listdir(c.path("runs", runs[-1])) if f.endswith(".png")]
