"""Connection guard: the monitor's own defence against idle and piled-up TCP connections.

Every HTTP connection reaches aiohttp through ``ConnectionGuard``, a protocol factory that
wraps aiohttp's own (``runner.server``). It does two things aiohttp does not:

- **Header-read timeout.** A connection that has not sent a complete request head (the empty
  line after the headers) within ``header_timeout_s`` of being accepted is closed. Without it,
  a connection that sends nothing is kept for aiohttp's keep-alive timeout, an hour by default,
  and a thousand of them exhaust the process's file descriptors.
- **Per-address cap.** Connections from one remote IP address beyond ``max_per_address`` are
  closed as soon as they are accepted, so one address cannot hold all descriptors.

Later requests on a kept-alive connection are bounded by aiohttp's ``keepalive_timeout``,
which the monitor sets (``KEEPALIVE_TIMEOUT_S``): it closes a connection whose next request
head has not arrived by then.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("sessionready.monitor.guard")

# aiohttp's own web.run_app default; AppRunner alone leaves it at 3630 s.
KEEPALIVE_TIMEOUT_S = 75.0
# A refusal at the cap is logged at most this often per address: under attack the log must
# say so without growing by one line per connection.
WARN_EVERY_S = 60.0


@dataclass
class GuardCounters:
    """Connections handled since start: read by tests and logs."""

    accepted: int = 0
    refused_over_cap: int = 0
    closed_header_timeout: int = 0


class ConnectionGuard:
    """A protocol factory for ``loop.create_server`` wrapping aiohttp's ``web.Server``.

    ``max_per_address``: connections at once per remote IP (0 = no cap, for a monitor behind a
    TLS proxy, where every connection comes from the proxy). ``header_timeout_s``: seconds a
    new connection has to send its first complete request head.
    """

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        *,
        max_per_address: int,
        header_timeout_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self.max_per_address = max_per_address
        self.header_timeout_s = header_timeout_s
        self._monotonic = monotonic
        self._open: dict[str, int] = {}
        self._warned_at: dict[str, float] = {}
        self.counters = GuardCounters()

    def __call__(self) -> asyncio.Protocol:
        return _GuardedProtocol(self, self._factory())

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address``; False if it is over the cap (not counted)."""
        count = self._open.get(address, 0)
        if self.max_per_address and count >= self.max_per_address:
            self.counters.refused_over_cap += 1
            self._warn_over_cap(address)
            return False
        self._open[address] = count + 1
        self.counters.accepted += 1
        return True

    def release(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)
            self._warned_at.pop(address, None)

    def open_from(self, address: str) -> int:
        return self._open.get(address, 0)

    def _warn_over_cap(self, address: str) -> None:
        now = self._monotonic()
        if now - self._warned_at.get(address, float("-inf")) >= WARN_EVERY_S:
            self._warned_at[address] = now
            log.warning(
                "refusing connections from %s: it already has %d open (max_connections_per_address)", address, self.max_per_address
            )


def _head_complete(tail: bytes, data: bytes) -> bool:
    """Whether the bytes so far (``tail`` = the last two bytes seen before ``data``) hold the
    empty line that ends a request head: CRLF CRLF, or the bare-LF form a lenient parser takes."""
    window = tail + data
    return b"\n\r\n" in window or b"\n\n" in window


class _GuardedProtocol(asyncio.Protocol):
    """Passes every event to aiohttp's protocol, after the guard has had its say."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._address: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._guard.admit(address):
            transport.abort()  # at once, and aiohttp never hears of it
            return
        self._transport, self._address = transport, address
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.header_timeout_s, self._head_overdue)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        if self._deadline is not None:
            if _head_complete(self._tail, data):
                self._deadline.cancel()
                self._deadline = None
            else:
                self._tail = (self._tail + data)[-2:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return  # refused over the cap: never counted, never handed on
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        assert self._address is not None
        self._guard.release(self._address)
        self._transport = None
        self._inner.connection_lost(exc)

    def _head_overdue(self) -> None:
        self._deadline = None
        if self._transport is not None and not self._transport.is_closing():
            self._guard.counters.closed_header_timeout += 1
            log.debug("closing a connection from %s: no request head within %g s", self._address, self._guard.header_timeout_s)
            self._transport.close()


async def listen(
    factory: Callable[[], asyncio.Protocol],
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None,
    max_per_address: int,
    header_timeout_s: float,
) -> tuple[asyncio.Server, ConnectionGuard]:
    """Listen on ``host``:``port`` (0 = ephemeral) with every connection passing the guard.

    Used instead of ``web.TCPSite`` because the site offers no hook around aiohttp's protocol
    factory. A TLS handshake must also finish within ``header_timeout_s`` (asyncio's default is
    60 s), since the guard first sees a TLS connection once its handshake is done.
    """
    guard = ConnectionGuard(factory, max_per_address=max_per_address, header_timeout_s=header_timeout_s)
    loop = asyncio.get_running_loop()
    handshake = {"ssl_handshake_timeout": header_timeout_s} if tls is not None else {}
    server = await loop.create_server(guard, host, port, ssl=tls, backlog=128, reuse_address=True, **handshake)
    return server, guard
