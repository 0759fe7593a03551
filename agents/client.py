"""Talking to the monitor over HTTP(S): URL policy, authentication, typed errors, failover.

A token sent in clear text is a leaked token: plain HTTP is accepted only to a loopback
monitor unless the caller explicitly allows it.

Several monitors (one practice's, on one store): the client uses the first URL while it
answers and moves to the next when one is down, retrying the same request there at once.
Down means no HTTP answer at all (connection refused or reset, the answer cut off, a timeout)
or 502/503/504 (a proxy with no monitor behind it, a monitor whose store is away). Any other
answer, 4xx or 500 included, is the practice's answer: every monitor shares the store and the
code, so another would say the same. A TLS certificate that is not accepted is a
configuration fault to fix, not an outage, and is not failed over either. After
``return_to_first_s`` on another monitor the first is tried again (the order is the
administrator's preference, e.g. the nearer monitor, and agents spread back after a restart).
A request retried on another monitor is safe: report batches and checks are deduplicated by
report id in the shared store, and the other calls read or make fresh, harmless things.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

from sessionready.netaddr import is_loopback_host
from sessionready.schema import AgentSession
from sessionready.typed import SchemaError, decode

if TYPE_CHECKING:
    from agents.config import AgentConfig

log = logging.getLogger("sessionready.agent")

USER_AGENT = "sessionready-agent"
FAILOVER_STATUSES = frozenset({502, 503, 504})  # answers that say "no monitor here right now"
RETURN_TO_FIRST_S = 300.0
# Upload sockets get a fixed send buffer (no autotuning). Where the OS reports acknowledged
# bytes (Linux) the upload is counted from those; elsewhere it is counted as the socket
# accepts it, and a fixed buffer keeps that count within a buffer's worth of what has left.
# 1 MiB (the kernel doubles it) keeps a deep-queued 8 Mbit/s link as busy as iperf3 does;
# in the lab a 256 KiB buffer starved the link and skewed the latency under load.
UPLOAD_SNDBUF_BYTES = 1 << 20


class UsageError(ValueError):
    """The caller asked for something that cannot work (bad URL, insecure transport)."""


class MonitorError(Exception):
    """The monitor could not be used. ``message`` is one sentence for a person."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None, *, down: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        # This monitor is not there (no answer, or 502/503/504): another one may be.
        self.down = down or status in FAILOVER_STATUSES


def monitor_url(raw: str, *, allow_insecure_http: bool = False) -> URL:
    """Validate the monitor's base URL; refuse plain HTTP to a non-loopback host unless allowed."""
    try:
        url = URL(raw.strip())
    except (ValueError, TypeError):
        raise UsageError(f"'{raw}' is not a URL (expected e.g. https://monitor.example.org:8470)") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise UsageError(f"'{raw}' is not an http(s) URL (expected e.g. https://monitor.example.org:8470)")
    if url.user or url.password:
        raise UsageError("do not put a user name or password in the monitor URL: the check authenticates with its token")
    if url.scheme == "http" and not is_loopback_host(url.host) and not allow_insecure_http:
        raise UsageError(
            f"refusing to send the token in clear text to {url.host}: use https://, "
            "or pass --allow-insecure-http if this network is trusted"
        )
    return url.with_path(url.path.rstrip("/")).with_query(None).with_fragment(None)


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise UsageError(f"cannot use the CA file {ca_file}: {getattr(error, 'strerror', None) or error.__class__.__name__}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def upload_socket_factory(created: list[socket.socket]) -> Callable[[tuple], socket.socket]:
    """A socket factory for upload sessions that remembers its sockets, so the caller can ask
    the kernel how much of what was sent has been acknowledged."""

    def factory(addr_info: tuple) -> socket.socket:
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UPLOAD_SNDBUF_BYTES)
        # Closing at the end of the phase resets the connection and drops what is still
        # buffered, instead of draining it for seconds into the next phase.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        created.append(sock)
        return sock

    return factory


@dataclass(frozen=True)
class ProbeSession:
    key: bytes
    udp_host: str
    udp_port: int
    packet_bytes: int
    lifetime_s: float  # how long the key stays valid from now
    monitor: str = ""  # the base URL of the monitor that issued it (whose reflector it is for)


