"""The monitor application: ``create_app(config)`` and the process that serves it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from monitor import guard, keys
from monitor.alerts.delivery import Alerter
from monitor.auth import TokenCache, auth_middleware
from monitor.config import MonitorConfig
from monitor.errors import ApiError, json_error
from monitor.http import (
    alerts,
    caseloads,
    check_links,
    checks,
    enroll,
    enrollments,
    link_page,
    probe,
    reports,
    rtc,
    service,
    session_samples,
    sessions,
    summary,
    trends,
    users,
)
from monitor.leader import Leadership, leader_gauge
from monitor.logs import JsonAccessLogger, loggable_path
from monitor.metrics import (
    build_alert_metrics,
    build_metrics,
    build_retention_metrics,
    register_session_metrics,
)
from monitor.probe_limits import ProbeLimits
from monitor.reflector import Reflector, ReflectorServer
from monitor.retention import RetentionJob
from monitor.risk.engine import RiskConfig
from monitor.risk.service import LiveLoopMetrics, RiskService, RiskTimes
from monitor.risk.summaries import SummaryJob
from monitor.store.core import Store, StoreUnavailable, open_store_from_config
from monitor.store.retention import KINDS as RETENTION_KINDS

log = logging.getLogger("sessionready.monitor")

# What a client reads when the store cannot take its request (503), by StoreUnavailable.code.
STORE_MESSAGES = {
    "store_unavailable": "the monitor cannot reach its database right now; nothing was stored: try again shortly",
    "store_full": "the monitor's disk is full; nothing was stored: try again later (the monitor's log says more)",
}
STORE_RETRY_AFTER_S = 5


@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Every error leaves as JSON; nothing internal (no traceback) reaches a client."""
    try:
        return await handler(request)
    except ApiError as error:
        response = error.response()
        if error.status in (408, 413):
            response.force_close()  # the rest of the body is not worth reading
        return response
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[keys.CONFIG].max_report_bytes
        response = json_error(413, "too_large", f"the body is larger than the {limit} bytes allowed")
        response.force_close()
        return response
    except web.HTTPMethodNotAllowed as error:
        allowed = ", ".join(sorted(error.allowed_methods))
        return json_error(405, "method_not_allowed", f"use {allowed}", headers={"Allow": allowed})
    except web.HTTPNotFound:
        return json_error(404, "not_found", "no such endpoint")
    except web.HTTPException as error:
        if error.status >= 400:
            return json_error(error.status, "http_error", error.reason)
        raise
    except StoreUnavailable as error:
        # The database restarting, a full disk: nothing was stored, and the client (an agent
        # keeps its spool) should try again shortly. Not a 500: nothing is wrong with the monitor.
        log.warning("store unavailable", extra={"fields": {"method": request.method, "path": loggable_path(request.path), "error": str(error)}})
        return json_error(503, error.code, STORE_MESSAGES.get(error.code, STORE_MESSAGES["store_unavailable"]), headers={"Retry-After": str(STORE_RETRY_AFTER_S)})
    except asyncio.CancelledError:
        raise
    except ConnectionError:
        # The client went away mid-request (the check aborts its upload streams at their
        # deadline): nothing went wrong here, and nobody is left to read an answer.
        log.info("client went away during %s %s", request.method, loggable_path(request.path))
        response = json_error(400, "connection_lost", "the connection was lost before the request was read")
        response.force_close()
        return response
    except Exception:
        log.exception("unhandled error in %s %s", request.method, loggable_path(request.path))
        return json_error(500, "internal_error", "the monitor hit an internal error; it has been logged")


