"""test_editors.py - editors and tools working in files/ (issues 4, 12): vim,
save by temp file and rename, sed -i, git, tar -x, rsync -a, cp -a. Content,
mode and ownership are kept, and code inside the sandbox sees the results.
Ownership is the id-mapped view of docs/files.md: the sandbox user (1000
inside) shows as the mount's owner outside (OWNER), and what is made or
copied in as the owner or root belongs to the sandbox user inside."""

import os
import shutil
import stat
import subprocess
import tarfile
import uuid

import pytest

from sbxtest import read_text, write_file

OWNER = os.getuid()


@pytest.fixture
def work(sb):
    rel = "home/user/ed-" + uuid.uuid4().hex[:8]
    os.mkdir(sb.files(rel))
    return rel


def sh(*argv, **kw):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, **kw)


def inside(sb, code):
    r = sb.run("sh", code)
    assert r.exit == 0, r
    return r.stdout


def test_vim_edits_in_place(sb, work):
    p = sb.files(work + "/notes.txt")
    write_file(p, "alpha\nbeta\n")
    os.chmod(p, 0o640)
    ino = os.stat(p).st_ino
    r = sh("vim", "-Es", "-u", "NONE", "-i", "NONE", "-c", "%s/beta/gamma/", "-c", "wq", p)
    assert r.returncode == 0, r
    assert read_text(p) == "alpha\ngamma\n"
    st = os.stat(p)
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == OWNER
    assert inside(sb, "cat /%s/notes.txt; stat -c '%%a %%u' /%s/notes.txt\n" % (work, work)) == \
        "alpha\ngamma\n640 1000\n"
    del ino


def test_vim_writebackup_rename_save(sb, work):
    """vim with backupcopy=no saves by writing a new file and renaming."""
    p = sb.files(work + "/code.py")
    write_file(p, "print(1)\n")
    os.chmod(p, 0o750)
    r = sh("vim", "-Es", "-u", "NONE", "-i", "NONE", "-c", "set backupcopy=no writebackup",
           "-c", "%s/1/2/", "-c", "wq", p)
    assert r.returncode == 0, r
    assert read_text(p) == "print(2)\n"
    st = os.stat(p)
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_uid == OWNER
    assert inside(sb, "python3 /%s/code.py\n" % work) == "2\n"


def test_temp_file_and_rename_save(sb, work):
    p = sb.files(work + "/cfg.json")
    write_file(p, '{"a": 1}\n')
    os.chmod(p, 0o600)
    tmp = p + ".swp~"
    write_file(tmp, '{"a": 2}\n')
    shutil.copymode(p, tmp)
    os.rename(tmp, p)
    st = os.stat(p)
    assert read_text(p) == '{"a": 2}\n' and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == OWNER
    assert inside(sb, "cat /%s/cfg.json; ls -a /%s | grep -c swp; true\n" % (work, work)) == '{"a": 2}\n0\n'


def test_sed_in_place(sb, work):
    p = sb.files(work + "/s.txt")
    write_file(p, "one two\n" * 100)
    os.chmod(p, 0o664)
    r = sh("sed", "-i", "s/two/three/", p)
    assert r.returncode == 0, r
    st = os.stat(p)
    assert read_text(p) == "one three\n" * 100
    assert stat.S_IMODE(st.st_mode) == 0o664 and st.st_uid == OWNER
    assert inside(sb, "grep -c three /%s/s.txt\n" % work) == "100\n"


def test_git_workflow(sb, work):
    repo = sb.files(work + "/repo")
    os.mkdir(repo)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@x", HOME="/nonexistent")
    git = ["git", "-C", repo]     # no safe.directory: the repository is the caller's own
    assert sh(*git, "init", "-q", env=env).returncode == 0
    for i in range(50):
        write_file(os.path.join(repo, "f%d.txt" % i), "file %d\n" % i)
    os.symlink("f1.txt", os.path.join(repo, "link"))
    os.chmod(os.path.join(repo, "f0.txt"), 0o755)
    assert sh(*git, "add", "-A", env=env).returncode == 0
    r = sh(*git, "commit", "-q", "-m", "first", env=env)
    assert r.returncode == 0, r
    assert sh(*git, "status", "--porcelain", env=env).stdout == ""
    # inside sees the same repository, clean
    assert sh(*git, "log", "--format=%s", env=env).stdout == "first\n"
    out = inside(sb, "cd /%s/repo && git status --porcelain && git log --format=%%s\n" % work)
    assert out == "first\n", out
    # a change made inside shows up in git status outside at once
    inside(sb, "echo changed >> /%s/repo/f3.txt\n" % work)
    assert sh(*git, "status", "--porcelain", env=env).stdout == " M f3.txt\n"


