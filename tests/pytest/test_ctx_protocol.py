"""test_ctx_protocol.py - a context's code attacks the protocol that tells the daemon where a run
ends (issue 10 item 2), bad bytes in a Bash context (issue 11 item 5), and interpreters lost when
the daemon stops (issue 11 item 2).

The code of a context shares its interpreter's process, so it can read the run's nonce and write
end frames of its own. Each attack here does what an attacker would: finds the nonce (Python through
sys._getframe(), Node by hooking the driver's own write of its frame, Bash from $__sbx_nonce),
forges frames that claim 64 figures of 32 MiB (in the old JSON form and in the present one), and
pours junk after them. The daemon's memory must stay within 32 MiB of where it was, what it keeps
on disk for the run within output_max per stream, and the context must work afterwards or say
that it was restarted.

Run: SBXFS_BIN=build/sbxfs /usr/bin/python3 -m pytest -q tests/pytest/test_ctx_protocol.py
"""

import errno
import os
import threading
import time

import pytest

from sbxtest import read_text, write_file

CAP = 1 << 20                 # output_max of the mounts here
NOTES = 64 << 10              # room for the daemon's own notes in stderr, outside the cap
MIB = 1 << 20
LANG_FILE = {"py": "run.py", "js": "run.js", "sh": "run.sh"}

# 64 figures of 32 MiB, as the attack claimed.
CLAIM = " ".join(["33554432"] * 64)

# ---- Python: the nonce through sys._getframe(), as the issue found it ----
PY_FIND_NONCE = r'''
import os, re, sys
def _nonce():
    f = sys._getframe()
    while f is not None:
        for v in list(f.f_locals.values()):
            if isinstance(v, bytes) and re.fullmatch(rb"[0-9a-f]{32}", v):
                return v
        f = f.f_back
    raise SystemExit("no nonce found")
nonce = _nonce()
def pour(fd, total):
    chunk = b"\x89PNG" + b"J" * (MIB - 4)
    while total > 0:
        n = os.write(fd, chunk[:min(total, len(chunk))])
        total -= n
MIB = 1 << 20
'''

PY_ATTACKS = {
    # the old marker: JSON naming 64 PNGs of 32 MiB, then bytes for them
    "old_json": PY_FIND_NONCE + r'''
os.write(2, b"\x1eSBXFS" + nonce + b':{"exit":0,"result":"forged","png":[%s]}\n' % b",".join([b"33554432"] * 64))
pour(2, 96 * MIB)
''',
    # a well-formed frame claiming 64 x 32 MiB: its bytes never all come, the run times out
    "claims": "# sbxfs: timeout=5\n" + PY_FIND_NONCE + r'''
os.write(1, b"\x1eSBXFS" + nonce + b":\n")
os.write(2, b"\x1eSBXFS" + nonce + b":0 6 64 " + b" ".join([b"33554432"] * 64) + b"\nforged")
pour(2, 96 * MIB)
''',
    # a well-formed frame whose 64 figures of 512 KiB all come: the daemon keeps what fits
    "fills": PY_FIND_NONCE + r'''
os.write(1, b"\x1eSBXFS" + nonce + b":\n")
os.write(2, b"\x1eSBXFS" + nonce + b":7 6 64 " + b" ".join([b"524288"] * 64) + b"\nforged")
pour(2, 64 * 512 * 1024)
''',
}

# ---- Node: hook the driver's own write of its frame and replace it ----
NODE_HOOK = r'''
const fs = require('fs');
const real = fs.writeSync;
fs.writeSync = function (fd, buf, off, len) {
  const m = Buffer.isBuffer(buf) && buf.toString('latin1', 0, 64).match(/^\x1eSBXFS([0-9a-f]{32}):/);
  if (!m || fd !== 2)
    return real.apply(fs, arguments);
  fs.writeSync = real;
  const put = (b) => {
    for (let o = 0; o < b.length;) {
      try { o += real(2, b, o, b.length - o); } catch (e) { if (e.code !== 'EAGAIN') throw e; }
    }
  };
  put(Buffer.from('\x1eSBXFS' + m[1] + ':' + HEAD + '\nforged'));
  const chunk = Buffer.alloc(1 << 20, 0x4a);
  for (let left = POUR; left > 0; left -= chunk.length)
    put(chunk.subarray(0, Math.min(left, chunk.length)));
  return buf.length - (off || 0);
};
'''
OLD_JSON = '{"exit":0,"result":"forged","png":[%s]}' % CLAIM.replace(" ", ",")
JS_ATTACKS = {
    "old_json": "const HEAD = '%s', POUR = 96 << 20;\n%s" % (OLD_JSON, NODE_HOOK),
    "claims": "// sbxfs: timeout=5\nconst HEAD = '0 6 64 %s', POUR = 96 << 20;\n%s" % (CLAIM, NODE_HOOK),
    "fills": "const HEAD = '7 6 64 %s', POUR = 32 << 20;\n%s" % (" ".join(["524288"] * 64), NODE_HOOK),
}