def create_app(config: MonitorConfig, store: Store | None = None, clock: Callable[[], float] = time.time) -> web.Application:
    """The monitor's web application. Opens the store and the UDP reflector on startup.

    ``store`` may be given (tests, other back-ends); it is then not closed by the app.
    ``clock`` (unix seconds) stamps what arrives and drives the risk engine; tests move it.
    """
    app = web.Application(
        client_max_size=config.max_report_bytes,
        middlewares=[
            error_middleware,
            auth_middleware(lambda request: request.app[keys.STORE], keys.AGENT, links=check_links.authenticate, tokens=TokenCache()),
        ],
    )
    app[keys.CONFIG] = config
    app[keys.CLOCK] = clock
    app[keys.PROBE_LIMITER] = ProbeLimits(
        session_burst=config.probe_session_burst,
        sessions_per_hour=config.probe_sessions_per_hour,
        bytes_per_hour=config.probe_bytes_per_hour,
        streams_per_token=config.probe_streams_per_token,
    )
    # What the application holds open, in the order it opens (and the reverse it closes):
    # each needs what comes before it.
    for context in (
        _store_context(config, store),  # the store; the probe secret kept in it
        _reflector_context,  # UDP echoes for probe keys signed with that secret
        rtc.streams_context,  # the browser checks' WebRTC probe streams (app[keys.RTC]), all closed on the way out
        _metrics_context,  # the registry; reads the store and the reflector's counters
        reports.writer_context,  # ingest's group commit (monitor/report_writer.py): store and metrics
        _leadership_context,  # the leases of the jobs that run once across monitors: store and metrics
        _alerts_context,  # webhook deliveries: store and metrics
        _risk_context,  # risk passes: store, metrics, and the alerter for risk changes
        _summary_context,  # summaries of sessions that ended: store, and the alerter for the session_summary webhook
        _retention_context,  # deletes what outlived its purpose: store and metrics
    ):
        app.cleanup_ctx.append(context)
    app.router.add_get("/healthz", service.healthz)
    app.router.add_get("/metrics", service.metrics)
    app.router.add_get("/api/v1/openapi.json", service.openapi)
    app.router.add_get("/api/v1/whoami", service.whoami)
    app.router.add_post("/api/v1/enroll", enroll.redeem_handler())
    app.router.add_post("/api/v1/checks", checks.post_check)
    app.router.add_get("/api/v1/checks/{check_id}", checks.get_check)
    app.router.add_get("/api/v1/agents/{agent_id}/checks", checks.agent_checks)
    app.router.add_post("/api/v1/probe/session", probe.probe_session)
    app.router.add_get("/api/v1/probe/download", probe.download)
    app.router.add_post("/api/v1/probe/upload", probe.upload)
    for area in (users, sessions, session_samples, summary, reports, trends, enrollments, caseloads, alerts, check_links, link_page, rtc):
        area.add_routes(app)
    return app


