"""Several monitor URLs (issue 16, part 4): the config takes one URL or a list, strictly; the
client moves to the next monitor when one is down and only then, stays on the one that works,
and tries the first again after a while. The monitors here are small aiohttp servers on
loopback in this process, each answering the way a test needs (up, 503, 500, gone, cut off,
too slow); the real monitors and the real agent are in test_failover_e2e.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from agents.client import MonitorClient, MonitorError, UsageError, resolve_connection
from agents.config import MAX_MONITORS, load_agent_config
from sessionready.config import ConfigError

TOKEN = "t0ken-for-the-tests"

# --- the config ----------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_a_single_url_loads_as_before_and_a_list_keeps_its_order(tmp_path: Path) -> None:
    one = load_agent_config(write(tmp_path, '[monitor]\nurl = "https://a.example:8470"\n'), environ={})
    assert one.url == "https://a.example:8470" and one.urls == ("https://a.example:8470",)
    none = load_agent_config(write(tmp_path, '[monitor]\nurl = ""\n'), environ={})
    assert none.url == "" and none.urls == ()
    two = load_agent_config(write(tmp_path, '[monitor]\nurl = ["https://b.example:8470", "https://a.example:8470"]\n'), environ={})
    assert two.urls == ("https://b.example:8470", "https://a.example:8470") and two.url == "https://b.example:8470"
    env = load_agent_config(write(tmp_path, ""), environ={"SESSIONREADY_MONITOR_URL": " https://c.example, https://d.example  https://e.example "})
    assert env.urls == ("https://c.example", "https://d.example", "https://e.example")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[monitor]\nurl = 8470\n", "key 'monitor.url': expected a URL or a list of URLs, got int"),
        ('[monitor]\nurl = ["https://a.example", 3]\n', "key 'monitor.url[1]': expected a string"),
        ('[monitor]\nurl = ["https://a.example", ""]\n', "key 'monitor.url': URL 2 of 2 is empty"),
        ('[monitor]\nurl = ["https://a.example", "https://a.example/"]\n', "https://a.example/ is listed twice"),
        ("[monitor]\nurl = [" + ", ".join(f'"https://m{n}.example"' for n in range(MAX_MONITORS + 1)) + "]\n", "key 'monitor.url': at most 8 items"),
        ('[monitor]\nurl = ["https://' + "a" * 2100 + '.example"]\n', "URL 1 is longer than 2048 characters"),
        ('[monitor]\nurl = {first = "https://a.example"}\n', "expected a URL or a list of URLs, got dict"),
    ],
)
def test_bad_urls_are_refused_by_name(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_agent_config(write(tmp_path, text), environ={})
    assert named in str(error.value)


def test_the_connection_checks_every_url(tmp_path: Path) -> None:
    config = load_agent_config(write(tmp_path, '[monitor]\nurl = ["http://127.0.0.1:8470/", "https://b.example:8470"]\n'), environ={})
    connection = resolve_connection(config, monitor=None, token=TOKEN, ca_file=None, allow_insecure_http=False)
    assert connection.urls == ("http://127.0.0.1:8470", "https://b.example:8470") and connection.url == "http://127.0.0.1:8470"
    plain = load_agent_config(write(tmp_path, '[monitor]\nurl = ["https://a.example", "http://b.example"]\n'), environ={})
    with pytest.raises(UsageError, match="refusing to send the token in clear text to b.example"):
        resolve_connection(plain, monitor=None, token=TOKEN, ca_file=None, allow_insecure_http=False)
    flagged = resolve_connection(config, monitor="https://x.example,https://y.example", token=TOKEN, ca_file=None, allow_insecure_http=False)
    assert flagged.urls == ("https://x.example", "https://y.example"), "--monitor replaces the file's list"
    with pytest.raises(ValueError, match="listed twice"):
        resolve_connection(config, monitor="https://x.example https://x.example:443", token=TOKEN, ca_file=None, allow_insecure_http=False)


# --- the client against small local monitors -------------------------------------------------------


class FakeMonitor:
    """A monitor on loopback whose answer the test sets: "up", 503, 502, 504, 500, 401, "cut"
    (the connection closed before an answer), "slow" (no answer within the client's timeout)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mode: str | int = "up"
        self.seen: list[str] = []
        self.url = URL()
        self._runner: web.AppRunner | None = None

    async def start(self, port: int = 0) -> FakeMonitor:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.url = URL(f"http://127.0.0.1:{self._runner.addresses[0][1]}")
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request.path)
        if self.mode == "cut":
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(0.2)
        if self.mode == "slow":
            await asyncio.sleep(1.0)  # the tests' clients wait 0.5 s
        if isinstance(self.mode, int):
            return web.json_response({"error": {"code": "x", "message": f"{self.name} says {self.mode}"}}, status=self.mode)
        if request.path == "/api/v1/probe/session":
            return web.json_response({"key": "00" * 16, "udp": {"host": "127.0.0.1", "port": 9}, "packet_bytes": 172, "expires_in_s": 60})
        return web.json_response({"monitor": self.name})


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(test: Callable[..., Awaitable[None]], count: int = 2) -> None:
    async def main() -> None:
        monitors = [await FakeMonitor(name).start() for name in "abc"[:count]]
        try:
            await test(*monitors)
        finally:
            for monitor in monitors:
                await monitor.stop()

    asyncio.run(main())


