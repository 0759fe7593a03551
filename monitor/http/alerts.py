"""``GET /api/v1/alerts``: the alerts the risk engine raised, and their deliveries.

A therapist (agent token or dashboard login) sees only alerts about their own sessions;
it and admin see all. The filter uses the therapist id stored with each alert, so it does
not depend on the session still existing.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from monitor import keys
from monitor.alerts.config import AlertKind
from monitor.auth import require_role
from monitor.errors import ApiError, id_param, only_params
from monitor.store.alerts import StoredAlert
from monitor.store.protocols import AlertStore
from sessionready.terms import STAFF_ROLES
from sessionready.typed import encode, limits, rfc3339

STAFF = STAFF_ROLES
DEFAULT_LIST = 100
MAX_LIST = 500


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/alerts", list_alerts)


async def list_alerts(request: web.Request) -> web.Response:
    principal = request[keys.AGENT]
    require_role(principal, "therapist", *STAFF, users=True)
    only_params(request, "limit", "session_id", "therapist_id")
    limit_text = request.query.get("limit", str(DEFAULT_LIST))
    if not re.fullmatch(r"[0-9]{1,4}", limit_text) or not 1 <= int(limit_text) <= MAX_LIST:
        raise ApiError(400, "bad_parameter", f"'limit' must be a whole number from 1 to {MAX_LIST}", "limit")
    session_id = id_param(request.query.get("session_id"), "session_id")
    therapist_id = id_param(request.query.get("therapist_id"), "therapist_id")
    if principal.role == "therapist":
        if therapist_id is not None and therapist_id != principal.participant_id:
            # Asking for another therapist's alerts finds none: the filter is the token's.
            return web.json_response(encode(AlertList(())))
        therapist_id = principal.participant_id
    store: AlertStore = request.app[keys.STORE]
    rows = await asyncio.to_thread(store.list_alerts, therapist_id, session_id, int(limit_text))
    return web.json_response(encode(AlertList(tuple(alert_out(row) for row in rows))))


@dataclass(frozen=True)
class ReasonOut:
    code: str
    end: Literal["client", "therapist", "session"]
    message: str  # our generated plain words
    action: str  # what to do about it


@dataclass(frozen=True)
class DeliveryOut:
    """Where the alert stands with one configured webhook (known by its name, never its URL)."""

    webhook: str
    status: Literal["pending", "sent", "failed"]
    attempts: int
    last_attempt_at: str | None = field(metadata=limits(timestamp=True))
    last_status_code: int | None
    last_error: str | None = field(metadata=limits(doc="timeout, connect, tls, network, http_4xx, http_5xx, http_429, redirect, expired, webhook_removed"))


@dataclass(frozen=True)
class AlertOut:
    """One alert: a change in a session's risk, with pseudonymous ids and our reasons."""

    alert_id: str
    session_id: str
    therapist_id: str
    client_id: str
    kind: AlertKind
    cause: str
    end: Literal["client", "therapist", "session"]
    state: str
    reasons: tuple[ReasonOut, ...]
    at: str = field(metadata=limits(timestamp=True, doc="when the change happened"))
    starts_at: str = field(metadata=limits(timestamp=True, doc="the session's start"))
    created_at: str = field(metadata=limits(timestamp=True, doc="when the monitor recorded it"))
    deliveries: tuple[DeliveryOut, ...]


@dataclass(frozen=True)
class AlertList:
    alerts: tuple[AlertOut, ...]


def alert_out(stored: StoredAlert) -> AlertOut:
    alert = stored.alert
    return AlertOut(
        alert.alert_id,
        alert.session_id,
        alert.therapist_id,
        alert.client_id,
        alert.kind,  # type: ignore[arg-type]
        alert.cause,
        alert.end,  # type: ignore[arg-type]
        alert.state,
        tuple(ReasonOut(r["code"], r["end"], r["message"], r["action"]) for r in alert.reasons),  # type: ignore[arg-type]
        rfc3339(alert.at),
        rfc3339(alert.starts_at),
        rfc3339(alert.created_at),
        tuple(
            DeliveryOut(
                d.webhook,
                d.status,
                d.attempts,
                None if d.last_attempt_at is None else rfc3339(d.last_attempt_at),
                d.last_status_code,
                d.last_error,
            )
            for d in stored.deliveries
        ),
    )
