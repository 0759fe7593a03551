"""Caseloads over HTTP: staff assign clients to therapists; a therapist reads their own.

``GET /api/v1/caseload`` (it/admin: all or ``?therapist=``; a therapist token or login: their
own), ``POST /api/v1/caseload`` and ``DELETE /api/v1/caseload/{therapist_id}/{client_id}``
(it/admin). What a caseload allows is in monitor/store/caseloads.py and docs/security.md.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from monitor import keys
from monitor.auth import require_role
from monitor.errors import ApiError, decode_body, id_param, only_params, read_body
from monitor.store.caseloads import CaseloadEntry
from monitor.store.protocols import CaseloadStore
from monitor.store.sessions import SessionConflict, SessionStoreError
from sessionready.terms import ID_PATTERN, STAFF_ROLES
from sessionready.typed import encode, json_schema, limits, rfc3339

log = logging.getLogger("sessionready.monitor")


@dataclass(frozen=True)
class CaseloadAssign:
    """Put a client on a therapist's caseload (both pseudonymous ids, never names)."""

    therapist_id: str = field(metadata=limits(pattern=ID_PATTERN))
    client_id: str = field(metadata=limits(pattern=ID_PATTERN))


@dataclass(frozen=True)
class CaseloadOut:
    """source: api or cli (staff assigned), session (a session staff made), csv or ics (an
    import), upgrade (an import made before caseloads existed)."""

    therapist_id: str
    client_id: str
    assigned_at: str  # RFC 3339
    source: str


@dataclass(frozen=True)
class CaseloadList:
    caseload: tuple[CaseloadOut, ...]  # by therapist, then client


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/caseload", list_caseload)
    app.router.add_post("/api/v1/caseload", assign)
    app.router.add_delete("/api/v1/caseload/{therapist_id}/{client_id}", unassign)


def caseload_out(entry: CaseloadEntry) -> CaseloadOut:
    return CaseloadOut(entry.therapist_id, entry.client_id, rfc3339(entry.assigned_at), entry.source)


async def list_caseload(request: web.Request) -> web.Response:
    principal = request[keys.AGENT]
    require_role(principal, "therapist", *STAFF_ROLES, users=True)
    only_params(request, "therapist")
    therapist = id_param(request.query.get("therapist"), "therapist")
    if principal.role == "therapist":
        if therapist not in (None, principal.participant_id):
            raise ApiError(403, "forbidden", "a therapist sees only their own caseload", "therapist")
        therapist = principal.participant_id
    store: CaseloadStore = request.app[keys.STORE]
    entries = await asyncio.to_thread(store.caseload, therapist)
    return web.json_response(encode(CaseloadList(tuple(caseload_out(e) for e in entries))))


async def assign(request: web.Request) -> web.Response:
    principal = request[keys.AGENT]
    require_role(principal, *STAFF_ROLES, users=True)
    only_params(request)
    wanted = decode_body(CaseloadAssign, await read_body(request))
    store: CaseloadStore = request.app[keys.STORE]
    try:
        entry, created = await asyncio.to_thread(store.assign_client, wanted.therapist_id, wanted.client_id, "api")
    except SessionStoreError as error:
        raise ApiError(409 if isinstance(error, SessionConflict) else 400, error.code, error.message, error.field) from None
    if created:
        log.info("client assigned", extra={"fields": {"therapist_id": entry.therapist_id, "client_id": entry.client_id, "by_role": principal.role}})
    return web.json_response(encode(caseload_out(entry)), status=201 if created else 200)


async def unassign(request: web.Request) -> web.Response:
    principal = request[keys.AGENT]
    require_role(principal, *STAFF_ROLES, users=True)
    only_params(request)
    therapist_id, client_id = id_param(request.match_info["therapist_id"], "therapist_id"), id_param(request.match_info["client_id"], "client_id")
    store: CaseloadStore = request.app[keys.STORE]
    if not await asyncio.to_thread(store.unassign_client, therapist_id, client_id):
        raise ApiError(404, "not_found", "this client is not on this therapist's caseload")
    log.info("client unassigned", extra={"fields": {"therapist_id": therapist_id, "client_id": client_id, "by_role": principal.role}})
    return web.Response(status=204)


def openapi_paths(components: dict[str, Any]) -> dict[str, Any]:
    """This module's part of the OpenAPI document (monitor/openapi.py)."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    staff_only = {"403": {**error, "description": "Only it and admin tokens and logins."}}
    one = {"content": {"application/json": {"schema": json_schema(CaseloadOut, components)}}}
    id_schema = {"type": "string", "pattern": f"^{ID_PATTERN}$"}
    return {
        "/api/v1/caseload": {
            "get": {
                "summary": "Caseload assignments: all or one therapist's (it/admin); a therapist's own (therapist token or login)",
                "parameters": [{"name": "therapist", "in": "query", "required": False, "schema": id_schema}],
                "responses": {
                    "200": {"description": "Assignments", "content": {"application/json": {"schema": json_schema(CaseloadList, components)}}},
                    "400": {**error, "description": "A malformed or unknown query parameter."},
                    "403": {**error, "description": "A therapist asked for another therapist's caseload, or the role may not read caseloads."},
                },
            },
            "post": {
                "summary": "Put a client on a therapist's caseload (it/admin); ids are registered with their role on first use",
                "requestBody": {"required": True, "content": {"application/json": {"schema": json_schema(CaseloadAssign, components)}}},
                "responses": {
                    "201": {**one, "description": "Assigned"},
                    "200": {**one, "description": "Already assigned; nothing changed"},
                    "400": {**error, "description": "Malformed request; the error names the field."},
                    "409": {**error, "description": "An id is registered with the other role."},
                    "413": {**error, "description": "Body too large."},
                    **staff_only,
                },
            },
        },
        "/api/v1/caseload/{therapist_id}/{client_id}": {
            "delete": {
                "summary": "Take a client off a therapist's caseload (it/admin); their sessions stay, the therapist stops seeing the client's checks",
                "parameters": [
                    {"name": "therapist_id", "in": "path", "required": True, "schema": id_schema},
                    {"name": "client_id", "in": "path", "required": True, "schema": id_schema},
                ],
                "responses": {
                    "204": {"description": "Removed"},
                    "400": {**error, "description": "Not an id."},
                    "404": {**error, "description": "Not on the caseload."},
                    **staff_only,
                },
            }
        },
    }
