"""Typed keys for what the application and each request carry."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from monitor.alerts.delivery import Alerter
from monitor.config import MonitorConfig
from monitor.metrics import MonitorMetrics
from monitor.probe_limits import ProbeLimits
from monitor.reflector import Reflector, ReflectorServer
from monitor.risk.service import RiskService
from monitor.store.core import Store, TokenInfo
from monitor.store.users import UserPrincipal

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
AGENT: web.RequestKey[TokenInfo | UserPrincipal] = web.RequestKey("agent")  # who sent the request: an agent token or a dashboard login

__all__ = ["CONFIG", "STORE", "REFLECTOR", "REFLECTOR_SERVER", "METRICS", "PROBE_LIMITER", "PROBE_SECRET", "RANDOM_BLOCK", "ALERTER", "CLOCK", "RISK", "AGENT", "TokenInfo"]