async def who(client: MonitorClient) -> str:
    return (await client.whoami())["monitor"]


def test_the_first_monitor_is_used_while_it_answers() -> None:
    async def test(a: FakeMonitor, b: FakeMonitor) -> None:
        async with MonitorClient([a.url, b.url], TOKEN) as client:
            assert [await who(client) for _ in range(3)] == ["a", "a", "a"]
        assert b.seen == [] and client.moves == 0

    run(test)


@pytest.mark.parametrize("down", [503, 502, 504, "cut", "slow", "stopped"])
def test_a_down_monitor_hands_the_same_request_to_the_next_which_is_kept(down: str | int) -> None:
    async def test(a: FakeMonitor, b: FakeMonitor) -> None:
        async with MonitorClient([a.url, b.url], TOKEN, timeout_s=0.5) as client:
            assert await who(client) == "a"
            if down == "stopped":
                await a.stop()  # connection refused from now on
            else:
                a.mode = down
            answer = await client.post_reports({"spool": {}, "reports": []})
            assert answer == {"monitor": "b"}, "the request that found a down was answered by b"
            assert b.seen == ["/api/v1/reports"]
            a.mode = "up"  # back, but the client stays on the one that works
            assert [await who(client) for _ in range(3)] == ["b", "b", "b"]
            assert client.moves == 1 and client.base_url == b.url and client.found_down(a.url) is not None

    run(test)


@pytest.mark.parametrize("status", [500, 401, 403, 400, 404, 409, 413, 429])
def test_an_answer_from_the_practice_is_not_failed_over(status: int) -> None:
    """Every monitor shares the store and the code: another one would say the same."""

    async def test(a: FakeMonitor, b: FakeMonitor) -> None:
        a.mode = status
        async with MonitorClient([a.url, b.url], TOKEN) as client:
            with pytest.raises(MonitorError) as error:
                await client.post_reports({"spool": {}, "reports": []})
        assert error.value.status == status and not error.value.down
        assert b.seen == [] and client.moves == 0

    run(test)


def test_the_first_monitor_is_tried_again_after_a_while() -> None:
    async def test(a: FakeMonitor, b: FakeMonitor) -> None:
        ticks = Ticks()
        async with MonitorClient([a.url, b.url], TOKEN, return_to_first_s=300, monotonic=ticks) as client:
            a.mode = 503
            assert await who(client) == "b"
            ticks.now += 299.9
            assert await who(client) == "b" and len(a.seen) == 1, "not before its time"
            ticks.now += 0.1
            assert await who(client) == "b" and len(a.seen) == 2, "a tried again at 300 s, still down: b answered"
            ticks.now += 299.9
            assert await who(client) == "b" and len(a.seen) == 2, "the 300 s count again from a's second failure"
            a.mode = "up"
            ticks.now += 0.1
            assert await who(client) == "a" and client.base_url == a.url
            assert await who(client) == "a" and client.moves == 2

    run(test)


def test_three_monitors_in_a_ring_and_none_answering() -> None:
    async def test(a: FakeMonitor, b: FakeMonitor, c: FakeMonitor) -> None:
        async with MonitorClient([a.url, b.url, c.url], TOKEN, timeout_s=0.5) as client:
            a.mode, b.mode = 503, "cut"
            assert await who(client) == "c"
            c.mode = 502
            a.mode = "up"
            assert await who(client) == "a", "from c the ring goes on to a"
            a.mode, b.mode, c.mode = 503, 503, 503
            before = [len(m.seen) for m in (a, b, c)]
            with pytest.raises(MonitorError) as error:
                await client.whoami()
            assert error.value.down and error.value.message.startswith("none of the 3 monitors answered; the last:")
            assert [len(m.seen) - n for m, n in zip((a, b, c), before, strict=True)] == [1, 1, 1], "each monitor asked once per request"

    run(test, count=3)


def test_requests_failing_together_move_the_client_once() -> None:
    """Two requests in flight both find a down: the client moves to b, not past it to c."""

    async def test(a: FakeMonitor, b: FakeMonitor, c: FakeMonitor) -> None:
        async with MonitorClient([a.url, b.url, c.url], TOKEN) as client:
            a.mode = 503
            answers = await asyncio.gather(*(who(client) for _ in range(4)))
            assert answers == ["b"] * 4 and client.moves == 1 and c.seen == []

    run(test, count=3)


def test_a_probe_key_names_the_monitor_that_issued_it() -> None:
    async def test(a: FakeMonitor, b: FakeMonitor) -> None:
        async with MonitorClient([a.url, b.url], TOKEN) as client:
            assert (await client.probe_session()).monitor == str(a.url)
            a.mode = 503
            key = await client.probe_session()
            assert key.monitor == str(b.url) and client.url("/api/v1/probe/download") == b.url.with_path("/api/v1/probe/download")

    run(test)


def test_one_url_behaves_as_before() -> None:
    async def test(a: FakeMonitor, b: FakeMonitor) -> None:
        async with MonitorClient(a.url, TOKEN) as client:
            a.mode = 503
            with pytest.raises(MonitorError) as error:
                await client.whoami()
            assert error.value.status == 503 and error.value.message == "the monitor answered HTTP 503: a says 503"
            assert client.moves == 0 and json.dumps(b.seen) == "[]"

    run(test)
