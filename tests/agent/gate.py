"""A reverse proxy between an agent and the monitor that stops report batches where a test says.

The agent's delivery protocol has three places a crash can fall: before the monitor has the
batch, after the monitor stored it but before the agent heard so, and after the agent heard.
A test that kills the agent "a little after a batch arrived" hits those places by luck, and
how much of a backlog is left by then depends on this machine's speed. Through this gate the
test chooses the place and the backlog drains only as fast as the test lets it.

Everything but ``POST /api/v1/reports`` passes straight through. A batch either passes whole
(while the pass budget lasts) or is stopped:

- ``"request"``: before it is forwarded; the monitor never sees it.
- ``"answer"``: after the monitor stored it and answered; the answer is held back.

A stopped batch stays stopped until ``drop_held()``, which abandons it (the connection it came
on is gone by then: the test killed the agent). ``open()`` lets everything through from then on.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from dataclasses import dataclass
from typing import Literal

import aiohttp
from aiohttp import web

Stop = Literal["request", "answer"]
REPORTS = "/api/v1/reports"


@dataclass(frozen=True)
class Batch:
    """One report batch as the gate saw it: where it stopped (or ``"answered"``), the spool's
    pending count the agent sent with it, and the monitor's status code once forwarded."""

    where: str
    pending: int
    status: int | None
    results: tuple[str, ...] = ()


class ReportGate:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="report-gate", daemon=True)
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        # Touched only on the gate's loop:
        self._passes: int | None = 0  # batches that may still pass whole; None: no limit
        self._stop_at: Stop = "request"
        self._held: list[asyncio.Event] = []
        # Read by the test's thread:
        self.events: queue.Queue[Batch] = queue.Queue()

    # --- the test's side (any thread) -----------------------------------------------------

    def start(self) -> ReportGate:
        self._thread.start()
        self._call(self._start())
        return self

    def close(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def plan(self, *, passes: int, stop_at: Stop) -> None:
        """Let ``passes`` batches through whole, then stop each further batch at ``stop_at``."""
        self._call(self._plan(passes, stop_at))

    def open(self) -> None:
        """Let every batch through, including any held now (abandoned: see ``drop_held``)."""
        self._call(self._plan(None, "request"))
        self.drop_held()

    def drop_held(self) -> None:
        """Abandon the batches stopped so far: nothing more of them reaches either side."""
        self._call(self._drop_held())

    def next_event(self, timeout_s: float) -> Batch:
        try:
            return self.events.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no report batch reached the gate within {timeout_s:g} s") from None

    def _call(self, coroutine):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    # --- the gate's loop ---------------------------------------------------------------------

    async def _start(self) -> None:
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def _close(self) -> None:
        await self._drop_held()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    async def _plan(self, passes: int | None, stop_at: Stop) -> None:
        self._passes, self._stop_at = passes, stop_at

    async def _drop_held(self) -> None:
        for held in self._held:
            held.set()
        self._held.clear()

    def _stop_for(self) -> Stop | None:
        if self._passes is None:
            return None
        if self._passes > 0:
            self._passes -= 1
            return None
        return self._stop_at

    async def _hold(self) -> None:
        dropped = asyncio.Event()
        self._held.append(dropped)
        await dropped.wait()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._client is not None
        body = await request.read()
        batch = request.method == "POST" and request.path == REPORTS
        stop = self._stop_for() if batch else None
        pending = json.loads(body)["spool"]["pending"] if batch else 0
        if stop == "request":
            self.events.put(Batch("request", pending, None))
            await self._hold()
            raise web.HTTPServiceUnavailable(text="abandoned by the test's gate")
        headers = {name: value for name, value in request.headers.items() if name.lower() in ("authorization", "content-type", "user-agent")}
        async with self._client.request(request.method, self.upstream + request.path_qs, data=body or None, headers=headers) as upstream:
            answer = await upstream.read()
            status, content_type = upstream.status, upstream.headers.get("Content-Type", "application/json")
        results = tuple(row["status"] for row in json.loads(answer)["results"]) if batch and status == 200 else ()
        if stop == "answer":
            self.events.put(Batch("answer", pending, status, results))
            await self._hold()
            raise web.HTTPServiceUnavailable(text="abandoned by the test's gate")
        response = web.Response(status=status, body=answer, headers={"Content-Type": content_type})
        if not batch:
            return response
        await response.prepare(request)
        await response.write_eof()  # handed to the agent's socket before the test hears of it
        self.events.put(Batch("answered", pending, status, results))
        return response