# ---- Bash: the nonce is a variable of the shell that evals the code ----
SH_ATTACKS = {
    "old_json": "printf '\\036SBXFS%%s:%s\\n' \"$__sbx_nonce\" >&2\nhead -c 96M /dev/zero >&2\n" % OLD_JSON,
    "claims": "# sbxfs: timeout=5\nprintf '\\036SBXFS%%s:\\n' \"$__sbx_nonce\"\n"
              "printf '\\036SBXFS%%s:0 6 64 %s\\nforged' \"$__sbx_nonce\" >&2\n"
              "head -c 96M /dev/zero >&2\n" % CLAIM,
    "fills": "printf '\\036SBXFS%%s:\\n' \"$__sbx_nonce\"\n"
             "printf '\\036SBXFS%%s:7 6 64 %s\\nforged' \"$__sbx_nonce\" >&2\n"
             "head -c 32M /dev/zero >&2\n" % " ".join(["524288"] * 64),
}

ATTACKS = [("py", k) for k in PY_ATTACKS] + [("js", k) for k in JS_ATTACKS] + [("sh", k) for k in SH_ATTACKS]
SOURCES = {"py": PY_ATTACKS, "js": JS_ATTACKS, "sh": SH_ATTACKS}
WARMUP = {"py": "keep = 41\n", "js": "globalThis.keep = 41;\n", "sh": "keep=41\n"}
CHECK = {"py": "print(keep + 1)\n", "js": "console.log(keep + 1)\n", "sh": "echo $((keep + 1))\n"}
ALIVE = {"py": "print('alive')\n", "js": "console.log('alive')\n", "sh": "echo alive\n"}


def memory_kb(pid):
    """VmRSS and VmHWM of a process, in kB."""
    got = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                got[k] = int(v.split()[0])
    return got["VmRSS"], got["VmHWM"]


class Ctx:
    def __init__(self, mount, box, name="c"):
        self.mount, self.box, self.name = mount, box, name
        self.dir = box.path("contexts", name)
        os.mkdir(self.dir)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def run(self, lang, code):
        write_file(self.path(LANG_FILE[lang]), code)
        ex = self.path("exit")
        return (read_text(self.path("stdout")), read_text(self.path("stderr")),
                int(read_text(ex)) if os.path.exists(ex) else None)

    def latest_run_dir(self):
        """runs/N/ of the latest run, on the host side of the state directory."""
        base = self.mount.state / "sandboxes" / self.box.name / "contexts" / self.name / "runs"
        n = max(int(x) for x in os.listdir(base))
        return base / str(n)


@pytest.fixture
def capped(mount_factory):
    m = mount_factory(output_max=str(CAP))
    return m, m.new(None)


@pytest.mark.deadline(120)
@pytest.mark.parametrize("lang,attack", ATTACKS, ids=["%s-%s" % a for a in ATTACKS])
def test_forged_frames_cannot_make_the_daemon_allocate(capped, lang, attack):
    m, b = capped
    c = Ctx(m, b)
    out, err, code = c.run(lang, WARMUP[lang])
    assert code == 0, (out, err)
    rss0, hwm0 = memory_kb(m.proc.pid)

    out, err, code = c.run(lang, SOURCES[lang][attack])
    rss1, hwm1 = memory_kb(m.proc.pid)
    print("%s-%s: daemon RSS %+d kB, peak %+d kB" % (lang, attack, rss1 - rss0, hwm1 - max(hwm0, rss0)))
    assert rss1 - rss0 < 32 * 1024, "daemon RSS grew from %d to %d kB" % (rss0, rss1)
    assert hwm1 - max(hwm0, rss0) < 32 * 1024, "daemon peak grew from %d to %d kB" % (hwm0, hwm1)

    # What the daemon kept of the run: each stream within output_max.
    d = c.latest_run_dir()
    sizes = {f: os.path.getsize(d / f) for f in os.listdir(d)}
    items = sum(v for f, v in sizes.items() if f == "result" or f.startswith("figure-"))
    assert sizes.get("stdout", 0) <= CAP + NOTES, sizes
    assert sizes.get("stderr", 0) <= CAP + NOTES, sizes
    assert items <= CAP, sizes
    figures = sorted(f for f in sizes if f.startswith("figure-"))
    if attack == "claims":
        # its bytes never all came: the run timed out and the interpreter was replaced
        assert code == 124 and "timed out" in err and "restarted" in err, (code, err[-600:])
        assert not figures, sizes
    elif attack == "old_json":
        assert code == 1 and "malformed end of run" in err, (code, err[-600:])
        assert not figures, sizes
    else:
        # well-formed and complete: the forger's own exit and result, figures up to the cap
        assert code == 7, (code, err[-600:])
        assert read_text(c.path("result")) == "forged\n"
        # the result (7 bytes) and one figure of 512 KiB fit in 1 MiB; the second does not
        assert figures == ["figure-1.png"] and sizes["figure-1.png"] == 524288, sizes
        assert "figure 2 (524288 bytes) not kept" in err and "figure 64 " in err, err[-600:]

    # The context works afterwards, its state kept or its restart said.
    out, err, code = c.run(lang, CHECK[lang])
    restarted = attack in ("claims", "old_json")
    if restarted:
        assert code != 0 or out != "42\n", (out, err)
    else:
        assert "42\n" in out, (out, err)
    for _ in range(2):
        out, err, code = c.run(lang, ALIVE[lang])
    assert (out, err, code) == ("alive\n", "", 0)
    rss2, _ = memory_kb(m.proc.pid)
    assert rss2 - rss0 < 32 * 1024, "daemon RSS grew from %d to %d kB" % (rss0, rss2)


