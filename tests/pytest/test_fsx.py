"""test_fsx.py - random file operations through files/ against an in-memory
model, in the manner of fsx (issue 12: fsx itself is not packaged).

One file takes a random mix of pwrite, truncate (grow and shrink), pread,
mmap reads, fallocate (keep-size and growing; punched holes), and
copy_file_range from a second file; after each operation the bytes read back
(by read and, now and then, by mmap) must be the model's. The seed is printed
on failure: SBXFS_FSX_SEED=N reproduces a run, SBXFS_FSX_OPS=N sets its length.
"""

import mmap
import os
import random
import time

import pytest

MAX_SIZE = 256 * 1024
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2


class Model:
    def __init__(self):
        self.data = bytearray()

    def write(self, off, buf):
        if off > len(self.data):
            self.data.extend(b"\0" * (off - len(self.data)))
        self.data[off:off + len(buf)] = buf

    def truncate(self, size):
        if size < len(self.data):
            del self.data[size:]
        else:
            self.data.extend(b"\0" * (size - len(self.data)))

    def punch(self, off, length):
        end = min(off + length, len(self.data))
        if off < end:
            self.data[off:end] = b"\0" * (end - off)


class Fsx:
    def __init__(self, path, src_path, seed):
        self.rng = random.Random(seed)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.src = os.open(src_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.src_data = self.rng.randbytes(64 * 1024)
        os.pwrite(self.src, self.src_data, 0)
        self.model = Model()
        self.log = []

    def close(self):
        os.close(self.fd)
        os.close(self.src)

    def offset(self):
        # near the end, at the start, or anywhere: where the bugs are
        size = len(self.model.data)
        pick = self.rng.random()
        if pick < 0.3 and size:
            return max(0, size - self.rng.randrange(1, 4097))
        if pick < 0.4:
            return self.rng.randrange(0, 4096)
        return self.rng.randrange(0, MAX_SIZE)

    def length(self):
        return self.rng.choice([1, 7, 512, 4095, 4096, 4097, self.rng.randrange(1, 65536)])

    def op_write(self):
        off, n = self.offset(), self.length()
        n = min(n, MAX_SIZE - off) or 1
        buf = self.rng.randbytes(n)
        assert os.pwrite(self.fd, buf, off) == n
        self.model.write(off, buf)
        return "write %d+%d" % (off, n)

    def op_truncate(self):
        size = self.offset()
        os.ftruncate(self.fd, size)
        self.model.truncate(size)
        return "truncate %d" % size

    def op_fallocate(self):
        off, n = self.offset(), self.length()
        n = min(n, MAX_SIZE - off) or 1
        mode = self.rng.choice([0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE])
        try:
            os.posix_fallocate(self.fd, off, n) if mode == 0 else \
                _fallocate(self.fd, mode, off, n)
        except OSError as e:
            if e.errno == 95:       # EOPNOTSUPP: the filesystem cannot; natively the same
                return "fallocate %d %d+%d unsupported" % (mode, off, n)
            raise
        if mode == 0 and off + n > len(self.model.data):
            self.model.truncate(off + n)
        if mode & FALLOC_FL_PUNCH_HOLE:
            self.model.punch(off, n)
        return "fallocate %d %d+%d" % (mode, off, n)

    def op_copy(self):
        soff = self.rng.randrange(0, len(self.src_data))
        n = min(self.length(), len(self.src_data) - soff)
        off = min(self.offset(), MAX_SIZE - n)
        done = os.copy_file_range(self.src, self.fd, n, soff, off)
        assert done == n, (done, n)
        self.model.write(off, self.src_data[soff:soff + n])
        return "copy %d+%d -> %d" % (soff, n, off)

    def check_read(self):
        size = os.fstat(self.fd).st_size
        assert size == len(self.model.data), ("size", size, len(self.model.data))
        off = self.rng.randrange(0, size + 1)
        n = self.length()
        got = os.pread(self.fd, n, off)
        assert got == bytes(self.model.data[off:off + n]), ("read", off, n)

    def check_mmap(self):
        size = len(self.model.data)
        if size == 0:
            return
        with mmap.mmap(self.fd, size, prot=mmap.PROT_READ) as m:
            off = self.rng.randrange(0, size)
            n = min(self.length(), size - off)
            assert m[off:off + n] == bytes(self.model.data[off:off + n]), ("mmap", off, n)

    def step(self):
        op = self.rng.choices([self.op_write, self.op_truncate, self.op_fallocate, self.op_copy],
                              weights=[50, 15, 15, 20])[0]
        self.log.append(op())
        self.log = self.log[-20:]
        self.check_read()
        if self.rng.random() < 0.2:
            self.check_mmap()

    def full_check(self):
        os.lseek(self.fd, 0, os.SEEK_SET)
        got = b""
        while True:
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                break
            got += chunk
        assert got == bytes(self.model.data), "whole file"


def _fallocate(fd, mode, off, n):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    if libc.fallocate(fd, mode, off, n) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


@pytest.mark.deadline(120)
def test_random_operations_match_the_model(sb):
    seed = int(os.environ.get("SBXFS_FSX_SEED", time.time_ns() % 1000000))
    ops = int(os.environ.get("SBXFS_FSX_OPS", "40000"))
    base = sb.files("home/user/fsx-%d" % seed)
    f = Fsx(base, base + ".src", seed)
    try:
        for i in range(ops):
            try:
                f.step()
            except AssertionError as e:
                raise AssertionError("seed %d, op %d: %s; last ops: %s" % (seed, i, e, f.log))
        f.full_check()
        # what code inside the sandbox reads is the model too
        r = sb.run("py", "import hashlib\nprint(hashlib.sha256(open('/home/user/fsx-%d','rb')"
                         ".read()).hexdigest())\n" % seed)
        import hashlib
        assert r.stdout.strip() == hashlib.sha256(bytes(f.model.data)).hexdigest(), \
            "seed %d: the sandbox reads other bytes" % seed
    finally:
        f.close()
        os.unlink(base)
        os.unlink(base + ".src")
