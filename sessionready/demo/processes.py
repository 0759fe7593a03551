"""The demo's child processes: started with their output in a log file, stopped in order, and
never left behind.

Each child gets its own session, so a Ctrl-C at the terminal reaches the demo alone and the
demo stops the children in an order that lets the agents hand their last reports to the
monitor. On Linux each child also asks the kernel for SIGTERM when the demo dies
(``PR_SET_PDEATHSIG``), so even a demo killed with SIGKILL leaves no orphans.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sessionready.demo import DemoError

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_WAIT_S = 10.0  # after SIGTERM, before SIGKILL (an agent delivers pending reports for up to 5 s)
# The user's own agent settings must not leak into the demo's children: these would override
# the demo's config files (docs/agent.md "Environment overrides").
FOREIGN_ENVIRONMENT = ("SESSIONREADY_TOKEN", "SESSIONREADY_MONITOR_URL", "SESSIONREADY_CONFIG", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")


class Stopper:
    """Ctrl-C and SIGTERM become a request to stop, looked at between steps and while waiting,
    so a step is never torn in the middle and everything started can be stopped in order."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._request)

    def _request(self, signum: int, _frame: object) -> None:
        self.signal = signum

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def sleep(self, seconds: float) -> None:
        """Sleep, but return as soon as a stop is requested."""
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))


def product_command(*args: str) -> list[str]:
    """``sessionready ARGS`` with the interpreter running the demo (the virtualenv's)."""
    return [sys.executable, "-m", "sessionready.cli", *args]


def child_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in FOREIGN_ENVIRONMENT}


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGTERM when the demo dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the demo died before prctl took effect
            os._exit(1)

    return preexec


def run_product(*args: str, input: str | None = None, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a short ``sessionready`` command (user and token management) to completion."""
    try:
        return subprocess.run(
            product_command(*args),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=child_environment(),
            start_new_session=True,  # a Ctrl-C meanwhile is the demo's to handle, after the command
            preexec_fn=_die_with_parent(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DemoError(f"'sessionready {' '.join(args[:3])}' did not finish within {timeout_s:g} s") from None


@dataclass
class Child:
    """A long-running part of the demo. ``name`` reads in a sentence: "the monitor"."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stops_last: bool  # others still need it while they stop (the monitor)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Children:
    running: list[Child] = field(default_factory=list)

    def start(self, name: str, command: Sequence[str], log_path: Path, *, stops_last: bool = False) -> Child:
        with log_path.open("ab") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_environment(),
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        child = Child(name, process, log_path, stops_last)
        self.running.append(child)
        return child

    def exited(self) -> Child | None:
        """The first child that is no longer running, if any."""
        return next((child for child in self.running if child.process.poll() is not None), None)

    def stop_all(self) -> None:
        """SIGTERM, a wait, then SIGKILL: first every child others do not need (in parallel),
        then the rest. Never raises."""
        first = [child for child in self.running if not child.stops_last]
        last = [child for child in self.running if child.stops_last]
        for group in (first, last):
            for child in group:
                _signal(child.process, signal.SIGTERM)
            deadline = time.monotonic() + STOP_WAIT_S
            for child in group:
                _wait_or_kill(child.process, deadline)
        self.running.clear()


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is None:
        try:
            process.send_signal(signum)
        except ProcessLookupError:
            pass


def _wait_or_kill(process: subprocess.Popen[bytes], deadline: float) -> None:
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
