"""The quiet-machine lock of tests/conftest.py: a quiet_machine test waits for the tests running in
other workers and holds new ones back while it runs (other workers are other processes here).
Each test uses lock files of its own, apart from the ones every test of this run holds."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from tests.conftest import machine_share

HOLD = textwrap.dedent(
    """
    import sys
    from tests.conftest import machine_share
    from pathlib import Path
    with machine_share(exclusive=sys.argv[1] == "exclusive", locks=Path(sys.argv[2])):
        print("holding", flush=True)
        sys.stdin.readline()  # until the test says so
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