def test_tar_extract(sb, work, tmp_path):
    src = tmp_path / "src"
    (src / "d" / "e").mkdir(parents=True)
    (src / "d" / "x.sh").write_text("#!/bin/sh\necho x\n")
    os.chmod(src / "d" / "x.sh", 0o755)
    (src / "d" / "e" / "data.bin").write_bytes(os.urandom(100000))
    os.symlink("x.sh", src / "d" / "lnk")
    os.utime(src / "d" / "x.sh", (1_000_000_000, 1_000_000_000))
    arc = tmp_path / "a.tar"
    with tarfile.open(arc, "w") as t:
        t.add(src / "d", arcname="d")
    r = sh("tar", "-x", "-f", str(arc), "-C", sb.files(work))
    assert r.returncode == 0, r
    d = sb.files(work + "/d")
    assert open(d + "/e/data.bin", "rb").read() == (src / "d" / "e" / "data.bin").read_bytes()
    st = os.stat(d + "/x.sh")
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_mtime == 1_000_000_000
    assert os.readlink(d + "/lnk") == "x.sh"
    assert inside(sb, "/%s/d/lnk\n" % work) == "x\n"


def test_rsync_archive(sb, work, tmp_path):
    if not shutil.which("rsync"):
        pytest.skip("rsync is not installed")
    src = tmp_path / "tree"
    (src / "a" / "b").mkdir(parents=True)
    for i in range(30):
        (src / "a" / ("f%d" % i)).write_text("content %d\n" % i)
    os.chmod(src / "a" / "f0", 0o600)
    os.chown(src / "a" / "f1", 4321, 4321)
    os.chown(src / "a" / "f2", 1000, 1000)
    os.symlink("../f3", src / "a" / "b" / "up")
    r = sh("rsync", "-a", str(src) + "/", sb.files(work + "/dst") + "/")
    assert r.returncode == 0, r
    dst = sb.files(work + "/dst")
    assert read_text(dst + "/a/f7") == "content 7\n"
    assert stat.S_IMODE(os.stat(dst + "/a/f0").st_mode) == 0o600
    # root's files, foreign ids and 1000 all become the sandbox user's, shown as the owner's
    assert [os.stat(dst + "/a/f%d" % i).st_uid for i in range(3)] == [OWNER] * 3
    assert read_text(dst + "/a/b/up") == "content 3\n"
    assert inside(sb, "cat /%s/dst/a/b/up; stat -c %%u /%s/dst/a/f0 /%s/dst/a/f1 /%s/dst/a/f2\n"
                  % (work, work, work, work)) == "content 3\n1000\n1000\n1000\n"
    # A second run redoes only what files/ shows differently on purpose (docs/files.md):
    # the owners that were not the caller's (f1, f2: now the sandbox user's, shown as the
    # caller's) and the "../" symlink, which readlink gives as a path through the mount.
    r = sh("rsync", "-a", "--itemize-changes", str(src) + "/", dst + "/")
    assert r.returncode == 0, r
    assert sorted(l.split()[1] for l in r.stdout.splitlines()) == ["a/b/up", "a/f1", "a/f2"], r.stdout


def _tree(root):
    """A tree as people copy in: nested dirs, modes, an executable, foreign owners, a symlink."""
    (root / "proj" / "src" / "deep").mkdir(parents=True)
    for i in range(5):
        (root / "proj" / "src" / ("m%d.py" % i)).write_text("x = %d\n" % i)
    (root / "proj" / "src" / "deep" / "data.csv").write_text("a,b\n1,2\n")
    (root / "proj" / "run.sh").write_text("#!/bin/sh\necho ran\n")
    os.chmod(root / "proj" / "run.sh", 0o755)
    os.chmod(root / "proj" / "src" / "m0.py", 0o600)
    os.chown(root / "proj" / "src" / "m1.py", 4321, 4321)
    os.chmod(root / "proj" / "src" / "deep", 0o700)
    os.symlink("src/m2.py", root / "proj" / "link")
    return root / "proj"


@pytest.mark.parametrize("tool", ["cp", "rsync", "tar"])
def test_copied_in_as_root_the_user_edits_every_file(sb, work, tmp_path, tool):
    """cp -a, rsync -a and tar -x as root exit 0 (no ACL error from cp) and leave a tree the
    sandbox user owns: it can write every file, make files in every directory, remove it all."""
    if os.getuid() != 0:
        pytest.skip("copies in as root")
    if not shutil.which(tool):
        pytest.skip("%s is not installed" % tool)
    src = _tree(tmp_path)
    dst = sb.files(work)
    if tool == "cp":
        r = sh("cp", "-a", str(src), dst)
    elif tool == "rsync":
        r = sh("rsync", "-a", str(src), dst + "/")
    else:
        arc = tmp_path / "p.tar"
        with tarfile.open(arc, "w") as t:
            t.add(src, arcname="proj")
        r = sh("tar", "-x", "-f", str(arc), "-C", dst)
    assert r.returncode == 0 and r.stderr == "", r
    assert stat.S_IMODE(os.stat(dst + "/proj/src/m0.py").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dst + "/proj/src/deep").st_mode) == 0o700
    assert all(os.lstat(os.path.join(d, n)).st_uid == OWNER
               for d, ds, fs in os.walk(dst + "/proj") for n in ds + fs), "owner shown outside"
    out = inside(sb, "cd /%s/proj && ./run.sh && "
                     "find . -type f -exec sh -c 'echo more >> \"$1\"' _ {} \\; && "
                     "find . -type d -exec touch {}/new \\; && "
                     "find . ! -user 1000 | wc -l && cd .. && rm -rf proj && echo gone\n" % work)
    assert out == "ran\n0\ngone\n", out
