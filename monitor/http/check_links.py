"""Check links over HTTP: staff and a client's therapist make, list and revoke them; the link's
holder reads its facts, submits browser checks and reads its own checks back.

``POST/GET /api/v1/check-links``, ``DELETE /api/v1/check-links/{link_id}`` (it/admin; a
therapist for clients on their caseload), and with ``Authorization: Link <secret>`` only:
``GET /api/v1/link``, ``POST/GET /api/v1/link/checks`` (docs/browser-check.md sections 1, 2, 4).

A link's secret carries 192 random bits and is kept as a SHA-256 hash. Secrets that do not
open an active link (mistyped, unknown, expired, revoked: one answer) are counted per client
address in the store, like wrong logins, with the same progressive wait
(monitor/http/users.py): from one address, five free, then 1 s doubling up to 15 minutes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from aiohttp import web

from agents.config import CheckSection
from agents.probes.udp_stream import StreamSettings
from monitor import keys
from monitor.auth import LinkPrincipal, require_role
from monitor.config import MonitorConfig
from monitor.errors import ApiError, decode_body, id_param, json_error, only_params, read_body
from monitor.http.users import FAILURE_MEMORY_S, failure_wait_s
from monitor.store.check_links import LinkInfo
from monitor.store.core import TokenInfo, hash_token
from monitor.store.protocols import CaseloadStore, CheckLinkStore, CheckStore, SessionStore, UserStore
from monitor.store.sessions import SessionStoreError
from monitor.words import in_own_words
from sessionready import __version__, browser_check, quality, schema, settle
from sessionready.browser_check import BrowserCheck
from sessionready.facts import assess_check
from sessionready.terms import DEFAULT_TTL_HOURS, ID_PATTERN, MAX_TTL_HOURS, MIN_TTL_HOURS, STAFF_ROLES
from sessionready.typed import decode, encode, json_schema, limits, rfc3339

SECRET_PATTERN = r"[A-Za-z0-9_-]{32}"  # secrets.token_urlsafe(24): 192 bits
LINK_ID_PATTERN = r"[0-9a-f]{12}"
CHECKS_PER_HOUR = 12
MAX_LINK_CHECKS = 50  # GET /api/v1/link/checks: the newest
INVALID_LINK_MESSAGE = "this check link is not valid: it may be mistyped, expired or revoked"

log = logging.getLogger("sessionready.monitor")


# --- what each part touches in the store ------------------------------------------------------


class LinkMakingStore(CheckLinkStore, SessionStore, Protocol):
    """A new link, tied to a session only if it is the client's (the API and the CLI)."""


class StaffLinksStore(CheckLinkStore, CaseloadStore, Protocol):
    """Links listed and revoked by staff and therapists: a therapist reaches their caseload only."""


class StaffLinkMakingStore(LinkMakingStore, CaseloadStore, Protocol):
    """A link made through the API: the caseload decides whom a therapist may make one for."""


class LinkLookupStore(CheckLinkStore, UserStore, Protocol):
    """A secret looked up; one that opens nothing is counted with the failed logins."""


class LinkCheckStore(CheckLinkStore, CheckStore, Protocol):
    """A check run through a link: the link's hourly budget, then the check itself."""


# --- wire shapes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkCreate:
    """A new check link for a client participant; ``session_id`` ties its checks to a session."""

    participant_id: str = field(metadata=limits(pattern=ID_PATTERN, doc="a registered client's pseudonymous id"))
    session_id: str | None = field(default=None, metadata=limits(pattern=ID_PATTERN))
    ttl_hours: int = field(default=DEFAULT_TTL_HOURS, metadata=limits(ge=MIN_TTL_HOURS, le=MAX_TTL_HOURS))


@dataclass(frozen=True)
class LinkCreated:
    """The new link; ``secret`` (and the ``url`` made of it) is shown only in this answer."""

    link_id: str
    url: str = field(metadata=limits(doc="the page's path on the monitor: /c/<secret>"))
    secret: str
    participant_id: str
    session_id: str | None
    expires_at: str = field(metadata=limits(timestamp=True))


