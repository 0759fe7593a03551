"""The service's own endpoints: health, Prometheus metrics, the API description, and who a
credential belongs to."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor import keys
from monitor.auth import require_role
from monitor.openapi import openapi_document
from monitor.store.users import UserPrincipal


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def metrics(request: web.Request) -> web.Response:
    require_role(request[keys.AGENT], "metrics")
    registry = request.app[keys.METRICS].registry
    body = await asyncio.to_thread(generate_latest, registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def whoami(request: web.Request) -> web.Response:
    principal = request[keys.AGENT]
    if isinstance(principal, UserPrincipal):
        # A dashboard login: no agent id; it/admin users have no participant.
        return web.json_response(
            {
                "agent_id": None,
                "role": principal.role,
                "participant_id": principal.participant_id or None,
                "kind": "user",
                "username": principal.username,
                "user_id": principal.user_id,
                "expires_at": datetime.fromtimestamp(principal.expires_at, timezone.utc).isoformat(),
            }
        )
    return web.json_response({"agent_id": principal.token_id, "role": principal.role, "participant_id": principal.participant_id, "kind": "agent"})
