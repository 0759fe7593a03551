"""The trends part of the SQLite store (a mixin of ``monitor.store.core.SQLiteStore``): hourly rollups.

Trends over 90 days and hundreds of agents cannot read millions of raw samples per request,
so every sample with network numbers is also counted, at ingest and in the same transaction,
into rollup tables keyed by UTC hour:

- ``trend_agent_hour``: per agent, hour, link type and OS (filters by agent or participant,
  and the ranking of agents);
- ``trend_hour``: per hour, link type and OS over all agents (daily series by link type or OS).
- ``trend_hour_total``: per hour over everything (the unfiltered daily series).

Each row holds a sample count, sums for means and fixed-bucket histograms of RTT (p50),
jitter (the worse direction), loss (the worse direction) and MOS, one integer column per
bucket, so ``SUM()`` over rows merges histograms in SQL. Percentiles come from a merged
histogram, interpolated inside the bucket (``percentile``): the error is at most one bucket
width (docs/trends.md).

Ingest (the samples of one batch) and the one-off backfill (every stored sample) share one
path: SQL assigns each sample its buckets (``_bucket_select``), ``_count`` counts them per
row key and ``_add_counts`` adds the counts to both tables, so the two cannot disagree.

Methods use the store's ``_transaction()`` (a write transaction under the lock),
``_lock``, ``_db`` (sqlite3 connection, autocommit) and ``_clock`` (unix seconds).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from monitor.store.dialect import Dialect
from sessionready.quality import Thresholds


@dataclass(frozen=True)
class HistogramSpec:
    """Bucket ``i`` holds values in ``[edges[i], edges[i+1])``; the last is ``[edges[-1], ∞)``."""

    name: str  # column prefix
    edges: tuple[float, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"{self.name}_b{i:02d}" for i in range(len(self.edges)))


# Log-spaced for times: 4 buckets per doubling (each bucket 19 % wider than the one before),
# with one bucket below the first edge. RTT 1 ms to 2 s, jitter 0.1 ms to 205 ms.
RTT = HistogramSpec("rtt", (0.0, *(2 ** (k / 4) for k in range(45))))
JITTER = HistogramSpec("jit", (0.0, *(0.1 * 2 ** (k / 4) for k in range(45))))
# Loss: "exactly none" gets its own bucket ([0, 1e-9)), then fine steps up to the 3 % that
# the quality model calls critical, coarser above.
LOSS = HistogramSpec(
    "loss",
    (0.0, 1e-9, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5),
)
# MOS 1.0 to 5.0 in steps of 0.1 (edges rounded so 3.6 is 3.6, not 3.6000000000000005).
MOS = HistogramSpec("mos", tuple(round(1.0 + 0.1 * i, 1) for i in range(40)))
HISTOGRAMS = (RTT, JITTER, LOSS, MOS)

def _values(dialect: Dialect) -> dict[str, str]:
    """The value each histogram counts, as SQL over a ``samples`` row. Jitter and loss: the
    worse direction (SQLite's max() of a NULL is NULL, hence the COALESCE; PostgreSQL's
    GREATEST skips NULLs, and gives the same)."""
    return {
        "rtt": "rtt_p50_ms",
        "jit": f"COALESCE({dialect.greatest}(jitter_up_ms, jitter_down_ms), jitter_up_ms, jitter_down_ms)",
        "loss": f"COALESCE({dialect.greatest}(loss_up, loss_down), loss_up, loss_down)",
        "mos": "mos",
    }
# Sums and counts for means, per histogram: ``<name>_n`` and ``<name>_sum``.
SUM_COLUMNS = tuple(c for spec in HISTOGRAMS for c in (f"{spec.name}_n", f"{spec.name}_sum"))
# n: samples; poor: samples that alone would make the quality model's verdict "not ready".
COUNT_COLUMNS = ("n", "poor", *SUM_COLUMNS)
HISTOGRAM_COLUMNS = tuple(c for spec in HISTOGRAMS for c in spec.columns)
ROLLUP_COLUMNS = (*COUNT_COLUMNS, *HISTOGRAM_COLUMNS)
# What ranking agents needs, per agent and UTC day: 90 days of 200 agents are 18 000 narrow
# rows instead of 432 000 wide agent-hour rows (4 s to sum on this project's 2-core machine).
RANK_COLUMNS = ("n", "poor", "loss_n", "loss_sum", "mos_n", "mos_sum", *MOS.columns)
ROLLUP_VERSION = "3"  # bump when buckets change: the next open rebuilds the rollups
REBUILD_CHUNK = 50_000  # samples counted at a time by a rebuild (bounds its memory)


def _poor_condition(values: dict[str, str]) -> str:
    # The quality model's critical thresholds at their defaults (strictly above / below,
    # as there). A configured monitor may use others for verdicts; trends keep one yardstick
    # so that weeks stay comparable.
    t = Thresholds()
    return (
        f"(rtt_p50_ms > {t.rtt_critical_ms!r} OR {values['jit']} > {t.jitter_critical_ms!r}"
        f" OR {values['loss']} > {t.loss_critical_ratio!r} OR mos < {t.mos_critical_below!r})"
    )


def _bucket_sql(value: str, edges: Sequence[float], low: int, high: int) -> str:
    """The bucket index of ``value`` as a balanced CASE tree over ``edges[low..high]`` (about
    log2(n) comparisons a row, not n)."""
    if low == high:
        return str(low)
    middle = (low + high + 1) // 2
    return f"CASE WHEN {value} < {edges[middle]!r} THEN {_bucket_sql(value, edges, low, middle - 1)} ELSE {_bucket_sql(value, edges, middle, high)} END"


@functools.lru_cache(maxsize=128)  # built per commit before: 0.17 ms of ingest's CPU each time
def _bucket_select(where: str, dialect: Dialect) -> str:
    """Per matching sample with network numbers: its keys, its values and their bucket indices.

    Bucket indices are computed here, in SQL, for ingest and backfill alike; counting them
    into rows happens in ``_count`` (a GROUP BY with one COUNT(CASE) per bucket column costs
    SQLite ten times more than the whole rest of ingest)."""
    value_of = _values(dialect)
    buckets = ", ".join(
        f"CASE WHEN {value_of[spec.name]} IS NULL THEN NULL ELSE {_bucket_sql(value_of[spec.name], spec.edges, 0, len(spec.edges) - 1)} END"
        for spec in HISTOGRAMS
    )
    values = ", ".join(value_of[spec.name] for spec in HISTOGRAMS)
    return (
        f"SELECT agent_id, participant_id, {dialect.hour_of('taken_at')},"
        f" COALESCE(link_type, 'unknown'), COALESCE({dialect.json_text('sample', ('agent', 'os'))}, 'other'),"
        f" {_poor_condition(value_of)}, {values}, {buckets} FROM samples"
        f" WHERE has_network = 1 AND COALESCE(rtt_p50_ms, jitter_up_ms, jitter_down_ms, loss_up, loss_down, mos) IS NOT NULL AND ({where})"
    )


# Where each counter sits in a row of ROLLUP_COLUMNS.
_INDEX = {c: i for i, c in enumerate(ROLLUP_COLUMNS)}
_BUCKET_BASE = tuple(_INDEX[spec.columns[0]] for spec in HISTOGRAMS)
_SUM_INDEX = tuple((_INDEX[f"{spec.name}_n"], _INDEX[f"{spec.name}_sum"]) for spec in HISTOGRAMS)


def _count(rows: Sequence[tuple[object, ...]]) -> dict[tuple[object, ...], list[float]]:
    """Rows of ``_bucket_select`` counted per (agent, participant, hour, link, os)."""
    counted: dict[tuple[object, ...], list[float]] = {}
    for row in rows:
        key = row[:5]
        counters = counted.get(key)
        if counters is None:
            counters = counted[key] = [0] * len(ROLLUP_COLUMNS)
        counters[0] += 1
        if row[5]:
            counters[1] += 1
        for h in range(len(HISTOGRAMS)):
            value = row[6 + h]
            if value is not None:
                n_index, sum_index = _SUM_INDEX[h]
                counters[n_index] += 1
                counters[sum_index] += value  # type: ignore[operator]
                counters[_BUCKET_BASE[h] + row[6 + len(HISTOGRAMS) + h]] += 1  # type: ignore[operator]
    return counted


@functools.cache  # four texts, built four times per commit before
def _upsert(table: str, keys: Sequence[str], columns: Sequence[str] = ROLLUP_COLUMNS) -> str:
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns)
    marks = ", ".join("?" for _ in (*keys, *columns))
    conflict = ", ".join(k for k in keys if k != "participant_id")
    return f"INSERT INTO {table} ({', '.join(keys)}, {', '.join(columns)}) VALUES ({marks}) ON CONFLICT ({conflict}) DO UPDATE SET {updates}"


_AGENT_KEYS = ("agent_id", "participant_id", "hour", "link_type", "os")
_HOUR_KEYS = ("hour", "link_type", "os")
_DAY_KEYS = ("agent_id", "participant_id", "day", "link_type", "os")  # day: UTC days since 1970


def _add_counts(db: sqlite3.Connection, counted: dict[tuple[object, ...], list[float]]) -> None:
    """Add counted rows to both rollup tables (the all-agents one is the sum over agents).

    Rows go in key order: two monitors adding to the same shared rows (an hour's totals) then
    lock them in the same order and wait for each other instead of deadlocking (PostgreSQL)."""
    counted = dict(sorted(counted.items(), key=lambda item: _sort_key(item[0])))
    db.executemany(_upsert("trend_agent_hour", _AGENT_KEYS), [(*key, *counters) for key, counters in counted.items()])
    by_hour: dict[tuple[object, ...], list[float]] = {}
    for key, counters in counted.items():
        into = by_hour.setdefault(key[2:], [0] * len(ROLLUP_COLUMNS))
        for i, value in enumerate(counters):
            into[i] += value
    db.executemany(_upsert("trend_hour", _HOUR_KEYS), [(*key, *counters) for key, counters in sorted(by_hour.items(), key=lambda item: _sort_key(item[0]))])
    total: dict[object, list[float]] = {}
    for key, counters in by_hour.items():
        into = total.setdefault(key[0], [0] * len(ROLLUP_COLUMNS))
        for i, value in enumerate(counters):
            into[i] += value
    db.executemany(_upsert("trend_hour_total", ("hour",)), [(hour, *counters) for hour, counters in sorted(total.items(), key=lambda item: int(item[0]))])  # type: ignore[call-overload]
    by_day: dict[tuple[object, ...], list[float]] = {}
    for (agent, participant, hour, link, os_name), counters in counted.items():
        into = by_day.setdefault((agent, participant, hour // 24, link, os_name), [0] * len(RANK_COLUMNS))  # type: ignore[operator]
        for i, column in enumerate(RANK_COLUMNS):
            into[i] += counters[_INDEX[column]]
    db.executemany(
        _upsert("trend_agent_day", _DAY_KEYS, RANK_COLUMNS), [(*key, *counters) for key, counters in sorted(by_day.items(), key=lambda item: _sort_key(item[0]))]
    )


def _sort_key(key: tuple[object, ...]) -> tuple[str, ...]:
    return tuple(f"{part:020d}" if isinstance(part, int) else str(part) for part in key)


def _table(name: str, keys: str, primary: str, counters: Sequence[str] = ROLLUP_COLUMNS) -> str:
    columns = ",\n    ".join(f"{c} {'REAL' if c.endswith('_sum') else 'INTEGER'} NOT NULL DEFAULT 0" for c in counters)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n    {keys},\n    {columns},\n    PRIMARY KEY ({primary})\n);\n"


def _schema() -> str:
    return (
        _table(
            "trend_agent_hour",
            "agent_id TEXT NOT NULL, participant_id TEXT NOT NULL, hour INTEGER NOT NULL, link_type TEXT NOT NULL, os TEXT NOT NULL",
            "agent_id, hour, link_type, os",
        )
        + "CREATE INDEX IF NOT EXISTS trend_agent_hour_by_participant ON trend_agent_hour (participant_id, hour);\n"
        + "CREATE INDEX IF NOT EXISTS trend_agent_hour_by_hour ON trend_agent_hour (hour);\n"
        + _table("trend_hour", "hour INTEGER NOT NULL, link_type TEXT NOT NULL, os TEXT NOT NULL", "hour, link_type, os")
        + _table("trend_hour_total", "hour INTEGER NOT NULL", "hour")
        + _table(
            "trend_agent_day",
            "agent_id TEXT NOT NULL, participant_id TEXT NOT NULL, day INTEGER NOT NULL, link_type TEXT NOT NULL, os TEXT NOT NULL",
            "agent_id, day, link_type, os",
            RANK_COLUMNS,
        )
        + "CREATE INDEX IF NOT EXISTS trend_agent_day_by_day ON trend_agent_day (day);\n"
        + "CREATE TABLE IF NOT EXISTS trend_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
    )


@dataclass(frozen=True)
class TrendFilter:
    """Which samples and sessions a trend covers. Empty tuples/None mean "all".

    ``participants``: samples of these participants' agents; ``agent_id``: one agent's
    samples. Sessions: ``therapist_id``/``client_id`` match their roles, ``session_participant``
    (an agent's participant) matches either end."""

    agent_id: str | None = None
    participants: tuple[str, ...] = ()
    link_type: str | None = None
    os: str | None = None
    therapist_id: str | None = None
    client_id: str | None = None
    session_participant: str | None = None

    @property
    def by_agent(self) -> bool:
        return self.agent_id is not None or bool(self.participants)


@dataclass(frozen=True)
class RollupRow:
    """Summed rollup counters for one group (an hour, an agent, a link type).

    ``counts`` maps each ROLLUP_COLUMNS name to its sum."""

    key: tuple[object, ...]
    counts: dict[str, float]

    def histogram(self, spec: HistogramSpec) -> list[int]:
        return [int(self.counts[c]) for c in spec.columns]


@dataclass(frozen=True)
class SessionBucket:
    """Sessions starting in one quarter hour (``quarter`` = unix seconds // 900)."""

    quarter: int
    sessions: int
    flagged: int  # risk state was ever at_risk or not_ready before the start
    degraded_live: int


def percentile(counts: Sequence[int], edges: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a histogram, linear inside the bucket it falls in.

    The true quantile of the counted values lies in the same bucket (or at its edge), so the
    error is at most that bucket's width. The open last bucket answers its lower edge."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = edges[index]
            if index + 1 == len(edges):
                return low
            return low + (edges[index + 1] - low) * max(0.0, rank - seen) / count
        seen += count
    return edges[-1]


def _match(rows: Sequence[tuple[object, ...]], key_len: int) -> list[RollupRow]:
    return [RollupRow(tuple(row[:key_len]), dict(zip(ROLLUP_COLUMNS, row[key_len:]))) for row in rows]


class TrendStoreMixin:
    SCHEMA = _schema()

    _db: sqlite3.Connection
    _lock: threading.Lock
    _clock: Callable[[], float]
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _dialect: Dialect

    def _roll_up(self, db: sqlite3.Connection, report_ids: Sequence[str]) -> None:
        """Count newly stored samples into the rollups (called inside ``add_reports``'s transaction)."""
        for start in range(0, len(report_ids), 500):
            chunk = list(report_ids[start : start + 500])
            rows = db.execute(_bucket_select(f"report_id IN ({', '.join('?' for _ in chunk)})", self._dialect), chunk).fetchall()
            _add_counts(db, _count(rows))

    def _ensure_rollups(self) -> None:
        """At open: build the rollups once for samples stored before they existed (or under an
        older bucket layout). A no-op, one look-up, once they are there."""
        with self._lock:
            row = self._db.execute("SELECT value FROM trend_meta WHERE name = 'version'").fetchone()
        if row is None or row[0] != ROLLUP_VERSION:
            self.rebuild_rollups()

    def rebuild_rollups(self) -> int:
        """Recount the rollups from every stored sample, in one transaction; returns the number
        of agent-hour rows. Runs by itself at open when needed (``_ensure_rollups``)."""
        with self._transaction() as db:
            # No sample may be stored meanwhile (another monitor's ingest): it would be counted
            # by this recount and by its own ingest too.
            self._dialect.block_writes(db, "samples")
            db.execute("DELETE FROM trend_agent_hour")
            db.execute("DELETE FROM trend_hour")
            db.execute("DELETE FROM trend_hour_total")
            db.execute("DELETE FROM trend_agent_day")
            last = db.execute("SELECT COALESCE(MAX(rowid), 0) FROM samples").fetchone()[0]
            for low in range(0, last, REBUILD_CHUNK):
                rows = db.execute(_bucket_select("rowid > ? AND rowid <= ?", self._dialect), (low, low + REBUILD_CHUNK)).fetchall()
                _add_counts(db, _count(rows))
            db.execute(
                "INSERT INTO trend_meta (name, value) VALUES ('version', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (ROLLUP_VERSION,),
            )
            return db.execute("SELECT COUNT(*) FROM trend_agent_hour").fetchone()[0]

    def trend_hours(self, hour_from: int, hour_to: int, where: TrendFilter) -> list[RollupRow]:
        """Summed counters per UTC hour (key: ``(hour,)``) for ``hour_from <= hour < hour_to``."""
        sql, parameters = self._rollup_where(hour_from, hour_to, where)
        table = "trend_agent_hour" if where.by_agent else "trend_hour"
        sums = ", ".join(f"SUM({c})" for c in ROLLUP_COLUMNS)
        with self._lock:
            rows = self._db.execute(f"SELECT hour, {sums} FROM {table} WHERE {sql} GROUP BY hour ORDER BY hour", parameters).fetchall()
        return _match(rows, 1)

    def trend_days(self, segments: Sequence[tuple[int, int, int]], where: TrendFilter) -> list[RollupRow]:
        """Summed counters per local day (key: ``(days since 1970-01-01 in the zone,)``).

        ``segments``: ``(hour_from, hour_to, offset_s)`` covering the period, each a run of UTC
        hours with one UTC offset; an hour counts on the local day in which it starts. Grouping
        by day here, in SQL, returns one row a day instead of one an hour; without a filter the
        sums come from ``trend_hour_total`` (one row an hour, not one per link type and OS)."""
        if not segments:
            return []
        day = "CASE " + " ".join(f"WHEN hour < {int(end)} THEN (hour * 3600 + {int(offset)}) / 86400" for _, end, offset in segments) + " END"
        sql, parameters = self._rollup_where(segments[0][0], segments[-1][1], where)
        if where.by_agent:
            table = "trend_agent_hour"
        elif where.link_type is None and where.os is None:
            table = "trend_hour_total"
        else:
            table = "trend_hour"
        sums = ", ".join(f"SUM({c})" for c in ROLLUP_COLUMNS)
        with self._lock:
            rows = self._db.execute(f"SELECT {day} AS local_day, {sums} FROM {table} WHERE {sql} GROUP BY local_day ORDER BY local_day", parameters).fetchall()
        return _match(rows, 1)

    def trend_agents(self, hour_from: int, hour_to: int, where: TrendFilter) -> list[RollupRow]:
        """Counters per (agent_id, participant_id, link_type) over the hours; only RANK_COLUMNS
        (the others are 0 here: ranking needs no more). Whole UTC days come from the day table,
        the hours at either edge of the period from the hour table."""
        day_from, day_to = -(-hour_from // 24), hour_to // 24
        sums = ", ".join(f"SUM({c}) AS {c}" if c in RANK_COLUMNS else f"0 AS {c}" for c in ROLLUP_COLUMNS)
        part = f"SELECT agent_id, participant_id, link_type, {', '.join(RANK_COLUMNS)} FROM"
        dims, dim_parameters = self._dimension_where(where)
        if day_from < day_to:
            union = (
                f"{part} trend_agent_day WHERE day >= ? AND day < ?{dims} UNION ALL"
                f" {part} trend_agent_hour WHERE ((hour >= ? AND hour < ?) OR (hour >= ? AND hour < ?)){dims}"
            )
            parameters = [day_from, day_to, *dim_parameters, hour_from, day_from * 24, day_to * 24, hour_to, *dim_parameters]
        else:
            union = f"{part} trend_agent_hour WHERE hour >= ? AND hour < ?{dims}"
            parameters = [hour_from, hour_to, *dim_parameters]
        with self._lock:
            rows = self._db.execute(
                f"SELECT agent_id, MIN(participant_id), link_type, {sums} FROM ({union}) AS parts GROUP BY agent_id, link_type", parameters
            ).fetchall()
        return _match(rows, 3)

    @staticmethod
    def _dimension_where(where: TrendFilter) -> tuple[str, list[object]]:
        """`` AND ...`` for the filters other than time, and their parameters."""
        clauses: list[str] = []
        parameters: list[object] = []
        if where.agent_id is not None:
            clauses.append("agent_id = ?")
            parameters.append(where.agent_id)
        if where.participants:
            clauses.append(f"participant_id IN ({', '.join('?' for _ in where.participants)})")
            parameters.extend(where.participants)
        for column in ("link_type", "os"):
            value = getattr(where, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                parameters.append(value)
        return "".join(f" AND {c}" for c in clauses), parameters

    @staticmethod
    def _rollup_where(hour_from: int, hour_to: int, where: TrendFilter) -> tuple[str, list[object]]:
        dims, parameters = TrendStoreMixin._dimension_where(where)
        return f"hour >= ? AND hour < ?{dims}", [hour_from, hour_to, *parameters]

    def trend_sessions(self, start_s: float, end_s: float, where: TrendFilter) -> list[SessionBucket]:
        """Sessions (not cancelled) starting in ``[start_s, end_s)``, per quarter hour."""
        sql, parameters = self._session_where(start_s, end_s, where)
        with self._lock:
            rows = self._db.execute(
                "SELECT s.start_at / 900, COUNT(*),"
                " SUM(CASE WHEN EXISTS (SELECT 1 FROM session_risk_history h WHERE h.session_id = s.session_id"
                "   AND h.state IN ('at_risk', 'not_ready') AND h.at < s.start_at) THEN 1 ELSE 0 END),"
                " SUM(COALESCE(r.live_degraded, 0))"
                f" FROM sessions s LEFT JOIN session_risk r USING (session_id) WHERE {sql} GROUP BY 1 ORDER BY 1",
                parameters,
            ).fetchall()
        return [SessionBucket(int(q), int(n), int(f or 0), int(d or 0)) for q, n, f, d in rows]

    def degraded_by_participant(self, start_s: float, end_s: float, where: TrendFilter) -> dict[str, int]:
        """Sessions that degraded live, per participant (either end), starting in ``[start_s, end_s)``."""
        sql, parameters = self._session_where(start_s, end_s, where)
        with self._lock:
            rows = self._db.execute(
                "SELECT p, COUNT(*) FROM (SELECT s.therapist_id AS p, r.live_degraded AS d FROM sessions s"
                f" JOIN session_risk r USING (session_id) WHERE {sql} UNION ALL SELECT s.client_id, r.live_degraded"
                f" FROM sessions s JOIN session_risk r USING (session_id) WHERE {sql}) AS ends WHERE d = 1 GROUP BY p",
                parameters + parameters,
            ).fetchall()
        return dict(rows)

    @staticmethod
    def _session_where(start_s: float, end_s: float, where: TrendFilter) -> tuple[str, list[object]]:
        clauses = ["s.start_at >= ?", "s.start_at < ?", "s.state != 'cancelled'"]
        parameters: list[object] = [start_s, end_s]
        if where.therapist_id is not None:
            clauses.append("s.therapist_id = ?")
            parameters.append(where.therapist_id)
        if where.client_id is not None:
            clauses.append("s.client_id = ?")
            parameters.append(where.client_id)
        if where.session_participant is not None:
            clauses.append("(s.therapist_id = ? OR s.client_id = ?)")
            parameters.extend([where.session_participant, where.session_participant])
        return " AND ".join(clauses), parameters

    def agent_participant(self, agent_id: str) -> str | None:
        """The participant an agent (token) belongs to, or None for an unknown agent."""
        with self._lock:
            row = self._db.execute("SELECT participant_id FROM tokens WHERE token_id = ?", (agent_id,)).fetchone()
        return None if row is None else row[0]
