"""The quiet machine of tests/quiet.py.

With root (CI, the lab): while a quiet test runs, every other test process and everything it
started is in the SCHED_IDLE class, so it gets a CPU only when the quiet test's processes do not
want one; afterwards it is back in the normal class. Without root the file locks stand in:
a quiet test waits for the tests running in other workers and holds new ones back while it runs.
Each test uses lock files of its own, apart from the ones every test of this run holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests import quiet
from tests.quiet import Demotion, can_demote, machine_share

HOLD = textwrap.dedent(
    """
    import sys
    from tests.quiet import machine_share
    from pathlib import Path
    with machine_share(exclusive=sys.argv[1] == "exclusive", locks=Path(sys.argv[2])):
        print("holding", flush=True)
        sys.stdin.readline()  # until the test says so
    """
)

# Busy in two threads until its stdin closes; prints its pid and thread ids; answers "fork" by
# starting a busy child and printing its pid (a process another test starts mid-way).
BUSY = textwrap.dedent(
    """
    import os, subprocess, sys, threading
    def spin():
        while True:
            pass
    for _ in range(2):
        threading.Thread(target=spin, daemon=True).start()
    print(os.getpid(), flush=True)
    children = []
    for line in sys.stdin:
        if line.strip() == "fork":
            children.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
            print(children[-1].pid, flush=True)
    for child in children:
        child.kill()
    """
)

# The quiet test: when told, how much CPU it gets over a second and a half of trying to use one
# whole core.
QUIET = textwrap.dedent(
    """
    import sys, time
    sys.stdin.readline()
    wall, cpu = time.monotonic(), time.process_time()
    while time.monotonic() - wall < 1.5:
        pass
    print((time.process_time() - cpu) / (time.monotonic() - wall), flush=True)
    """
)


def holder(kind: str, locks: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, kind, str(locks)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "holding"
    return process


def release(process: subprocess.Popen) -> None:
    assert process.stdin is not None
    process.stdin.write("\n")
    process.stdin.flush()
    assert process.wait(timeout=30) == 0


def test_a_quiet_test_waits_for_running_tests_and_then_runs_alone(tmp_path: Path) -> None:
    locks = tmp_path / "quiet"
    other = holder("shared", locks)  # a test running in another worker
    with machine_share(exclusive=False, locks=locks):
        pass  # shared holders do not wait for each other
    entered = threading.Event()

    def quiet() -> None:
        with machine_share(exclusive=True, locks=locks):
            entered.set()

    waiter = threading.Thread(target=quiet)
    waiter.start()
    assert not entered.wait(1.0), "the quiet test started while another test ran"
    release(other)
    assert entered.wait(30), "the quiet test did not start once the other test ended"
    waiter.join(30)


def test_no_new_test_starts_while_a_quiet_test_runs(tmp_path: Path) -> None:
    locks = tmp_path / "quiet"
    quiet = holder("exclusive", locks)
    started = threading.Event()

    def ordinary() -> None:
        with machine_share(exclusive=False, locks=locks):
            started.set()

    runner = threading.Thread(target=ordinary)
    runner.start()
    assert not started.wait(1.0), "a test started beside a quiet one"
    release(quiet)
    assert started.wait(30)
    runner.join(30)


def _autogroup(pid: int) -> int | None:
    """The nice of a process's autogroup; None on a kernel without autogroups."""
    group = quiet._autogroup(pid)
    return None if group is None else group[1]


