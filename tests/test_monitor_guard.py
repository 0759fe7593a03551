"""Idle and piled-up connections (issue 12, Medium 1), replayed against a real monitor process.

Before the guard, connections that never sent a request head stayed open for aiohttp's hour
of keep-alive, and 1,030 of them exhausted the unit's 1,024 file descriptors so that a real
client timed out. Now one address may hold only ``max_connections_per_address`` connections,
and a connection without a complete request head is closed after ``header_timeout_s``.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from monitor.guard import _head_complete
from tests.conftest import Monitor, start_monitor, wait_for

CAP = 8
ATTACKER = "127.0.0.1"
NEIGHBOUR = "127.0.0.2"  # another address on the loopback network: 127.0.0.0/8 is all local
GENEROUS_S = 30.0


def _monitor_with(tmp_path: Path, **settings: object) -> Monitor:
    config = tmp_path / "monitor.toml"
    config.write_text("[monitor]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()))
    return start_monitor(tmp_path / "data", "--config", str(config))


def _address(monitor: Monitor) -> tuple[str, int]:
    parts = urlsplit(monitor.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _idle(monitor: Monitor, count: int, source: str = ATTACKER) -> list[socket.socket]:
    """``count`` connections that never send a byte."""
    sockets = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source, 0))
        sock.connect(_address(monitor))
        sockets.append(sock)
    return sockets


def _closed_by_peer(sock: socket.socket, timeout_s: float = GENEROUS_S) -> bool:
    """Blocks until the monitor ends the connection (EOF or reset): True; False on timeout."""
    sock.settimeout(timeout_s)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _still_open(sock: socket.socket) -> bool:
    """Without waiting: the monitor has neither closed nor reset it."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""  # data would be a surprise too, but not a close
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False


def _whoami(monitor: Monitor, token: str, source: str) -> int:
    """One authenticated request from ``source``; its HTTP status (0 if the connection was refused)."""
    host, port = _address(monitor)
    connection = http.client.HTTPConnection(host, port, timeout=GENEROUS_S, source_address=(source, 0))
    try:
        connection.request("GET", "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        return response.status
    except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError):
        return 0
    finally:
        connection.close()


@pytest.fixture
def closing() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def test_one_address_cannot_hold_more_than_the_cap_and_others_are_served(tmp_path: Path, closing: list[socket.socket]) -> None:
    # A header timeout far longer than the test: only the cap can close a connection here.
    monitor = _monitor_with(tmp_path, max_connections_per_address=CAP, header_timeout_s=300)
    try:
        token = monitor.token()
        kept = _idle(monitor, CAP)
        extra = _idle(monitor, 3 * CAP)
        closing.extend(kept + extra)
        assert all(_closed_by_peer(sock) for sock in extra), "connections beyond the cap are closed on accept"
        assert all(_still_open(sock) for sock in kept), "the first CAP connections are kept (the header timeout is 300 s)"
        started = time.monotonic()
        assert _whoami(monitor, token, NEIGHBOUR) == 200, "another address is served while the attacker sits at its cap"
        assert time.monotonic() - started < GENEROUS_S
        assert _whoami(monitor, token, ATTACKER) == 0, "the attacker's address itself is at its cap"
        kept.pop().close()
        wait_for(lambda: _whoami(monitor, token, ATTACKER) == 200, GENEROUS_S, "a freed slot to be usable again")
        assert "max_connections_per_address" in monitor.logs(), "the refusal is logged, once a minute at most"
    finally:
        monitor.stop()


def test_connections_without_a_request_head_are_closed_after_the_header_timeout(tmp_path: Path, closing: list[socket.socket]) -> None:
    monitor = _monitor_with(tmp_path, max_connections_per_address=0, header_timeout_s=1.0)
    try:
        token = monitor.token()
        host, port = _address(monitor)
        # A connection that completed one request must not be cut by the header timer later.
        kept_alive = http.client.HTTPConnection(host, port, timeout=GENEROUS_S)
        kept_alive.request("GET", "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        first = kept_alive.getresponse()
        assert first.status == 200 and first.read()
        idle = _idle(monitor, 50)
        slowloris = _idle(monitor, 1)[0]
        slowloris.sendall(b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")  # never the empty line
        closing.extend([*idle, slowloris])
        started = time.monotonic()
        assert all(_closed_by_peer(sock) for sock in [*idle, slowloris]), "idle and trickling connections are closed"
        # Closed by the timer, not on accept: the last connection was made just before `started`,
        # and its 1 s runs from its accept (a lower bound, which a slow machine only raises).
        assert time.monotonic() - started >= 0.9
        kept_alive.request("GET", "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        assert kept_alive.getresponse().status == 200, "a kept-alive connection outlives the header timeout"
        kept_alive.close()
        assert _whoami(monitor, token, ATTACKER) == 200
    finally:
        monitor.stop()


@pytest.mark.parametrize(
    ("tail", "data", "complete"),
    [
        (b"", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"\r\n", b"\r\n", True),  # the empty line split across two reads
        (b"\n\r", b"\n", True),
        (b"", b"GET / HTTP/1.1\nHost: x\n\n", True),  # bare LF, which a lenient parser takes
        (b"", b"GET / HTTP/1.1\r\nHost: x\r\n", False),
        (b"\r", b"\n", False),
    ],
)
def test_the_end_of_a_request_head_is_found_across_reads(tail: bytes, data: bytes, complete: bool) -> None:
    assert _head_complete(tail, data) is complete
