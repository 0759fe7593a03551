"""The risk service's two loops (monitor/risk/service.py, ``run``): the assessment of upcoming
sessions takes seconds with hundreds of them, and a live session's step must not wait behind it.
Real SQLite store; the store's snapshot read is slowed at the store's seam, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path

from monitor.risk.service import RiskService, RiskTimes
from monitor.store.core import SQLiteStore, open_store

EVALUATION_S = 3.0


def _run(service: RiskService, seconds: float) -> None:
    """Run the service's loops for ``seconds``, then cancel them."""

    async def run_for() -> None:
        task = asyncio.create_task(service.run())
        await asyncio.sleep(seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run_for())


class _SlowSnapshot:
    """The store, with an assessment's read that takes EVALUATION_S (as 550 live sessions' did
    on PostgreSQL: 1.3-2.0 s) and a record of when each live pass began."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.live_passes: list[float] = []
        self.evaluating = threading.Event()

    def risk_snapshot(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self.evaluating.set()
        time.sleep(EVALUATION_S)
        return self._store.risk_snapshot(*args, **kwargs)

    def live_activity(self, since: float):  # noqa: ANN201
        self.live_passes.append(time.monotonic())
        return self._store.live_activity(since)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._store, name)


def test_live_passes_keep_their_interval_while_an_assessment_runs(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    slow = _SlowSnapshot(store)
    service = RiskService(slow, times=RiskTimes(interval_s=3600.0, live_interval_s=0.2))  # type: ignore[arg-type]

    try:
        _run(service, EVALUATION_S + 1.0)
        assert slow.evaluating.is_set() and service.evaluations == 1
        gaps = [b - a for a, b in zip(slow.live_passes, slow.live_passes[1:])]
        # One loop for both made the live pass wait out the whole assessment (a gap of 3 s).
        assert len(slow.live_passes) >= 8 and max(gaps) < EVALUATION_S / 2, gaps
    finally:
        store.close()


class _SlowLivePass(_SlowSnapshot):
    """The store, with a live pass's first read that takes LIVE_PASS_S and an assessment's read
    that takes no time; records when each live pass's read ended and when the assessment began."""

    def __init__(self, store: SQLiteStore) -> None:
        super().__init__(store)
        self.live_pass_reads_ended: list[float] = []
        self.assessments_began: list[float] = []

    def risk_snapshot(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self.assessments_began.append(time.monotonic())
        return self._store.risk_snapshot(*args, **kwargs)

    def live_activity(self, since: float):  # noqa: ANN201
        time.sleep(LIVE_PASS_S)
        self.live_pass_reads_ended.append(time.monotonic())
        return self._store.live_activity(since)


LIVE_PASS_S = 0.5


def test_an_assessment_starts_after_a_live_pass_not_beside_it(tmp_path: Path) -> None:
    # Side by side they share one interpreter and the requests wait for both: SQLite's p99 at
    # 1,500 agents went from 210-218 to 311-318 ms when the two loops started independently.
    store = open_store(tmp_path)
    slow = _SlowLivePass(store)
    service = RiskService(slow, times=RiskTimes(interval_s=3600.0, live_interval_s=1.0))  # type: ignore[arg-type]

    try:
        _run(service, 1.5)
        assert len(slow.assessments_began) == 1 and slow.live_pass_reads_ended, (slow.assessments_began, slow.live_pass_reads_ended)
        assert slow.assessments_began[0] >= slow.live_pass_reads_ended[0]
    finally:
        store.close()
