"""Leases (issue 16 part 4): the jobs that run once across monitors sharing a store.

The store's part runs on both back ends (the ``stores`` fixture: SQLite and a real PostgreSQL),
two store objects standing for two monitors; the keeper (``monitor.leader.Leadership``) runs on
a real SQLite store with an injected clock. Two real monitor processes on one PostgreSQL are in
tests/test_leader_e2e.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.leader import Leadership, leader_gauge
from monitor.store.core import SQLiteStore
from tests.test_store_contract import race


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_one_holder_at_a_time_until_the_lease_expires(stores) -> None:
    clock = Clock()
    first, second = stores.open(clock), stores.open(clock)
    assert first.take_lease("risk", "aaaa", clock.now, 3.0)
    assert not second.take_lease("risk", "bbbb", clock.now + 2.9, 3.0), "held until it expires"
    assert first.take_lease("risk", "aaaa", clock.now + 2.9, 3.0), "the holder renews"
    assert not second.take_lease("risk", "bbbb", clock.now + 5.8, 3.0), "renewed at +2.9: held until +5.9"
    assert second.take_lease("alerts", "bbbb", clock.now, 3.0), "each job has its own lease"
    # Exactly at the expiry the lease is free (expires_at <= now).
    assert second.take_lease("risk", "bbbb", clock.now + 5.9, 3.0)
    assert not first.take_lease("risk", "aaaa", clock.now + 6.0, 3.0), "the old holder has lost it"
    assert not first.release_lease("risk", "aaaa"), "only the holder releases"
    assert second.release_lease("risk", "bbbb")
    assert first.take_lease("risk", "aaaa", clock.now + 6.0, 3.0), "released: free at once"
    assert stores.sql("SELECT job, holder FROM leases ORDER BY job") == [("alerts", "bbbb"), ("risk", "aaaa")]


def test_of_monitors_asking_at_once_exactly_one_gets_it(stores) -> None:
    clock = Clock()
    monitors = [stores.open(clock) for _ in range(2)]
    for round_ in range(10):
        job = f"job{round_}"
        won = race(2, lambda i, job=job: monitors[i].take_lease(job, f"m{i}", clock.now, 3.0))
        assert sorted(won) == [False, True], (round_, won)
        # And when the lease has expired, again exactly one of them takes it over.
        won = race(2, lambda i, job=job: monitors[i].take_lease(job, f"n{i}", clock.now + 10, 3.0))
        assert sorted(won) == [False, True], (round_, won)


class SlowStore:
    """A real store whose take_lease blocks while ``hold`` is clear: the database stalled."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.hold = threading.Event()
        self.hold.set()

    def take_lease(self, job: str, holder: str, now: float, ttl_s: float) -> bool:
        self.hold.wait(10)
        return self._store.take_lease(job, holder, now, ttl_s)

    def release_lease(self, job: str, holder: str) -> bool:
        return self._store.release_lease(job, holder)


