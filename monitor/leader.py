"""The jobs that run once across every monitor sharing a store: the risk service and the alert
worker. Each is held by a lease in the store (``monitor.store.leases``) that its holder renews
every ``ttl_s / 3`` seconds; a monitor runs a job only while it holds the job's lease.

Why a lease row rather than a PostgreSQL advisory lock on a connection of its own: it is one
SQL text for both back ends (two monitors on one SQLite file are possible too), it is tested
with an injected clock like the rest of the store, and its take-over bound does not depend on
TCP: a holder cut off from the database behind a half-open connection would keep an advisory
lock until the server notices the dead connection (minutes, with default keepalives), while a
lease runs out after ``ttl_s`` whatever the network does.

Timing, with ``ttl_s`` the lease's length and ``renew_s = ttl_s / 3``:
- a holder that dies stops renewing; its lease expires at most ``ttl_s`` after its last renewal,
  and the other monitors ask every ``renew_s``, so one takes over within ``ttl_s + renew_s``
  (4 s with the default 3 s: two of the risk service's 2 s live intervals);
- a holder that cannot renew (the store is slow or down) stops the job ``ttl_s - renew_s``
  after its last successful renewal, before any other monitor may take the lease;
- a holder whose process was stopped or starved of CPU past that moment (a paused VM, a
  machine overloaded) does not lead when it wakes, even before its next renewal has answered:
  ``leads()`` and the ``sessionready_leader`` gauge are judged against the deadline when they
  are asked, and a timer at the deadline stops the job (only a step already running when the
  process froze can finish after it);
- clocks: the expiry is written by the holder's clock and read by the others', so monitors'
  clocks must agree to well within ``ttl_s - renew_s`` (NTP keeps them within milliseconds);
- a monitor stopping cleanly releases its leases, so a restart hands over at the next ask.

The summary job and retention do not need a lease: a summary is kept once (the first insert
wins and only the winner sends its webhook) and deleting an expired row twice deletes it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import CollectorRegistry, Gauge

from monitor.store.protocols import LeaseStore

log = logging.getLogger("sessionready.monitor.leader")

# The jobs that run once across the monitors sharing a store.
JOBS = ("risk", "alerts")
DEFAULT_TTL_S = 3.0


def leader_gauge(registry: CollectorRegistry) -> Gauge:
    return Gauge(
        "sessionready_leader",
        "1 while this monitor holds the job's lease and runs it (the risk service, the alert worker); 0 while another monitor does.",
        ["job"],
        registry=registry,
    )


class Leadership:
    """Takes and renews this monitor's leases (``run``) and runs each job while it holds its
    lease (``run_while_leading``)."""

    def __init__(
        self,
        store: LeaseStore,
        holder: str,
        ttl_s: float = DEFAULT_TTL_S,
        jobs: Sequence[str] = JOBS,
        *,
        clock: Callable[[], float] = time.time,
        gauge: Gauge | None = None,
    ) -> None:
        """``holder`` names this monitor in the store (random per process, never a host name);
        ``clock`` gives unix seconds for the lease's expiry."""
        self.holder = holder
        self.ttl_s = ttl_s
        self.renew_s = ttl_s / 3.0
        self._store = store
        self._jobs = tuple(jobs)
        self._clock = clock
        self._valid_until = {job: -math.inf for job in self._jobs}  # monotonic seconds
        self._leading = {job: asyncio.Event() for job in self._jobs}
        self._following = {job: asyncio.Event() for job in self._jobs}
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self._failing = False
        for job in self._jobs:
            self._following[job].set()
            if gauge is not None:
                # Judged when scraped: a monitor that wakes from a freeze says 0 at once.
                gauge.labels(job).set_function(lambda job=job: 1.0 if self.leads(job) else 0.0)

    def leads(self, job: str) -> bool:
        """Whether this monitor holds ``job``'s lease now: a renewal said so and its validity
        has not run out since (whether or not the loop has had a chance to notice)."""
        return self._leading[job].is_set() and time.monotonic() < self._valid_until[job]

    async def run(self) -> None:
        """Renew every ``renew_s`` until cancelled; then give up what is held."""
        try:
            while True:
                started = time.monotonic()
                await asyncio.gather(*(self.renew(job) for job in self._jobs))
                await asyncio.sleep(max(0.0, self.renew_s - (time.monotonic() - started)))
        finally:
            for armed in self._deadlines.values():
                armed.cancel()
            self._deadlines.clear()
            for job in self._jobs:
                if self._leading[job].is_set():
                    self._set(job, False)
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(asyncio.to_thread(self._store.release_lease, job, self.holder), timeout=self.renew_s)

    async def renew(self, job: str) -> bool:
        """Ask for ``job``'s lease once; returns whether this monitor leads it now."""
        started = time.monotonic()
        try:
            # Waiting longer than renew_s would let the lease run out unnoticed.
            taken = await asyncio.wait_for(asyncio.to_thread(self._store.take_lease, job, self.holder, self._clock(), self.ttl_s), timeout=self.renew_s)
        except Exception as error:  # noqa: BLE001 - the store down or slow: keep what is still valid, ask again
            if not self._failing:
                log.warning("leader lease could not be renewed", extra={"fields": {"job": job, "monitor_id": self.holder, "error": type(error).__name__}})
            self._failing = True
            self._set(job, time.monotonic() < self._valid_until[job])
            return self.leads(job)
        self._failing = False
        # Stop one renewal before the lease can expire for the others.
        self._valid_until[job] = started + self.ttl_s - self.renew_s if taken else -math.inf
        self._set(job, taken and self._arm_deadline(job))
        return self.leads(job)

    def _arm_deadline(self, job: str) -> bool:
        """Arm the timer that stops ``job`` at its deadline should no renewal move it on;
        False when the deadline has already passed (the renewal answered too late)."""
        if (armed := self._deadlines.pop(job, None)) is not None:
            armed.cancel()
        left_s = self._valid_until[job] - time.monotonic()
        if left_s <= 0:
            return False
        self._deadlines[job] = asyncio.get_running_loop().call_later(left_s, self._expire, job)
        return True

    def _expire(self, job: str) -> None:
        self._deadlines.pop(job, None)
        if time.monotonic() >= self._valid_until[job]:
            self._set(job, False)

    def _set(self, job: str, leading: bool) -> None:
        if leading == self._leading[job].is_set():
            return
        if leading:
            self._following[job].clear()
            self._leading[job].set()
        else:
            self._leading[job].clear()
            self._following[job].set()
        log.info("leader lease gained" if leading else "leader lease lost", extra={"fields": {"job": job, "monitor_id": self.holder, "ttl_s": self.ttl_s}})

    async def run_while_leading(self, job: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work()`` while this monitor leads ``job``: start it on gaining the lease,
        cancel it on losing it, start it afresh on gaining it again. Until cancelled."""
        while True:
            await self._leading[job].wait()
            task = asyncio.ensure_future(work())
            lost = asyncio.ensure_future(self._following[job].wait())
            try:
                await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in (task, lost):
                    waiting.cancel()
                await asyncio.gather(task, lost, return_exceptions=True)
            if task.done() and not task.cancelled() and task.exception() is not None:
                error = task.exception()
                log.error("leader job ended with an error; starting it again", extra={"fields": {"job": job, "error": type(error).__name__}})
                await asyncio.sleep(self.renew_s)
