"""The sessions API: participants, sessions, their states, calendar imports, and the agent's
view of its own sessions.

Who sees what is decided here, in the monitor, whatever a query asks for: a therapist's token
sees only that therapist's sessions; it and admin tokens see all; client tokens see only
their own sessions, through ``/api/v1/agent/sessions``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field, replace
from datetime import timedelta, timezone, tzinfo
from typing import Literal, Protocol

from aiohttp import web

from monitor import keys
from monitor.auth import require_role
from monitor.calendars.imports import (
    CalendarError,
    CalendarMapping,
    ParsedImport,
    check_mapping_data,
    day_bounds,
    default_window,
    parse_rfc3339,
    parse_zone,
    session_start,
)
from monitor.calendars.worker import IMPORT_WORKERS, ImportJob, run_import
from monitor.errors import ApiError, decode_body, id_param, only_params, read_body
from monitor.http.risk import RiskDetail, RiskOut, risk_detail, risk_out
from monitor.store.protocols import CaseloadStore, RiskStore, SessionStore
from monitor.store.sessions import REASON_PATTERN, ImportOutcome, SessionConflict, SessionInfo, SessionStoreError, StateChange
from sessionready.schema import AgentSession
from sessionready.terms import ID_PATTERN, STAFF_ROLES
from sessionready.typed import encode, limits, rfc3339

STAFF = STAFF_ROLES
DEFAULT_LIST = 200
MAX_LIST = 1000
DEFAULT_AGENT_HOURS = 24
MAX_AGENT_HOURS = 168
AGENT_PAST_S = 3600  # the agent also learns of sessions that ended within the last hour
IMPORT_MAX_BYTES = 8 << 20  # a practice calendar export; larger than any report
IMPORT_SLOTS = web.AppKey("import_slots", asyncio.Semaphore)  # imports running in worker processes
OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


class BookingStore(SessionStore, CaseloadStore, Protocol):
    """A session booked: a therapist's token books only clients on its caseload."""


class SessionRiskStore(SessionStore, RiskStore, Protocol):
    """Sessions shown with the risk engine's latest word on each."""


# --- request and response bodies ------------------------------------------------------------


@dataclass(frozen=True)
class ParticipantCreate:
    """Register a pseudonymous participant (never a name)."""

    participant_id: str = field(metadata=limits(pattern=ID_PATTERN))
    role: Literal["therapist", "client"]


@dataclass(frozen=True)
class ParticipantOut:
    participant_id: str
    role: Literal["therapist", "client"]
    created_at: str = field(metadata=limits(timestamp=True))


@dataclass(frozen=True)
class ParticipantList:
    participants: tuple[ParticipantOut, ...]


@dataclass(frozen=True)
class SessionCreate:
    """A session between a therapist and a client; ``session_id`` is generated when absent."""

    therapist_id: str = field(metadata=limits(pattern=ID_PATTERN))
    client_id: str = field(metadata=limits(pattern=ID_PATTERN))
    start: str = field(metadata=limits(max_len=40, timestamp=True, doc="RFC 3339 with an offset, whole seconds"))
    planned_duration_s: int = field(metadata=limits(ge=60, le=86_400))
    session_id: str | None = field(default=None, metadata=limits(pattern=ID_PATTERN))


@dataclass(frozen=True)
class SessionOut:
    session_id: str
    therapist_id: str
    client_id: str
    start: str = field(metadata=limits(timestamp=True))
    planned_duration_s: int
    state: Literal["scheduled", "live", "ended", "cancelled"]
    source: Literal["api", "csv", "ics"]
    created_at: str = field(metadata=limits(timestamp=True))
    updated_at: str = field(metadata=limits(timestamp=True))
    risk: RiskOut | None = None  # None: the risk engine has not assessed it (yet)


@dataclass(frozen=True)
class SessionList:
    sessions: tuple[SessionOut, ...]


@dataclass(frozen=True)
class StateChangeOut:
    at: str = field(metadata=limits(timestamp=True))
    state: Literal["scheduled", "live", "ended", "cancelled"]
    reason: str


@dataclass(frozen=True)
class SessionDetail:
    """A session with both ends' participant ids and every state it has been in."""

    session: SessionOut
    history: tuple[StateChangeOut, ...]
    risk: RiskDetail | None = None  # the risk engine's view and every change of it


