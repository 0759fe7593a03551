"""The one interface every OS's link detection sits behind, and the I/O seams they share.

psutil cannot tell Wi-Fi from Ethernet nor read a Wi-Fi signal, so each OS is asked in its own
way (linux.py, macos.py, windows.py). Each ``LinkProbe`` takes its I/O as arguments:
``run(argv, timeout_s) -> stdout`` for commands and, on Linux, ``read(path) -> text`` and
``exists(path) -> bool`` for /proc and /sys. The parsing is in pure functions next to each
probe, tested on recorded output.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from agents.probes.machine.result import LinkType, Problem
from sessionready.schema import MAX_MBPS

Run = Callable[[Sequence[str], float], str]
Read = Callable[[str], str]
Exists = Callable[[str], bool]

# A plausible received signal: -120 dBm is below any receiver's floor, 0 dBm is not a real
# reading at a client. Anything outside is a driver's placeholder, not a measurement.
MIN_SIGNAL_DBM = -120.0
MAX_SIGNAL_DBM = -1.0


class CommandFailed(Exception):
    """A command could not give an answer: not installed, not startable, or too slow."""

    def __init__(self, argv: Sequence[str], reason: str) -> None:
        super().__init__(f"{argv[0] if argv else '?'}: {reason}")
        self.reason = reason


class LinkError(Exception):
    """The OS could not be asked which interface carries the default route. ``problem`` says why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


@dataclass(frozen=True)
class WifiStatus:
    """What the OS says about the current Wi-Fi association; any field may be unknown."""

    signal_dbm: float | None = None
    rate_mbps: float | None = None  # negotiated PHY rate, Mbit/s
    radio: str | None = None  # e.g. "802.11ax"


@dataclass(frozen=True)
class LinkReading:
    """A ``LinkProbe``'s answer for one interface. ``wifi`` is set for Wi-Fi links only."""

    type: LinkType
    wifi: WifiStatus | None = None
    problems: tuple[Problem, ...] = ()


class LinkProbe(Protocol):
    def default_interface(self) -> str | None:
        """The interface carrying the default route; None when there is none (offline).

        Raises ``LinkError`` when the OS could not be asked (tool missing, file unreadable).
        """
        ...

    def link_info(self, interface: str) -> LinkReading:
        """Type and Wi-Fi details of ``interface``. Never raises: gaps are ``problems``."""
        ...


def run_command(argv: Sequence[str], timeout_s: float) -> str:
    """Stdout of ``argv`` (no shell), whatever its exit status: the parsers judge the text.

    Raises ``CommandFailed`` when the tool is missing, cannot start, or exceeds ``timeout_s``.
    """
    # English, untranslated output where the OS honours it (Linux, macOS; not Windows).
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    try:
        completed = subprocess.run(
            list(argv), capture_output=True, text=True, errors="replace", timeout=timeout_s, check=False, env=env, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise CommandFailed(argv, "not installed") from None
    except subprocess.TimeoutExpired:
        raise CommandFailed(argv, f"no answer within {timeout_s:g} s") from None
    except OSError as error:
        raise CommandFailed(argv, f"cannot start ({error.__class__.__name__})") from None
    return completed.stdout


def read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.read(1 << 20)  # /proc and /sys files are small; a runaway one is not read whole


def plausible_dbm(value: float | None) -> float | None:
    if value is None or not MIN_SIGNAL_DBM <= value <= MAX_SIGNAL_DBM:
        return None
    return value


def plausible_rate(value: float | None) -> float | None:
    if value is None or not 0 < value <= MAX_MBPS:
        return None
    return value


def number(text: str) -> float | None:
    """A decimal number at the start of ``text`` ("-56.", "433.3 MBit/s", "78%"), else None."""
    match = re.match(r"\s*([-+]?\d+(?:\.\d*)?)", text)
    return float(match.group(1)) if match else None
