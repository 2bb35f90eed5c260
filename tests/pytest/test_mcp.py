"""test_mcp.py - an agent with nothing but the official MCP filesystem server uses sbxfs (issue 12).

The server (@modelcontextprotocol/server-filesystem, installed pinned under /opt/sbxfs-test by
`.ci/install-deps.sh --test`) runs under `node` with the mount as its one allowed directory; the
tests speak MCP JSON-RPC to it over stdio (tests/mcp/mcpclient.py) and do every step through its
tools alone, as an agent's model would: create a sandbox with options through `ctl`, upload a CSV,
run code and read `stdout` and `exit`, use a context twice, write and edit `env`, read `metrics`,
list the root, kill. The server writes an existing file by writing `NAME.<hex>.tmp` beside it and
renaming it over (contract: "Every client's way of writing works"); a new file it creates with
O_EXCL. Nothing here touches the mount except through the server, but for cleaning up.
"""

import json
import os
import re
import sys

import pytest

from sbxtest import unique

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "mcp"))
from mcpclient import FS_SERVER_JS, McpServer  # noqa: E402

NEEDED_TOOLS = {"read_text_file", "write_file", "edit_file", "create_directory", "list_directory",
                "directory_tree", "get_file_info"}


@pytest.fixture
def agent(mount):
    """The MCP server on this mount, handshake done; sandboxes it made are killed afterwards."""
    assert os.path.exists(FS_SERVER_JS), (
        "the MCP filesystem server is not installed at %s: run `bash .ci/install-deps.sh --test`"
        % FS_SERVER_JS)
    before = mount.sandboxes()
    srv = McpServer.start(["node", FS_SERVER_JS, mount.mnt],
                          os.path.join(str(mount.workdir), "mcp-server.log"))
    try:
        missing = NEEDED_TOOLS - set(srv.tools)
        assert not missing, "the server offers no %s (it offers %s)" % (missing, srv.tools)
        yield Agent(srv, mount.mnt)
    finally:
        srv.close()
        try:
            for n in mount.sandboxes() - before:
                mount.ctl("kill " + n)
        except OSError:
            pass


class Agent:
    """The tools an agent calls, with paths under the mount."""

    def __init__(self, srv, mnt):
        self.srv, self.mnt = srv, mnt

    def p(self, *parts):
        return os.path.join(self.mnt, *parts)

    def call(self, tool, timeout=60, **args):
        return self.srv.tool(tool, timeout=timeout, **args)

    def ok(self, tool, timeout=60, **args):
        r = self.call(tool, timeout=timeout, **args)
        assert r.ok, r
        return r

    def read(self, *parts):
        return self.ok("read_text_file", path=self.p(*parts)).text

    def write(self, rel, content, timeout=60):
        return self.ok("write_file", timeout=timeout, path=self.p(rel), content=content)

    def names(self, rel=""):
        """list_directory: the names, without the [DIR]/[FILE] prefixes."""
        text = self.ok("list_directory", path=self.p(rel)).text
        return {re.sub(r"^\[(DIR|FILE)\] ", "", ln) for ln in text.splitlines() if ln.strip()}

    def new(self, name, *kvs):
        self.write("ctl", " ".join(["new", name] + list(kvs)) + "\n")
        assert name in self.names(), "created %s through ctl; the root lists %s" % (
            name, sorted(self.names()))

    def mkdir_box(self, name):
        self.ok("create_directory", path=self.p(name))
        assert self.read(name, "status") == "running\n"

    def run(self, box, lang, code, timeout=60):
        """Writes the code to box/run.LANG (the run ends before write_file returns);
        -> (stdout, stderr, exit text)."""
        self.write("%s/run.%s" % (box, lang), code, timeout=timeout)
        return self.read(box, "stdout"), self.read(box, "stderr"), self.read(box, "exit")


def no_scratch_left(agent, rel=""):
    left = [n for n in agent.names(rel) if n.endswith(".tmp")]
    assert not left, "the server's temporary files stayed in %s: %s" % (rel or "the root", left)