@dataclass(frozen=True)
class LinkOut:
    """A link's record, never its secret. state: active, expired or revoked; checks: how many
    checks were made through it."""

    link_id: str
    participant_id: str
    session_id: str | None
    state: str
    created_at: str = field(metadata=limits(timestamp=True))
    expires_at: str = field(metadata=limits(timestamp=True))
    revoked_at: str | None = field(metadata=limits(timestamp=True))
    last_used_at: str | None = field(metadata=limits(timestamp=True))
    checks: int


@dataclass(frozen=True)
class LinkList:
    links: tuple[LinkOut, ...]  # oldest first


@dataclass(frozen=True)
class LinkSettings:
    """How the page measures: the command-line check's defaults, so both measure alike.
    ``adaptive``: the monitor ends the idle phase once settled, between ``udp_min_seconds`` and
    ``udp_max_seconds``, and each throughput phase between ``load_min_seconds`` and
    ``load_max_seconds`` (all null when fixed); else they run ``udp_seconds`` and ``load_seconds``."""

    udp_seconds: float
    load_seconds: float
    ramp_seconds: float
    streams: int
    packet_interval_ms: float
    packet_bytes: int
    adaptive: bool = False
    udp_min_seconds: float | None = None
    udp_max_seconds: float | None = None
    load_min_seconds: float | None = None
    load_max_seconds: float | None = None


@dataclass(frozen=True)
class RtcAvailability:
    available: bool  # whether this monitor runs the WebRTC probe stream


@dataclass(frozen=True)
class LinkFacts:
    """``GET /api/v1/link``: what the page needs to run the check."""

    link_id: str
    expires_at: str = field(metadata=limits(timestamp=True))
    session_start: str | None = field(metadata=limits(timestamp=True))
    settings: LinkSettings
    rtc: RtcAvailability


@dataclass(frozen=True)
class LinkCheck:
    """A check made through the link, in the monitor's words."""

    check_id: str
    received_at: str = field(metadata=limits(timestamp=True))
    report: schema.CheckReport


@dataclass(frozen=True)
class LinkCheckList:
    checks: tuple[LinkCheck, ...]  # newest first


def link_settings(config: MonitorConfig) -> LinkSettings:
    """The page's phases as ``[monitor] link_udp_seconds``/``link_load_seconds`` set them; the rest
    as the command-line check (a short load phase keeps at least half of itself after the ramp)."""
    check, stream = CheckSection(), StreamSettings()
    load_s = config.link_load_seconds
    limits, loads = link_idle_limits(config), link_load_limits(config)
    # As the CLI: a short load phase keeps at least half of its shortest length after the ramp.
    shortest_load = load_s if loads is None else loads.min_s
    return LinkSettings(
        config.link_udp_seconds, load_s, min(check.ramp_seconds, shortest_load / 2), check.streams, stream.interval_ms, stream.packet_bytes,
        adaptive=limits is not None,
        udp_min_seconds=None if limits is None else limits.min_s,
        udp_max_seconds=None if limits is None else limits.max_s,
        load_min_seconds=None if loads is None else loads.min_s,
        load_max_seconds=None if loads is None else loads.max_s,
    )  # fmt: skip


def link_idle_limits(config: MonitorConfig) -> settle.PhaseLimits | None:
    """The browser check's idle phase limits when the monitor ends it once settled (None: fixed)."""
    return settle.PhaseLimits(config.link_udp_min_seconds, config.link_udp_max_seconds) if config.link_adaptive else None


def link_load_limits(config: MonitorConfig) -> settle.PhaseLimits | None:
    """The browser check's download and upload limits when the monitor ends them once settled."""
    return settle.PhaseLimits(config.link_load_min_seconds, config.link_load_max_seconds) if config.link_adaptive else None


