"""Throughput against the monitor: parallel HTTP streams, TCP ramp-up excluded.

Each phase runs ``streams`` connections for ``seconds``; the bytes moved are counted as they
move (received, or accepted by a fixed-size send buffer) and the rate is taken only over the
window after ``ramp_seconds``, when the connections have left slow start. Failure is data:
the result carries an error sentence, never an exception.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp

from agents.client import MonitorClient
from sessionready.stats import steady_rate

CHUNK_BYTES = 64 * 1024
REQUEST_BYTES = 1 << 30  # per download request; a stream that finishes one starts another


@dataclass(frozen=True)
class ThroughputSettings:
    seconds: float = 4.0
    ramp_seconds: float = 1.0
    streams: int = 4


@dataclass(frozen=True)
class ThroughputResult:
    direction: str  # "down" | "up"
    mbps: float | None  # megabits per second over the steady window
    bytes_total: int
    seconds: float
    error: str | None


class _Meter:
    """Cumulative bytes over time, shared by the streams of one phase."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self.start = monotonic()
        self.total = 0
        self.samples: list[tuple[float, int]] = [(0.0, 0)]

    def add(self, count: int) -> None:
        self.total += count
        self.samples.append((self._monotonic() - self.start, self.total))


async def measure(
    client: MonitorClient,
    direction: str,
    settings: ThroughputSettings,
    *,
    monotonic: Callable[[], float] = time.monotonic,
) -> ThroughputResult:
    meter = _Meter(monotonic)
    deadline = meter.start + settings.seconds
    errors: list[BaseException] = []
    session = client.new_session(upload=direction == "up", limit=settings.streams)
    # Incompressible bytes, so that no middlebox compression flatters the upload.
    stream = _download_stream if direction == "down" else functools.partial(_upload_stream, random_block=os.urandom(1 << 20))
    try:
        tasks = [asyncio.create_task(stream(client, session, meter, deadline, monotonic)) for _ in range(settings.streams)]
        # The streams stop themselves at the deadline; the grace covers a slow first byte.
        done, pending = await asyncio.wait(tasks, timeout=settings.seconds + 5)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        errors = [task.exception() for task in done if task.exception() is not None]
    finally:
        await session.close()
    elapsed = monotonic() - meter.start
    rate = steady_rate(meter.samples, settings.ramp_seconds, settings.seconds)
    error = None
    if rate is None or meter.total == 0:
        error = _describe(errors[0]) if errors else "no data moved during the measurement"
        rate = None
    elif errors and len(errors) == settings.streams:
        error = _describe(errors[0])
    return ThroughputResult(
        direction=direction,
        mbps=None if rate is None else rate * 8 / 1e6,
        bytes_total=meter.total,
        seconds=round(elapsed, 3),
        error=error,
    )


async def _download_stream(
    client: MonitorClient, session: aiohttp.ClientSession, meter: _Meter, deadline: float, monotonic: Callable[[], float]
) -> None:
    url = client.url("/api/v1/probe/download")
    while monotonic() < deadline:
        async with session.get(url, params={"bytes": str(REQUEST_BYTES)}) as response:
            await _raise_for_status(response)
            async for chunk in response.content.iter_any():
                meter.add(len(chunk))
                # On a fast link data is always ready and this loop would never give the
                # event loop a turn: the UDP probes of the same check would stop going out.
                await asyncio.sleep(0)
                if monotonic() >= deadline:
                    # Hanging up is how a download phase ends; the connection is discarded.
                    response.close()
                    return


async def _upload_stream(
    client: MonitorClient,
    session: aiohttp.ClientSession,
    meter: _Meter,
    deadline: float,
    monotonic: Callable[[], float],
    *,
    random_block: bytes,
) -> None:
    url = client.url("/api/v1/probe/upload")
    block = memoryview(random_block)

    async def body() -> AsyncIterator[bytes]:
        offset = 0
        while monotonic() < deadline:
            # aiohttp asks for the next chunk once the previous one was written out, so a
            # chunk counts when the (fixed-size) socket buffer accepted it.
            if offset:
                meter.add(CHUNK_BYTES)
            yield bytes(block[offset % len(block) : offset % len(block) + CHUNK_BYTES])
            offset += CHUNK_BYTES
            await asyncio.sleep(0)  # as in the download: let the UDP probes out

    async with session.post(url, data=body(), headers={"Content-Type": "application/octet-stream"}) as response:
        await _raise_for_status(response)


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if response.status >= 400:
        text = await response.text()
        raise ThroughputHTTPError(response.status, text[:200])


class ThroughputHTTPError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.text = text


def _describe(error: BaseException) -> str:
    if isinstance(error, ThroughputHTTPError):
        if error.status == 429:
            return "the monitor rate-limited the throughput test (HTTP 429); try again in a minute"
        return f"the monitor refused the throughput test (HTTP {error.status})"
    if isinstance(error, aiohttp.ClientConnectorError):
        return "could not open a connection to the monitor for the throughput test"
    if isinstance(error, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, ConnectionError)):
        return "the connection to the monitor broke during the throughput test"
    if isinstance(error, TimeoutError):
        return "the throughput test timed out"
    return f"the throughput test failed ({error.__class__.__name__})"
