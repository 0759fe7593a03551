"""The one wrapper every probe phase runs in: progress, timing, a timeout, and errors as data."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

T = TypeVar("T")
log = logging.getLogger("sessionready.agent")


class Progress(Protocol):
    """How a long-running check tells a person where it is. Implementations must not raise."""

    def phase_started(self, name: str, label: str, expected_s: float) -> None: ...
    def phase_finished(self, name: str, summary: str) -> None: ...


class QuietProgress:
    def phase_started(self, name: str, label: str, expected_s: float) -> None:
        pass

    def phase_finished(self, name: str, summary: str) -> None:
        pass


@dataclass(frozen=True)
class PhaseOutcome(Generic[T]):
    name: str
    value: T | None
    error: str | None  # a sentence for the person at this machine
    duration_s: float
    # The same failure as a code a report may carry: probe_timeout or probe_failed.
    failure: Literal["probe_timeout", "probe_failed"] | None = None


async def run_phase(
    name: str,
    label: str,
    work: Awaitable[T],
    *,
    expected_s: float,
    timeout_s: float,
    progress: Progress,
) -> PhaseOutcome[T]:
    """Await ``work`` with a timeout. A timeout or an unexpected error becomes ``error``."""
    progress.phase_started(name, label, expected_s)
    started = time.monotonic()
    value: T | None = None
    error: str | None = None
    failure: Literal["probe_timeout", "probe_failed"] | None = None
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can drop a cancellation that
        # arrives as the phase ends (bpo-42130): a check stopped with Ctrl-C could go on.
        async with asyncio.timeout(timeout_s):
            value = await work
    except TimeoutError:
        error, failure = f"{label} did not finish within {timeout_s:g} s", "probe_timeout"
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a probe bug must not take the whole check down
        log.debug("phase %s failed", name, exc_info=True)
        error, failure = f"{label} failed unexpectedly ({exc.__class__.__name__})", "probe_failed"
    duration = time.monotonic() - started
    progress.phase_finished(name, error or "done")
    return PhaseOutcome(name, value, error, duration, failure)
