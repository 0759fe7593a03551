"""``GET /api/v1/trends``: daily network percentiles, weekly session risk, a weekday × hour heat
map and the agents and networks with the most trouble, for IT staff (docs/trends.md).

All counting happens in SQL over the hourly rollups (monitor/store/trends.py) and over
sessions grouped by quarter hour; Python only folds at most a few thousand pre-aggregated
rows into the viewer's calendar days and reads percentiles off merged histograms.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Literal, Protocol

from aiohttp import web

from monitor import keys
from monitor.auth import require_role
from monitor.calendars.imports import day_bounds
from monitor.errors import ApiError, id_param, only_params
from monitor.http.sessions import zone_param
from monitor.store.protocols import SummaryStore, TrendStore
from monitor.store.summaries import WarningRow
from monitor.store.trends import JITTER, LOSS, MOS, RTT, HistogramSpec, RollupRow, TrendFilter, percentile
from sessionready.schema import LINK_TYPES, OS_NAMES
from sessionready.terms import ID_PATTERN
from sessionready.typed import encode, json_schema

MAX_DAYS = 90
DEFAULT_DAYS = 28
TOP = 10
LAST_DAY = date(2999, 12, 31)  # any later and a period's end could overflow the calendar
PARAMS = ("from", "to", "tz", "therapist", "client", "agent", "link_type", "os")


@dataclass(frozen=True)
class DayTrend:
    """One calendar day in the viewer's zone. Percentiles over every sample with network
    numbers (background and live), read off bucket histograms (error: one bucket width, see
    docs/trends.md); null on a day without such samples. Loss is a ratio (0..1)."""

    day: str  # YYYY-MM-DD
    samples: int
    rtt_p50_ms: float | None
    rtt_p95_ms: float | None
    jitter_p50_ms: float | None
    jitter_p95_ms: float | None
    loss_p50: float | None
    loss_p95: float | None
    mos_p50: float | None
    mos_p95: float | None


@dataclass(frozen=True)
class WeekTrend:
    """Sessions (not cancelled) starting in one week (Monday to Sunday, viewer's zone).
    flagged: the risk engine had it at_risk or not_ready at some time before its start;
    degraded_live: it went at risk while live."""

    week_start: str  # the Monday, YYYY-MM-DD
    sessions: int
    flagged: int
    degraded_live: int


@dataclass(frozen=True)
class HeatCell:
    """Sessions starting on a weekday (0 = Monday) at an hour (0-23, viewer's zone)."""

    weekday: int
    hour: int
    sessions: int
    degraded: int  # of those, degraded live


@dataclass(frozen=True)
class AgentTrouble:
    """An agent with trouble in the period. poor_ratio: share of its samples that alone would
    be "not ready" (the quality model's critical thresholds); degraded_sessions: sessions of
    its participant that degraded live; link_type: the one most of its samples came from."""

    agent_id: str
    participant_id: str
    link_type: str
    samples: int
    poor_ratio: float
    loss_mean: float | None
    mos_p50: float | None
    degraded_sessions: int


@dataclass(frozen=True)
class NetworkTrouble:
    """A link type with trouble in the period (same measures as for agents)."""

    link_type: str
    agents: int
    samples: int
    poor_ratio: float
    loss_mean: float | None
    mos_p50: float | None


@dataclass(frozen=True)
class WarningWeek:
    """Sessions that went live in one week (by their start) and have a measured summary.
    flagged: the last rating before they went live was at_risk or not_ready; degraded: the
    summary has a stretch of trouble; flagged_degraded: both. Precision is
    flagged_degraded / flagged, recall flagged_degraded / degraded (docs/summary.md)."""

    week_start: str  # the Monday, YYYY-MM-DD
    sessions: int
    flagged: int
    degraded: int
    flagged_degraded: int


@dataclass(frozen=True)
class WarningEnd:
    """The same for one end: flagged for a reason at this end (or one about both connections
    together); degraded with trouble at this end."""

    end: str  # client | therapist
    sessions: int
    flagged: int
    degraded: int
    flagged_degraded: int


@dataclass(frozen=True)
class WarningCause:
    """flag: sessions flagged for this reason (``sessions``), and of those the ones with trouble
    at that end (``hits``; a reason about the session: at either end). live: sessions with
    trouble of this cause, and of those the ones flagged at that end beforehand."""

    side: Literal["flag", "live"]
    end: str  # client | therapist | session
    cause: str
    sessions: int
    hits: int


@dataclass(frozen=True)
class WarningAccuracy:
    """How well the warnings worked in the period: totals, per week, per end and per cause."""

    sessions: int
    flagged: int
    degraded: int
    flagged_degraded: int
    weeks: tuple[WarningWeek, ...]
    by_end: tuple[WarningEnd, ...]
    by_cause: tuple[WarningCause, ...]  # flag causes first, then live causes; most sessions first


@dataclass(frozen=True)
class TrendsOut:
    """Trends for a period of whole days (``from``..``to`` inclusive) in zone ``tz``."""

    tz: str
    days: tuple[DayTrend, ...]
    weeks: tuple[WeekTrend, ...]
    heatmap: tuple[HeatCell, ...]  # all 7 × 24 cells, Monday 00h first
    worst_agents: tuple[AgentTrouble, ...]  # at most 10, most trouble first
    worst_networks: tuple[NetworkTrouble, ...]  # most trouble first
    warnings: WarningAccuracy


@dataclass(frozen=True)
class TrendQuery:
    first_day: date
    last_day: date
    zone: tzinfo
    zone_name: str
    where: TrendFilter


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/trends", get_trends)


async def get_trends(request: web.Request) -> web.Response:
    require_role(request[keys.AGENT], "it", "admin", users=True)
    only_params(request, *PARAMS)
    query = parse_query(request.query, request.app[keys.CLOCK])
    result = await asyncio.to_thread(build_trends, request.app[keys.STORE], query)
    return web.json_response(encode(result))


def _choice_param(query: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise ApiError(400, "bad_parameter", f"'{name}' must be one of {', '.join(allowed)}", name)
    return value


def _day_param(query: Mapping[str, str], name: str) -> date | None:
    value = query.get(name)
    if value is None:
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ApiError(400, "bad_parameter", f"'{name}' must be a date, YYYY-MM-DD", name)
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"'{name}' is not a real date", name) from None
    if not date(1971, 1, 1) <= day <= LAST_DAY:
        raise ApiError(400, "bad_parameter", f"'{name}' must lie between 1971 and 2999", name)
    return day


def parse_query(query: Mapping[str, str], clock: Callable[[], float]) -> TrendQuery:
    """The request's parameters, validated; ApiError 400 names the first bad one."""
    zone_name = query.get("tz", "UTC")
    if len(zone_name) > 64:
        raise ApiError(400, "bad_parameter", "'tz' is an IANA zone such as Europe/Berlin, or an offset such as +02:00", "tz")
    zone = zone_param(zone_name)
    first, last = _day_param(query, "from"), _day_param(query, "to")
    if last is None:
        last = datetime.fromtimestamp(clock(), zone).date() if first is None else min(first + timedelta(days=DEFAULT_DAYS - 1), LAST_DAY)
    if first is None:
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        raise ApiError(400, "bad_parameter", "'to' must not be before 'from'", "to")
    if (last - first).days + 1 > MAX_DAYS:
        raise ApiError(400, "bad_parameter", f"the period may be at most {MAX_DAYS} days", "to")
    therapist, client, agent = (id_param(query.get(name), name) for name in ("therapist", "client", "agent"))
    where = TrendFilter(
        agent_id=agent,
        participants=tuple(p for p in (therapist, client) if p is not None),
        link_type=_choice_param(query, "link_type", LINK_TYPES),
        os=_choice_param(query, "os", OS_NAMES),
        therapist_id=therapist,
        client_id=client,
    )
    return TrendQuery(first, last, zone, zone_name, where)


class TrendsPageStore(TrendStore, SummaryStore, Protocol):
    """The Trends page: hourly rollups and sessions, and how the summaries judged the warnings."""


def build_trends(store: TrendsPageStore, query: TrendQuery) -> TrendsOut:
    """Everything the Trends page shows, from rollups and sessions (a few SQL queries)."""
    start_s = day_bounds(query.first_day.isoformat(), query.zone)[0]
    end_s = day_bounds(query.last_day.isoformat(), query.zone)[1]
    # An hour counts on the local day in which it starts (zones a fraction of an hour off UTC:
    # docs/trends.md).
    hour_from, hour_to = math.ceil(start_s / 3600), math.ceil(end_s / 3600)
    where = query.where
    known = True
    if where.agent_id is not None:
        # An agent's sessions are its participant's; an unknown agent has none (and no samples).
        participant = store.agent_participant(where.agent_id)
        known = participant is not None
        where = replace(where, session_participant=participant)
    days = store.trend_days(_offset_segments(hour_from, hour_to, query.zone), where)
    agents = store.trend_agents(hour_from, hour_to, where)
    sessions = store.trend_sessions(start_s, end_s, where) if known else []
    degraded = store.degraded_by_participant(start_s, end_s, where) if agents else {}
    return TrendsOut(
        tz=query.zone_name,
        days=_days(query, days),
        weeks=_weeks(query, sessions),
        heatmap=_heatmap(query.zone, sessions),
        worst_agents=_worst_agents(agents, degraded),
        worst_networks=_worst_networks(agents),
        warnings=warning_accuracy(query, store.warning_rows(start_s, end_s, where) if known else []),
    )


def _offset_segments(hour_from: int, hour_to: int, zone: tzinfo) -> list[tuple[int, int, int]]:
    """The UTC hours ``[hour_from, hour_to)`` as runs of one UTC offset in ``zone``:
    ``(first hour, end hour, offset s)``. The store groups hours into local days with them."""
    segments: list[tuple[int, int, int]] = []
    for hour in range(hour_from, hour_to):
        offset = datetime.fromtimestamp(hour * 3600, zone).utcoffset()
        seconds = int(offset.total_seconds()) if offset is not None else 0
        if segments and segments[-1][2] == seconds:
            segments[-1] = (segments[-1][0], hour + 1, seconds)
        else:
            segments.append((hour, hour + 1, seconds))
    return segments


def _days(query: TrendQuery, local_days: list[RollupRow]) -> tuple[DayTrend, ...]:
    epoch = date(1970, 1, 1)
    merged = {epoch + timedelta(days=int(row.key[0])): row.counts for row in local_days}  # type: ignore[call-overload]
    result = []
    day = query.first_day
    while day <= query.last_day:
        counts = merged.get(day)
        row = RollupRow((day,), counts) if counts else None

        def p(spec: HistogramSpec, q: float, row: RollupRow | None = row) -> float | None:
            return None if row is None else _rounded(percentile(row.histogram(spec), spec.edges, q))

        result.append(
            DayTrend(
                day=day.isoformat(),
                samples=int(counts["n"]) if counts else 0,
                rtt_p50_ms=p(RTT, 0.5),
                rtt_p95_ms=p(RTT, 0.95),
                jitter_p50_ms=p(JITTER, 0.5),
                jitter_p95_ms=p(JITTER, 0.95),
                loss_p50=p(LOSS, 0.5),
                loss_p95=p(LOSS, 0.95),
                mos_p50=p(MOS, 0.5),
                mos_p95=p(MOS, 0.95),
            )
        )
        day += timedelta(days=1)
    return tuple(result)


def _rounded(value: float | None) -> float | None:
    # Six significant digits: the buckets are far coarser, and the JSON stays short.
    return None if value is None else float(f"{value:.6g}")


def _local(quarter: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(quarter * 900, zone)


def _weeks(query: TrendQuery, sessions: list) -> tuple[WeekTrend, ...]:
    monday = query.first_day - timedelta(days=query.first_day.weekday())
    weeks: dict[date, list[int]] = {}
    while monday <= query.last_day:
        weeks[monday] = [0, 0, 0]
        monday += timedelta(days=7)
    for bucket in sessions:
        local = _local(bucket.quarter, query.zone).date()
        week = weeks.setdefault(local - timedelta(days=local.weekday()), [0, 0, 0])
        week[0] += bucket.sessions
        week[1] += bucket.flagged
        week[2] += bucket.degraded_live
    return tuple(WeekTrend(w.isoformat(), *counts) for w, counts in sorted(weeks.items()))


def warning_accuracy(query: TrendQuery, rows: list[WarningRow]) -> WarningAccuracy:
    """Precision and recall of the last pre-session rating against what happened live."""
    monday = query.first_day - timedelta(days=query.first_day.weekday())
    weeks: dict[date, list[int]] = {}
    while monday <= query.last_day:
        weeks[monday] = [0, 0, 0, 0]
        monday += timedelta(days=7)
    ends = {end: [0, 0, 0, 0] for end in ("client", "therapist")}
    flag_causes: dict[tuple[str, str], list[int]] = {}
    live_causes: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        flagged = row.rating_state in ("at_risk", "not_ready")
        reasons = [tuple(code.split(":", 1)) for code in row.rating_causes] if flagged else []
        flagged_ends = {end for end, _ in reasons}
        troubled = [tuple(code.split(":", 1)) for code in row.live_causes]
        troubled_ends = {end for end, _ in troubled}
        local = datetime.fromtimestamp(row.start_at, query.zone).date()
        week = weeks.setdefault(local - timedelta(days=local.weekday()), [0, 0, 0, 0])
        for i, counted in enumerate((True, flagged, bool(troubled), flagged and bool(troubled))):
            week[i] += int(counted)
        for end, counts in ends.items():
            at_end = flagged and (end in flagged_ends or "session" in flagged_ends)
            for i, counted in enumerate((True, at_end, end in troubled_ends, at_end and end in troubled_ends)):
                counts[i] += int(counted)
        for end, cause in set(reasons):
            counts = flag_causes.setdefault((end, cause), [0, 0])
            counts[0] += 1
            counts[1] += int(bool(troubled_ends) if end == "session" else end in troubled_ends)
        for end, cause in set(troubled):
            counts = live_causes.setdefault((end, cause), [0, 0])
            counts[0] += 1
            counts[1] += int(flagged and (end in flagged_ends or "session" in flagged_ends))
    totals = [sum(w[i] for w in weeks.values()) for i in range(4)]
    by_cause = [
        WarningCause(side, end, cause, n, hits)  # type: ignore[arg-type]
        for side, table in (("flag", flag_causes), ("live", live_causes))
        for (end, cause), (n, hits) in sorted(table.items(), key=lambda item: (-item[1][0], item[0]))
    ]
    return WarningAccuracy(
        *totals,
        weeks=tuple(WarningWeek(w.isoformat(), *counts) for w, counts in sorted(weeks.items())),
        by_end=tuple(WarningEnd(end, *counts) for end, counts in ends.items()),
        by_cause=tuple(by_cause),
    )


def _heatmap(zone: tzinfo, sessions: list) -> tuple[HeatCell, ...]:
    cells = {(d, h): [0, 0] for d in range(7) for h in range(24)}
    for bucket in sessions:
        local = _local(bucket.quarter, zone)
        cell = cells[(local.weekday(), local.hour)]
        cell[0] += bucket.sessions
        cell[1] += bucket.degraded_live
    return tuple(HeatCell(d, h, *cells[(d, h)]) for d in range(7) for h in range(24))


def _mean(total: float, count: float) -> float | None:
    return _rounded(total / count) if count else None


def _worst_agents(rows: list[RollupRow], degraded: dict[str, int]) -> tuple[AgentTrouble, ...]:
    by_agent: dict[str, list[RollupRow]] = {}
    for row in rows:
        by_agent.setdefault(str(row.key[0]), []).append(row)
    found = []
    for agent_id, parts in by_agent.items():
        total = _sum_rows(parts)
        main_link = max(parts, key=lambda r: (r.counts["n"], str(r.key[2]))).key[2]
        participant = str(parts[0].key[1])
        found.append(
            AgentTrouble(
                agent_id=agent_id,
                participant_id=participant,
                link_type=str(main_link),
                samples=int(total["n"]),
                poor_ratio=_rounded(total["poor"] / total["n"]) or 0.0,
                loss_mean=_mean(total["loss_sum"], total["loss_n"]),
                mos_p50=_rounded(percentile([int(total[c]) for c in MOS.columns], MOS.edges, 0.5)),
                degraded_sessions=degraded.get(participant, 0),
            )
        )
    troubled = [a for a in found if a.poor_ratio > 0 or a.degraded_sessions > 0]
    troubled.sort(key=lambda a: (-a.poor_ratio, -a.degraded_sessions, -(a.loss_mean or 0.0), a.agent_id))
    return tuple(troubled[:TOP])


def _worst_networks(rows: list[RollupRow]) -> tuple[NetworkTrouble, ...]:
    by_link: dict[str, list[RollupRow]] = {}
    for row in rows:
        by_link.setdefault(str(row.key[2]), []).append(row)
    found = []
    for link, parts in by_link.items():
        total = _sum_rows(parts)
        found.append(
            NetworkTrouble(
                link_type=link,
                agents=len({r.key[0] for r in parts}),
                samples=int(total["n"]),
                poor_ratio=_rounded(total["poor"] / total["n"]) or 0.0,
                loss_mean=_mean(total["loss_sum"], total["loss_n"]),
                mos_p50=_rounded(percentile([int(total[c]) for c in MOS.columns], MOS.edges, 0.5)),
            )
        )
    found.sort(key=lambda n: (-n.poor_ratio, -(n.loss_mean or 0.0), n.link_type))
    return tuple(found)


def _sum_rows(rows: list[RollupRow]) -> dict[str, float]:
    total = dict.fromkeys(rows[0].counts, 0.0)
    for row in rows:
        for column, value in row.counts.items():
            total[column] += value
    return total


def openapi_paths(components: dict[str, Any]) -> dict[str, Any]:
    """This module's part of the OpenAPI document (monitor/openapi.py)."""
    error = {"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    answers = {
        "400": {**error, "description": "A bad or unknown parameter; the error names it."},
        "401": {**error, "description": "Missing, invalid or revoked token."},
        "403": {**error, "description": "Only it and admin tokens and logins."},
    }
    day = {"type": "string", "format": "date", "pattern": r"^(19[7-9][0-9]|2[0-9]{3})-[0-9]{2}-[0-9]{2}$"}
    zone = {"type": "string", "maxLength": 64, "pattern": r"^([A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"}
    identifier = {"type": "string", "pattern": f"^{ID_PATTERN}$"}
    parameters = [
        {"name": "from", "in": "query", "required": False, "description": f"first day (YYYY-MM-DD, in tz); default {DEFAULT_DAYS} days before 'to'", "schema": day},
        {"name": "to", "in": "query", "required": False, "description": f"last day, inclusive; default today; at most {MAX_DAYS} days after 'from'", "schema": day},
        {"name": "tz", "in": "query", "required": False, "description": "IANA zone or +HH:MM offset of the days; default UTC", "schema": zone},
        {"name": "therapist", "in": "query", "required": False, "description": "sessions of this therapist; samples of their agents", "schema": identifier},
        {"name": "client", "in": "query", "required": False, "description": "sessions with this client; samples of their agents", "schema": identifier},
        {"name": "agent", "in": "query", "required": False, "description": "samples of this agent; sessions of its participant", "schema": identifier},
        {"name": "link_type", "in": "query", "required": False, "description": "samples on this link type", "schema": {"enum": list(LINK_TYPES)}},
        {"name": "os", "in": "query", "required": False, "description": "samples from agents on this OS", "schema": {"enum": list(OS_NAMES)}},
    ]
    return {
        "/api/v1/trends": {
            "get": {
                "summary": "Daily network percentiles, weekly session risk, a weekday x hour heat map, the agents and networks with most trouble, how well the warnings worked (it/admin)",
                "parameters": parameters,
                "responses": {
                    "200": {"description": "Trends", "content": {"application/json": {"schema": json_schema(TrendsOut, components)}}},
                    **answers,
                },
            }
        }
    }