def test_the_keeper_runs_a_job_only_while_it_holds_the_lease(tmp_path: Path) -> None:
    clock = Clock()
    store = SQLiteStore(tmp_path / "s.sqlite3", clock)
    registry = CollectorRegistry()
    slow = SlowStore(store)
    # Renewals every 0.5 s, each given 0.5 s to answer: a lease of 0.6 s (0.2 s each) failed 2
    # runs in 60 with the machine's load at 14, a renewal's thread not scheduled in time.
    ttl = 1.5

    async def scenario() -> list[str]:
        events: list[str] = []
        mine = Leadership(slow, "mine", ttl, ("risk",), clock=clock, gauge=leader_gauge(registry))
        assert registry.get_sample_value("sessionready_leader", {"job": "risk"}) == 0

        async def work() -> None:
            events.append("started")
            try:
                await asyncio.Event().wait()
            finally:
                events.append("stopped")

        assert store.take_lease("risk", "other", clock.now, ttl)  # another monitor holds it
        keeper = asyncio.create_task(mine.run())
        runner = asyncio.create_task(mine.run_while_leading("risk", work))
        await asyncio.sleep(2 * mine.renew_s)
        assert events == [] and not mine.leads("risk"), "never while another holds it"
        clock.now += ttl  # the other stopped renewing: its lease runs out
        await asyncio.wait_for(_until(lambda: mine.leads("risk")), 2 * ttl)
        await asyncio.sleep(0.05)
        assert events == ["started"] and registry.get_sample_value("sessionready_leader", {"job": "risk"}) == 1
        # The store stalls: renewals hang. The job stops before the lease could expire for
        # anyone else (ttl - renew_s after the last renewal), not when the store answers.
        slow.hold.clear()
        stalled = asyncio.get_running_loop().time()
        # leads() turns false at the deadline itself; the job is cancelled a few loop turns later.
        await asyncio.wait_for(_until(lambda: not mine.leads("risk") and events[-1] == "stopped"), 2 * ttl)
        events.append(f"lost after {asyncio.get_running_loop().time() - stalled:.2f}")
        slow.hold.set()
        await asyncio.wait_for(_until(lambda: mine.leads("risk")), 2 * ttl)  # its own lease: renewed
        await asyncio.sleep(0.05)
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await asyncio.sleep(0.05)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        assert registry.get_sample_value("sessionready_leader", {"job": "risk"}) == 0
        return events

    events = asyncio.run(scenario())
    print(f"keeper: {events}")
    assert events[:2] == ["started", "stopped"] and events[3:] == ["started", "stopped"], events
    lost_after = float(events[2].split()[-1])
    assert lost_after <= ttl, f"a stalled holder stops within the lease ({lost_after} s)"
    assert store.take_lease("risk", "other", clock.now, ttl), "released on a clean stop: free at once"


async def _within(seconds: float, predicate) -> bool:
    try:
        await asyncio.wait_for(_until(predicate), seconds)
    except TimeoutError:
        return False
    return True


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


def test_a_holder_that_wakes_from_a_freeze_past_its_deadline_does_not_lead(tmp_path: Path) -> None:
    """The attack on the lease the CI run found: a monitor starved of CPU (or a paused VM) past
    its deadline while another took the lease over. When it wakes, the scrape and the job can run
    before its next renewal answers; it must not say it leads then, nor keep running the job."""
    clock = Clock()
    store = SQLiteStore(tmp_path / "s.sqlite3", clock)
    registry = CollectorRegistry()
    ttl = 0.6

    async def scenario() -> dict[str, object]:
        mine = Leadership(store, "mine", ttl, ("risk",), clock=clock, gauge=leader_gauge(registry))
        steps: list[float] = []
        stopped: list[bool] = []

        async def work() -> None:  # passes like the risk service's: one starts only while leading
            try:
                while True:
                    if mine.leads("risk"):
                        steps.append(clock.now)
                    await asyncio.sleep(0.01)
            finally:
                stopped.append(True)

        keeper = asyncio.create_task(mine.run())
        runner = asyncio.create_task(mine.run_while_leading("risk", work))
        await asyncio.wait_for(_until(lambda: mine.leads("risk")), 1.0)
        # The whole process freezes (nothing in it runs) for the lease's length; meanwhile the
        # clock moves on, the lease runs out in the store and another monitor takes it.
        time.sleep(ttl)
        clock.now += ttl
        assert store.take_lease("risk", "other", clock.now, ttl), "expired in the store: another monitor takes it"
        woken = {"leads": mine.leads("risk"), "gauge": registry.get_sample_value("sessionready_leader", {"job": "risk"})}
        # The loop's first turn after the freeze: the deadline's timer runs with whatever was ready.
        steps_at_wake = len(steps)
        woken["job stopped on waking"] = await _within(0.1, lambda: stopped == [True])
        await asyncio.sleep(0.2)
        woken["steps after"] = len(steps) - steps_at_wake
        woken["leads later"] = mine.leads("risk")
        for task in (keeper, runner):
            task.cancel()
        await asyncio.gather(keeper, runner, return_exceptions=True)
        return woken

    woken = asyncio.run(scenario())
    print(f"woken from a freeze: {woken}")
    assert woken == {"leads": False, "gauge": 0.0, "job stopped on waking": True, "steps after": 0, "leads later": False}
