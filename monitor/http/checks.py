"""``POST /api/v1/checks`` and reading checks back: by id, and an agent's own."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import replace
from typing import Protocol

from aiohttp import web

from monitor import keys
from monitor.auth import require_role
from monitor.errors import ApiError, decode_body, read_body
from monitor.store.core import StoredCheck
from monitor.store.protocols import CaseloadStore, CheckStore, SessionStore, TokenStore
from monitor.words import in_own_words
from sessionready.schema import CheckReport
from sessionready.terms import CHECK_ID_PATTERN, ID_PATTERN, PARTICIPANT_ROLES, STAFF_ROLES
from sessionready.typed import encode

MAX_LIST = 500


class CheckReadingStore(CheckStore, CaseloadStore, SessionStore, Protocol):
    """A check read by id: the caseload and the check's session decide what a therapist sees."""


class AgentChecksStore(CheckStore, TokenStore, Protocol):
    """An agent's checks, listed for its participant's other machines (the tokens say whose)."""


def parse_report(body: bytes) -> CheckReport:
    """Strictly validate a posted check; ApiError 400 names the first offending field."""
    return in_own_words(decode_body(CheckReport, body))


async def post_check(request: web.Request) -> web.Response:
    agent: keys.TokenInfo = request[keys.AGENT]
    require_role(agent, "client", "therapist")
    app_metrics = request.app[keys.METRICS]
    started = time.perf_counter()
    try:
        report = parse_report(await read_body(request))
    except (ApiError, web.HTTPRequestEntityTooLarge):
        app_metrics.ingest.labels("rejected").inc()
        raise
    # Store the canonical re-encoding, never the raw body: only schema fields are kept.
    store: CheckStore = request.app[keys.STORE]
    stored = await asyncio.to_thread(
        store.add_check, agent, report, json.dumps(encode(report), separators=(",", ":")), request.app[keys.CLOCK]()
    )
    if stored is None:
        app_metrics.ingest.labels("rejected").inc()
        # A random 128-bit id is never reused by chance: another agent holds this one.
        raise ApiError(409, "conflict", "this check_id is already taken; send the check with a new id", "check_id")
    app_metrics.ingest.labels("accepted" if stored else "duplicate").inc()
    app_metrics.ingest_seconds.observe(time.perf_counter() - started)
    return web.json_response(
        {"check_id": report.check_id, "stored": stored, "duplicate": not stored}, status=201 if stored else 200
    )


def _visible(agent: keys.TokenInfo, check: StoredCheck, store: CaseloadStore) -> bool:
    """Own checks (all of the participant's machines); staff see all; a therapist also sees a
    check of a client on their caseload made around one of their own sessions with that client
    (monitor/store/caseloads.py; the dashboard shows it on the session page)."""
    if agent.role in STAFF_ROLES or check.participant_id == agent.participant_id:
        return True
    return agent.role == "therapist" and store.check_visible_to_therapist(agent.participant_id, check.participant_id, check.received_at)


def _for_reader(agent: keys.TokenInfo, check: StoredCheck, store: SessionStore) -> StoredCheck:
    """The check as ``agent`` may read it: a therapist reading a client's check made for
    another therapist's session does not learn that session's id."""
    if agent.role in STAFF_ROLES or check.participant_id == agent.participant_id or check.session_id is None:
        return check
    session = store.get_session(check.session_id)  # the column holds the report's session_id
    if session is not None and session.therapist_id == agent.participant_id:
        return check
    return replace(check, session_id=None, report={**check.report, "session_id": None})


def _check_json(check: StoredCheck) -> dict[str, object]:
    return {"agent_id": check.agent_id, "participant_id": check.participant_id, "received_at": check.received_at, "report": check.report}


async def get_check(request: web.Request) -> web.Response:
    agent: keys.TokenInfo = request[keys.AGENT]
    require_role(agent, *PARTICIPANT_ROLES, *STAFF_ROLES, users=True)
    check_id = request.match_info["check_id"]
    if not _matches(CHECK_ID_PATTERN, check_id):
        raise ApiError(400, "bad_parameter", "a check id is 32 lowercase hex characters", "check_id")
    store: CheckReadingStore = request.app[keys.STORE]
    check = await asyncio.to_thread(store.get_check, check_id)
    if check is None or not await asyncio.to_thread(_visible, agent, check, store):
        # The same answer for "absent" and "not yours": ids of others' checks do not leak.
        raise ApiError(404, "not_found", "no such check")
    return web.json_response(_check_json(await asyncio.to_thread(_for_reader, agent, check, store)))


async def agent_checks(request: web.Request) -> web.Response:
    agent: keys.TokenInfo = request[keys.AGENT]
    require_role(agent, "client", "therapist")
    agent_id = request.match_info["agent_id"]
    if not _matches(ID_PATTERN, agent_id):
        raise ApiError(400, "bad_parameter", "an agent id is letters, digits, '.', '_' or '-'", "agent_id")
    raw_limit = request.query.get("limit", "50")
    if not re.fullmatch(r"[0-9]{1,4}", raw_limit) or not 1 <= int(raw_limit) <= MAX_LIST:
        raise ApiError(400, "bad_parameter", f"'limit' must be a whole number from 1 to {MAX_LIST}", "limit")
    store: AgentChecksStore = request.app[keys.STORE]
    if agent_id != agent.token_id:
        tokens = await asyncio.to_thread(store.list_tokens)
        owner = next((t for t in tokens if t.token_id == agent_id), None)
        if owner is None or owner.participant_id != agent.participant_id:
            raise ApiError(404, "not_found", "no such agent")
    checks = await asyncio.to_thread(store.checks_for_agent, agent_id, int(raw_limit))
    return web.json_response({"agent_id": agent_id, "checks": [_check_json(c) for c in checks]})


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None
