"""Ingest's group commit holds a request that finds the writer idle for ``linger_s`` so that
requests arriving just after it share its commit (monitor/report_writer.py), and never longer:
against a real SQLite store, the commits counted at the store's seam."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from monitor.report_writer import LINGER_S, ReportWriter
from monitor.store.core import open_store
from monitor.store.reports import ReportBatch
from sessionready.schema import ReportEnvelope, SpoolStatus
from sessionready.typed import decode, encode, rfc3339
from tests.conftest import make_sample

NOW = 1_800_000_000.0


class Counting:
    def __init__(self, store: object) -> None:
        self.store = store
        self.groups: list[int] = []

    def add_report_batches(self, batches: list[ReportBatch]) -> list[list[bool | None]]:
        self.groups.append(len(batches))
        return self.store.add_report_batches(batches)  # type: ignore[attr-defined]


def _run(tmp_path: Path, linger_s: float, gap_s: float) -> tuple[list[int], list[float]]:
    """Two agents' requests ``gap_s`` apart: the commits' sizes, and each request's wait (s)."""
    store = open_store(tmp_path)
    try:
        agents = [store.create_token("client", f"c-linger-{n}")[0] for n in range(2)]
        counting = Counting(store)

        async def scenario() -> list[float]:
            writer = ReportWriter(counting, linger_s=linger_s)  # type: ignore[arg-type]
            task = asyncio.create_task(writer.run())

            async def post(agent: object) -> float:
                report = decode(ReportEnvelope, {"report_id": uuid.uuid4().hex, "seq": 1, "kind": "background", "sample": encode(make_sample(rfc3339(NOW)))})
                started = time.monotonic()
                assert await writer.add(ReportBatch(agent, [report], SpoolStatus(0, 0, 0), NOW)) == [True]  # type: ignore[arg-type]
                return time.monotonic() - started

            first = asyncio.create_task(post(agents[0]))
            await asyncio.sleep(gap_s)
            waits = [await post(agents[1]), await first]
            writer.close()
            await task
            return waits

        return counting.groups, asyncio.run(scenario())
    finally:
        store.close()


def test_a_request_just_after_an_idle_writer_shares_its_commit(tmp_path: Path) -> None:
    assert 0 < LINGER_S <= 0.025, "the added latency stays a small part of the 250 ms budget"
    groups, waits = _run(tmp_path / "linger", linger_s=0.25, gap_s=0.01)
    assert groups == [2]
    assert waits[1] >= 0.25 - 0.001, "the first request waited its linger"
    groups, _ = _run(tmp_path / "none", linger_s=0.0, gap_s=0.01)
    assert groups == [1, 1], "without a linger the first request goes alone"
