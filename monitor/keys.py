"""Typed keys for what the application and each request carry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from monitor.alerts.delivery import Alerter
from monitor.auth import LinkPrincipal
from monitor.config import MonitorConfig
from monitor.leader import Leadership
from monitor.metrics import MonitorMetrics
from monitor.probe_limits import ProbeLimits
from monitor.reflector import Reflector, ReflectorServer
from monitor.risk.service import RiskService
from monitor.store.core import Store, TokenInfo
from monitor.store.users import UserPrincipal
from sessionready.schema import Network, PhaseRun

CONFIG = web.AppKey("config", MonitorConfig)
STORE = web.AppKey("store", Store)
REFLECTOR = web.AppKey("reflector", Reflector)
REFLECTOR_SERVER = web.AppKey("reflector_server", ReflectorServer)
METRICS = web.AppKey("metrics", MonitorMetrics)
PROBE_LIMITER = web.AppKey("probe_limiter", ProbeLimits)
PROBE_SECRET = web.AppKey("probe_secret", bytes)
RANDOM_BLOCK = web.AppKey("random_block", bytes)
ALERTER = web.AppKey("alerter", Alerter)  # submit() risk transitions here
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")  # unix seconds; tests inject their own
RISK = web.AppKey("risk", RiskService)
LEADERSHIP = web.AppKey("leadership", Leadership)  # which once-per-cluster jobs this monitor runs
AGENT: web.RequestKey[TokenInfo | UserPrincipal | LinkPrincipal] = web.RequestKey("agent")  # who sent the request: an agent token, a dashboard login or a check link


class RtcStreams(Protocol):
    """The WebRTC probe streams of browser checks (monitor/rtc/, docs/browser-check.md section 3),
    as the check submission uses them."""

    def network_for(
        self, rtc_id: str, link_id: str, sent: int, echoes: list[tuple[int, float]], phases: dict[str, tuple[float, float] | None]
    ) -> Network | None:
        """The network part of a check from the monitor's records of stream ``rtc_id`` and the
        page's (probes sent, ``[seq, arrival_ms]`` echoes, phase spans on the page's clock);
        None when the stream is unknown or not this link's."""
        ...

    def phases_for(self, rtc_id: str, link_id: str, spans: dict[str, tuple[float, float] | None]) -> tuple[PhaseRun, ...] | None:
        """How each phase ran (the idle phase's end decided by the monitor's rule when adaptive);
        None when the stream is unknown or not this link's."""
        ...

    def close(self, rtc_id: str) -> None:
        """End the stream and forget its records."""
        ...


RTC: web.AppKey[RtcStreams] = web.AppKey("rtc")  # absent while the monitor runs no WebRTC peer

__all__ = ["CONFIG", "STORE", "REFLECTOR", "REFLECTOR_SERVER", "METRICS", "PROBE_LIMITER", "PROBE_SECRET", "RANDOM_BLOCK", "ALERTER", "CLOCK", "RISK", "LEADERSHIP", "AGENT", "RTC", "RtcStreams", "TokenInfo"]