@dataclass(frozen=True)
class StateRequest:
    """Move a session on. ``scheduled`` only brings back a cancelled session."""

    state: Literal["scheduled", "live", "ended", "cancelled"]
    reason: str = field(default="api", metadata=limits(pattern=REASON_PATTERN, doc="a code, not free text"))


@dataclass(frozen=True)
class AgentSessionList:
    sessions: tuple[AgentSession, ...]


@dataclass(frozen=True)
class ImportRequest:
    """An import as JSON. ``mapping`` is required for ICS (it is used, never stored); ``tz``
    places local (CSV) or floating (ICS) times; the window limits ICS expansion
    (default: a day ago to 60 days ahead)."""

    format: Literal["csv", "ics"]
    data: str = field(metadata=limits(max_len=IMPORT_MAX_BYTES))
    mapping: CalendarMapping | None = None
    tz: str | None = field(default=None, metadata=limits(max_len=64))
    window_start: str | None = field(default=None, metadata=limits(max_len=40, timestamp=True))
    window_end: str | None = field(default=None, metadata=limits(max_len=40, timestamp=True))


@dataclass(frozen=True)
class ImportErrorOut:
    row: int | None
    session_id: str | None
    field: str
    message: str


@dataclass(frozen=True)
class SkipOut:
    """Events or instances skipped for one reason. ``event_ids`` (ICS, the first 100 of an
    import) name the events skipped whole, a UID with its moved instances, by ``uid-`` and a
    keyed hash of the UID: stable across imports, never the UID or anything the event says."""

    reason: str
    count: int
    event_ids: tuple[str, ...] = field(default=(), metadata=limits(max_len=100))


@dataclass(frozen=True)
class ImportResultOut:
    """What an import did. With errors nothing is stored (all or nothing)."""

    created: int
    updated: int
    cancelled: int
    unchanged: int
    skipped: tuple[SkipOut, ...]
    errors: tuple[ImportErrorOut, ...]
    error_count: int


# --- conversions -------------------------------------------------------------------------------


def session_out(info: SessionInfo) -> SessionOut:
    return SessionOut(
        info.session_id,
        info.therapist_id,
        info.client_id,
        rfc3339(info.start_at_s),
        info.planned_duration_s,
        info.state,  # type: ignore[arg-type]
        info.source,  # type: ignore[arg-type]
        rfc3339(info.created_at),
        rfc3339(info.updated_at),
    )


def session_detail(info: SessionInfo, history: list[StateChange]) -> SessionDetail:
    return SessionDetail(session_out(info), tuple(StateChangeOut(rfc3339(c.at_s), c.state, c.reason) for c in history))  # type: ignore[arg-type]


def import_result(parsed: ParsedImport, outcome: ImportOutcome) -> ImportResultOut:
    errors = parsed.errors or outcome.errors
    return ImportResultOut(
        outcome.created,
        outcome.updated,
        outcome.cancelled,
        outcome.unchanged,
        tuple(SkipOut(reason, count, tuple(i for r, i in parsed.skipped_events if r == reason)) for reason, count in parsed.skipped),
        tuple(ImportErrorOut(e.row, e.session_id, e.field, e.message) for e in errors[:100]),
        len(parsed.errors) or outcome.error_count,
    )


def zone_param(text: str, *, imported: bool = False) -> tzinfo:
    """``tz`` as an IANA zone (Europe/Berlin) or a fixed offset (+02:00); ApiError 400 naming
    ``tz`` when it is neither. A calendar import's ``tz`` (``imported``) takes IANA names only
    and is ``invalid_field`` like the import's other fields; a listing's is ``bad_parameter``."""
    match = None if imported else OFFSET.fullmatch(text)
    if match:
        sign, hours, minutes = match.groups()
        if int(hours) > 23 or int(minutes) > 59:
            raise ApiError(400, "bad_parameter", "'tz' offsets run from -23:59 to +23:59", "tz")
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-delta if sign == "-" else delta)
    try:
        return parse_zone(text)
    except CalendarError as error:
        if imported:
            raise ApiError(400, "invalid_field", str(error), "tz") from None
        raise ApiError(400, "bad_parameter", f"'tz': {error}", "tz") from None


