# python_ctx.py - the long-lived Python interpreter of one sbxfs context.
#
# sbxfs starts it inside the sandbox (python3 python_ctx.py) with three pipes.
# Protocol (docs/execution.md, control/ctx_proto.h):
#   stdin  <- commands: "NONCE CODE_LEN STDIN_LEN\n", CODE_LEN bytes of code,
#             then STDIN_LEN bytes fed to the run as its stdin (-1: none)
#   stdout -> the run's stdout, as the code writes it; at the end of a run
#             the frame "\x1eSBXFS" NONCE ":\n"
#   stderr -> the run's stderr; at the end of a run, after stdout's frame,
#             "\x1eSBXFS" NONCE ":" EXIT " " RESULT_LEN " " NFIG (" " FIG_LEN)*
#             "\n", then the result's bytes, then each figure's PNG bytes.
# The two streams may arrive in any order (the docker engine does not keep
# it): the daemon waits for both. The code shares this process and can forge
# a frame; the daemon checks every number against its caps (RESULT_MAX,
# FIGURE_MAX, FIGURES_MAX below are the same as ctx_proto.h's) and keeps no
# more than output_max of results and figures, so a forgery only harms its
# own run. This driver stays within the caps so that honest runs never fail.
# The code runs in one persistent globals dict; the value of a final
# expression is reported as its repr, like a notebook cell.
import ast
import builtins
import io
import linecache
import os
import sys
import traceback

RESULT_MAX = 1 << 20        # bytes kept of a repr (the daemon takes up to 2 MiB)
FIGURE_MAX = 32 << 20       # bytes of one PNG
FIGURES_MAX = 64
DRIVER = os.path.abspath(__file__)


def _text_stream(fd, mode):
    raw = io.FileIO(fd, mode, closefd=False)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace",
                            write_through=True, line_buffering=False)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _flush():
    for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if s is not None:
                s.flush()
        except Exception:
            pass


def _trim(tb):
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == DRIVER:
        tb = tb.tb_next
    return tb


def _report(exc):
    _flush()
    try:
        traceback.print_exception(type(exc), exc, _trim(exc.__traceback__), file=sys.stderr)
    except Exception:
        pass


def _figures():
    plt = sys.modules.get("matplotlib.pyplot")
    out = []
    if plt is None:
        return out
    try:
        for num in plt.get_fignums():
            if len(out) == FIGURES_MAX:
                _flush()
                print("[sbxfs: only the first %d figures are kept]" % FIGURES_MAX, file=sys.stderr)
                break
            buf = io.BytesIO()
            plt.figure(num).savefig(buf, format="png")
            if buf.tell() > FIGURE_MAX:
                _flush()
                print("[sbxfs: figure %d is over %d bytes and is not kept]" % (num, FIGURE_MAX),
                      file=sys.stderr)
                continue
            out.append(buf.getvalue())
        plt.close("all")
    except Exception as e:
        _report(e)
    return out


def _run_value(code, g):
    value = eval(code, g)
    if code.co_flags & 0x80:  # CO_COROUTINE: top-level await
        import asyncio
        value = asyncio.get_event_loop().run_until_complete(value)
    return value


def _execute(src, g, serial):
    """Runs one cell; returns (exit, result-or-None)."""
    name = "<run %d>" % serial
    linecache.cache[name] = (len(src), None, src.splitlines(True), name)
    flags = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
    try:
        tree = ast.parse(src, filename=name, mode="exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        _run_value(compile(tree, name, "exec", flags=flags), g)
        if last is None:
            return 0, None
        value = _run_value(compile(last, name, "eval", flags=flags), g)
        if value is None:
            return 0, None
        g["_"] = value
        text = repr(value).encode("utf-8", "backslashreplace")
        if len(text) > RESULT_MAX:
            text = text[:RESULT_MAX].decode("utf-8", "ignore").encode()
            text += b"\n[sbxfs: result cut at %d bytes]" % RESULT_MAX
        return 0, text
    except SystemExit as e:
        if e.code is None:
            return 0, None
        if isinstance(e.code, int):
            return e.code & 0xFF, None
        _flush()
        print(e.code, file=sys.stderr)
        return 1, None
    except BaseException as e:
        _report(e)
        return 1, None


def main():
    cmd_fd = os.dup(0)
    mark_fd = os.dup(2)
    out_mark_fd = os.dup(1)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    cmd = os.fdopen(cmd_fd, "rb")
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.stdout = _text_stream(1, "w")
    sys.stderr = _text_stream(2, "w")
    sys.stdin = _text_stream(0, "r")
    sys.argv = [""]
    sys.path[0] = ""
    g = {"__name__": "__main__", "__builtins__": builtins, "__doc__": None}
    serial = 0
    while True:
        head = cmd.readline()
        if not head:
            return
        nonce, code_len, in_len = head.split()
        src = cmd.read(int(code_len)).decode("utf-8", "replace")
        serial += 1
        in_len = int(in_len)
        if in_len >= 0:
            data = cmd.read(in_len)
            fd = os.memfd_create("stdin")
            _write_all(fd, data)
            os.lseek(fd, 0, os.SEEK_SET)
            os.dup2(fd, 0)
            os.close(fd)
            sys.stdin = _text_stream(0, "r")
        code, result = _execute(src, g, serial)
        pngs = _figures()
        if in_len >= 0:
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            sys.stdin = _text_stream(0, "r")
        _flush()
        result = result or b""
        head = b"%d %d %d" % (code, len(result), len(pngs))
        head += b"".join(b" %d" % len(p) for p in pngs)
        _write_all(out_mark_fd, b"\x1eSBXFS" + nonce + b":\n")
        _write_all(mark_fd, b"\x1eSBXFS" + nonce + b":" + head + b"\n" + result + b"".join(pngs))


main()
