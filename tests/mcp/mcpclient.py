"""mcpclient.py - a minimal MCP client over stdio, as an agent's host speaks it to a server.

MCP's stdio transport is JSON-RPC 2.0, one message per line on the server's stdin and stdout
(the server logs on stderr). This client starts a server program, does the handshake
(`initialize`, then the `notifications/initialized` notification), and calls `tools/list` and
`tools/call` with a deadline on every reply, so a server stuck in a hung filesystem call fails the
caller instead of hanging it. The standard library only; used by tests/pytest/test_mcp.py.

    srv = McpServer.start(["node", SERVER_JS, "/mnt/sbxfs"], log_path)
    r = srv.tool("write_file", path="/mnt/sbxfs/ctl", content="new box\\n")
    r.ok, r.text
    srv.close()
"""

import json
import os
import queue
import subprocess
import threading

PROTOCOL_VERSION = "2025-06-18"
# Where .ci/install-deps.sh --test puts the official filesystem server (pinned there).
FS_SERVER_JS = os.environ.get(
    "SBXFS_MCP_SERVER",
    "/opt/sbxfs-test/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")


class McpError(Exception):
    """A JSON-RPC error reply, a reply that never came, or a server that died."""


class ToolResult:
    """What tools/call gave: `ok` is false when the server set isError (the tool failed;
    the reason is in `text`, as the agent's model would read it)."""

    def __init__(self, name, args, result):
        self.name, self.args = name, args
        self.ok = not result.get("isError", False)
        self.text = "".join(c.get("text", "") for c in result.get("content", [])
                            if c.get("type") == "text")

    def __repr__(self):
        return "ToolResult(%s %s -> %s: %r)" % (self.name, _short(self.args),
                                                "ok" if self.ok else "ERROR", self.text[-1500:])


def _short(args):
    s = json.dumps(args)
    return s if len(s) < 300 else s[:300] + "..."


class McpServer:
    def __init__(self, proc, log_path):
        self.proc, self.log_path = proc, log_path
        self.replies = {}          # id -> message, filled by the reader thread
        self.cond = threading.Condition()
        self.eof = False
        self.next_id = 1
        self.tools = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @classmethod
    def start(cls, argv, log_path, timeout=30):
        log = open(log_path, "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=log, start_new_session=True)
        finally:
            log.close()
        srv = cls(proc, log_path)
        try:
            srv.request("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                                       "clientInfo": {"name": "sbxfs-tests", "version": "1"}},
                        timeout)
            srv.notify("notifications/initialized")
            srv.tools = [t["name"] for t in srv.request("tools/list", {}, timeout)["tools"]]
        except BaseException:
            srv.close()
            raise
        return srv

    def _read(self):
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue  # not ours to judge here; the caller's deadline reports silence
            if "id" in msg and ("result" in msg or "error" in msg):
                with self.cond:
                    self.replies[msg["id"]] = msg
                    self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def _send(self, msg):
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise McpError("the MCP server is gone (%s); its log: %s" % (e, self.log()))

    def notify(self, method, params=None):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self._send(msg)

    def request(self, method, params, timeout=60):
        with self.cond:
            rid = self.next_id
            self.next_id += 1
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        with self.cond:
            ok = self.cond.wait_for(lambda: rid in self.replies or self.eof, timeout)
            msg = self.replies.pop(rid, None)
        if msg is None:
            why = "the server exited" if ok else "no reply within %.0f s" % timeout
            raise McpError("%s %s: %s; server log: %s" % (method, _short(params), why, self.log()))
        if "error" in msg:
            raise McpError("%s %s: JSON-RPC error %s" % (method, _short(params), msg["error"]))
        return msg["result"]

    def tool(self, name, timeout=60, **args):
        """tools/call NAME with ARGS -> ToolResult (a failed tool is a result, not an exception)."""
        return ToolResult(name, args, self.request("tools/call", {"name": name, "arguments": args},
                                                   timeout))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self):
        """End the server as a host does: close its stdin, then kill it if it lingers."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.reader.join(5)
