"""Group commit for ingest: the agents' reports that arrive close together are stored in one
transaction, and each request is answered once the commit that holds it has succeeded.

Why: a durable commit waits for the disk's flush (SQLite ``synchronous=FULL``, PostgreSQL
``synchronous_commit``), and one commit per report made that flush the cost of a live sample
(docs/scaling.md). Here one writer task drains a queue: a request that finds the writer idle is
held for ``linger_s`` (20 ms) for company, then written with whatever came meanwhile; the
requests that arrive while a commit is under way wait for it to end and then go together in the
next one (with no further wait once the oldest of them has waited ``linger_s``), up to
``max_reports`` reports. A request waits for at most ``linger_s`` plus the commit before it.

Why the linger: at 250 live samples a second a request nearly always found the writer idle, so
commits held 1.0 to 1.2 requests, and a commit costs the monitor far more CPU than the rows in it
(docs/scaling.md): 20 ms of added latency, against a 250 ms budget, makes commits of several
requests at that load.

What each request is answered:
- the commit succeeded: its own results, exactly what ``add_reports`` would have said for it alone;
- the store is unavailable or full (``StoreUnavailable``): every request of that commit gets
  the same error (answered 503); nothing of the commit was stored, and the agents send again;
- any other error: the requests of that commit are written again one by one, so the one that
  fails gets its error and the others are stored (a report that the schema accepts but the
  store refuses must not fail its neighbours). Validation happens before the queue.

A request whose client has gone away is still written (its reports are in the queue); the
agent's retry is then answered "duplicate", as today.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram

from monitor.store.core import StoreUnavailable
from monitor.store.protocols import ReportStore
from monitor.store.reports import ReportBatch

log = logging.getLogger("sessionready.monitor.ingest")

# Reports in one commit at most: 1,000 live agents send 500 a second, so a commit rarely holds
# more than a few dozen; the bound keeps a burst of full spools (200 reports a request) from
# making one transaction long.
MAX_REPORTS = 1000
LINGER_S = 0.020  # how long the oldest queued request waits for others before its commit starts
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass
class _Waiting:
    batch: ReportBatch
    answer: asyncio.Future[list[bool | None]]
    queued_at: float  # the event loop's clock


class ReportWriter:
    """One per monitor process: ``await add(batch)`` stores the batch in the next commit and
    returns its results. ``run()`` is the writer task; after ``close()`` it writes what is queued and ends."""

    def __init__(self, store: ReportStore, max_reports: int = MAX_REPORTS, registry: CollectorRegistry | None = None, linger_s: float = LINGER_S) -> None:
        self._store = store
        self._max_reports = max_reports
        self._linger_s = linger_s
        self._queue: list[_Waiting] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._groups = (
            Histogram(
                "sessionready_ingest_commit_requests",
                "Agents' report requests stored together in one store transaction (ingest's group commit).",
                buckets=GROUP_BUCKETS,
                registry=registry,
            )
            if registry is not None
            else None
        )

    async def add(self, batch: ReportBatch) -> list[bool | None]:
        """Per report of ``batch``: True stored, False a retry, None another agent's id (as
        ``ReportStore.add_reports``), once the commit holding it succeeded. Raises
        ``StoreUnavailable`` when that commit failed for want of the store."""
        if self._closing:
            raise StoreUnavailable("the monitor is stopping: nothing was stored")
        loop = asyncio.get_running_loop()
        waiting = _Waiting(batch, loop.create_future(), loop.time())
        self._queue.append(waiting)
        self._wake.set()
        # A request cancelled here cancels only its answer: its batch stays queued and is written.
        return await waiting.answer

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                wait = self._queue[0].queued_at + self._linger_s - asyncio.get_running_loop().time()
                if wait > 0 and not self._closing:
                    await asyncio.sleep(wait)
                group = self._take()
                if self._groups is not None:
                    self._groups.observe(len(group))
                await self._write(group)
            if self._closing:
                return

    def close(self) -> None:
        """Refuse new batches; ``run`` ends once every queued one has been written."""
        self._closing = True
        self._wake.set()

    def _take(self) -> list[_Waiting]:
        """The oldest queued batches, up to ``max_reports`` reports (at least one batch)."""
        count = reports = 0
        for waiting in self._queue:
            reports += len(waiting.batch.reports)
            if count and reports > self._max_reports:
                break
            count += 1
        group, self._queue = self._queue[:count], self._queue[count:]
        return group

    async def _write(self, group: Sequence[_Waiting]) -> None:
        try:
            results = await asyncio.to_thread(self._store.add_report_batches, [w.batch for w in group])
        except StoreUnavailable as error:
            for waiting in group:
                _answer(waiting, error=error)
            return
        except Exception as error:  # noqa: BLE001 - handed to the request(s) it belongs to, which log it
            if len(group) == 1:
                _answer(group[0], error=error)
                return
            log.warning("a group commit failed; writing its requests one by one", extra={"fields": {"requests": len(group), "error": type(error).__name__}})
            for waiting in group:
                await self._write([waiting])
            return
        for waiting, result in zip(group, results, strict=True):
            _answer(waiting, result=result)


def _answer(waiting: _Waiting, result: list[bool | None] | None = None, error: BaseException | None = None) -> None:
    if waiting.answer.done():  # cancelled: nobody is waiting any more
        return
    if error is not None:
        waiting.answer.set_exception(error)
    else:
        waiting.answer.set_result(result)  # type: ignore[arg-type]
