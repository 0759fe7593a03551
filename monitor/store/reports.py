"""The reports part of the SQLite store (a mixin of ``monitor.store.core.SQLiteStore``).

Methods use the store's ``_transaction()`` (a write transaction under the lock),
``_lock``, ``_db`` (sqlite3 connection, autocommit) and ``_clock`` (unix seconds).

Samples from the agents' spools (docs/reports.md) are kept one row each, with the numbers the
risk engine and trends aggregate in SQL as columns and the whole sample as canonical JSON.
Checks that arrive through the spool go into the same ``checks`` table as POST
/api/v1/checks (through ``add_check``), so one check sent both ways is stored once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sessionready.schema import CheckReport, ReportEnvelope, Sample, SpoolStatus
from sessionready.typed import LEAP_SECOND, encode

if TYPE_CHECKING:
    from monitor.store.core import TokenInfo

# The numeric columns of ``samples`` (and fields of ``StoredSample``), in table order.
SAMPLE_COLUMNS = (
    "rtt_p50_ms",
    "rtt_p95_ms",
    "jitter_up_ms",
    "jitter_down_ms",
    "loss_up",
    "loss_down",
    "mos",
    "cpu_pct",
    "memory_available_pct",
    "battery_pct",
    "battery_charging",
    "link_type",
    "wifi_signal_dbm",
    "traffic_down_mbps",
    "traffic_up_mbps",
    "noise_floor_dbfs",
    "snr_db",
    "voice_ratio",
)


@dataclass(frozen=True)
class StoredSample:
    """One background or live sample as the monitor keeps it. Times are unix seconds;
    ``received_at`` is the monitor's clock, ``taken_at`` the agent's. Units as in
    ``sessionready.schema.Sample``; None where the sample had no such number."""

    report_id: str
    agent_id: str
    participant_id: str
    session_id: str | None
    kind: str  # background | live
    seq: int
    taken_at: float
    received_at: float
    rtt_p50_ms: float | None
    rtt_p95_ms: float | None
    jitter_up_ms: float | None
    jitter_down_ms: float | None
    loss_up: float | None
    loss_down: float | None
    mos: float | None
    cpu_pct: float | None
    memory_available_pct: float | None
    battery_pct: float | None
    battery_charging: bool | None
    link_type: str | None
    wifi_signal_dbm: float | None
    traffic_down_mbps: float | None
    traffic_up_mbps: float | None
    noise_floor_dbfs: float | None
    snr_db: float | None
    voice_ratio: float | None
    sample: dict[str, object]  # the validated sample as JSON


@dataclass(frozen=True)
class AgentStatus:
    """An agent's token joined with what its latest batch said (None: never sent one).

    ``spool_*`` are the agent's own cumulative counts since its spool file was created."""

    agent_id: str
    role: str
    participant_id: str
    created_at: float  # unix seconds
    revoked_at: float | None
    last_seen: float | None  # the agent's last contact (``LAST_CONTACT``), unix seconds; None: never
    last_seq: int | None  # the highest seq in that batch
    version: str | None
    os: str | None
    link_type: str | None
    spool_pending: int | None
    spool_dropped_background: int | None
    spool_dropped_live: int | None
    spool_rejected: int | None


# An agent's last contact: the later of its latest batch of reports and its latest check. A
# check is contact too, and `sessionready check` posts one on its own (POST /api/v1/checks)
# without any batch. One definition, read by the Agents listing (``agent_statuses``) and the
# risk engine (``risk_snapshot``: an end is online when any of its agents is), so no page says
# "never seen" about a machine whose check another page shows. Over ``tokens t`` with these
# joins; a check link's browser check is not an agent's contact (links are no agents).
LAST_CONTACT_JOINS = " LEFT JOIN agent_status s ON s.agent_id = t.token_id LEFT JOIN latest_checks l ON l.agent_id = t.token_id"
LAST_CONTACT = "CASE WHEN s.last_seen IS NULL OR l.received_at > s.last_seen THEN l.received_at ELSE s.last_seen END"


@dataclass(frozen=True)
class ReportBatch:
    """One request's valid reports as ``add_report_batches`` stores them: the agent that sent
    them, its spool's numbers, and when they arrived (the monitor's clock, unix seconds)."""

    agent: TokenInfo
    reports: Sequence[ReportEnvelope]
    spool: SpoolStatus
    received_at: float