class MonitorClient:
    """One token, one monitor or several (tried in order, see the module's docstring). Create
    with ``async with MonitorClient(...) as client``. ``monotonic`` times the return to the
    first monitor (tests pass their own)."""

    def __init__(
        self,
        base_url: URL | Sequence[URL],
        token: str,
        *,
        ca_file: str | None = None,
        timeout_s: float = 10.0,
        return_to_first_s: float = RETURN_TO_FIRST_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_urls: tuple[URL, ...] = (base_url,) if isinstance(base_url, URL) else tuple(base_url)
        if not self.base_urls:
            raise ValueError("a MonitorClient needs at least one monitor URL")
        self._current = 0
        self._moved_at: float | None = None  # monotonic, when the client left the first monitor
        self._down_at: dict[URL, float] = {}  # monotonic, when each monitor was last found down
        self._return_to_first_s = return_to_first_s
        self._monotonic = monotonic
        self.moves = 0  # how often the client moved to another monitor (counted for tests and logs)
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}
        self._ssl = tls_context(ca_file) if any(url.scheme == "https" for url in self.base_urls) else None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> URL:
        """The monitor in use now: the probes (UDP, throughput) go to it."""
        return self.base_urls[self._current]

    def found_down(self, base_url: str | URL) -> float | None:
        """When (monotonic) the monitor at ``base_url`` was last found down, or None."""
        return self._down_at.get(URL(str(base_url)))

    async def __aenter__(self) -> MonitorClient:
        self._session = self.new_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def new_session(self, *, limit: int = 8, upload_sockets: list[socket.socket] | None = None) -> aiohttp.ClientSession:
        """A session with this client's auth and TLS; separate ones give separate connections.

        With ``upload_sockets``, its connections use upload sockets, collected into that list.
        """
        connector = aiohttp.TCPConnector(
            ssl=self._ssl if self._ssl is not None else True,
            limit=limit,
            socket_factory=upload_socket_factory(upload_sockets) if upload_sockets is not None else None,
        )
        return aiohttp.ClientSession(headers=self._headers, connector=connector, auto_decompress=False)

    def url(self, path: str, base_url: URL | None = None) -> URL:
        base = base_url or self.base_url
        return base.with_path(base.path.rstrip("/") + path)

    async def request_json(
        self, method: str, path: str, body: Mapping[str, object] | None = None, *, query: Mapping[str, str] | None = None
    ) -> dict:
        return (await self._request_answered(method, path, body, query=query))[1]

    async def _request_answered(
        self, method: str, path: str, body: Mapping[str, object] | None = None, *, query: Mapping[str, str] | None = None
    ) -> tuple[URL, dict]:
        """The monitor that answered and its answer; each monitor is tried at most once, in
        order from the one in use. The last monitor's error when none answered."""
        last: MonitorError | None = None
        for index in self._order():
            base = self.base_urls[index]
            try:
                return base, await self._request_at(base, method, path, body, query)
            except MonitorError as error:
                if not error.down or len(self.base_urls) == 1:
                    raise
                self._leave(index, error)
                last = error
        assert last is not None
        raise MonitorError(f"none of the {len(self.base_urls)} monitors answered; the last: {last.message}", last.status, last.code, down=True)

    def _order(self) -> list[int]:
        if self._current != 0 and self._moved_at is not None and self._monotonic() - self._moved_at >= self._return_to_first_s:
            log.info("trying the first monitor again", extra={"fields": {"monitor": str(self.base_urls[0])}})
            self._current, self._moved_at = 0, None
        count = len(self.base_urls)
        return [(self._current + step) % count for step in range(count)]

    def _leave(self, index: int, error: MonitorError) -> None:
        """Monitor ``index`` is down: the next one takes over, unless another request already moved on."""
        now = self._monotonic()
        self._down_at[self.base_urls[index]] = now
        if self._current != index:
            return
        self._current = (index + 1) % len(self.base_urls)
        self._moved_at = now if self._current != 0 else None
        self.moves += 1
        log.warning(
            "monitor down, moving to the next: %s",
            error.message,
            extra={"fields": {"monitor": str(self.base_urls[index]), "next": str(self.base_urls[self._current])}},
        )

    async def _request_at(self, base: URL, method: str, path: str, body: Mapping[str, object] | None, query: Mapping[str, str] | None) -> dict:
        assert self._session is not None, "use 'async with MonitorClient(...)'"
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        url = self.url(path, base).with_query(query) if query else self.url(path, base)
        try:
            async with self._session.request(method, url, data=data, headers=headers, timeout=self._timeout) as response:
                text = (await response.read()).decode("utf-8", errors="replace")
                if response.status >= 400:
                    raise error_from_response(response.status, text, base)
                answer = json.loads(text) if text else {}
                if not isinstance(answer, dict):
                    raise ValueError("not a JSON object")
                return answer
        except MonitorError:
            raise
        except (aiohttp.ClientError, TimeoutError) as error:
            raise transport_error(error, base) from None
        except ValueError:
            raise MonitorError(f"the monitor at {base} answered something that is not sessionready's JSON") from None

    async def whoami(self) -> dict:
        return await self.request_json("GET", "/api/v1/whoami")

    async def probe_session(self) -> ProbeSession:
        issuer, data = await self._request_answered("POST", "/api/v1/probe/session")
        try:
            session = ProbeSession(
                bytes.fromhex(data["key"]),
                str(data["udp"]["host"]),
                int(data["udp"]["port"]),
                int(data["packet_bytes"]),
                float(data["expires_in_s"]),
                str(issuer),
            )
        except (KeyError, TypeError, ValueError):
            raise MonitorError("the monitor's probe answer was not understood (version mismatch?)") from None
        if not 1 <= session.udp_port <= 65535:
            raise MonitorError(f"the monitor gave an invalid UDP port ({session.udp_port}); check its advertise_udp setting")
        return session

    async def post_check(self, report: Mapping[str, object]) -> dict:
        return await self.request_json("POST", "/api/v1/checks", report)

    async def post_reports(self, body: Mapping[str, object]) -> dict:
        """A batch from the spool, ``{"spool": ..., "reports": [...]}``; see docs/reports.md."""
        return await self.request_json("POST", "/api/v1/reports", body)

    async def agent_sessions(self, hours: int = 24) -> list[AgentSession]:
        """This token's participant's sessions from an hour ago to ``hours`` ahead (1..168), by start."""
        data = await self.request_json("GET", "/api/v1/agent/sessions", query={"hours": str(hours)})
        sessions = data.get("sessions")
        if not isinstance(sessions, list):
            raise MonitorError("the monitor's sessions answer was not understood (version mismatch?)")
        try:
            return [decode(AgentSession, item, f"sessions[{i}]") for i, item in enumerate(sessions)]
        except SchemaError as error:
            raise MonitorError(f"the monitor's sessions answer was not understood ({error.path}: {error.message})") from None


