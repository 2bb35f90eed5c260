"""test_runs.py - run.py / run.js / run.sh: output, exit codes, timeouts, env
(issue 2, Runs)."""

import json
import os
import time

import pytest

from sbxtest import processes, read_text, write_file

PROGRAMS = {
    "py": "import sys\nprint('out-py')\nprint('err-py', file=sys.stderr)\n",
    "js": "console.log('out-js');\nconsole.error('err-js');\n",
    "sh": "echo out-sh\necho err-sh >&2\n",
}


@pytest.mark.parametrize("lang", ["py", "js", "sh"])
def test_stdout_stderr_exit(sb, lang):
    r = sb.run(lang, PROGRAMS[lang])
    assert r.stdout == "out-%s\n" % lang, r
    assert r.stderr == "err-%s\n" % lang, r
    assert r.exit_text == "0\n", r


@pytest.mark.parametrize("lang,code", [
    ("sh", "echo before\nexit 3\n"),
    ("py", "import sys\nprint('before')\nsys.exit(3)\n"),
    ("js", "console.log('before');\nprocess.exit(3);\n"),
])
def test_nonzero_exit(sb, lang, code):
    r = sb.run(lang, code)
    assert r.exit_text == "3\n", r
    assert r.stdout == "before\n", r


def test_uncaught_python_exception(sb):
    r = sb.run("py", "print('x')\nraise ValueError('boom-7q2')\n")
    assert r.exit == 1, r
    assert "Traceback (most recent call last)" in r.stderr, r
    assert "ValueError: boom-7q2" in r.stderr, r
    assert r.stdout == "x\n"


def test_uncaught_js_exception(sb):
    r = sb.run("js", "throw new Error('boom-js-5k');\n")
    assert r.exit != 0, r
    assert "boom-js-5k" in r.stderr, r


def test_killed_by_signal_is_128_plus_n(sb):
    r = sb.run("sh", "kill -TERM $$\n")
    assert r.exit == 128 + 15, r


def test_runs_in_home_as_user(sb):
    r = sb.run("py", "import os\nprint(os.getcwd(), os.getuid(), os.environ.get('HOME'),"
                     " os.environ.get('USER'), os.environ.get('LANG'))\n")
    assert r.stdout == "/home/user 1000 /home/user user C.UTF-8\n", r
    assert "PATH" in sb.run("sh", "env\n").stdout


def test_output_is_latest_run_only(sb):
    sb.run("sh", "echo first; echo first-err >&2\n")
    r = sb.run("sh", "echo second\n")
    assert r.stdout == "second\n" and r.stderr == "", r


def test_run_file_reads_back_last_code(sb):
    code = "print('read me back')  # %s\n" % os.urandom(4).hex()
    sb.run("py", code)
    assert read_text(sb.path("run.py")) == code


def test_exit_absent_before_first_run(mount, box):
    b = box()
    assert not os.path.exists(b.path("exit"))
    assert "exit" not in os.listdir(b.path())
    b.run("sh", "true\n")
    assert read_text(b.path("exit")) == "0\n"


def test_exit_absent_while_running(mount, box):
    b = box()
    b.run("sh", "true\n")
    bg = b.run_bg("sh", "sleep 2\n")
    time.sleep(0.7)
    assert not os.path.exists(b.path("exit")), "exit present while a run is in progress"
    r = bg.finish(20)
    assert r.exit_text == "0\n"


def test_close_returns_when_run_ended(sb):
    t0 = time.monotonic()
    r = sb.run("sh", "sleep 1; echo done\n")
    assert time.monotonic() - t0 >= 0.9
    assert r.stdout == "done\n" and r.exit == 0


def _assert_no_leftovers(b):
    # sbxtest.processes leaves out (and checks) what docker adds: tini as pid 1, the
    # container's `sleep infinity`, the run's sh wrapper (docs/docker-backend.md)
    procs = processes(b)
    names = [p[2] for p in procs]
    assert "sleep" not in names, "processes left after the timeout: %s" % procs
    assert "ps" in names, procs
    # init/agent, the bash of this run, ps itself
    assert len(procs) <= 4, "unexpected processes in the sandbox: %s" % procs


@pytest.mark.deadline(45)
def test_timeout_at_new_gives_124(mount, box):
    b = box("timeout=1")
    r = b.run("sh", "sleep 31 &\nsleep 30\n")
    assert r.exit_text == "124\n", r
    assert r.seconds < 6, "a run with timeout=1 took %.1fs" % r.seconds
    _assert_no_leftovers(b)


@pytest.mark.deadline(45)
def test_timeout_by_ctl_gives_124(mount, box):
    b = box()
    b.ctl_ok("timeout 1")
    assert b.info()["timeout"] == 1
    r = b.run("py", "import time\nprint('started', flush=True)\ntime.sleep(30)\n")
    assert r.exit_text == "124\n", r
    assert r.seconds < 6, r
    assert r.stdout == "started\n", r
    _assert_no_leftovers(b)


@pytest.mark.deadline(45)
def test_timeout_kills_whole_tree(mount, box):
    """A child that left the run's session is still part of the run's tree."""
    b = box("timeout=1")
    r = b.run("sh", "setsid sleep 33 >/dev/null 2>&1 < /dev/null &\nsleep 30\n")
    assert r.exit == 124, r
    _assert_no_leftovers(b)


def test_env_at_new_reaches_run(mount, box):
    b = box("env.FOO=bar", "env.NUM=42")
    r = b.run("sh", 'echo "$FOO $NUM"\n')
    assert r.stdout == "bar 42\n", r
    env = read_text(b.path("env")).splitlines()
    assert "FOO=bar" in env and "NUM=42" in env, env


def test_env_file_replaces_environment(mount, box):
    b = box("env.FOO=bar")
    write_file(b.path("env"), "FOO=baz\nQUX=with space and = sign\n")
    r = b.run("py", "import os\nprint(os.environ.get('FOO'), '|', os.environ.get('QUX'))\n")
    assert r.stdout == "baz | with space and = sign\n", r
    write_file(b.path("env"), "OTHER=1\n")
    r = b.run("sh", 'echo "[${FOO-unset}] [$OTHER] [$HOME]"\n')
    assert r.stdout == "[unset] [1] [/home/user]\n", r
    assert read_text(b.path("env")).splitlines() == ["OTHER=1"]


def test_env_in_js(mount, box):
    b = box("env.FOO=from-js")
    assert b.run("js", "console.log(process.env.FOO)\n").stdout == "from-js\n"


# Set by the backends on every run besides PATH, HOME, USER and LANG (formats.md).
RUN_ENV_COMMON = {"LOGNAME", "SHELL", "TERM"}
# What the engine adds to an exec on top of the container's environment
# (docs/docker-backend.md, "Differences from local").
RUN_ENV_EXTRA = {"local": set(), "docker": {"HOSTNAME", "PWD"}}


def test_run_environment_is_env_and_defaults(mount, box):
    b = box()
    write_file(b.path("env"), "ONLY=1\n")
    r = b.run("py", "import json, os\nprint(json.dumps(dict(os.environ)))\n")
    env = json.loads(r.stdout)
    assert env["ONLY"] == "1" and env["HOME"] == "/home/user" and env["USER"] == "user", env
    extra = set(env) - {"ONLY", "PATH", "HOME", "USER", "LANG"} - RUN_ENV_COMMON
    assert extra == RUN_ENV_EXTRA.get(mount.backend, set()), env
    if mount.backend == "docker":
        assert env["PWD"] == "/home/user", env
