"""Throughput against the monitor: parallel HTTP streams, TCP ramp-up excluded.

Each phase runs ``streams`` connections for ``seconds``; the bytes moved are counted as they
move (received; for an upload, delivered to the monitor as the kernel's acknowledgements say,
or else accepted by a fixed-size send buffer) and the rate is taken only over the window after
``ramp_seconds``, when the connections have left slow start. Failure is data: the result
carries an error sentence, never an exception.

A phase ends on time: at its deadline (its length, or earlier when the stop rule says so) the
streams are cut off where they are, not waited for. A stream on a slow, lossy link can go a
second or more without a byte (a retransmission timeout); waiting for each one to notice the
deadline made a 6 s phase last 7.4 s. The bytes that arrive after the deadline would not count
anyway. A phase whose streams all ended early, refused by the monitor (an HTTP error answer, or
no connection at all), ends then, without a rate.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import aiohttp

from agents.client import MonitorClient
from agents.probes.tcpinfo import bytes_delivered
from sessionready.stats import steady_rate

CHUNK_BYTES = 64 * 1024
ACK_SAMPLE_S = 0.05
REQUEST_BYTES = 256 << 20  # per request; a stream that finishes one starts another
STOP_POLL_S = 0.1  # how often an adaptive phase asks whether it has measured enough
# A download's chunks closer together than this share one sample (the latest count). A fast
# link delivers thousands of chunks a second; the stop rule reads every sample ten times a
# second, and at 16,000 samples that took 40 ms of the event loop per look, during which the
# UDP probes measuring delay under load were held up. 2 ms apart, a 6 s phase keeps at most
# 3,000, and a window's edge is still placed within 2 ms of the bytes around it.
SAMPLE_MERGE_S = 0.002

# Asked every STOP_POLL_S with (seconds since the phase began, the meter's cumulative
# (seconds, bytes) samples): True ends the phase now (adaptive length, sessionready.settle).
StopRule = Callable[[float, Sequence[tuple[float, int]]], bool]


@dataclass(frozen=True)
class ThroughputSettings:
    seconds: float = 4.0  # the phase's length; with a stop rule, its longest
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
    """Cumulative bytes over time, shared by the streams of one phase, and when the phase ends:
    ``deadline`` (monotonic seconds) is brought forward to now when a stop rule ends it early."""

    def __init__(self, monotonic: Callable[[], float], seconds: float) -> None:
        self._monotonic = monotonic
        self.start = monotonic()
        self.deadline = self.start + seconds
        self.total = 0
        self.samples: list[tuple[float, int]] = [(0.0, 0)]

    def add(self, count: int) -> None:
        self.total += count
        now = self._monotonic() - self.start
        if len(self.samples) > 1 and now - self.samples[-2][0] < SAMPLE_MERGE_S:
            self.samples[-1] = (now, self.total)  # the latest count, not a new sample
        else:
            self.samples.append((now, self.total))

    def close(self) -> None:
        """The phase ends now: the deadline is brought forward to now if it was later, and the
        count as it stands is its last sample (nothing that comes later counts)."""
        now = self._monotonic()
        self.deadline = min(self.deadline, now)
        self.samples.append((now - self.start, self.total))

    def set_total(self, total: int) -> None:
        # Kept also when unchanged: a count that stood still for half a second (a
        # retransmission timeout) must not be read as rising steadily between the readings
        # around it, which is what interpolating at a window's edge would make of it.
        self.total = total
        self.samples.append((self._monotonic() - self.start, total))


async def measure(
    client: MonitorClient,
    direction: str,
    settings: ThroughputSettings,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    stop: StopRule | None = None,
) -> ThroughputResult:
    """Move bytes in ``direction`` for ``settings.seconds``, or less when ``stop`` says so."""
    meter = _Meter(monotonic, settings.seconds)
    errors: list[BaseException] = []
    upload_sockets: list[socket.socket] | None = [] if direction == "up" else None
    session = client.new_session(limit=settings.streams, upload_sockets=upload_sockets)
    acked: DeliveredBytes | None = None
    if direction == "down":
        stream = _download_stream
    else:
        assert upload_sockets is not None
        acked = DeliveredBytes(upload_sockets)
        # Incompressible bytes, so that no middlebox compression flatters the upload.
        stream = functools.partial(_upload_stream, random_block=os.urandom(1 << 20), count_writes=not acked.supported())
    sampler = asyncio.create_task(_sample_acked(acked, meter, monotonic)) if acked is not None else None
    tasks: list[asyncio.Task[None]] = []
    try:
        tasks = [asyncio.create_task(stream(client, session, meter, monotonic)) for _ in range(settings.streams)]
        pending: set[asyncio.Task[None]] = set(tasks)
        while pending:
            asked = monotonic()
            if stop is not None and asked < meter.deadline and stop(asked - meter.start, meter.samples):
                meter.deadline = asked
            now = monotonic()  # the rule takes time of its own, more on a busy machine
            if now >= meter.deadline:
                break
            _done, pending = await asyncio.wait(pending, timeout=min(STOP_POLL_S, meter.deadline - now))
        # Every stream ended before the deadline and the monitor refused one: it will not let
        # this phase measure, and waiting out the phase (as the acknowledgement sampler did)
        # changes nothing. One refused stream among others still moving data is not that.
        refused = not pending and any(_is_refusal(task) for task in tasks)
        if acked is not None and acked.supported():
            meter.set_total(acked.total())  # what had reached the monitor by the end
        meter.close()
        # Cut off, not closed: a graceful close first flushes what asyncio still buffers (up
        # to a second of data on a slow link, an upload's send buffers), which would keep the
        # link busy past the phase and into the next measurement.
        _abort_connections(session)
        done = [task for task in tasks if task.done()]
        errors = [task.exception() for task in done if not task.cancelled() and task.exception() is not None]
    finally:
        # Also when the check itself is cancelled (Ctrl-C): no stream may outlive its session.
        for task in [*tasks, *([sampler] if sampler is not None else [])]:
            task.cancel()
        await asyncio.gather(*tasks, *([sampler] if sampler is not None else []), return_exceptions=True)
        await session.close()
    elapsed = monotonic() - meter.start
    rate = steady_rate(meter.samples, settings.ramp_seconds, min(settings.seconds, meter.deadline - meter.start))
    error = None
    if refused:
        error, rate = _describe(next(e for e in errors if _refusal(e))), None
    elif rate is None or meter.total == 0:
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


def _refusal(error: BaseException) -> bool:
    """The monitor said no (an HTTP error answer) or could not be reached at all: known at
    once, and waiting out the phase would not change it."""
    return isinstance(error, (ThroughputHTTPError, aiohttp.ClientConnectorError))


def _is_refusal(task: asyncio.Task[None]) -> bool:
    return task.done() and not task.cancelled() and (error := task.exception()) is not None and _refusal(error)


def _abort_connections(session: aiohttp.ClientSession) -> None:
    """End every stream now: abort drops what asyncio still buffers, an upload socket's zero
    linger resets what the kernel holds, and a download's unread data makes the kernel reset
    the connection, which stops the monitor sending. aiohttp has no public call for this:
    its connector's in-use set is read defensively."""
    for protocol in list(getattr(session.connector, "_acquired", ())):
        abort = getattr(protocol, "abort", None)
        if abort is not None:
            abort()


