"""A real HTTP webhook receiver on 127.0.0.1 for tests: records what arrives, can fail or hang.

It runs its own event loop in a thread, so a hanging answer never stalls the code under test
(which may run in another loop) and sync tests can use it too.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived
    answered: int | None  # the status we answered with; None while hanging or when dropped

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """``with WebhookReceiver() as hook:`` then post to ``hook.url("/it")``; read ``hook.received``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._fail_next = 0
        self._fail_status = 500
        self._fail_headers: dict[str, str] = {}
        self._hanging = False
        self._loop = asyncio.new_event_loop()
        self._release: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="webhook-receiver", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- control, from the test's thread ---

    def fail_next(self, count: int, status: int = 500, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``count`` requests with ``status`` (recorded, but not a delivery)."""
        with self._lock:
            self._fail_next = count
            self._fail_status = status
            self._fail_headers = dict(headers or {})

    def hang(self, on: bool) -> None:
        """While on, requests are read and recorded but never answered (until turned off)."""
        with self._lock:
            self._hanging = on
        if not on:
            self._loop.call_soon_threadsafe(self._release_all)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def delivered(self, path: str | None = None) -> list[Received]:
        """Requests answered with a 2xx, optionally only those to ``path``."""
        return [r for r in self.received if r.answered is not None and 200 <= r.answered < 300 and (path is None or r.path == path)]

    def wait_for(self, count: int, path: str | None = None, timeout_s: float = 10.0) -> list[Received]:
        """Block until ``count`` deliveries (2xx) arrived, or raise AssertionError."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = self.delivered(path)
            if len(done) >= count:
                return done
            time.sleep(0.02)
        raise AssertionError(f"expected {count} deliveries to {path or 'any path'}, got {len(self.delivered(path))}")

    # --- lifecycle ---

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the ephemeral port

    async def _stop(self) -> None:
        self._release_all()
        if self._runner is not None:
            await self._runner.cleanup()

    def _release_all(self) -> None:
        if self._release is not None:
            self._release.set()
            self._release = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.monotonic()
        with self._lock:
            hanging = self._hanging
            failing = self._fail_next > 0
            if failing and not hanging:
                self._fail_next -= 1
            status = self._fail_status if failing else 200
            headers = dict(self._fail_headers) if failing else {}
        record = Received(request.path, dict(request.headers), body, arrived, None)
        if hanging:
            with self._lock:
                self._received.append(record)
            release = self._release
            assert release is not None
            await release.wait()
            raise web.HTTPServiceUnavailable()  # released: the client has long given up
        with self._lock:
            self._received.append(Received(record.path, record.headers, body, arrived, status))
        return web.json_response({"ok": status == 200}, status=status, headers=headers)