def _policies(pid: int) -> set[int]:
    return {os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


@pytest.mark.quiet_machine  # else the lab's quiet tests, in another worker, demote this one meanwhile
@pytest.mark.skipif(not can_demote(), reason="moving threads back from SCHED_IDLE needs root or RLIMIT_NICE 20")
def test_other_tests_run_in_the_idle_class_while_a_quiet_test_runs_and_the_quiet_test_gets_its_core() -> None:
    # The quiet test is a child process here; this worker (its parent) and the "other test"
    # (another child, a test process by its environment) are outside its subtree.
    hogs = [
        subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        for _ in range(os.cpu_count() or 2)
    ]
    quiet = subprocess.Popen([sys.executable, "-c", QUIET], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    child = None
    try:
        for hog in hogs:
            assert hog.stdout is not None and int(hog.stdout.readline()) == hog.pid
        demotion = Demotion(own=quiet.pid)
        demotion.start()
        try:
            assert all(_policies(hog.pid) == {os.SCHED_IDLE} for hog in hogs)
            # Each hog is a session, so an autogroup, of its own: that group is turned down too.
            assert all(_autogroup(hog.pid) in (None, 19) for hog in hogs)
            # And off the first CPU, which the quiet test keeps for itself.
            cpus = os.sched_getaffinity(0)
            if len(cpus) > 1:
                assert all(os.sched_getaffinity(hog.pid) == cpus - {min(cpus)} for hog in hogs)
            assert _policies(quiet.pid) == {os.SCHED_OTHER}
            assert _policies(os.getpid()) == {os.SCHED_OTHER}, "an ancestor of the quiet test was demoted"
            # A process an idle-class one starts is idle-class too.
            assert hogs[0].stdin is not None and hogs[0].stdout is not None
            hogs[0].stdin.write("fork\n")
            hogs[0].stdin.flush()
            child = int(hogs[0].stdout.readline())
            assert _policies(child) == {os.SCHED_IDLE}
            # What the quiet test relies on: a whole core while every core has two busy threads.
            assert quiet.stdin is not None and quiet.stdout is not None
            quiet.stdin.write("go\n")
            quiet.stdin.flush()
            share = float(quiet.stdout.readline())
        finally:
            demotion.stop()
        assert all(_policies(hog.pid) == {os.SCHED_OTHER} for hog in hogs)
        assert all(_autogroup(hog.pid) in (None, 0) for hog in hogs)
        assert all(os.sched_getaffinity(hog.pid) == os.sched_getaffinity(0) for hog in hogs)
        assert os.sched_getaffinity(child) == os.sched_getaffinity(0)
        assert _policies(child) == {os.SCHED_OTHER}
        busy = 2 * len(hogs) + 1
        print(f"the quiet test's CPU share beside {busy} idle-class busy threads: {share:.0%} of a core")
        # A whole core if nothing outside the tests is busy (94-98 % here; 63 % once beside a
        # benchmark's processes outside any test); in the normal class it would get
        # cores / (busy + 1), 33 % on two cores.
        assert share >= 0.5
    finally:
        quiet.kill()
        if child is not None:
            os.kill(child, 9)
        for hog in hogs:
            hog.kill()


# A worker that starts a real-time test while demoted: it puts itself back and says its class.
REALTIME = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from tests.quiet import realtime_test
    sys.stdin.readline()
    with realtime_test(locks=Path(sys.argv[1])):
        print(os.sched_getscheduler(0), flush=True)
        sys.stdin.readline()
    """
)


@pytest.mark.quiet_machine
@pytest.mark.skipif(not can_demote(), reason="moving threads back from SCHED_IDLE needs root or RLIMIT_NICE 20")
def test_a_test_that_keeps_real_time_is_never_demoted(tmp_path: Path) -> None:
    locks = tmp_path / "quiet"
    sleeper = [sys.executable, "-c", "import sys; sys.stdin.readline()"]
    worker = subprocess.Popen([sys.executable, "-c", REALTIME, str(locks)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTEST_XDIST_WORKER": "gw-sound"})  # fmt: skip
    # PulseAudio daemonizes away from the worker that started it; it carries the worker's id.
    daemon = subprocess.Popen(sleeper, stdin=subprocess.PIPE, start_new_session=True, env={**os.environ, "PYTEST_XDIST_WORKER": "gw-sound"})
    ordinary = subprocess.Popen(sleeper, stdin=subprocess.PIPE, env={**os.environ, "PYTEST_XDIST_WORKER": "gw-other"})
    quiet = subprocess.Popen(sleeper, stdin=subprocess.PIPE)
    demotion = Demotion(own=quiet.pid, locks=locks)
    try:
        demotion.start()
        assert {_policies(p.pid).pop() for p in (worker, daemon, ordinary)} == {os.SCHED_IDLE}
        assert worker.stdin is not None and worker.stdout is not None
        worker.stdin.write("start the test\n")
        worker.stdin.flush()
        assert int(worker.stdout.readline()) == os.SCHED_OTHER  # put back at once
        demotion.scan()  # the quiet test's next rescan leaves it alone
        assert _policies(worker.pid) == {os.SCHED_OTHER}
        assert _policies(daemon.pid) == {os.SCHED_OTHER}
        assert _policies(ordinary.pid) == {os.SCHED_IDLE}
    finally:
        demotion.stop()
        for process in (worker, daemon, ordinary, quiet):
            process.kill()