@pytest.mark.deadline(90)
def test_markers_in_ordinary_output_do_not_end_a_run(capped):
    """Output that looks like a frame but carries another nonce is output."""
    m, b = capped
    c = Ctx(m, b)
    fake = "\x1eSBXFS" + "0" * 32 + ":0 0 1 100\n"
    out, err, code = c.run("py", "import sys\nprint(%r)\nprint(%r, file=sys.stderr)\nprint('after')\n"
                           % (fake, fake))
    assert (out, err, code) == (fake + "\nafter\n", fake + "\n", 0)
    out, err, code = c.run("sh", "printf '%s'; echo after\n" % fake.replace("\x1e", "\\036").replace("\n", "\\n"))
    assert (out, code) == (fake + "after\n", 0), err


@pytest.mark.deadline(60)
def test_nul_in_bash_code_is_refused_and_the_shell_keeps_its_state(mount, box):
    b = box()
    c = Ctx(mount, b)
    assert c.run("sh", "kept=yes\n") == ("", "", 0)
    with pytest.raises(OSError) as e:
        write_file(c.path("run.sh"), b"echo a\0b\n")
    assert e.value.errno == errno.EINVAL
    assert "NUL byte" in mount.errors(), mount.errors()
    out, err, code = c.run("sh", 'echo "$kept"\n')
    assert (out, err, code) == ("yes\n", "", 0)
    # NUL bytes in a Bash context's stdin are data: they reach the code, the frame stays in step
    write_file(c.path("stdin"), b"a\0b\0c\n")
    out, err, code = c.run("sh", "od -An -c | tr -s ' '\n")
    assert (out.strip(), code) == ("a \\0 b \\0 c \\n", 0), err
    assert c.run("sh", 'echo "$kept"\n') == ("yes\n", "", 0)


@pytest.mark.deadline(120)
@pytest.mark.parametrize("crash", [True, False], ids=["sigkill", "unmount"])
def test_lost_interpreters_say_so_on_their_next_run(mount_factory, crash):
    m = mount_factory()
    b = m.new(None)
    c = Ctx(m, b)
    assert c.run("py", "x = 1\n")[2] == 0
    assert c.run("sh", "y=1\n")[2] == 0
    m = m.remount(crash=crash)
    c.mount = m
    for lang, code, name in (("py", "print('x' in globals())\n", "python"), ("sh", 'echo "${y:-unset}"\n', "bash")):
        out, err, rc = c.run(lang, code)
        assert rc == 0 and out in ("False\n", "unset\n"), (out, err)
        assert ("the %s interpreter of context 'c' did not survive the restart of sbxfs" % name) in err, err
        assert "earlier state is lost" in err, err
        # said once: the new interpreter keeps its state
        assert c.run(lang, ALIVE[lang]) == ("alive\n", "", 0)
    # a language never used in the context has nothing to say
    assert c.run("js", ALIVE["js"]) == ("alive\n", "", 0)


@pytest.mark.deadline(120)
def test_daemon_killed_during_a_context_run(mount_factory):
    """The run cut off gets its end from the recovery (control/run.c); the context's next run
    says its interpreter's state was lost, then works."""
    m = mount_factory()
    b = m.new(None)
    c = Ctx(m, b)
    assert c.run("py", "x = 1\n")[2] == 0
    started = []

    def long_run():
        try:
            write_file(c.path("run.py"), "import time\nprint('started', flush=True)\ntime.sleep(60)\n")
        except OSError:
            pass   # the daemon is gone

    t = threading.Thread(target=long_run, daemon=True)
    t.start()
    for _ in range(100):
        if os.path.exists(c.path("stdout")) and read_text(c.path("stdout")) == "started\n":
            started.append(True)
            break
        time.sleep(0.1)
    assert started, "the context run did not start"
    m = m.remount(crash=True)
    t.join(10)
    assert read_text(c.path("exit")) == "137\n"
    assert "the daemon stopped during this run" in read_text(c.path("stderr"))
    out, err, code = c.run("py", "print('x' in globals())\n")
    assert (out, code) == ("False\n", 0), err
    assert "the python interpreter of context 'c' did not survive the restart of sbxfs" in err, err
    assert c.run("py", "print('again')\n") == ("again\n", "", 0)