# --- making links (the API and the CLI) ----------------------------------------------------


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def create_link(store: LinkMakingStore, participant_id: str, session_id: str | None, ttl_hours: int) -> tuple[LinkInfo, str]:
    """A new link (its secret returned once, here; the store keeps its hash). SessionStoreError
    when the participant is not a registered client or the session is not one of theirs that
    is still to happen."""
    if not MIN_TTL_HOURS <= ttl_hours <= MAX_TTL_HOURS:
        raise ValueError(f"the lifetime must be {MIN_TTL_HOURS} to {MAX_TTL_HOURS} hours")
    if session_id is not None:
        session = store.get_session(session_id)
        if session is None or session.client_id != participant_id or session.state == "cancelled":
            raise SessionStoreError("invalid_session", "the session must be this client's, and not cancelled", "session_id")
    secret = new_secret()
    return store.create_check_link(hash_token(secret), participant_id, session_id, ttl_hours * 3600.0), secret


def link_out(info: LinkInfo, now: float) -> LinkOut:
    assert info.checks is not None, "a link is listed from a counting read (list_check_links, get_check_link)"
    return LinkOut(
        link_id=info.link_id,
        participant_id=info.participant_id,
        session_id=info.session_id,
        state=info.state(now),
        created_at=rfc3339(info.created_at),
        expires_at=rfc3339(info.expires_at),
        revoked_at=None if info.revoked_at is None else rfc3339(info.revoked_at),
        last_used_at=None if info.last_used_at is None else rfc3339(info.last_used_at),
        checks=info.checks,
    )


# --- the link holder's credential ----------------------------------------------------------


def client_address(request: web.Request) -> str:
    """Whom a link lookup is counted against: the peer, or behind a TLS proxy that the probe
    keys already trust (``probe_key_binding = "forwarded"``) the address it forwards."""
    if request.app[keys.CONFIG].probe_key_binding == "forwarded":
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return request.remote or "unknown"


def _failure_key(address: str) -> str:
    # Kept in the login failures table (the store, so monitors sharing it count together),
    # under a key no username+address pair hashes to.
    return hashlib.sha256(f"check-link\n{address}".encode()).hexdigest()


@dataclass(frozen=True)
class Refusal:
    """A lookup that opened no active link: the JSON answer to give, and whether the secret
    was ever a link's (an expired or revoked one), which only the page's status tells."""

    response: web.Response
    was_link: bool = False


async def lookup(request: web.Request, secret: str) -> LinkInfo | Refusal:
    """The active link ``secret`` opens, or a refusal: 429 while this address waits after
    failed lookups, 401 for a secret that opens no active link (counted when it never opened one)."""
    store: LinkLookupStore = request.app[keys.STORE]
    failure_key = _failure_key(client_address(request))
    failures, since_s = await asyncio.to_thread(store.login_failures, failure_key, FAILURE_MEMORY_S)
    wait_s = failure_wait_s(failures) - since_s
    if wait_s > 0:
        retry = str(math.ceil(wait_s))
        return Refusal(json_error(429, "rate_limited", f"too many invalid check links from this address; wait {retry} s and try again", headers={"Retry-After": retry}))
    link = await asyncio.to_thread(store.check_link_by_secret, hash_token(secret)) if re.fullmatch(SECRET_PATTERN, secret) else None
    now = request.app[keys.CLOCK]()
    if link is None or link.state(now) != "active":
        if link is None:
            # Only secrets that never opened a link are guesses. An expired or revoked link's
            # secret is a real one (a page left open, an old reminder): counting it would let
            # one old tab slow every link on a clinic's shared address.
            await asyncio.to_thread(store.record_login_failure, failure_key, None, FAILURE_MEMORY_S)
        log.info("check link refused", extra={"fields": {"reason": "unknown" if link is None else link.state(now), "link_id": link.link_id if link else None}})
        return Refusal(json_error(401, "invalid_link", INVALID_LINK_MESSAGE, headers={"WWW-Authenticate": 'Link realm="sessionready"'}), link is not None)
    if link.last_used_at is None or now - link.last_used_at > 60:
        await asyncio.to_thread(store.touch_check_link, link.link_id)
    return link