# Samples inserted per statement: 29 values a row stays far below SQLite's 32,766 bound
# parameters and PostgreSQL's 65,535.
INSERT_CHUNK = 250
_INSERT_COLUMNS = (
    "report_id", "agent_id", "participant_id", "session_id", "kind", "seq", "taken_at", "received_at",
    *SAMPLE_COLUMNS, "has_network", "network_problem", "sample",
)  # fmt: skip
STATUS_UPSERT = (
    "INSERT INTO agent_status (agent_id, last_seen, last_seq, version, os, link_type, spool_pending,"
    " spool_dropped_background, spool_dropped_live, spool_rejected) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (agent_id) DO UPDATE SET last_seen = excluded.last_seen,"
    " last_seq = coalesce(excluded.last_seq, agent_status.last_seq),"
    " version = coalesce(excluded.version, agent_status.version),"
    " os = coalesce(excluded.os, agent_status.os),"
    " link_type = coalesce(excluded.link_type, agent_status.link_type),"
    " spool_pending = excluded.spool_pending,"
    " spool_dropped_background = excluded.spool_dropped_background,"
    " spool_dropped_live = excluded.spool_dropped_live,"
    " spool_rejected = excluded.spool_rejected"
)


class ReportStoreMixin:
    SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    report_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES tokens(token_id),
    participant_id TEXT NOT NULL,
    session_id TEXT,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    taken_at REAL NOT NULL,
    received_at REAL NOT NULL,
    rtt_p50_ms REAL,
    rtt_p95_ms REAL,
    jitter_up_ms REAL,
    jitter_down_ms REAL,
    loss_up REAL,
    loss_down REAL,
    mos REAL,
    cpu_pct REAL,
    memory_available_pct REAL,
    battery_pct REAL,
    battery_charging INTEGER,
    link_type TEXT,
    wifi_signal_dbm REAL,
    traffic_down_mbps REAL,
    traffic_up_mbps REAL,
    noise_floor_dbfs REAL,
    snr_db REAL,
    voice_ratio REAL,
    -- 1 when the sample carries network numbers or a network problem (the risk engine reads these)
    has_network INTEGER NOT NULL DEFAULT 0,
    network_problem TEXT,
    sample TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_by_agent ON samples (agent_id, taken_at);
