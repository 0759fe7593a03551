"""The monitor's OpenAPI 3.1 document, built from the same dataclasses that validate requests."""

from __future__ import annotations

from functools import cache
from typing import Any

from monitor.enroll import EnrollRequest, EnrollResponse
from sessionready import __version__
from sessionready.schema import ID_PATTERN, CheckReport
from sessionready.typed import json_schema

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Malformed request; the error names the field.",
        401: "Missing, invalid or revoked token.",
        403: "The token's role may not do this.",
        404: "Not found (or not visible to this token).",
        413: "Body too large.",
        429: "Rate limit for this token reached.",
    }
    return {str(s): {"description": text[s], "content": {"application/json": {"schema": _ERROR}}} for s in statuses}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@cache
def openapi_document() -> dict[str, Any]:
    components: dict[str, Any] = {}
    report_ref = json_schema(CheckReport, components)
    enroll_request = json_schema(EnrollRequest, components)
    enroll_response = json_schema(EnrollResponse, components)
    components["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}},
            }
        },
    }
    stored_check = {
        "type": "object",
        "properties": {
            "agent_id": {"type": "string"},
            "participant_id": {"type": "string"},
            "received_at": {"type": "number", "description": "unix seconds"},
            "report": report_ref,
        },
    }
    size_param = {"name": "bytes", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 1}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "sessionready monitor", "version": __version__},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {
                "get": {"summary": "Liveness", "security": [], "responses": {"200": _json({"type": "object"}, "Alive")}}
            },
            "/api/v1/enroll": {
                "post": {
                    "summary": "Trade a one-time enrollment code for an agent token (no token needed)",
                    "security": [],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": enroll_request}}},
                    "responses": {
                        "201": _json(enroll_response, "Enrolled; the token is shown only here"),
                        **_errors(400, 413),
                        "401": _json(_ERROR, "The code is not valid: mistyped, unknown, expired, used or revoked (one answer for all)"),
                        "429": _json(_ERROR, "Too many enrollment attempts from this address"),
                    },
                }
            },
            "/api/v1/whoami": {
                "get": {"summary": "The token's agent id, role and participant", "responses": {"200": _json({"type": "object"}, "Who the token belongs to"), **_errors(401)}}
            },
            "/api/v1/checks": {
                "post": {
                    "summary": "Ingest a check report (idempotent by check_id)",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": report_ref}}},
                    "responses": {
                        "201": _json({"type": "object"}, "Stored"),
                        "200": _json({"type": "object"}, "Already stored (a retry); nothing changed"),
                        **_errors(400, 401, 403, 413),
                    },
                }
            },
            "/api/v1/checks/{check_id}": {
                "get": {
                    "summary": "One check of the token's participant",
                    "parameters": [{"name": "check_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}],
                    "responses": {"200": _json(stored_check, "The check"), **_errors(400, 401, 403, 404)},
                }
            },
            "/api/v1/agents/{agent_id}/checks": {
                "get": {
                    "summary": "An agent's checks, newest first",
                    "parameters": [
                        {"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^{ID_PATTERN}$"}},
                        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    ],
                    "responses": {"200": _json({"type": "object"}, "Checks"), **_errors(400, 401, 403, 404)},
                }
            },
            "/api/v1/probe/session": {
                "post": {"summary": "A short-lived key for the UDP reflector", "responses": {"200": _json({"type": "object"}, "Key and UDP address"), **_errors(401, 403, 429)}}
            },
            "/api/v1/probe/download": {
                "get": {
                    "summary": "Incompressible bytes for the download phase",
                    "parameters": [size_param],
                    "responses": {"200": {"description": "Bytes", "content": {"application/octet-stream": {}}}, **_errors(400, 401, 403, 429)},
                }
            },
            "/api/v1/probe/upload": {
                "post": {
                    "summary": "Sink for the upload phase",
                    "requestBody": {"content": {"application/octet-stream": {}}},
                    "responses": {"200": _json({"type": "object"}, "Bytes received"), **_errors(401, 403, 413, 429)},
                }
            },
            "/metrics": {
                "get": {"summary": "Prometheus metrics (metrics-role token)", "responses": {"200": {"description": "Text exposition format", "content": {"text/plain": {}}}, **_errors(401, 403)}}
            },
        },
    }
