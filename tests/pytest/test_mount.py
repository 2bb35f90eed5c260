"""mount -t fuse.sbxfs (issue 12 item 8): mount(8) runs mount.fuse3, which
runs `sbxfs SOURCE MOUNTPOINT -o OPTIONS`; the source names nothing and is
accepted, so an fstab line `sbxfs /mnt fuse.sbxfs state=/var/lib/sbxfs 0 0`
works. mount(8) resets PATH, so for mount(8) itself `sbxfs` must be
installed on the standard path; mount.fuse3 is run here as mount(8) runs it,
with the build on PATH."""

import os
import shutil
import subprocess
import time

import pytest

import sbxtest
from sbxtest import read_text, unmount

STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _mounted(mnt):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == mnt and line.split()[2] == "fuse.sbxfs" for line in f)


def _check_and_unmount(mnt):
    try:
        assert _mounted(mnt)
        assert {"README", "ctl", "errors", "templates"} <= set(os.listdir(mnt))
        r = sbxtest.ctl_write(os.path.join(mnt, "ctl"), "frobnicate\n")
        assert not r.ok and "frobnicate" in r.text, r
    finally:
        unmount(mnt)
        deadline = time.monotonic() + 15
        while _mounted(mnt) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not _mounted(mnt)


def _dirs(tmp_path):
    mnt, state, bindir = tmp_path / "mnt", tmp_path / "state", tmp_path / "bin"
    for d in (mnt, state, bindir):
        d.mkdir()
    return str(mnt), str(state), bindir


@pytest.mark.parametrize("backend", sbxtest.backends())
def test_mount_helper_passes_a_source(tmp_path, backend):
    mnt, state, bindir = _dirs(tmp_path)
    (bindir / "sbxfs").symlink_to(sbxtest.daemon_binary())
    env = dict(os.environ, PATH="%s:%s" % (bindir, STD_PATH))
    r = subprocess.run(["/sbin/mount.fuse3", "sbxfs", mnt, "-o", "backend=%s,state=%s" % (backend, state),
                        "-t", "fuse.sbxfs"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    _check_and_unmount(mnt)


@pytest.mark.parametrize("backend", sbxtest.backends())
def test_two_plain_arguments_the_second_is_the_mount_point(tmp_path, backend):
    mnt, state, _ = _dirs(tmp_path)
    r = subprocess.run([sbxtest.daemon_binary(), "anything", mnt, "-o", "backend=%s,state=%s" % (backend, state)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    _check_and_unmount(mnt)


def test_mount_t_fuse_sbxfs(tmp_path):
    installed = shutil.which("sbxfs", path=STD_PATH)
    if not installed or os.path.realpath(installed) != os.path.realpath(sbxtest.daemon_binary()):
        pytest.skip("mount(8) finds sbxfs on %s only; the build is not installed there" % STD_PATH)
    mnt, state, _ = _dirs(tmp_path)
    r = subprocess.run(["mount", "-t", "fuse.sbxfs", "sbxfs", mnt, "-o", "state=%s" % state],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    _check_and_unmount(mnt)
