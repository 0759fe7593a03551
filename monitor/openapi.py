"""The monitor's OpenAPI 3.1 document, built from the same dataclasses that validate requests."""

from __future__ import annotations

from functools import cache
from typing import Any

from monitor.http import caseloads, check_links, enrollments, rtc, summary, trends
from monitor.http.alerts import MAX_LIST as MAX_ALERTS
from monitor.http.alerts import AlertList
from monitor.http.enroll import EnrollRequest, EnrollResponse
from monitor.http.reports import (
    MAX_SAMPLES,
    MAX_SINCE,
    AgentList,
    ReportBatchAnswer,
    SampleList,
)
from monitor.http.session_samples import SessionSamples
from monitor.http.sessions import (
    MAX_AGENT_HOURS,
    MAX_LIST,
    AgentSessionList,
    ImportRequest,
    ImportResultOut,
    ParticipantCreate,
    ParticipantList,
    ParticipantOut,
    SessionCreate,
    SessionDetail,
    SessionList,
    StateRequest,
)
from monitor.http.users import LoginRequest, LoginResponse
from sessionready import __version__
from sessionready.schema import MAX_BATCH, CheckReport, ReportEnvelope, SpoolStatus
from sessionready.terms import ID_PATTERN
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


# Operations that never touch the store, so never answer 503 store_unavailable / store_full.
STORELESS_PATHS = frozenset({"/healthz"})


@cache
def openapi_document() -> dict[str, Any]:
    """The document, with the answers every operation can give added to each: 415 for a
    request with Content-Encoding (refused before routing), 401 where a token is needed, 503
    where the store is read or written (a database restarting, a full disk)."""
    document = _document()
    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            responses.setdefault("415", _json(_ERROR, "Request bodies are sent without Content-Encoding"))
            if operation.get("security") != []:
                responses.setdefault("401", _json(_ERROR, "Missing, invalid or revoked token."))
            if path not in STORELESS_PATHS:
                responses.setdefault(
                    "503",
                    _json(_ERROR, "The store cannot take the request now (store_unavailable: its database cannot be reached; "
                                  "store_full: its disk is full); nothing was stored; try again after Retry-After seconds."),
                )  # fmt: skip
    return document


def _document() -> dict[str, Any]:
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
            # A check link's holder sends "Authorization: Link <secret>" (docs/browser-check.md).
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}, "link": {"type": "apiKey", "in": "header", "name": "Authorization"}},
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
                "get": {
                    "summary": "Who the token belongs to: kind agent (agent_id, role, participant_id) or user (also username, user_id, expires_at)",
                    "responses": {"200": _json({"type": "object"}, "Who the token belongs to"), **_errors(401)},
                }
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
                    "summary": "One check: the participant's own; a therapist's caseload clients' made around that therapist's sessions with them; any for it/admin",
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
            **_report_paths(components),
            **_session_paths(components),
            **_user_paths(components),
            **_alert_paths(components),
            **trends.openapi_paths(components),
            **enrollments.openapi_paths(components),
            **caseloads.openapi_paths(components),
            **check_links.openapi_paths(components),
            **rtc.openapi_paths(components),
            **summary.openapi_paths(components),
            "/metrics": {
                "get": {"summary": "Prometheus metrics (metrics-role token)", "responses": {"200": {"description": "Text exposition format", "content": {"text/plain": {}}}, **_errors(401, 403)}}
            },
        },
    }


