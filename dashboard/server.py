"""The dashboard's HTTP server: waitress, set up to outlast connections that send nothing.

Waitress closes a connection idle for ``channel_timeout`` seconds (checked every
``cleanup_interval``), accepts at most ``connection_limit`` at once, and reads the proxy
headers only from ``trusted_proxy``. It has no per-address cap; ``channel_class`` is the hook
its server calls for every accepted connection, so the cap is a small function put there.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer

from dashboard.config import DashboardConfig

log = logging.getLogger("sessionready.dashboard")

THREADS = 8
CAP_LOG_INTERVAL_S = 60.0  # one warning a minute about refused connections, not one each


class AddressCap:
    """Accept a connection only while its address holds fewer than ``per_address``; a trusted
    proxy carries everyone's connections and is never capped."""

    def __init__(self, per_address: int, exempt: str, clock: Any = time.monotonic) -> None:
        self.per_address = per_address
        self.exempt = exempt
        self.refused = 0
        self._clock = clock
        self._logged_at = float("-inf")

    def __call__(self, server: BaseWSGIServer, conn: Any, addr: Any, adj: Any, map: Any = None) -> HTTPChannel | None:  # noqa: A002 - waitress's name
        host = addr[0] if isinstance(addr, tuple) else str(addr)
        if host != self.exempt and self._open_from(server, host) >= self.per_address:
            conn.close()
            self._note_refused(host)
            return None
        return HTTPChannel(server, conn, addr, adj, map=map)

    @staticmethod
    def _open_from(server: BaseWSGIServer, host: str) -> int:
        # Linear in open connections (at most connection_limit): cheap next to a TLS handshake.
        counts = Counter(channel.addr[0] for channel in server.active_channels.values() if isinstance(channel.addr, tuple))
        return counts[host]

    def _note_refused(self, host: str) -> None:
        self.refused += 1
        now = self._clock()
        if now - self._logged_at >= CAP_LOG_INTERVAL_S:
            self._logged_at = now
            log.warning("refused connections over connections_per_address", extra={"fields": {"address": host, "refused_total": self.refused}})


def build_server(wsgi_app: Any, config: DashboardConfig) -> Any:
    """A waitress server for ``wsgi_app`` on ``config.host``:``config.port`` (not yet running);
    OSError if it cannot listen."""
    server = create_server(
        wsgi_app,
        host=config.host,
        port=config.port,
        threads=THREADS,
        ident="sessionready",
        channel_timeout=config.idle_timeout_s,
        # How often idle connections are looked for: the timeout is then exceeded by at most
        # this much (waitress's default, 30 s, would triple a 10 s timeout).
        cleanup_interval=max(1.0, config.idle_timeout_s / 5),
        connection_limit=config.connection_limit,
        # select() cannot watch file descriptors above 1023; poll() can.
        asyncore_use_poll=True,
        # From anyone but the trusted proxy these headers are removed before the app sees them.
        clear_untrusted_proxy_headers=True,
        **_proxy_settings(config.trusted_proxy),
    )
    if config.connections_per_address > 0:
        cap = AddressCap(config.connections_per_address, config.trusted_proxy)
        for listener in _listeners(server):
            listener.channel_class = cap
    return server


def _proxy_settings(trusted_proxy: str) -> dict[str, Any]:
    """Waitress's proxy settings: none without a proxy (it refuses a count without one)."""
    if not trusted_proxy:
        return {}
    return {"trusted_proxy": trusted_proxy, "trusted_proxy_count": 1, "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}}


def _listeners(server: Any) -> list[BaseWSGIServer]:
    """The listening servers: one, or several when the host name has several addresses."""
    if isinstance(server, BaseWSGIServer):
        return [server]
    return [one for one in server.map.values() if isinstance(one, BaseWSGIServer)]