def _timestamp_param(request: web.Request, name: str) -> float | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        return parse_rfc3339(text).timestamp()
    except ValueError:
        raise ApiError(400, "bad_parameter", f"'{name}' must be an RFC 3339 timestamp with an offset, e.g. 2026-03-16T09:00:00Z", name) from None


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name, str(default))
    if not re.fullmatch(r"[0-9]{1,6}", text) or not low <= int(text) <= high:
        raise ApiError(400, "bad_parameter", f"'{name}' must be a whole number from {low} to {high}", name)
    return int(text)


def _store_error(error: SessionStoreError) -> ApiError:
    return ApiError(409 if isinstance(error, SessionConflict) else 400, error.code, error.message, error.field)


def _json(value: object, status: int = 200) -> web.Response:
    return web.json_response(encode(value), status=status)


def _visible(agent: keys.TokenInfo, info: SessionInfo) -> bool:
    return agent.role in STAFF or (agent.role == "therapist" and info.therapist_id == agent.participant_id)


# --- handlers -----------------------------------------------------------------------------------


async def create_participant(request: web.Request) -> web.Response:
    require_role(request[keys.AGENT], *STAFF)
    only_params(request)
    body = decode_body(ParticipantCreate, await read_body(request))
    store: SessionStore = request.app[keys.STORE]
    try:
        info, created = await asyncio.to_thread(store.add_participant, body.participant_id, body.role)
    except SessionStoreError as error:
        raise _store_error(error) from None
    return _json(ParticipantOut(info.participant_id, info.role, rfc3339(info.created_at)), 201 if created else 200)  # type: ignore[arg-type]


async def list_participants(request: web.Request) -> web.Response:
    require_role(request[keys.AGENT], *STAFF)
    only_params(request)
    store: SessionStore = request.app[keys.STORE]
    rows = await asyncio.to_thread(store.list_participants)
    return _json(ParticipantList(tuple(ParticipantOut(p.participant_id, p.role, rfc3339(p.created_at)) for p in rows)))  # type: ignore[arg-type]


async def _may_book(store: CaseloadStore, agent: keys.TokenInfo, body: SessionCreate) -> None:
    """A therapist's token books only its own sessions, only with clients on its caseload, and
    never picks the session id: a chosen id could take one a later import needs, and the
    answer for a taken id would tell whether another therapist's session exists."""
    if body.therapist_id != agent.participant_id:
        raise ApiError(403, "forbidden", "a therapist token may only create its own therapist's sessions", "therapist_id")
    if body.session_id is not None:
        raise ApiError(400, "invalid_field", "the monitor chooses the id of a session a therapist creates; leave session_id out", "session_id")
    # One answer whether the id is unknown, someone else's client or not a client at all.
    if not await asyncio.to_thread(store.on_caseload, agent.participant_id, body.client_id):
        raise ApiError(403, "not_on_caseload", f"client '{body.client_id}' is not on your caseload; IT staff assign clients to therapists", "client_id")


async def create_session(request: web.Request) -> web.Response:
    agent: keys.TokenInfo = request[keys.AGENT]
    require_role(agent, "therapist", *STAFF)
    only_params(request)
    body = decode_body(SessionCreate, await read_body(request))
    store: BookingStore = request.app[keys.STORE]
    if agent.role == "therapist":
        await _may_book(store, agent, body)
    try:
        start_at_s = session_start(parse_rfc3339(body.start))
    except ValueError as error:
        reason = "be on a whole second" if str(error) == "not a whole second" else str(error).removeprefix("must ")
        raise ApiError(400, "invalid_field", f"start must {reason}", "start") from None
    try:
        info, created = await asyncio.to_thread(
            store.create_session, body.session_id, body.therapist_id, body.client_id, start_at_s, body.planned_duration_s,
            assign=agent.role in STAFF,  # staff's word puts the client on the therapist's caseload
        )  # fmt: skip
    except SessionStoreError as error:
        raise _store_error(error) from None
    history = await asyncio.to_thread(store.session_history, info.session_id)
    return _json(session_detail(info, history), 201 if created else 200)