def _report_paths(components: dict[str, Any]) -> dict[str, Any]:
    """The agents' spooled reports (monitor/http/reports.py, docs/reports.md)."""
    agent_param = {"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^{ID_PATTERN}$"}}
    # The outer object is strict; each report is any JSON value here because the monitor
    # validates it on its own and answers an invalid one "rejected" (200), not 400.
    batch = {
        "type": "object",
        "required": ["spool", "reports"],
        "additionalProperties": False,
        "properties": {
            "spool": json_schema(SpoolStatus, components),
            "reports": {
                "type": "array",
                "maxItems": MAX_BATCH,
                "description": "Oldest first. Each should be a ReportEnvelope; one that is not is answered 'rejected'.",
                "items": {"description": "A ReportEnvelope (#/components/schemas/ReportEnvelope)"},
            },
        },
    }
    json_schema(ReportEnvelope, components)
    return {
        "/api/v1/reports": {
            "post": {
                "summary": "Ingest a batch from an agent's spool; each report is answered on its own",
                "requestBody": {"required": True, "content": {"application/json": {"schema": batch}}},
                "responses": {
                    "200": _json(json_schema(ReportBatchAnswer, components), "One final result per report: stored, duplicate or rejected"),
                    **_errors(400, 401, 403, 413),
                },
            }
        },
        "/api/v1/agents": {
            "get": {
                "summary": "Every agent with its last contact and spool numbers (it/admin tokens)",
                "responses": {"200": _json(json_schema(AgentList, components), "Agents"), **_errors(401, 403)},
            }
        },
        "/api/v1/agents/{agent_id}/samples": {
            "get": {
                "summary": "An agent's samples taken since a time, oldest first",
                "parameters": [
                    agent_param,
                    {"name": "since", "in": "query", "required": False, "description": "unix seconds; default one hour ago", "schema": {"type": "number", "minimum": 0, "maximum": MAX_SINCE}},
                    {"name": "kind", "in": "query", "required": False, "schema": {"enum": ["background", "live"]}},
                    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SAMPLES}},
                ],
                "responses": {"200": _json(json_schema(SampleList, components), "Samples"), **_errors(400, 401, 403, 404)},
            }
        },
    }


def _session_paths(components: dict[str, Any]) -> dict[str, Any]:
    """Participants, sessions and calendar imports (monitor/http/sessions.py, docs/sessions.md)."""
    detail = json_schema(SessionDetail, components)
    participant = json_schema(ParticipantOut, components)
    session_param = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^{ID_PATTERN}$"}}
    conflict = _json(_ERROR, "Conflicts with what is stored (another role, other content, an impossible state change)")
    zone = {"type": "string", "pattern": r"^([A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*|[+-][0-9]{2}:[0-9]{2})$"}
    list_params = [
        {"name": "therapist", "in": "query", "required": False, "schema": {"type": "string", "pattern": f"^{ID_PATTERN}$"}},
        {"name": "day", "in": "query", "required": False, "description": "YYYY-MM-DD, in tz", "schema": {"type": "string", "format": "date"}},
        {"name": "tz", "in": "query", "required": False, "description": "IANA zone or +HH:MM offset for day; default UTC", "schema": zone},
        {"name": "state", "in": "query", "required": False, "schema": {"enum": ["scheduled", "live", "ended", "cancelled"]}},
        {"name": "from", "in": "query", "required": False, "description": "start at or after", "schema": {"type": "string", "format": "date-time"}},
        {"name": "to", "in": "query", "required": False, "description": "start before", "schema": {"type": "string", "format": "date-time"}},
        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST}},
    ]
    return {
        "/api/v1/participants": {
            "post": {
                "summary": "Register a pseudonymous participant with a role (it/admin tokens)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": json_schema(ParticipantCreate, components)}}},
                "responses": {"201": _json(participant, "Registered"), "200": _json(participant, "Already registered with this role"), **_errors(400, 401, 403, 413), "409": conflict},
            },
            "get": {
                "summary": "Every participant (it/admin tokens)",
                "responses": {"200": _json(json_schema(ParticipantList, components), "Participants"), **_errors(401, 403)},
            },
        },
        "/api/v1/sessions": {
            "post": {
                "summary": "Create a session (it/admin: idempotent by session_id, and the client goes on the therapist's caseload; "
                "a therapist: their own, with a client on their caseload, the monitor choosing the id)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": json_schema(SessionCreate, components)}}},
                "responses": {
                    "201": _json(detail, "Created"),
                    "200": _json(detail, "Already there with the same content"),
                    **_errors(400, 401, 413),
                    "403": _json(_ERROR, "The role may not create sessions, a therapist named another therapist, or the client is not on the therapist's caseload"),
                    "409": conflict,
                },
            },
            "get": {
                "summary": "Sessions by start time; a therapist token sees only its own",
                "parameters": list_params,
                "responses": {"200": _json(json_schema(SessionList, components), "Sessions"), **_errors(400, 401, 403)},
            },
        },
        "/api/v1/sessions/import": {
            "post": {
                "summary": "Import sessions from CSV (text/csv) or CSV/ICS in JSON with a mapping (it/admin); CSV: all rows or none; ICS: events that cannot be read are skipped and counted",
                "parameters": [{"name": "tz", "in": "query", "required": False, "description": "text/csv only: IANA zone of local start times", "schema": zone}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": json_schema(ImportRequest, components)},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                "responses": {
                    "200": _json(json_schema(ImportResultOut, components), "Imported: counts by outcome and skip reason, and the hashed ids of calendar events skipped whole"),
                    **_errors(400, 401, 403, 413),
                    "415": _json(_ERROR, "Send text/csv or application/json"),
                    "429": _json(_ERROR, "As many imports as the monitor runs at once are running already"),
                },
            }
        },
        "/api/v1/sessions/{session_id}": {
            "get": {
                "summary": "A session: both ends, state and every state change with its reason",
                "parameters": [session_param],
                "responses": {"200": _json(detail, "The session"), **_errors(400, 401, 403, 404)},
            }
        },
        "/api/v1/sessions/{session_id}/state": {
            "post": {
                "summary": "Move a session to live, ended or cancelled (it/admin, or the session's therapist)",
                "parameters": [session_param],
                "requestBody": {"required": True, "content": {"application/json": {"schema": json_schema(StateRequest, components)}}},
                "responses": {"200": _json(detail, "The session after the change"), **_errors(400, 401, 403, 404, 413), "409": conflict},
            }
        },
        "/api/v1/sessions/{session_id}/samples": {
            "get": {
                "summary": "The session's live samples from both ends, oldest first (its therapist, it/admin)",
                "parameters": [
                    session_param,
                    {"name": "since", "in": "query", "required": False, "schema": {"type": "number", "minimum": 0, "maximum": 999999999999}},
                ],
                "responses": {"200": _json(json_schema(SessionSamples, components), "Samples"), **_errors(400, 401, 403, 404)},
            }
        },
        "/api/v1/agent/sessions": {
            "get": {
                "summary": "The token's participant's sessions ending after now-1h and starting within N hours (client/therapist tokens)",
                "parameters": [{"name": "hours", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_AGENT_HOURS}}],
                "responses": {"200": _json(json_schema(AgentSessionList, components), "Sessions, by start"), **_errors(400, 401, 403)},
            }
        },
    }


