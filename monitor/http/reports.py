"""Handlers for the agents' spooled reports: batch ingest, samples read-back, agent status.

The protocol (docs/reports.md): an agent posts ``{"spool": SpoolStatus, "reports": [...]}``
with up to ``MAX_BATCH`` envelopes, oldest first. The outer object is validated strictly;
each envelope on its own, so one bad report cannot block the ones behind it in the agent's
spool. Every answer per report is final: stored, duplicate or rejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from aiohttp import web

from monitor import keys
from monitor.auth import require_role
from monitor.errors import ApiError, only_params, parse_json, read_body
from monitor.report_writer import ReportWriter
from monitor.risk.engine import agent_online
from monitor.store.protocols import ReportStore, TokenStore
from monitor.store.reports import AgentStatus, ReportBatch, StoredSample
from monitor.words import plain_report
from sessionready.schema import MAX_BATCH, ReportEnvelope, ReportResult, Sample, SpoolStatus
from sessionready.terms import ID_PATTERN, PARTICIPANT_ROLES
from sessionready.typed import SchemaError, decode, encode

KINDS = ("background", "live", "check")
RESULTS = ("stored", "duplicate", "rejected")
DEFAULT_SAMPLES_WINDOW_S = 3600.0
MAX_SAMPLES = 5000
MAX_SINCE = 1e11  # unix seconds, the year 5138
WRITER = web.AppKey("report_writer", ReportWriter)  # ingest's group commit (monitor/report_writer.py)


class AgentSamplesStore(ReportStore, TokenStore, Protocol):
    """An agent's samples, read by its participant's other machines (the tokens say whose)."""


@dataclass(frozen=True)
class ReportBatchAnswer:
    """One result per report, in the order of the request."""

    results: tuple[ReportResult, ...]


@dataclass(frozen=True)
class SampleRecord:
    """A stored sample as read back; ``received_at`` is the monitor's clock (unix seconds)."""

    report_id: str
    seq: int
    kind: Literal["background", "live"]
    received_at: float
    sample: Sample


@dataclass(frozen=True)
class SampleList:
    agent_id: str
    samples: tuple[SampleRecord, ...]


@dataclass(frozen=True)
class AgentListing:
    """An agent (a client or therapist token) and what its latest batch said.
    ``last_seen``: its last contact, a batch or a check. ``online``: that was at most 5 minutes
    ago, the risk engine's rule for an end (``agent_online``). ``spool``: the agent's own
    counts (cumulative since its spool was created); null before its first batch."""

    agent_id: str
    role: Literal["client", "therapist"]
    participant_id: str
    created_at: float
    revoked: bool
    last_seen: float | None
    online: bool
    last_seq: int | None
    version: str | None
    os: str | None
    link_type: str | None
    spool: SpoolStatus | None


@dataclass(frozen=True)
class AgentList:
    agents: tuple[AgentListing, ...]


async def writer_context(app: web.Application) -> AsyncIterator[None]:
    """Ingest's writer task, for the application's lifetime: at the end it writes what is queued."""
    store: ReportStore = app[keys.STORE]
    writer = ReportWriter(store, registry=app[keys.METRICS].registry)
    app[WRITER] = writer
    task = asyncio.create_task(writer.run(), name="report-writer")
    yield
    writer.close()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/reports", post_reports)
    app.router.add_get("/api/v1/agents", list_agents)
    app.router.add_get("/api/v1/agents/{agent_id}/samples", agent_samples)


def parse_batch(data: object) -> tuple[SpoolStatus, list[object]]:
    """The outer object, strictly; the reports stay raw. ApiError 400 names the field."""
    if not isinstance(data, Mapping):
        raise ApiError(400, "invalid_field", "expected an object with 'spool' and 'reports'")
    for key in data:
        if key not in ("spool", "reports"):
            raise ApiError(400, "invalid_field", "unknown field", str(key))
    for key in ("spool", "reports"):
        if key not in data:
            raise ApiError(400, "invalid_field", "missing required field", key)
    try:
        spool = decode(SpoolStatus, data["spool"], "spool")
    except SchemaError as error:
        raise ApiError(400, "invalid_field", error.message, error.path) from None
    reports = data["reports"]
    if not isinstance(reports, list):
        raise ApiError(400, "invalid_field", "expected an array of reports", "reports")
    if len(reports) > MAX_BATCH:
        raise ApiError(400, "invalid_field", f"at most {MAX_BATCH} reports per batch, got {len(reports)}", "reports")
    return spool, reports


def decode_report(raw: object) -> ReportEnvelope | str:
    """A valid envelope, or why it is not one (a field path and a reason)."""
    try:
        envelope = decode(ReportEnvelope, raw)
    except SchemaError as error:
        return str(error)
    except RecursionError:
        return "the report is nested too deeply"
    if envelope.kind == "check":
        if envelope.check is None or envelope.sample is not None:
            return "kind: a check report carries 'check' and no 'sample'"
        if envelope.check.check_id != envelope.report_id:
            return "report_id: a check's report_id must equal its check_id"
    elif envelope.sample is None or envelope.check is not None:
        return "kind: a sample report carries 'sample' and no 'check'"
    return plain_report(envelope)