def test_new_with_options_through_ctl(agent):
    name = unique("mcp")
    agent.new(name, "mem=256M", "ttl=900", "timeout=30", 'env.GREETING="hello mcp"',
              "meta.by=agent")
    info = json.loads(agent.read(name, "info"))
    assert info["name"] == name
    assert info["limits"]["mem"] == 256 << 20 and info["ttl"] == 900 and info["timeout"] == 30, info
    assert info["meta"] == {"by": "agent"}, info
    assert agent.read(name, "status") == "running\n"
    assert "GREETING=hello mcp" in agent.read(name, "env").splitlines()
    no_scratch_left(agent)


def test_bad_command_fails_the_tool_with_the_reason(agent):
    name = unique("mcp")
    agent.new(name)
    r = agent.call("write_file", path=agent.p("ctl"), content="new %s\n" % name)
    assert not r.ok and "EEXIST" in r.text, r
    r = agent.call("write_file", path=agent.p("ctl"), content="new bad/name mem=lots\n")
    assert not r.ok and "EINVAL" in r.text, r
    errors = agent.read("errors")
    assert name in errors and "exist" in errors, errors
    assert agent.names() - {"README", "ctl", "templates", "errors"} >= {name}
    no_scratch_left(agent)
    # a read-only file refuses the write and keeps its content
    r = agent.call("write_file", path=agent.p(name, "status"), content="paused\n")
    assert not r.ok, r
    assert agent.read(name, "status") == "running\n"
    no_scratch_left(agent, name)


def test_upload_csv_and_run_python(agent):
    name = unique("mcp")
    agent.new(name, 'env.GREETING="hello mcp"')
    rows = ["item,qty"] + ["i%d,%d" % (i, i) for i in range(1, 101)]
    agent.write(name + "/files/home/user/data.csv", "\n".join(rows) + "\n")
    info = agent.ok("get_file_info", path=agent.p(name, "files/home/user/data.csv")).text
    assert re.search(r"size: %d\b" % len("\n".join(rows) + "\n"), info), info
    out, err, ex = agent.run(name, "py", (
        "import csv, os\n"
        "rows = list(csv.DictReader(open('/home/user/data.csv')))\n"
        "print(len(rows), sum(int(r['qty']) for r in rows), os.environ['GREETING'])\n"
        "open('/home/user/report.txt', 'w').write('total 5050\\n')\n"))
    assert (out, err, ex) == ("100 5050 hello mcp\n", "", "0\n")
    assert agent.read(name, "files/home/user/report.txt") == "total 5050\n"
    # a failing run: the agent reads why
    out, err, ex = agent.run(name, "py", "import sys\nprint('before')\nsys.exit(3)\n")
    assert (out, ex) == ("before\n", "3\n"), (out, err, ex)
    out, err, ex = agent.run(name, "py", "1/0\n")
    assert "ZeroDivisionError" in err and ex == "1\n", (out, err, ex)
    # the same through Node.js and Bash
    assert agent.run(name, "js", "console.log(6 * 7)\n") == ("42\n", "", "0\n")
    assert agent.run(name, "sh", "wc -l < data.csv\n") == ("101\n", "", "0\n")
    assert agent.read(name, "wait") == "0\n"
    assert agent.read(name, "runs/1/stdout") == "100 5050 hello mcp\n"
    no_scratch_left(agent, name)


def test_context_used_twice(agent):
    name = unique("mcp")
    agent.mkdir_box(name)
    agent.ok("create_directory", path=agent.p(name, "contexts/c1"))
    assert "c1" in agent.names(name + "/contexts")
    agent.write(name + "/contexts/c1/run.py", "import math\nx = 20\n")
    assert agent.read(name, "contexts/c1/exit") == "0\n"
    agent.write(name + "/contexts/c1/run.py", "print(x * 2 + 2)\nmath.isqrt(x * 5)\n")
    assert agent.read(name, "contexts/c1/stdout") == "42\n"
    assert agent.read(name, "contexts/c1/result") == "10\n"
    assert agent.read(name, "contexts/c1/exit") == "0\n"
    # the context is the agent's own: a plain run does not see x
    out, err, ex = agent.run(name, "py", "print('x' in globals())\n")
    assert (out, ex) == ("False\n", "0\n"), (out, err, ex)
    no_scratch_left(agent, name + "/contexts/c1")