def transport_error(error: aiohttp.ClientError | TimeoutError, base_url: URL) -> MonitorError:
    """One sentence for a request that got no HTTP answer."""
    if isinstance(error, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return MonitorError(f"the monitor's TLS certificate was not accepted ({error.__class__.__name__}); check --ca-file")
    if isinstance(error, aiohttp.ClientConnectorError):
        return MonitorError(f"cannot reach the monitor at {base_url}: is it running and is the address right?", down=True)
    if isinstance(error, TimeoutError):
        return MonitorError(f"the monitor at {base_url} did not answer in time", down=True)
    # The connection was reset or closed before a whole answer came: the monitor went away.
    return MonitorError(f"talking to the monitor at {base_url} failed: {error.__class__.__name__}", down=True)


def error_from_response(status: int, text: str, base_url: URL) -> MonitorError:
    try:
        detail = json.loads(text)["error"]
        code, message = str(detail["code"]), str(detail["message"])
        if detail.get("field"):
            message = f"{message} (field {detail['field']})"
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", text[:200] or f"HTTP {status}"
    if status == 401:
        return MonitorError("the monitor rejected the token: it is wrong, revoked, or for another monitor", status, code)
    if status == 403:
        return MonitorError(f"the monitor refused: {message}", status, code)
    if status == 404 and code == "http_error":
        return MonitorError(f"{base_url} does not look like a sessionready monitor (HTTP 404)", status, code)
    return MonitorError(f"the monitor answered HTTP {status}: {message}", status, code)


TOKEN = re.compile(r"[A-Za-z0-9_-]{8,200}")
# Every user of a computer can read every process's arguments (ps, /proc/PID/cmdline).
TOKEN_ARGUMENT_WARNING = (
    "warning: --token is visible to every user of this computer (for example in 'ps'); "
    "set SESSIONREADY_TOKEN, use a token file or 'sessionready enroll' instead"
)


def warn_token_argument(token: str | None) -> None:
    """One line on stderr when a token came on the command line; the token itself is never printed."""
    if token is not None:
        print(TOKEN_ARGUMENT_WARNING, file=sys.stderr)


@dataclass(frozen=True)
class Connection:
    """Where the monitors are (in the order they are tried) and how to prove who we are;
    validated by ``resolve_connection``."""

    urls: tuple[str, ...]
    token: str = field(repr=False)
    ca_file: str | None

    @property
    def url(self) -> str:
        """The first monitor's URL."""
        return self.urls[0]

    def base_urls(self) -> list[URL]:
        return [URL(url) for url in self.urls]


def resolve_connection(
    config: AgentConfig, *, monitor: str | None, token: str | None, ca_file: str | None, allow_insecure_http: bool
) -> Connection:
    """Flags first, then the config (which holds the environment's overrides). ValueError or
    UsageError with one sentence when something is missing or unusable, before any network use.
    ``monitor`` may name several URLs, separated by commas or spaces."""
    from agents.config import check_urls, split_urls

    raw_urls = check_urls(split_urls(monitor), "--monitor") if monitor else config.urls
    if not raw_urls:
        raise ValueError("no monitor given: pass --monitor URL, set SESSIONREADY_MONITOR_URL, or set [monitor] url in the config")
    urls = [monitor_url(raw, allow_insecure_http=allow_insecure_http or config.allow_insecure_http) for raw in raw_urls]
    if len({str(url) for url in urls}) != len(urls):
        raise ValueError("a monitor URL is listed twice")
    token = token or config.token()
    if not token:
        raise ValueError("no token: set SESSIONREADY_TOKEN, enroll this computer with 'sessionready enroll', or pass --token T")
    if not TOKEN.fullmatch(token):
        raise ValueError("the token is malformed: it is one line of letters, digits, '_' and '-' (check the token file)")
    ca_file = ca_file or config.ca_file
    if ca_file and not os.path.isfile(ca_file):
        raise ValueError(f"the CA file {ca_file} does not exist")
    if any(url.scheme == "https" for url in urls):
        tls_context(ca_file)  # an unusable CA file fails now, in one sentence
    return Connection(tuple(str(url) for url in urls), token, ca_file)
