"""test_control_locks.py - no lock is held across a backend call that may block (issue 9):
while a spawn waits for an agent that does not answer, the sandbox's `status`, `metrics`,
`info` and `files/` answer at once.

Run: SBXFS_BIN=build/sbxfs /usr/bin/python3 -m pytest -q tests/pytest/test_control_locks.py
"""

import json
import os
import signal
import threading
import time

import pytest

from sbxtest import read_text, write_file


def _agent_pid(mount, name):
    with open(os.path.join(str(mount.state), "sandboxes", name, "backend", "local.json")) as f:
        return json.load(f)["agent_pid"]


@pytest.mark.deadline(90)
def test_reads_do_not_wait_behind_a_stuck_spawn(mount, box):
    if mount.backend != "local":
        pytest.skip("the stuck spawn is made by stopping the local backend's agent")
    b = box()
    write_file(b.files("home/user/seen.txt"), "x\n")
    agent = _agent_pid(mount, b.name)
    os.kill(agent, signal.SIGSTOP)
    done = []
    try:
        t = threading.Thread(target=lambda: done.append(b.run("sh", "echo late\n")), daemon=True)
        t.start()
        time.sleep(1.0)   # the spawn has sent its request and waits for the agent's answer
        assert t.is_alive(), "the spawn did not wait for the stopped agent"
        t0 = time.monotonic()
        assert read_text(b.path("status")) in ("running\n", "stopped\n", "error\n")
        json.loads(read_text(b.path("metrics")))
        json.loads(read_text(b.path("info")))
        assert "seen.txt" in os.listdir(b.files("home/user"))
        assert read_text(b.files("home/user/seen.txt")) == "x\n"
        took = time.monotonic() - t0
        assert took < 3.0, "reads waited %.1f s behind a spawn" % took
    finally:
        os.kill(agent, signal.SIGCONT)
    t.join(40)
    assert not t.is_alive()
    assert done and done[0].stdout == "late\n", done