def _raw_field(raw: object, name: str, allowed: tuple[str, ...] | None = None) -> str | None:
    value = raw.get(name) if isinstance(raw, Mapping) else None
    if not isinstance(value, str) or (allowed is not None and value not in allowed):
        return None
    return value[:64]


async def post_reports(request: web.Request) -> web.Response:
    agent: keys.TokenInfo = request[keys.AGENT]
    require_role(agent, "client", "therapist")
    spool, raw_reports = parse_batch(parse_json(await read_body(request)))
    decoded = [decode_report(raw) for raw in raw_reports]
    valid = [d for d in decoded if isinstance(d, ReportEnvelope)]
    # Stored in the writer's next commit, together with other agents' reports arriving meanwhile;
    # answered only once that commit succeeded (a failed one raises StoreUnavailable: 503).
    outcomes = iter(await request.app[WRITER].add(ReportBatch(agent, valid, spool, request.app[keys.CLOCK]())))
    counter = request.app[keys.METRICS].reports
    results: list[ReportResult] = []
    for raw, item in zip(raw_reports, decoded):
        if isinstance(item, str):
            result = ReportResult(_raw_field(raw, "report_id") or "", "rejected", item[:400])
            kind = _raw_field(raw, "kind", KINDS) or "unknown"
        else:
            outcome = next(outcomes)
            kind = item.kind
            if outcome is None:
                # A random 128-bit id is never reused by chance: another agent holds this one.
                result = ReportResult(item.report_id, "rejected", "report_id: this id belongs to another agent's report")
            else:
                result = ReportResult(item.report_id, "stored" if outcome else "duplicate")
        counter.labels(kind, result.status).inc()
        results.append(result)
    return web.json_response(encode(ReportBatchAnswer(tuple(results))))


async def agent_samples(request: web.Request) -> web.Response:
    """An agent's samples since a time, oldest first. Agents see their own participant's
    agents (404 for others, the same as for absent ones); it/admin see every agent."""
    agent: keys.TokenInfo = request[keys.AGENT]
    require_role(agent, "client", "therapist", "it", "admin")
    only_params(request, "since", "kind", "limit")
    agent_id = request.match_info["agent_id"]
    if not re.fullmatch(ID_PATTERN, agent_id):
        raise ApiError(400, "bad_parameter", "an agent id is letters, digits, '.', '_' or '-'", "agent_id")
    now = request.app[keys.CLOCK]()
    raw_since = request.query.get("since")
    if raw_since is None:
        since = now - DEFAULT_SAMPLES_WINDOW_S
    elif len(raw_since) <= 64 and re.fullmatch(r"[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?", raw_since) and float(raw_since) <= MAX_SINCE:
        since = float(raw_since)
    else:
        raise ApiError(400, "bad_parameter", "'since' must be unix seconds, e.g. 1764000000", "since")
    kind = request.query.get("kind") or None
    if kind not in (None, "background", "live"):
        raise ApiError(400, "bad_parameter", "'kind' must be background or live", "kind")
    raw_limit = request.query.get("limit", "1000")
    if not re.fullmatch(r"[0-9]{1,5}", raw_limit) or not 1 <= int(raw_limit) <= MAX_SAMPLES:
        raise ApiError(400, "bad_parameter", f"'limit' must be a whole number from 1 to {MAX_SAMPLES}", "limit")
    store: AgentSamplesStore = request.app[keys.STORE]
    if agent_id != agent.token_id:
        tokens = await asyncio.to_thread(store.list_tokens)
        owner = next((t for t in tokens if t.token_id == agent_id), None)
        if owner is None or (agent.role in PARTICIPANT_ROLES and owner.participant_id != agent.participant_id):
            raise ApiError(404, "not_found", "no such agent")
    samples = await asyncio.to_thread(store.samples_for_agent, agent_id, since, kind, int(raw_limit))
    return web.json_response({"agent_id": agent_id, "samples": [_sample_json(s) for s in samples]})


def _sample_json(sample: StoredSample) -> dict[str, object]:
    # The stored JSON was validated on the way in; it is passed through, not decoded again.
    return {"report_id": sample.report_id, "seq": sample.seq, "kind": sample.kind, "received_at": sample.received_at, "sample": sample.sample}


async def list_agents(request: web.Request) -> web.Response:
    """Every agent with its last contact and spool numbers (IT staff and admins only)."""
    agent: keys.TokenInfo = request[keys.AGENT]
    require_role(agent, "it", "admin")
    store: ReportStore = request.app[keys.STORE]
    statuses = await asyncio.to_thread(store.agent_statuses)
    now = request.app[keys.CLOCK]()
    return web.json_response(encode(AgentList(tuple(agent_listing(s, now) for s in statuses))))


def agent_listing(status: AgentStatus, now: float) -> AgentListing:
    spool = None
    if status.spool_pending is not None:
        spool = SpoolStatus(status.spool_pending, status.spool_dropped_background or 0, status.spool_rejected or 0, status.spool_dropped_live or 0)
    return AgentListing(
        agent_id=status.agent_id,
        role=status.role,  # type: ignore[arg-type]
        participant_id=status.participant_id,
        created_at=status.created_at,
        revoked=status.revoked_at is not None,
        last_seen=status.last_seen,
        online=agent_online(status.last_seen, now),
        last_seq=status.last_seq,
        version=status.version,
        os=status.os,
        link_type=status.link_type,
        spool=spool,
    )