async def authenticate(request: web.Request, secret: str) -> LinkPrincipal | web.Response:
    """The auth middleware's lookup of ``Authorization: Link <secret>`` (monitor/auth.py)."""
    found = await lookup(request, secret)
    if isinstance(found, Refusal):
        return found.response
    return LinkPrincipal(found.link_id, found.participant_id, found.session_id, found.expires_at)


def _link_of(request: web.Request) -> LinkPrincipal:
    principal = request[keys.AGENT]
    if not isinstance(principal, LinkPrincipal):
        raise ApiError(403, "forbidden", "only a check link may do this (Authorization: Link <secret>)")
    return principal


# --- staff and therapists: make, list, revoke -------------------------------------------------


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/check-links", create)
    app.router.add_get("/api/v1/check-links", list_links)
    app.router.add_delete("/api/v1/check-links/{link_id}", revoke)
    app.router.add_get("/api/v1/link", link_facts)
    app.router.add_post("/api/v1/link/checks", submit_check)
    app.router.add_get("/api/v1/link/checks", link_checks)


def _is_therapist(principal: object) -> bool:
    return getattr(principal, "role", None) == "therapist"


async def _therapist_may(store: CaseloadStore, principal: Any, participant_id: str) -> bool:
    return principal.role in STAFF_ROLES or await asyncio.to_thread(store.on_caseload, principal.participant_id, participant_id)


async def create(request: web.Request) -> web.Response:
    principal = request[keys.AGENT]
    require_role(principal, "therapist", *STAFF_ROLES, users=True)
    only_params(request)
    wanted = decode_body(LinkCreate, await read_body(request))
    store: StaffLinkMakingStore = request.app[keys.STORE]
    if not await _therapist_may(store, principal, wanted.participant_id):
        # The same answer for an unknown id, a therapist and another therapist's client.
        raise ApiError(403, "not_on_caseload", "a therapist makes check links only for clients on their caseload", "participant_id")
    if _is_therapist(principal) and wanted.session_id is not None:
        session = await asyncio.to_thread(store.get_session, wanted.session_id)
        if session is None or session.therapist_id != principal.participant_id:
            raise ApiError(400, "invalid_session", "the session must be one of yours with this client, and not cancelled", "session_id")
    try:
        info, secret = await asyncio.to_thread(create_link, store, wanted.participant_id, wanted.session_id, wanted.ttl_hours)
    except SessionStoreError as error:
        raise ApiError(400, error.code, error.message, error.field) from None
    log.info("check link created", extra={"fields": {"link_id": info.link_id, "participant_id": info.participant_id, "by_role": principal.role}})
    answer = LinkCreated(info.link_id, f"/c/{secret}", secret, info.participant_id, info.session_id, rfc3339(info.expires_at))
    return web.json_response(encode(answer), status=201, headers={"Cache-Control": "no-store"})


async def list_links(request: web.Request) -> web.Response:
    principal = request[keys.AGENT]
    require_role(principal, "therapist", *STAFF_ROLES, users=True)
    only_params(request, "participant_id")
    participant = id_param(request.query.get("participant_id"), "participant_id")
    store: StaffLinksStore = request.app[keys.STORE]
    wanted: set[str] | None = None if participant is None else {participant}
    if _is_therapist(principal):
        caseload = {entry.client_id for entry in await asyncio.to_thread(store.caseload, principal.participant_id)}
        if participant is not None and participant not in caseload:
            raise ApiError(403, "not_on_caseload", "a therapist sees check links only of clients on their caseload", "participant_id")
        wanted = caseload if participant is None else wanted
    links = await asyncio.to_thread(store.list_check_links, wanted)
    now = request.app[keys.CLOCK]()
    return web.json_response(encode(LinkList(tuple(link_out(link, now) for link in links))))