async def list_sessions(request: web.Request) -> web.Response:
    agent: keys.TokenInfo = request[keys.AGENT]
    require_role(agent, "therapist", *STAFF, users=True)
    only_params(request, "therapist", "day", "tz", "state", "from", "to", "limit")
    therapist = id_param(request.query.get("therapist"), "therapist")
    if agent.role == "therapist":
        if therapist is not None and therapist != agent.participant_id:
            # Asking for someone else's sessions finds none: the filter is the token's.
            return _json(SessionList(()))
        therapist = agent.participant_id
    state = request.query.get("state")
    if state is not None and state not in ("scheduled", "live", "ended", "cancelled"):
        raise ApiError(400, "bad_parameter", "'state' must be scheduled, live, ended or cancelled", "state")
    start_from = _timestamp_param(request, "from")
    start_to = _timestamp_param(request, "to")
    day = request.query.get("day")
    if day is not None:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            raise ApiError(400, "bad_parameter", "'day' must be a date, YYYY-MM-DD", "day")
        zone = zone_param(request.query.get("tz", "UTC"))
        try:
            day_from, day_to = day_bounds(day, zone)
        except (ValueError, OverflowError):
            raise ApiError(400, "bad_parameter", "'day' is not a real date", "day") from None
        start_from = day_from if start_from is None else max(start_from, day_from)
        start_to = day_to if start_to is None else min(start_to, day_to)
    elif "tz" in request.query:
        zone_param(request.query["tz"])  # still validated: a typo should not pass silently
    limit = _int_param(request, "limit", DEFAULT_LIST, 1, MAX_LIST)
    store: SessionRiskStore = request.app[keys.STORE]
    rows = await asyncio.to_thread(
        store.list_sessions,
        therapist_id=therapist,
        state=state,
        start_from_s=start_from,
        start_to_s=start_to,
        limit=limit,
    )
    # One query for every listed session's risk, both ends included: a page of today's
    # sessions needs no call per session.
    risks = await asyncio.to_thread(store.risk_states, [info.session_id for info in rows])
    return _json(
        SessionList(tuple(replace(session_out(info), risk=risk_out(risks[info.session_id]) if info.session_id in risks else None) for info in rows))
    )


async def visible_session(request: web.Request) -> SessionInfo:
    agent: keys.TokenInfo = request[keys.AGENT]
    session_id = id_param(request.match_info["session_id"], "session_id")
    store: SessionStore = request.app[keys.STORE]
    info = await asyncio.to_thread(store.get_session, session_id)
    if info is None or not _visible(agent, info):
        # One answer for "absent" and "not yours": others' session ids do not leak.
        raise ApiError(404, "not_found", "no such session")
    return info


async def get_session(request: web.Request) -> web.Response:
    require_role(request[keys.AGENT], "therapist", *STAFF, users=True)
    only_params(request)
    info = await visible_session(request)
    return _json(await _detail_with_risk(request, info))


async def set_state(request: web.Request) -> web.Response:
    require_role(request[keys.AGENT], "therapist", *STAFF)
    only_params(request)
    body = decode_body(StateRequest, await read_body(request))
    info = await visible_session(request)
    store: SessionStore = request.app[keys.STORE]
    try:
        updated = await asyncio.to_thread(store.set_session_state, info.session_id, body.state, request.app[keys.CLOCK](), body.reason)
    except SessionStoreError as error:
        raise _store_error(error) from None
    if updated is None:
        raise ApiError(404, "not_found", "no such session")
    return _json(await _detail_with_risk(request, updated))


async def _detail_with_risk(request: web.Request, info: SessionInfo) -> SessionDetail:
    store: SessionRiskStore = request.app[keys.STORE]
    history = await asyncio.to_thread(store.session_history, info.session_id)
    stored = await asyncio.to_thread(store.stored_risk, info.session_id)
    detail = session_detail(info, history)
    if stored is None:
        return detail
    return replace(detail, session=replace(detail.session, risk=risk_out(stored)), risk=risk_detail(stored))


async def agent_sessions(request: web.Request) -> web.Response:
    agent: keys.TokenInfo = request[keys.AGENT]
    require_role(agent, "client", "therapist")
    only_params(request, "hours")
    hours = _int_param(request, "hours", DEFAULT_AGENT_HOURS, 1, MAX_AGENT_HOURS)
    now = request.app[keys.CLOCK]()
    store: SessionStore = request.app[keys.STORE]
    rows = await asyncio.to_thread(store.sessions_for_participant, agent.participant_id, now + hours * 3600, now - AGENT_PAST_S)
    sessions = tuple(
        AgentSession(info.session_id, rfc3339(info.start_at_s), info.planned_duration_s, info.state, role)  # type: ignore[arg-type]
        for info, role in rows
        if role == agent.role  # a token acts for its participant in its own role only
    )
    return _json(AgentSessionList(sessions))


