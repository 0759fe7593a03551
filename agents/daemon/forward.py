"""Delivering the spool to the monitor: in order, exactly once, patiently.

The forwarder sends the spool's oldest reports as one batch to POST /api/v1/reports and
removes what the monitor answered for (stored, duplicate and rejected are all final). One
batch is in flight at a time, so report n+1 never arrives before report n has been
acknowledged; a retried batch the monitor had already stored comes back as duplicates.

When the monitor cannot be used (no connection, timeout, 5xx, 401/403/413/429, or an answer
it does not understand) nothing is removed and the forwarder backs off exponentially with
full jitter: a uniform wait between ``min_backoff_s`` and min(max, min·2^(failures-1)).
New reports (``wake()``) do not cut a backoff short, or a dead monitor would be hammered by
live samples; the first attempt after a success is immediate. See docs/reports.md.

Spool calls run in a worker thread (``asyncio.to_thread``): each is one SQLite transaction
with an fsync, which on a slow disk can take longer than the event loop should stall.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random as random_module
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Literal

from agents.client import MonitorClient, MonitorError
from agents.daemon.spool import Spool, Spooled
from sessionready.backoff import full_jitter_s
from sessionready.schema import MAX_BATCH, ReportResult
from sessionready.typed import SchemaError, decode, encode

log = logging.getLogger("sessionready.agent")

# The monitor takes 256 KiB per request by default; a batch is cut by size too, with room
# for the envelope around the reports. Samples are about 0.7 kB, checks 2 to 6 kB.
DEFAULT_BATCH_BYTES = 200_000

Outcome = Literal["delivered", "empty", "failed"]


class AnswerError(Exception):
    """The monitor's answer to a batch was not what the protocol says."""