async def _download_stream(client: MonitorClient, session: aiohttp.ClientSession, meter: _Meter, monotonic: Callable[[], float]) -> None:
    url = client.url("/api/v1/probe/download")
    while monotonic() < meter.deadline:
        async with session.get(url, params={"bytes": str(REQUEST_BYTES)}) as response:
            await _raise_for_status(response)
            async for chunk in response.content.iter_any():
                meter.add(len(chunk))
                # On a fast link data is always ready and this loop would never give the
                # event loop a turn: the UDP probes of the same check would stop going out.
                await asyncio.sleep(0)
                if monotonic() >= meter.deadline:
                    # Hanging up is how a download phase ends; the connection is discarded.
                    response.close()
                    return


class DeliveredBytes:
    """Bytes delivered to the monitor, summed over the upload sockets (Linux TCP_INFO): the
    cumulative acknowledgement plus what was selectively acknowledged beyond a lost segment
    (agents/probes/tcpinfo.py says why the cumulative count alone overstates a CUBIC upload)."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        self._sockets = sockets
        # Closed sockets keep what they had delivered when last read.
        self._last: dict[int, int] = {}

    def supported(self) -> bool:
        probe = socket.socket()
        try:
            return bytes_delivered(probe) is not None
        finally:
            probe.close()

    def total(self) -> int:
        for sock in list(self._sockets):
            value = bytes_delivered(sock)
            if value is not None:
                # A count of what arrived never falls; the selectively acknowledged share
                # could, should the receiver renege on its SACKs.
                self._last[id(sock)] = max(value, self._last.get(id(sock), 0))
        return sum(self._last.values())


async def _sample_acked(acked: DeliveredBytes | None, meter: _Meter, monotonic: Callable[[], float]) -> None:
    if acked is None or not acked.supported():
        return
    while True:
        meter.set_total(acked.total())
        if monotonic() >= meter.deadline:
            return
        await asyncio.sleep(min(ACK_SAMPLE_S, max(0.0, meter.deadline - monotonic())))


async def _upload_stream(
    client: MonitorClient,
    session: aiohttp.ClientSession,
    meter: _Meter,
    monotonic: Callable[[], float],
    *,
    random_block: bytes,
    count_writes: bool,
) -> None:
    url = client.url("/api/v1/probe/upload")
    block = memoryview(random_block)

    async def body() -> AsyncIterator[bytes]:
        # One request carries at most REQUEST_BYTES (the monitor caps uploads); on a fast
        # link the stream then starts another until the phase ends.
        sent = 0
        while monotonic() < meter.deadline and sent + CHUNK_BYTES <= REQUEST_BYTES:
            # Without acknowledged counts, a chunk counts when the (small, fixed) socket
            # buffer accepted it: aiohttp asks for the next one once it was written out.
            if sent and count_writes:
                meter.add(CHUNK_BYTES)
            offset = sent % len(block)
            yield bytes(block[offset : offset + CHUNK_BYTES])
            sent += CHUNK_BYTES
            await asyncio.sleep(0)  # as in the download: let the UDP probes out

    while monotonic() < meter.deadline:
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