CREATE INDEX IF NOT EXISTS samples_by_session ON samples (session_id, taken_at);
CREATE INDEX IF NOT EXISTS samples_by_participant ON samples (participant_id, taken_at);
-- What each agent's latest batch said: when, its spool's numbers, its software and link.
CREATE TABLE IF NOT EXISTS agent_status (
    agent_id TEXT PRIMARY KEY REFERENCES tokens(token_id),
    last_seen REAL NOT NULL,
    last_seq INTEGER,
    version TEXT,
    os TEXT,
    link_type TEXT,
    spool_pending INTEGER NOT NULL,
    spool_dropped_background INTEGER NOT NULL,
    spool_dropped_live INTEGER NOT NULL,
    spool_rejected INTEGER NOT NULL
);
"""

    _db: sqlite3.Connection
    _lock: threading.Lock
    _clock: Callable[[], float]
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    add_check: Callable[..., bool | None]
    _roll_up: Callable[[sqlite3.Connection, Sequence[str]], None]

    def add_reports(self, agent: TokenInfo, reports: Sequence[ReportEnvelope], spool: SpoolStatus, received_at: float) -> list[bool | None]:
        """Store one batch of valid envelopes from ``agent`` and its spool numbers.

        Per report, like ``add_check``: True stored, False a retry of this agent's report
        (nothing changes), None the id belongs to another agent (nothing changes). Samples and
        the agent's status are one transaction; checks go through ``add_check``, so they
        deduplicate against POST /api/v1/checks.
        """
        return self.add_report_batches([ReportBatch(agent, reports, spool, received_at)])[0]

    def add_report_batches(self, batches: Sequence[ReportBatch]) -> list[list[bool | None]]:
        """Store several agents' batches in one transaction (ingest's group commit,
        ``monitor.report_writer``): one commit, one flush to disk, for all of them.

        Per batch, what ``add_reports`` answers for it alone: its reports' results in order.
        A report id that comes twice (in one batch or in two) is stored by the first and is a
        retry (False) or another agent's (None) for the others, as if they came one after another.
        Each batch's agent status is written, in the order of agent ids (two monitors
        writing statuses of the same agents then wait for each other instead of deadlocking).
        """
        results: list[list[bool | None]] = [[None] * len(batch.reports) for batch in batches]
        for batch, found in zip(batches, results):
            for index, envelope in enumerate(batch.reports):
                if envelope.check is not None:
                    report_json = json.dumps(encode(envelope.check), separators=(",", ":"))
                    found[index] = self.add_check(batch.agent, envelope.check, report_json, batch.received_at)
        first: dict[str, tuple[int, int]] = {}  # report id: where it first comes (batch, report)
        again: list[tuple[int, int]] = []
        rows: list[tuple[object, ...]] = []
        for number, batch in enumerate(batches):
            for index, envelope in enumerate(batch.reports):
                if envelope.sample is None:
                    continue
                if envelope.report_id in first:
                    again.append((number, index))
                    continue
                first[envelope.report_id] = (number, index)
                rows.append(_sample_row(batch.agent, envelope, envelope.sample, batch.received_at))
        with self._transaction() as db:
            stored: set[str] = set()
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[start : start + INSERT_CHUNK]
                marks = ", ".join([f"({', '.join('?' * len(chunk[0]))})"] * len(chunk))
                # No conflict target: PostgreSQL's partitioned samples have no unique report_id;
                # a trigger skips a stored id there instead (monitor/store/partitions.py).
                found_rows = db.execute(
                    f"INSERT INTO samples ({', '.join(_INSERT_COLUMNS)}) VALUES {marks} ON CONFLICT DO NOTHING RETURNING report_id",
                    [value for row in chunk for value in row],
                ).fetchall()
                stored.update(row[0] for row in found_rows)
            # Not stored: a retry of the agent's own report, or an id another agent holds.
            unsettled = sorted({rid for rid in first if rid not in stored} | {batches[n].reports[i].report_id for n, i in again})
            owners: dict[str, str] = {}
            for start in range(0, len(unsettled), 500):
                chunk = unsettled[start : start + 500]
                owners.update(db.execute(f"SELECT report_id, agent_id FROM samples WHERE report_id IN ({', '.join('?' * len(chunk))})", chunk).fetchall())
            for report_id, (number, index) in first.items():
                agent_id = batches[number].agent.token_id
                results[number][index] = True if report_id in stored else False if owners.get(report_id) == agent_id else None
            for number, index in again:
                owner = owners.get(batches[number].reports[index].report_id)
                results[number][index] = False if owner == batches[number].agent.token_id else None
            order = sorted(range(len(batches)), key=lambda n: batches[n].agent.token_id)  # stable: an agent's batches stay in order
            db.executemany(
                STATUS_UPSERT,
                [
                    _status_row(batches[n].agent.token_id, [e for e, r in zip(batches[n].reports, results[n]) if r is not None], batches[n].spool, batches[n].received_at)
                    for n in order
                ],
            )
            self._roll_up(db, [report_id for report_id in first if report_id in stored])  # trends: monitor/store/trends.py
        return results

    def samples_for_agent(self, agent_id: str, since: float, kind: str | None, limit: int) -> list[StoredSample]:
        """The agent's samples taken at or after ``since`` (unix seconds), oldest first."""
        if kind is None:
            return self._select_samples("WHERE agent_id = ? AND taken_at >= ?", (agent_id, since), limit)
        return self._select_samples("WHERE agent_id = ? AND taken_at >= ? AND kind = ?", (agent_id, since, kind), limit)

    def samples_for_session(self, session_id: str, since: float, limit: int = 100_000) -> list[StoredSample]:
        """Both ends' samples tagged with the session, taken at or after ``since``, oldest first."""
        return self._select_samples("WHERE session_id = ? AND taken_at >= ?", (session_id, since), limit)

    def latest_samples(self, participant_id: str, since: float, limit: int = 100_000) -> list[StoredSample]:
        """A participant's samples (all of their machines) taken at or after ``since``, oldest first."""
        return self._select_samples("WHERE participant_id = ? AND taken_at >= ?", (participant_id, since), limit)

    def agent_statuses(self) -> list[AgentStatus]:
        """Every agent token (client and therapist roles), revoked ones too, oldest first;
        ``last_seen`` is its last contact, batch or check (``LAST_CONTACT``)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT t.token_id, t.role, t.participant_id, t.created_at, t.revoked_at, {LAST_CONTACT}, s.last_seq,"
                " s.version, s.os, s.link_type, s.spool_pending, s.spool_dropped_background, s.spool_dropped_live,"
                f" s.spool_rejected FROM tokens t{LAST_CONTACT_JOINS}"
                " WHERE t.role IN ('client', 'therapist') ORDER BY t.created_at, t.token_id"
            ).fetchall()
        return [AgentStatus(*row) for row in rows]

    def _select_samples(self, where: str, parameters: tuple[object, ...], limit: int) -> list[StoredSample]:
        with self._lock:
            rows = self._db.execute(
                "SELECT report_id, agent_id, participant_id, session_id, kind, seq, taken_at, received_at,"
                f" {', '.join(SAMPLE_COLUMNS)}, sample FROM samples {where} ORDER BY taken_at, seq LIMIT ?",
                (*parameters, limit),
            ).fetchall()
        charging = 8 + SAMPLE_COLUMNS.index("battery_charging")
        return [
            StoredSample(*row[:charging], None if row[charging] is None else bool(row[charging]), *row[charging + 1 : -1], json.loads(row[-1]))
            for row in rows
        ]


def _sample_row(agent: TokenInfo, envelope: ReportEnvelope, sample: Sample, received_at: float) -> tuple[object, ...]:
    """The values of ``_INSERT_COLUMNS`` for one sample report."""
    return (
        envelope.report_id,
        agent.token_id,
        agent.participant_id,
        sample.session_id,
        envelope.kind,
        envelope.seq,
        unix_seconds(sample.taken_at),
        received_at,
        *_sample_numbers(sample),
        int(sample.network is not None),
        sample.network.problem if sample.network else None,
        json.dumps(encode(sample), separators=(",", ":")),
    )


def _status_row(agent_id: str, accepted: list[ReportEnvelope], spool: SpoolStatus, received_at: float) -> tuple[object, ...]:
    """The values of ``STATUS_UPSERT`` for one batch: ``accepted`` its reports stored or retried."""
    # The agent sends its spool oldest first, so the latest batch carries its newest state.
    # Software and link come from the newest report that has them, else stay as they were.
    newest = sorted(accepted, key=lambda e: e.seq)
    last_seq = newest[-1].seq if newest else None
    version = os_name = link_type = None
    for envelope in reversed(newest):
        body: Sample | CheckReport | None = envelope.sample or envelope.check
        if body is not None and version is None:
            version, os_name = body.agent.version, body.agent.os
        if link_type is None:
            if envelope.sample is not None and envelope.sample.machine is not None:
                link_type = envelope.sample.machine.link_type
            elif envelope.check is not None and envelope.check.machine is not None:
                link_type = envelope.check.machine.link.type
    return (agent_id, received_at, last_seq, version, os_name, link_type, spool.pending, spool.dropped_background, spool.dropped_live, spool.rejected)


def unix_seconds(timestamp: str) -> float:
    """An RFC 3339 timestamp (already validated by the schema) as unix seconds."""
    return datetime.fromisoformat(LEAP_SECOND.sub(":59", timestamp.upper().replace("Z", "+00:00"))).timestamp()


def _sample_numbers(sample: Sample) -> tuple[object, ...]:
    """The values of SAMPLE_COLUMNS for one sample."""
    network, machine, traffic, room = sample.network, sample.machine, sample.traffic_mbps, sample.room
    return (
        network.rtt_p50_ms if network else None,
        network.rtt_p95_ms if network else None,
        network.jitter_up_ms if network else None,
        network.jitter_down_ms if network else None,
        network.loss_up if network else None,
        network.loss_down if network else None,
        network.mos if network else None,
        machine.cpu_pct if machine else None,
        machine.memory_available_pct if machine else None,
        machine.battery_pct if machine else None,
        None if machine is None or machine.battery_charging is None else int(machine.battery_charging),
        machine.link_type if machine else None,
        machine.wifi_signal_dbm if machine else None,
        traffic.down if traffic else None,
        traffic.up if traffic else None,
        room.noise_floor_dbfs if room else None,
        room.snr_db if room else None,
        room.voice_ratio if room else None,
    )
