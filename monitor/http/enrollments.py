"""Enrollment codes over HTTP, for the dashboard's Agents page (it/admin, tokens and logins).

The same codes as ``sessionready monitor enroll`` (monitor/http/enroll.py, docs/enrollment.md):
a code is shown once, in the answer that creates it; the monitor keeps only its hash, so a
listing shows ids and states, never codes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from monitor import keys
from monitor.auth import require_role
from monitor.errors import ApiError, decode_body, only_params, read_body
from monitor.http.enroll import create_code
from monitor.store.core import EnrollmentInfo
from monitor.store.protocols import TokenStore
from monitor.store.sessions import SessionConflict
from sessionready.terms import DEFAULT_TTL_HOURS, ID_PATTERN, MAX_TTL_HOURS, MIN_TTL_HOURS
from sessionready.typed import encode, json_schema, limits

CODE_ID_PATTERN = r"[0-9a-f]{12}"

log = logging.getLogger("sessionready.monitor")


@dataclass(frozen=True)
class EnrollmentCreate:
    """A new one-time code for a person's machine (client or therapist role)."""

    role: Literal["client", "therapist"]
    participant_id: str = field(metadata=limits(pattern=ID_PATTERN, doc="pseudonymous id, never a name"))
    ttl_hours: int = field(default=DEFAULT_TTL_HOURS, metadata=limits(ge=MIN_TTL_HOURS, le=MAX_TTL_HOURS))


@dataclass(frozen=True)
class EnrollmentOut:
    """A code's record, never the code. state: pending, used, revoked or expired; agent_id:
    the agent it enrolled, once used. Times are unix seconds."""

    code_id: str
    role: Literal["client", "therapist"]
    participant_id: str
    state: Literal["pending", "used", "revoked", "expired"]
    created_at: float
    expires_at: float
    used_at: float | None
    revoked_at: float | None
    agent_id: str | None


@dataclass(frozen=True)
class EnrollmentCreated:
    """The new code, shown only in this answer (type it into ``sessionready enroll``)."""

    code: str
    enrollment: EnrollmentOut


@dataclass(frozen=True)
class EnrollmentList:
    enrollments: tuple[EnrollmentOut, ...]  # oldest first


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/enrollments", create_enrollment)
    app.router.add_get("/api/v1/enrollments", list_enrollments)
    app.router.add_delete("/api/v1/enrollments/{code_id}", revoke_enrollment)


def enrollment_out(info: EnrollmentInfo, now: float) -> EnrollmentOut:
    return EnrollmentOut(
        code_id=info.code_id,
        role=info.role,  # type: ignore[arg-type]
        participant_id=info.participant_id,
        state=info.state(now),  # type: ignore[arg-type]
        created_at=info.created_at,
        expires_at=info.expires_at,
        used_at=info.used_at,
        revoked_at=info.revoked_at,
        agent_id=info.token_id,
    )


async def create_enrollment(request: web.Request) -> web.Response:
    principal = request[keys.AGENT]
    require_role(principal, "it", "admin", users=True)
    only_params(request)
    wanted = decode_body(EnrollmentCreate, await read_body(request))
    try:
        info, code = await asyncio.to_thread(create_code, request.app[keys.STORE], wanted.role, wanted.participant_id, wanted.ttl_hours)
    except SessionConflict as error:
        raise ApiError(409, error.code, error.message, error.field) from None
    # Ids only: the code is a credential and never reaches a log.
    log.info("enrollment code created", extra={"fields": {"code_id": info.code_id, "role": info.role, "by_role": principal.role}})
    answer = EnrollmentCreated(code, enrollment_out(info, request.app[keys.CLOCK]()))
    return web.json_response(encode(answer), status=201)


async def list_enrollments(request: web.Request) -> web.Response:
    require_role(request[keys.AGENT], "it", "admin", users=True)
    only_params(request)
    store: TokenStore = request.app[keys.STORE]
    infos = await asyncio.to_thread(store.list_enrollments)
    now = request.app[keys.CLOCK]()
    return web.json_response(encode(EnrollmentList(tuple(enrollment_out(info, now) for info in infos))))


async def revoke_enrollment(request: web.Request) -> web.Response:
    """Revoke an unused code (pending or expired). Revoking a revoked code again changes
    nothing and answers the same; a used code cannot be revoked (revoke its agent's token)."""
    principal = request[keys.AGENT]
    require_role(principal, "it", "admin", users=True)
    only_params(request)
    code_id = request.match_info["code_id"]
    if not re.fullmatch(CODE_ID_PATTERN, code_id):
        raise ApiError(400, "bad_parameter", "a code id is 12 hexadecimal digits (see GET /api/v1/enrollments)", "code_id")
    store: TokenStore = request.app[keys.STORE]
    revoked = await asyncio.to_thread(store.revoke_enrollment, code_id)
    info = next((e for e in await asyncio.to_thread(store.list_enrollments) if e.code_id == code_id), None)
    if info is None:
        raise ApiError(404, "not_found", "no enrollment code with this id")
    if info.used_at is not None:
        raise ApiError(409, "already_used", "this code has been used; revoke the agent's token instead")
    if revoked:
        log.info("enrollment code revoked", extra={"fields": {"code_id": code_id, "by_role": principal.role}})
    return web.json_response(encode(enrollment_out(info, request.app[keys.CLOCK]())))


def openapi_paths(components: dict[str, Any]) -> dict[str, Any]:
    """This module's part of the OpenAPI document (monitor/openapi.py)."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    common = {
        "401": {**error, "description": "Missing, invalid or revoked token."},
        "403": {**error, "description": "Only it and admin tokens and logins."},
    }
    one = {"content": {"application/json": {"schema": json_schema(EnrollmentOut, components)}}}
    code_param = {"name": "code_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^{CODE_ID_PATTERN}$"}}
    return {
        "/api/v1/enrollments": {
            "post": {
                "summary": "Create a one-time enrollment code for a client or therapist machine (it/admin); the code is shown only here",
                "requestBody": {"required": True, "content": {"application/json": {"schema": json_schema(EnrollmentCreate, components)}}},
                "responses": {
                    "201": {"description": "Created", "content": {"application/json": {"schema": json_schema(EnrollmentCreated, components)}}},
                    "400": {**error, "description": "Malformed request; the error names the field."},
                    "409": {**error, "description": "The participant id is registered with the other role."},
                    "413": {**error, "description": "Body too large."},
                    **common,
                },
            },
            "get": {
                "summary": "Every enrollment code's id, role, participant and state, oldest first (never the codes)",
                "responses": {
                    "200": {"description": "Codes", "content": {"application/json": {"schema": json_schema(EnrollmentList, components)}}},
                    "400": {**error, "description": "An unknown query parameter."},
                    **common,
                },
            },
        },
        "/api/v1/enrollments/{code_id}": {
            "delete": {
                "summary": "Revoke an unused code; revoking it again answers the same",
                "parameters": [code_param],
                "responses": {
                    "200": {**one, "description": "The code, now revoked"},
                    "400": {**error, "description": "Not a code id."},
                    "404": {**error, "description": "No code with this id."},
                    "409": {**error, "description": "The code was used; revoke its agent's token instead."},
                    **common,
                },
            }
        },
    }