async def revoke(request: web.Request) -> web.Response:
    principal = request[keys.AGENT]
    require_role(principal, "therapist", *STAFF_ROLES, users=True)
    only_params(request)
    link_id = request.match_info["link_id"]
    if not re.fullmatch(LINK_ID_PATTERN, link_id):
        raise ApiError(400, "bad_parameter", "a link id is 12 lowercase hex characters", "link_id")
    store: StaffLinksStore = request.app[keys.STORE]
    link = await asyncio.to_thread(store.get_check_link, link_id)
    if link is None or not await _therapist_may(store, principal, link.participant_id):
        raise ApiError(404, "not_found", "no such check link")
    if await asyncio.to_thread(store.revoke_check_link, link_id):
        log.info("check link revoked", extra={"fields": {"link_id": link_id, "by_role": principal.role}})
    return web.Response(status=204)


# --- the link's holder ----------------------------------------------------------------------


async def link_facts(request: web.Request) -> web.Response:
    link = _link_of(request)
    only_params(request)
    session_start = None
    if link.session_id is not None:
        store: SessionStore = request.app[keys.STORE]
        session = await asyncio.to_thread(store.get_session, link.session_id)
        session_start = None if session is None else rfc3339(session.start_at_s)
    facts = LinkFacts(link.link_id, rfc3339(link.expires_at), session_start, link_settings(request.app[keys.CONFIG]), RtcAvailability(keys.RTC in request.app))
    return web.json_response(encode(facts), headers={"Cache-Control": "no-store"})


async def link_checks(request: web.Request) -> web.Response:
    link = _link_of(request)
    only_params(request)
    # A link's checks are stored as its own agent's (its link id is the agent id).
    store: CheckStore = request.app[keys.STORE]
    checks = await asyncio.to_thread(store.checks_for_agent, link.link_id, MAX_LINK_CHECKS)
    items = [{"check_id": c.check_id, "received_at": rfc3339(c.received_at), "report": c.report} for c in checks]
    return web.json_response({"checks": items}, headers={"Cache-Control": "no-store"})


async def submit_check(request: web.Request) -> web.Response:
    link = _link_of(request)
    only_params(request)
    app = request.app
    store: LinkCheckStore = app[keys.STORE]
    metrics = app[keys.METRICS]
    started = time.perf_counter()
    now = app[keys.CLOCK]()
    recent = await asyncio.to_thread(store.link_check_times, link.link_id, CHECKS_PER_HOUR)
    if len(recent) >= CHECKS_PER_HOUR and now - recent[-1] < 3600:
        retry = str(max(1, math.ceil(3600 - (now - recent[-1]))))
        raise _TooManyChecks(retry)
    try:
        posted = decode_body(BrowserCheck, await read_body(request))
        if problem := browser_check.consistency_problem(posted):
            raise ApiError(400, "invalid_field", problem[1], problem[0])
    except ApiError:
        metrics.ingest.labels("rejected").inc()
        raise
    report = await _report(app, link, posted)
    received_at = app[keys.CLOCK]()
    agent = TokenInfo(link.link_id, "client", link.participant_id, received_at, None)
    stored = await asyncio.to_thread(store.add_check, agent, report, json.dumps(encode(report), separators=(",", ":")), received_at)
    if not stored:  # a fresh uuid4 is never taken: this would be a bug, not a client's mistake
        raise RuntimeError("a new check id was already stored")
    metrics.ingest.labels("accepted").inc()
    metrics.ingest_seconds.observe(time.perf_counter() - started)
    log.info("browser check stored", extra={"fields": {"link_id": link.link_id, "check_id": report.check_id, "verdict": report.verdict}})
    answer = LinkCheck(report.check_id, rfc3339(received_at), report)
    return web.json_response(encode(answer), status=201, headers={"Cache-Control": "no-store"})