def _user_paths(components: dict[str, Any]) -> dict[str, Any]:
    """Dashboard logins (monitor/http/users.py, docs/users.md)."""
    return {
        "/api/v1/login": {
            "post": {
                "summary": "Log a dashboard user in: a session token for 'Authorization: Bearer' (no token needed)",
                "security": [],
                "requestBody": {"required": True, "content": {"application/json": {"schema": json_schema(LoginRequest, components)}}},
                "responses": {
                    "201": _json(json_schema(LoginResponse, components), "Logged in; the token is shown only here"),
                    **_errors(400, 413),
                    "401": _json(_ERROR, "Unknown user, wrong password, locked or disabled account (one answer for all)"),
                    "429": _json(_ERROR, "Too many login attempts from this address, or this username and address wait after wrong logins"),
                },
            }
        },
        "/api/v1/logout": {
            "post": {
                "summary": "End the presented dashboard login (a user session token)",
                "responses": {"204": {"description": "Logged out; the token no longer works"}, **_errors(401, 403)},
            }
        },
    }


def _alert_paths(components: dict[str, Any]) -> dict[str, Any]:
    """Alerts raised from risk changes, with their webhook delivery status (monitor/http/alerts.py, docs/alerts.md)."""
    id_schema = {"type": "string", "pattern": f"^{ID_PATTERN}$"}
    return {
        "/api/v1/alerts": {
            "get": {
                "summary": "Alerts, newest first; a therapist sees only alerts about their own sessions, it/admin all",
                "parameters": [
                    {"name": "session_id", "in": "query", "required": False, "schema": id_schema},
                    {"name": "therapist_id", "in": "query", "required": False, "schema": id_schema},
                    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ALERTS}},
                ],
                "responses": {"200": _json(json_schema(AlertList, components), "Alerts"), **_errors(400, 401, 403)},
            }
        }
    }