def _store_context(config: MonitorConfig, given: Store | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        store = given if given is not None else await asyncio.to_thread(open_store_from_config, config)
        app[keys.STORE] = store
        app[keys.PROBE_SECRET] = await asyncio.to_thread(store.probe_secret)
        app[keys.RANDOM_BLOCK] = os.urandom(probe.RANDOM_BLOCK_BYTES)
        yield
        if given is None:
            store.close()

    return context


async def _reflector_context(app: web.Application) -> AsyncIterator[None]:
    config = app[keys.CONFIG]
    reflector = Reflector(app[keys.PROBE_SECRET], max_flows=config.max_udp_flows, bind_keys=config.probe_key_binding != "off")
    server = ReflectorServer(reflector, config.host, config.port)
    app[keys.REFLECTOR] = reflector
    app[keys.REFLECTOR_SERVER] = server
    yield
    server.close()


async def _metrics_context(app: web.Application) -> AsyncIterator[None]:
    reflector, store = app[keys.REFLECTOR], app[keys.STORE]
    app[keys.METRICS] = build_metrics(lambda: reflector.counters, store.latest_check_per_agent, store.agent_statuses)
    yield


async def _alerts_context(app: web.Application) -> AsyncIterator[None]:
    store = app[keys.STORE]
    metrics = build_alert_metrics(app[keys.METRICS].registry, store.pending_alert_deliveries)
    alerter = Alerter(store, app[keys.CONFIG].alerts, clock=app[keys.CLOCK], metrics=metrics)
    app[keys.ALERTER] = alerter  # every monitor queues alerts; one delivers them
    worker = asyncio.create_task(app[keys.LEADERSHIP].run_while_leading("alerts", alerter.run), name="alert-delivery")
    yield
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker


async def _leadership_context(app: web.Application) -> AsyncIterator[None]:
    # A random id per process names this monitor in the store and its log lines: never a host name.
    leadership = Leadership(
        app[keys.STORE], secrets.token_hex(6), app[keys.CONFIG].leader_lease_s, clock=app[keys.CLOCK], gauge=leader_gauge(app[keys.METRICS].registry)
    )
    app[keys.LEADERSHIP] = leadership
    log.info("monitor id", extra={"fields": {"monitor_id": leadership.holder}})
    task = asyncio.create_task(leadership.run(), name="leadership")
    yield
    task.cancel()  # gives the leases up, after the jobs that follow them have stopped
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _retention_context(app: web.Application) -> AsyncIterator[None]:
    counted = build_retention_metrics(app[keys.METRICS].registry, RETENTION_KINDS)
    job = RetentionJob(app[keys.STORE], app[keys.CONFIG].retention, app[keys.CLOCK], counted)
    task = asyncio.create_task(job.run(), name="retention")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _risk_context(app: web.Application) -> AsyncIterator[None]:
    config = app[keys.CONFIG]
    times = RiskTimes(
        horizon_s=config.risk_horizon_minutes * 60.0,
        interval_s=config.risk_interval_s,
        alert_lead_s=config.risk_horizon_minutes * 60.0,
    )
    metrics = LiveLoopMetrics.build(app[keys.METRICS].registry)
    service = RiskService(app[keys.STORE], RiskConfig(horizon_s=times.horizon_s), times, app[keys.ALERTER].submit, app[keys.CLOCK], metrics)
    app[keys.RISK] = service
    register_session_metrics(app[keys.METRICS].registry, app[keys.STORE])
    leadership = app[keys.LEADERSHIP]
    task = asyncio.create_task(leadership.run_while_leading("risk", lambda: service.run(lambda: leadership.leads("risk"))), name="risk")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _summary_context(app: web.Application) -> AsyncIterator[None]:
    job = SummaryJob(app[keys.STORE], app[keys.CONFIG].alerts, app[keys.ALERTER].submit, app[keys.CLOCK])
    app[summary.SUMMARIES] = job
    task = asyncio.create_task(job.run(), name="summaries")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def ssl_context(config: MonitorConfig) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


async def serve(config: MonitorConfig, ready: Callable[[str, tuple[str, int]], None] | None = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly (open requests get a few seconds)."""
    tls = ssl_context(config)
    app = create_app(config)
    runner = web.AppRunner(
        app, access_log_class=JsonAccessLogger, handle_signals=False, shutdown_timeout=5, keepalive_timeout=guard.KEEPALIVE_TIMEOUT_S
    )
    await runner.setup()
    # What is loaded by now (modules, the app, its routes) lives as long as the process: frozen
    # out of the garbage collector's full passes, which otherwise walk all of it again and again.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server: asyncio.Server | None = None
    try:
        assert runner.server is not None
        server, _ = await guard.listen(
            runner.server,
            config.host,
            config.port,
            tls=tls,
            max_per_address=config.max_connections_per_address,
            header_timeout_s=config.header_timeout_s,
        )
        sockets = server.sockets
        port = sockets[0].getsockname()[1] if sockets else config.port
        host = f"[{config.host}]" if ":" in config.host else config.host
        url = f"{'https' if tls else 'http'}://{host}:{port}"
        if ready is not None:
            ready(url, app[keys.REFLECTOR_SERVER].address)
        await stop.wait()
        log.info("stopping on signal")
    finally:
        if server is not None:
            server.close()  # no new connections; runner.cleanup() ends the open ones
        await runner.cleanup()