async def import_sessions(request: web.Request) -> web.Response:
    require_role(request[keys.AGENT], *STAFF)
    only_params(request, "tz")
    content_type = request.content_type
    if content_type not in ("text/csv", "application/json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send CSV as text/csv, or JSON {\"format\": \"csv\"|\"ics\", \"data\", \"mapping\"} as application/json",
        )
    try:
        raw = await read_body(request.clone(client_max_size=IMPORT_MAX_BYTES))
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "too_large", f"an import may be at most {IMPORT_MAX_BYTES} bytes") from None
    if content_type == "text/csv":
        tz = request.query.get("tz")
        request_body = ImportRequest("csv", _text(raw), None, tz, None, None)
    else:
        if "tz" in request.query:
            raise ApiError(400, "bad_parameter", "with a JSON body, give tz in the body, not in the query", "tz")
        request_body = decode_body(ImportRequest, raw)
    store: SessionStore = request.app[keys.STORE]
    if request_body.tz is not None:
        zone_param(request_body.tz, imported=True)  # a bad zone is the caller's 400 before any work starts
    if request_body.format == "csv":
        job = ImportJob("csv", request_body.data, request_body.tz)
    else:
        if request_body.mapping is None:
            raise ApiError(400, "invalid_field", "an ICS import needs a mapping of calendar addresses to participants", "mapping")
        try:
            mapping = check_mapping_data(encode(request_body.mapping))
        except CalendarError as error:
            raise ApiError(400, "invalid_field", str(error), "mapping") from None
        now = request.app[keys.CLOCK]()
        window_start, window_end = default_window(now)
        # Both were checked as RFC 3339 by the decoder.
        if request_body.window_start is not None:
            window_start = parse_rfc3339(request_body.window_start).timestamp()
        if request_body.window_end is not None:
            window_end = parse_rfc3339(request_body.window_end).timestamp()
        key = await asyncio.to_thread(store.calendar_key)
        job = ImportJob("ics", request_body.data, request_body.tz, mapping, (window_start, window_end), key)
    parsed = await _parse_in_worker(request.app[IMPORT_SLOTS], job)
    if parsed.errors:
        outcome = ImportOutcome(0, 0, 0, 0, (), 0)
    else:
        outcome = await asyncio.to_thread(store.import_sessions, parsed.rows)
    result = import_result(parsed, outcome)
    if result.error_count:
        body = encode(result)
        assert isinstance(body, dict)
        body["error"] = {
            "code": "invalid_rows",
            "message": f"{result.error_count} row(s) cannot be imported; nothing was stored",
            "field": "data",
        }
        return web.json_response(body, status=400)
    return _json(result)


async def _parse_in_worker(slots: asyncio.Semaphore, job: ImportJob) -> ParsedImport:
    """The import parsed in a process of its own (monitor/calendars/worker.py), never on the
    thread pool that token look-ups use; at most IMPORT_WORKERS at once, more are refused."""
    if slots.locked():
        raise ApiError(429, "import_busy", f"{IMPORT_WORKERS} imports are running already; try again when one has finished")
    async with slots:
        try:
            return await run_import(job)
        except CalendarError as error:
            raise ApiError(400, "invalid_calendar", str(error), "data") from None


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_field", "the CSV is not UTF-8 text", "data") from None


def add_routes(app: web.Application) -> None:
    app[IMPORT_SLOTS] = asyncio.Semaphore(IMPORT_WORKERS)
    app.router.add_post("/api/v1/participants", create_participant)
    app.router.add_get("/api/v1/participants", list_participants)
    app.router.add_post("/api/v1/sessions", create_session)
    app.router.add_get("/api/v1/sessions", list_sessions)
    app.router.add_post("/api/v1/sessions/import", import_sessions)
    # "import" is not a session id: without the exclusion GET would be allowed on the import
    # path too (aiohttp merges the methods of every route that matches a path).
    app.router.add_get("/api/v1/sessions/{session_id:(?!import$)[^/]+}", get_session)
    app.router.add_post("/api/v1/sessions/{session_id:(?!import$)[^/]+}/state", set_state)
    app.router.add_get("/api/v1/agent/sessions", agent_sessions)