class _TooManyChecks(ApiError):
    def __init__(self, retry_after: str) -> None:
        super().__init__(429, "rate_limited", f"a check link runs at most {CHECKS_PER_HOUR} checks an hour; try again in {retry_after} s")
        self.retry_after = retry_after

    def response(self) -> web.Response:
        response = json_error(self.status, self.code, self.message, headers={"Retry-After": self.retry_after})
        response.force_close()  # the body is not worth reading
        return response


async def _network(app: web.Application, link: LinkPrincipal, posted: BrowserCheck) -> tuple[schema.Network, tuple[schema.PhaseRun, ...] | None]:
    """From the monitor's records of the link's probe stream, with how its phases ran; without
    them (no WebRTC here, or a stream the monitor does not know for this link) the stream did
    not run: rtc_failed, and no phases."""
    page = posted.throughput
    if posted.rtc is None:
        assert posted.rtc_error is not None  # consistency_problem saw to it
        return browser_check.no_stream_network(posted.rtc_error, 0, page), None
    records = posted.rtc
    streams = app.get(keys.RTC)
    network = phases = None
    if streams is not None:
        spans = {"idle": records.phases.idle, "download": records.phases.download, "upload": records.phases.upload}
        network = await asyncio.to_thread(streams.network_for, records.rtc_id, link.link_id, records.sent, list(records.echoes), spans)
        if network is not None:  # only this link's own stream: an id of another link's ends nothing
            # A direction the page measured no rate for failed, whatever ended its phase.
            failed = [name for name, rate in (("download", page.down_mbps), ("upload", page.up_mbps)) if rate is None]
            phases = streams.phases_for(records.rtc_id, link.link_id, spans, failed)
            streams.close(records.rtc_id)
    if network is None:
        return browser_check.no_stream_network("rtc_failed", records.sent, page), None
    # Throughput is the page's own measurement; the stream gives delay, loss and jitter.
    return replace(network, throughput_mbps=schema.Throughput(down=page.down_mbps, up=page.up_mbps), throughput_error=page.error), phases


async def _report(app: web.Application, link: LinkPrincipal, posted: BrowserCheck) -> schema.CheckReport:
    network, phases = await _network(app, link, posted)
    machine = browser_check.machine(posted.device) if posted.device is not None else None
    room = browser_check.room(posted.room) if posted.room is not None else None
    # The same model and thresholds as every check; judged once, here (in_own_words reuses it).
    assessment = assess_check(network, machine, room, quality.Thresholds(), posted.devices)
    if extra := settle.borderline_of_phases(phases):
        # A figure the idle phase could not settle by its longest: said so, as the CLI says it.
        reasons = sorted([*assessment.reasons, *extra], key=lambda r: quality.SEVERITIES.index(r.severity))
        assessment = replace(assessment, reasons=tuple(reasons), verdict=quality.verdict_from_reasons(reasons))
    settings = link_settings(app[keys.CONFIG])
    report = schema.CheckReport(
        schema_version=1,
        check_id=uuid.uuid4().hex,
        started_at=posted.started_at,
        duration_s=posted.duration_s,
        session_id=link.session_id,
        agent=schema.Agent(version=__version__, os="other"),
        verdict=assessment.verdict,  # type: ignore[arg-type]
        reasons=tuple(schema.Reason(r.code, r.severity, r.message, r.fix) for r in assessment.reasons),  # type: ignore[arg-type]
        network=network,
        targets=(),
        speedtest=None,
        quality=schema.Quality(
            r_factor=None if assessment.r_factor is None else round(assessment.r_factor, 1),
            mos=None if assessment.mos is None else round(assessment.mos, 2),
            video_tier=assessment.video_tier,
        ),
        settings=schema.CheckSettings(
            # As the CLI's report: an adaptive throughput phase's length is its maximum.
            udp_seconds=settings.udp_seconds,
            load_seconds=settings.load_max_seconds if settings.load_max_seconds is not None else settings.load_seconds,
            ramp_seconds=settings.ramp_seconds,
            packet_interval_ms=settings.packet_interval_ms,
            packet_bytes=settings.packet_bytes,
            streams=settings.streams,
            adaptive=settings.adaptive,
        ),
        machine=machine,
        room=room,
        source="browser",
        browser=browser_check.browser_label(posted.browser),
        devices=posted.devices,
        phases=phases,
    )
    # Through the wire schema once more: what is stored obeys every limit an agent's report
    # must (the network part came from another module), and then in the monitor's own words.
    return in_own_words(decode(schema.CheckReport, encode(report)), judged=assessment)


