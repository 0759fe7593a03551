"""``GET /api/v1/sessions/{id}/summary``: what happened in a session, in a therapist's words
(docs/summary.md). Visible like the session itself: its therapist (token or dashboard
login) and staff; the same 404 for absent and not yours."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from monitor import keys
from monitor.auth import require_role
from monitor.errors import ApiError, only_params
from monitor.http.sessions import STAFF, visible_session
from monitor.risk.summaries import NotSummarised, SummaryJob
from monitor.risk.summary import SessionSummary
from sessionready.terms import ID_PATTERN
from sessionready.typed import encode, json_schema

SUMMARIES = web.AppKey("summaries", SummaryJob)


async def get_summary(request: web.Request) -> web.Response:
    require_role(request[keys.AGENT], "therapist", *STAFF, users=True)
    only_params(request)
    info = await visible_session(request)
    result = await asyncio.to_thread(request.app[SUMMARIES].summary_for, info.session_id)
    if result is None:
        raise ApiError(404, "not_found", "no such session")
    if isinstance(result, NotSummarised):
        raise ApiError(
            409,
            "not_live",
            f"the session has not gone live (it is {result.state}): there is nothing to summarise",
        )
    return web.json_response(encode(result))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/sessions/{session_id:(?!import$)[^/]+}/summary", get_summary)


def openapi_paths(components: dict[str, Any]) -> dict[str, Any]:
    """This module's part of the OpenAPI document (monitor/openapi.py)."""
    error = {
        "description": "",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return {
        "/api/v1/sessions/{session_id}/summary": {
            "get": {
                "summary": "What happened in a session that went live: stretches of trouble, both ends' MOS, whether the rating before it foresaw it (its therapist, it/admin)",
                "parameters": [
                    {
                        "name": "session_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": f"^{ID_PATTERN}$"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The summary; final once the session has ended",
                        "content": {"application/json": {"schema": json_schema(SessionSummary, components)}},
                    },
                    "400": {
                        **error,
                        "description": "A malformed session id or an unknown parameter.",
                    },
                    "401": {
                        **error,
                        "description": "Missing, invalid or revoked token.",
                    },
                    "403": {**error, "description": "Not a therapist, it or admin."},
                    "404": {**error, "description": "No such session, or not yours."},
                    "409": {**error, "description": "The session has not gone live."},
                },
            }
        }
    }