def test_env_write_and_edit(agent):
    name = unique("mcp")
    agent.mkdir_box(name)
    agent.write(name + "/env", "A=1\nB=two words\n")
    assert agent.read(name, "env") == "A=1\nB=two words\n"
    code = "import os\nprint(os.environ.get('A'), os.environ.get('B'))\n"
    assert agent.run(name, "py", code)[0] == "1 two words\n"
    # edit_file: the server reads, replaces and saves through a temporary file and a rename
    r = agent.ok("edit_file", path=agent.p(name, "env"), edits=[{"oldText": "A=1", "newText": "A=3"}])
    assert "-A=1" in r.text and "+A=3" in r.text, r
    assert agent.read(name, "env") == "A=3\nB=two words\n"
    assert agent.run(name, "py", code)[0] == "3 two words\n"
    no_scratch_left(agent, name)


def test_metrics_and_listing(agent):
    name = unique("mcp")
    agent.mkdir_box(name)
    agent.run(name, "py", "x = bytearray(8 << 20)\nprint(len(x))\n")
    m = json.loads(agent.read(name, "metrics"))
    for k in ("cpu_seconds", "memory_bytes", "memory_limit_bytes", "pids", "disk_used_bytes"):
        assert isinstance(m.get(k), (int, float)), (k, m)
    assert m["memory_limit_bytes"] > 0, m
    listing = agent.names(name)
    assert {"ctl", "status", "info", "metrics", "env", "files", "run.py", "stdout", "exit",
            "runs", "contexts"} <= listing, listing
    r = agent.ok("get_file_info", path=agent.p(name, "stdout"))
    assert "isFile: true" in r.text, r


@pytest.mark.deadline(240)
def test_directory_tree_of_the_root_keeps_the_mount_working(agent, mount):
    """An agent's first look at its workspace: directory_tree of the whole mount, which walks
    every sandbox's files/ (a whole root filesystem: ~190,000 entries for a local sandbox, as
    many open inodes for the daemon). It must end and break nothing: runs, `new`, listings."""
    name = unique("mcp")
    agent.mkdir_box(name)
    agent.write(name + "/files/home/user/mine.txt", "here\n")
    r = agent.ok("directory_tree", timeout=200, path=agent.p())
    top = {e["name"]: e for e in json.loads(r.text)}
    assert {"ctl", "errors", "README", "templates", name} <= set(top), sorted(top)
    files = [c for c in top[name]["children"] if c["name"] == "files"][0]
    found = json.dumps(files)
    assert '"mine.txt"' in found and '"usr"' in found
    del r, top, files, found
    out, err, ex = agent.run(name, "py", "print('after the walk')\n")
    assert (out, ex) == ("after the walk\n", "0\n"), (out, err, ex)
    other = unique("mcp")
    agent.new(other, "ttl=60")
    assert agent.run(other, "sh", "echo fresh; ls /usr | wc -l\n")[0].startswith("fresh\n")
    assert {name, other} <= agent.names()
    assert mount.alive()


def test_kill_through_sandbox_ctl_and_root_ctl(agent, mount):
    a, b = unique("mcp"), unique("mcp")
    agent.new(a)
    agent.mkdir_box(b)
    agent.write(a + "/ctl", "kill\n")
    agent.write("ctl", "kill %s\n" % b)
    left = agent.names()
    assert a not in left and b not in left, left
    r = agent.call("get_file_info", path=agent.p(a))
    assert not r.ok and "ENOENT" in r.text, r
    assert not ({a, b} & mount.sandboxes())
    no_scratch_left(agent)