# --- OpenAPI ----------------------------------------------------------------------------------


def openapi_paths(components: dict[str, Any]) -> dict[str, Any]:
    """This module's part of the OpenAPI document (monitor/openapi.py)."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

    def answer(cls: type, description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": json_schema(cls, components)}}}

    link_only = {"security": [{"link": []}]}
    not_link = {"403": {**error, "description": "Only a check link (Authorization: Link <secret>)."}}
    invalid = {
        "401": {**error, "description": "No valid check link: mistyped, unknown, expired or revoked (one answer)."},
        "429": {**error, "description": "Too many invalid check links from this address (Retry-After)."},
    }
    staff_or_therapist = {"403": {**error, "description": "Only it and admin, or a therapist for a client on their caseload."}}
    return {
        "/api/v1/check-links": {
            "post": {
                "summary": "Make a check link for a client (it/admin; a therapist for a client on their caseload); the secret is shown only here",
                "requestBody": {"required": True, "content": {"application/json": {"schema": json_schema(LinkCreate, components)}}},
                "responses": {
                    "201": answer(LinkCreated, "Made"),
                    "400": {**error, "description": "Malformed request, not a registered client, or not a session of this client's."},
                    "413": {**error, "description": "Body too large."},
                    **staff_or_therapist,
                },
            },
            "get": {
                "summary": "Check links (never their secrets): all or one client's (it/admin); a therapist's caseload clients'",
                "parameters": [{"name": "participant_id", "in": "query", "required": False, "schema": {"type": "string", "pattern": f"^{ID_PATTERN}$"}}],
                "responses": {"200": answer(LinkList, "Links"), "400": {**error, "description": "A malformed or unknown query parameter."}, **staff_or_therapist},
            },
        },
        "/api/v1/check-links/{link_id}": {
            "delete": {
                "summary": "Revoke a check link at once (it/admin; a therapist for a client on their caseload)",
                "parameters": [{"name": "link_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^{LINK_ID_PATTERN}$"}}],
                "responses": {
                    "204": {"description": "Revoked (or already)"},
                    "400": {**error, "description": "Not a link id."},
                    "404": {**error, "description": "No such link (or not yours)."},
                    **staff_or_therapist,
                },
            }
        },
        "/api/v1/link": {
            "get": {**link_only, "summary": "The check link's own facts and how to measure", "responses": {"200": answer(LinkFacts, "The link"), **invalid, **not_link}}
        },
        "/api/v1/link/checks": {
            "post": {
                **link_only,
                "summary": "Submit a browser check; stored as a check of the link's client, judged by the same quality model",
                "requestBody": {"required": True, "content": {"application/json": {"schema": json_schema(BrowserCheck, components)}}},
                "responses": {
                    "201": answer(LinkCheck, "Stored; the check in the monitor's words"),
                    "400": {**error, "description": "Malformed check; the error names the field. Nothing is stored."},
                    "413": {**error, "description": "Body too large."},
                    **invalid,
                    **not_link,
                },
            },
            "get": {**link_only, "summary": "The checks made through this link, newest first", "responses": {"200": answer(LinkCheckList, "Checks"), **invalid, **not_link}},
        },
    }