class Forwarder:
    def __init__(
        self,
        spool: Spool,
        client: MonitorClient,
        *,
        batch_size: int = 100,
        max_batch_bytes: int = DEFAULT_BATCH_BYTES,
        min_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        random: Callable[[], float] = random_module.random,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """``random`` gives the jitter (0..1) and ``sleep`` waits out a backoff; tests pass
        their own to see the waits without sitting through them."""
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH}")
        if not 0 < min_backoff_s <= max_backoff_s:
            raise ValueError("backoff must satisfy 0 < min_backoff_s <= max_backoff_s")
        self._spool = spool
        self._client = client
        self._batch_size = batch_size
        self._batch_bytes = max_batch_bytes
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._random = random
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._sending = asyncio.Lock()  # one batch in flight, also between run() and flush()
        self._state = "idle"
        self._failures = 0
        self._problem: str | None = None
        self._outage_since: float | None = None  # wall clock, for the log
        self._outage_started = 0.0  # monotonic, for the duration
        self._delivered_after_outage: int | None = None

    @property
    def state(self) -> str:
        """delivering, idle or backing_off."""
        return self._state

    @property
    def failures(self) -> int:
        """Failed attempts since the last success (0 when the monitor is fine)."""
        return self._failures

    def wake(self) -> None:
        """A report was spooled: send it now unless backing off. Call from the loop's thread."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            self._wake.clear()  # before looking at the spool, so no wake() is missed
            outcome = await self._attempt()
            if outcome == "empty":
                self._state = "idle"
                await self._wake.wait()
            elif outcome == "failed":
                self._state = "backing_off"
                await self._sleep(self.backoff_s(self._failures))

    async def flush(self, timeout_s: float) -> bool:
        """Deliver everything pending (at shutdown); True if the spool is empty.

        Gives up at the first failure (a single try, even during a backoff: the reports
        stay in the spool for the next start) or when ``timeout_s`` runs out."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    outcome = await self._attempt()
                    if outcome != "delivered":
                        return outcome == "empty"
        except TimeoutError:
            return False

    def backoff_s(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row (1, 2, ...)."""
        return full_jitter_s(failures, self._min_backoff_s, self._max_backoff_s, self._random())

    async def _attempt(self) -> Outcome:
        try:
            async with self._sending:
                return await self._deliver_batch()
        except Exception as error:  # noqa: BLE001 - the spool's disk or a bug: keep the agent alive, back off
            self._failed(f"unexpected {error.__class__.__name__}: {error}", logging.ERROR)
            return "failed"

    async def _deliver_batch(self) -> Outcome:
        batch = await asyncio.to_thread(self._spool.pending, self._batch_size)
        if not batch:
            if self._delivered_after_outage is not None:
                log.info("delivered %d reports held back while the monitor was unreachable", self._delivered_after_outage)
                self._delivered_after_outage = None
            return "empty"
        self._state = "delivering"
        batch = _cut(batch, self._batch_bytes)
        reports, unreadable = [], []
        for spooled in batch:
            try:
                reports.append(json.loads(spooled.body))
            except ValueError:
                unreadable.append(spooled.report_id)
        if unreadable:
            # Only a damaged spool file gets here: such a report can never be delivered.
            log.error("removed %d unreadable reports from the spool", len(unreadable))
            await asyncio.to_thread(self._spool.acknowledge, (), unreadable)
            return "delivered"
        stats = await asyncio.to_thread(self._spool.stats)
        try:
            answer = await self._client.post_reports({"spool": encode(stats.status()), "reports": reports})
            results = _results(answer, batch)
        except MonitorError as error:
            self._monitor_failed(error, len(batch))
            return "failed"
        except AnswerError as error:
            self._failed(f"the monitor's answer was not understood ({error}); is it the same version?", logging.ERROR)
            return "failed"
        rejected = [r for r in results if r.status == "rejected"]
        await asyncio.to_thread(
            self._spool.acknowledge, [r.report_id for r in results if r.status != "rejected"], [r.report_id for r in rejected]
        )
        if rejected:
            log.warning("the monitor rejected %d reports as invalid and they were removed (first: %s)", len(rejected), rejected[0].error)
        self._succeeded(len(batch), stats.pending)
        return "delivered"

    def _monitor_failed(self, error: MonitorError, batch_length: int) -> None:
        if error.status == 413 and batch_length > 1:
            # The monitor takes less per request than we assumed: send smaller batches.
            self._batch_bytes = max(1, self._batch_bytes // 2)
            self._failed(f"{error.message}; sending batches of at most {self._batch_bytes} bytes from now on", logging.WARNING)
        elif error.status == 400:
            self._failed(f"the monitor refused the batch as malformed, a bug or a version mismatch: {error.message}", logging.ERROR)
        else:
            self._failed(error.message, logging.WARNING)

    def _failed(self, problem: str, level: int) -> None:
        self._failures += 1
        if self._outage_since is None:
            self._outage_since, self._outage_started = time.time(), time.monotonic()
            log.log(level, "cannot deliver reports: %s; they stay in the spool and delivery is retried with backoff", problem)
        elif problem != self._problem:
            log.log(level, "still cannot deliver reports: %s", problem)
        self._problem = problem
        self._delivered_after_outage = None

    def _succeeded(self, delivered: int, pending: int) -> None:
        if self._outage_since is not None:
            since = datetime.fromtimestamp(self._outage_since, timezone.utc).isoformat(timespec="seconds")
            log.info(
                "the monitor takes reports again after %.0f s (failing since %s); delivering %d waiting reports",
                time.monotonic() - self._outage_started,
                since,
                pending,
            )
            self._outage_since, self._problem, self._delivered_after_outage = None, None, 0
        if self._delivered_after_outage is not None:
            self._delivered_after_outage += delivered
        self._failures = 0


def _cut(batch: list[Spooled], max_bytes: int) -> list[Spooled]:
    """The oldest reports whose bodies fit in ``max_bytes`` (at least one)."""
    total = 0
    for index, spooled in enumerate(batch):
        total += len(spooled.body) + 1
        if total > max_bytes and index > 0:
            return batch[:index]
    return batch


def _results(answer: dict, batch: list[Spooled]) -> list[ReportResult]:
    raw = answer.get("results")
    if not isinstance(raw, list) or len(raw) != len(batch):
        raise AnswerError(f"expected {len(batch)} results")
    try:
        results = [decode(ReportResult, item) for item in raw]
    except SchemaError as error:
        raise AnswerError(str(error)) from None
    if [r.report_id for r in results] != [s.report_id for s in batch]:
        raise AnswerError("the results do not match the reports sent")
    return results
