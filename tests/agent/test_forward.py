"""The forwarder against real monitor processes: outages, order, exactly once, backoff."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from agents.client import MonitorClient, monitor_url
from agents.daemon.forward import Forwarder
from agents.daemon.spool import Spool
from sessionready.typed import encode
from tests.conftest import Monitor, make_check, make_sample, new_token, start_monitor


class Sleeps:
    """The forwarder's backoff waits: recorded, and waited for ``scale`` times as long."""

    def __init__(self, scale: float = 0.0) -> None:
        self.delays: list[float] = []
        self.scale = scale

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(delay * self.scale)


async def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spool_at(tmp_path: Path, max_bytes: int = 1 << 22) -> Spool:
    return Spool(tmp_path / "agent" / "spool.sqlite3", max_bytes)


async def add(spool: Spool, forwarder: Forwarder, count: int, kind: str = "live") -> None:
    for _ in range(count):
        await asyncio.to_thread(spool.add_sample, kind, make_sample(session_id="s-fwd"))  # type: ignore[arg-type]
        forwarder.wake()
        await asyncio.sleep(0.005)


def read_back(monitor: Monitor, token: str) -> list[dict]:
    agent_id = monitor.json("GET", "/api/v1/whoami", token)[1]["agent_id"]
    status, body = monitor.json("GET", f"/api/v1/agents/{agent_id}/samples?since=0&limit=5000", token)
    assert status == 200
    return body["samples"]


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def test_outage_and_restart_deliver_every_report_once_in_order(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sessionready.agent")
    monitor = start_monitor(tmp_path / "monitor")
    port = URL(monitor.url).port
    token = new_token(monitor, "client", "f-outage")
    spool = spool_at(tmp_path)
    sleeps = Sleeps(scale=1.0)
    restarted: list[Monitor] = []

    async def scenario() -> None:
        async with MonitorClient(monitor_url(monitor.url), token, timeout_s=5) as client:
            forwarder = Forwarder(spool, client, batch_size=4, min_backoff_s=0.05, max_backoff_s=0.2, sleep=sleeps)
            task = asyncio.create_task(forwarder.run())
            await add(spool, forwarder, 10)
            await until(lambda: spool.stats().pending == 0)
            assert sleeps.delays == []
            await asyncio.to_thread(monitor.stop)
            await add(spool, forwarder, 20)
            await until(lambda: forwarder.failures >= 3)
            assert spool.stats().pending == 20 and forwarder.state == "backing_off"
            restarted.append(await asyncio.to_thread(start_monitor, monitor.data_dir, "--port", str(port)))
            # Idle comes after the forwarder finds the spool empty and says what it delivered;
            # "pending == 0" alone comes one acknowledgement earlier, before that line is logged.
            await until(lambda: spool.stats().pending == 0 and forwarder.state == "idle")
            assert forwarder.failures == 0
            task.cancel()

    try:
        run(scenario)
        stored = read_back(restarted[0], token)
    finally:
        for running in [monitor, *restarted]:
            running.stop()
    assert sorted(s["seq"] for s in stored) == list(range(1, 31)), "every report exactly once"
    by_seq = sorted(stored, key=lambda s: s["seq"])
    received = [s["received_at"] for s in by_seq]
    assert received == sorted(received), "report n+1 never arrived before report n"
    messages = [r.getMessage() for r in caplog.records if r.name == "sessionready.agent"]
    assert sum("cannot deliver reports" in m for m in messages) == 1, messages  # state changes only
    assert sum("takes reports again" in m for m in messages) == 1
    assert any("delivered" in m and "held back" in m for m in messages)
    assert not any(token in m or "s-fwd" in m for m in messages), "no tokens or report contents in logs"


def test_backoff_grows_with_full_jitter_between_min_and_max(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: every attempt fails at once

    async def delays_with(jitter: float) -> list[float]:
        spool = Spool(tmp_path / f"spool-{jitter}.sqlite3", 1 << 20)
        spool.add_sample("background", make_sample())
        sleeps = Sleeps()
        async with MonitorClient(monitor_url(url), "sr1_x_y", timeout_s=2) as client:
            forwarder = Forwarder(spool, client, min_backoff_s=0.5, max_backoff_s=4.0, random=lambda: jitter, sleep=sleeps)
            task = asyncio.create_task(forwarder.run())
            await until(lambda: len(sleeps.delays) >= 7)
            task.cancel()
        assert spool.stats().pending == 1
        return sleeps.delays[:7]

    async def scenario() -> None:
        assert await delays_with(1.0) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
        assert await delays_with(0.0) == [0.5] * 7
        assert await delays_with(0.5) == [0.5, 0.75, 1.25, 2.25, 2.25, 2.25, 2.25]

    run(scenario)


def test_new_reports_do_not_cut_a_backoff_short(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    spool = spool_at(tmp_path)
    sleeps = Sleeps(scale=1.0)
    wakes = 0

    async def scenario() -> None:
        nonlocal wakes
        async with MonitorClient(monitor_url(url), "sr1_x_y", timeout_s=2) as client:
            forwarder = Forwarder(spool, client, min_backoff_s=0.3, max_backoff_s=0.3, sleep=sleeps)
            task = asyncio.create_task(forwarder.run())
            started = time.monotonic()
            while time.monotonic() - started < 1.0:  # a live session: reports as fast as they come
                await add(spool, forwarder, 1)
                wakes += 1
            task.cancel()

    run(scenario)
    # Dozens of wake-ups in a second; with 0.3 s between attempts there is room for four.
    assert wakes >= 15 and spool.stats().pending == wakes
    assert 2 <= len(sleeps.delays) <= 5, sleeps.delays


def test_first_attempt_after_a_success_is_immediate(monitor: Monitor) -> None:
    token = new_token(monitor, "client", "f-immediate")
    spool = spool_at(monitor.data_dir.parent)
    sleeps = Sleeps()

    async def scenario() -> None:
        async with MonitorClient(monitor_url(monitor.url), token) as client:
            forwarder = Forwarder(spool, client, min_backoff_s=60, max_backoff_s=300, sleep=sleeps)
            task = asyncio.create_task(forwarder.run())
            for count in range(1, 4):
                await add(spool, forwarder, 1)
                await until(lambda: spool.stats().pending == 0, timeout_s=5)
                assert forwarder.state in ("idle", "delivering")
            task.cancel()

    run(scenario)
    assert sleeps.delays == [] and len(read_back(monitor, token)) == 3


def test_too_large_batches_shrink_until_they_fit(tmp_path: Path) -> None:
    """A monitor configured to take less than the default per request answers 413; the
    forwarder halves its batches until they fit, and delivers everything in order."""
    config = tmp_path / "monitor.toml"
    config.write_text("[monitor]\nmax_report_bytes = 8192\n")
    monitor = start_monitor(tmp_path / "monitor", "--config", str(config))
    token = new_token(monitor, "client", "f-413")
    spool = spool_at(tmp_path)
    for _ in range(60):
        spool.add_sample("background", make_sample())
    sleeps = Sleeps()

    async def scenario() -> None:
        async with MonitorClient(monitor_url(monitor.url), token) as client:
            forwarder = Forwarder(spool, client, batch_size=100, sleep=sleeps)
            assert await forwarder.flush(10) is False  # the first batch is too large: one try
            task = asyncio.create_task(forwarder.run())
            await until(lambda: spool.stats().pending == 0)
            task.cancel()

    try:
        run(scenario)
        stored = read_back(monitor, token)
    finally:
        monitor.stop()
    assert sorted(s["seq"] for s in stored) == list(range(1, 61))
    assert 3 <= len(sleeps.delays) <= 6  # 200 kB, 100 kB, 50 kB, 25 kB, 12.5 kB refused


def test_rejected_reports_are_removed_and_counted(monitor: Monitor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sessionready.agent")
    owner = new_token(monitor, "client", "f-owner")
    token = new_token(monitor, "client", "f-rejected")
    it = new_token(monitor, "it", "staff")
    check = make_check("e" * 32)
    assert monitor.json("POST", "/api/v1/checks", owner, encode(check))[0] == 201
    spool = spool_at(monitor.data_dir.parent)
    spool.add_sample("background", make_sample())
    spool.add_check(check)  # the id belongs to another agent now: the monitor rejects it

    async def scenario() -> None:
        async with MonitorClient(monitor_url(monitor.url), token) as client:
            forwarder = Forwarder(spool, client)
            assert await forwarder.flush(10) is True
            spool.add_sample("live", make_sample())
            assert await forwarder.flush(10) is True

    run(scenario)
    stats = spool.stats()
    assert (stats.pending, stats.rejected) == (0, 1)
    assert [s["seq"] for s in read_back(monitor, token)] == [1, 3]
    agents = {a["agent_id"]: a for a in monitor.json("GET", "/api/v1/agents", it)[1]["agents"]}
    mine = agents[monitor.json("GET", "/api/v1/whoami", token)[1]["agent_id"]]
    assert mine["spool"]["rejected"] == 1 and mine["last_seq"] == 3
    assert any("rejected 1 reports" in r.getMessage() for r in caplog.records)


def test_flush_reports_whether_the_spool_is_empty(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    spool = spool_at(tmp_path)
    spool.add_sample("live", make_sample())

    async def scenario() -> None:
        async with MonitorClient(monitor_url(url), "sr1_x_y", timeout_s=2) as client:
            forwarder = Forwarder(spool, client)
            started = time.monotonic()
            assert await forwarder.flush(5) is False
            assert time.monotonic() - started < 3
            empty = Forwarder(Spool(tmp_path / "empty.sqlite3", 1 << 20), client)
            assert await empty.flush(5) is True

    run(scenario)
    assert spool.stats().pending == 1


class StubMonitor:
    """An HTTP server on loopback that answers POST /api/v1/reports as told: for answers a
    real monitor gives only when something is broken (a version mismatch, a bug)."""

    def __init__(self, answer: Callable[[dict], web.Response]) -> None:
        self.answer = answer
        self.requests: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(await request.json())
        return self.answer(self.requests[-1])

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/api/v1/reports", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


@pytest.mark.parametrize(
    "answer,logged",
    [
        (lambda body: web.json_response({"error": {"code": "invalid_field", "message": "unknown field", "field": "spool.x"}}, status=400), "malformed"),
        (lambda body: web.json_response({"results": []}), "not understood"),
        (lambda body: web.json_response({"results": [{"report_id": "0" * 32, "status": "stored"}] * len(body["reports"])}), "not understood"),
        (lambda body: web.json_response({"results": [{"report_id": r["report_id"], "status": "lost"} for r in body["reports"]]}), "not understood"),
    ],
)
def test_broken_answers_keep_the_reports_log_an_error_and_back_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, answer: Callable[[dict], web.Response], logged: str
) -> None:
    caplog.set_level(logging.INFO, logger="sessionready.agent")
    spool = spool_at(tmp_path)
    for _ in range(3):
        spool.add_sample("background", make_sample())
    sleeps = Sleeps()
    stub = StubMonitor(answer)

    async def scenario() -> None:
        async with stub as url, MonitorClient(monitor_url(url), "sr1_x_y") as client:
            forwarder = Forwarder(spool, client, min_backoff_s=1, max_backoff_s=8, random=lambda: 1.0, sleep=sleeps)
            task = asyncio.create_task(forwarder.run())
            await until(lambda: len(sleeps.delays) >= 4)
            task.cancel()

    run(scenario)
    assert spool.stats().pending == 3 and sleeps.delays[:4] == [1, 2, 4, 8]
    assert all([r["seq"] for r in request["reports"]] == [1, 2, 3] for request in stub.requests)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and logged in errors[0].getMessage()  # said once, not every retry


def test_arguments_are_checked(tmp_path: Path) -> None:
    spool = spool_at(tmp_path)
    client = MonitorClient(monitor_url("http://127.0.0.1:1"), "t")
    for kwargs in ({"batch_size": 0}, {"batch_size": 201}, {"min_backoff_s": 0}, {"min_backoff_s": 5, "max_backoff_s": 1}):
        with pytest.raises(ValueError):
            Forwarder(spool, client, **kwargs)  # type: ignore[arg-type]
