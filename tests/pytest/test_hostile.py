"""test_hostile.py - code that attacks the machinery running it (issue 10):
runs that try never to end, and the host side that ends them anyway."""

import time

import pytest


@pytest.mark.deadline(90)
@pytest.mark.parametrize("how", ["kill -STOP 2", "kill -STOP -1", "kill -STOP 1 2; kill -STOP -1"])
def test_run_that_stops_the_agent_still_times_out(box, how):
    """The code stops the agent and every process it may signal (itself
    included): close() still returns at the timeout with 124, and the next
    run works."""
    b = box("timeout=2")
    r = b.run("sh", "%s 2>/dev/null\nsleep 60\n" % how)
    assert r.exit == 124, r
    assert r.seconds < 2 + 2, r
    r = b.run("sh", "echo alive\n")
    assert r.exit == 0 and r.stdout == "alive\n", r
    assert b.status() == "running\n"


@pytest.mark.deadline(90)
def test_run_of_paused_sandbox_ends_at_its_timeout(box):
    """A run in progress when the sandbox is paused: close() returns at the
    timeout with 124 (the run is killed once the sandbox resumes)."""
    b = box("timeout=3")
    t0 = time.monotonic()
    bg = b.run_bg("sh", "echo started; sleep 60; echo never\n")
    deadline = time.monotonic() + 10
    while b.read("stdout") != "started\n":
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    b.ctl_ok("pause")
    res = bg.finish(timeout=20)
    took = bg.done_at - t0
    assert res.exit == 124, res
    assert 3 - 0.5 < took < 3 + 2, took
    assert b.status() == "paused\n"
    b.ctl_ok("resume")
    r = b.run("sh", "ps -eo args | grep -c '[s]leep 60' || true\n")
    assert r.exit == 0 and r.stdout.strip() == "0", r
