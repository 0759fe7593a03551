"""The risk part of the SQLite store (a mixin of ``monitor.store.core.SQLiteStore``).

What the risk engine reads (one snapshot of everything an evaluation needs, in a few queries)
and what it writes: each session's current risk, every change of it with its reasons (so "why
was this flagged?" has an answer later), and a live session's tracker state.

Methods use the store's ``_transaction()`` (a write transaction under the lock),
``_lock``, ``_db`` (sqlite3 connection, autocommit) and ``_clock`` (unix seconds).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from monitor.store.dialect import Dialect
from monitor.store.reports import LAST_CONTACT, LAST_CONTACT_JOINS

# Network numbers of a background sample, as the risk engine's ``RecentSamples`` reads them.
SAMPLE_NETWORK_COLUMNS = ("rtt_p50_ms", "jitter_up_ms", "jitter_down_ms", "loss_up", "loss_down")
# ... and the jitter it judges when the sample has it (the mean |D|, only in the sample's JSON;
# read as text on PostgreSQL, a number on SQLite: ``RecentSamples`` takes either).
SAMPLE_JSON_NETWORK_FIELDS = ("jitter_mean_up_ms", "jitter_mean_down_ms")


# How far before the caller's last applied sample ``live_samples_since`` reads:
# the same RFC 3339 time parsed by ingest and by the live tracker may differ in its last digits
# (or by a leap second, which ingest reads as :59); the tracker ignores what it has applied.
TAKEN_AFTER_MARGIN_S = 1.0


@dataclass(frozen=True)
class RiskSession:
    """A session the engine assesses, with what it concluded last time (None: never assessed)."""

    session_id: str
    therapist_id: str
    client_id: str
    start_at_s: int
    planned_duration_s: int
    state: str  # the session's own state: scheduled | live
    risk_state: str | None
    risk_causes: tuple[str, ...]  # "end:cause" of the stored reasons, in order
    live_state: str | None  # the live tracker's state as JSON, while live


@dataclass(frozen=True)
class LatestCheck:
    check_id: str
    received_at: float
    report_json: str


@dataclass(frozen=True)
class RiskSnapshot:
    """Everything one evaluation needs, read at one moment."""

    sessions: list[RiskSession]
    latest_checks: dict[str, LatestCheck]  # by participant: the newest check of any of its agents
    last_seen: dict[str, float]  # by participant: the last contact (batch or check) of any of its agents
    background: dict[str, list[dict[str, object]]]  # by participant: network parts of recent samples
    history: dict[str, list[tuple[float, bool]]]  # by participant: (start, degraded live) of past sessions


@dataclass(frozen=True)
class RiskRow:
    """One session's assessment to store: its state, "end:cause" list, the SessionRisk and its reasons as JSON."""

    session_id: str
    state: str
    causes: list[str]
    assessment: dict[str, object]
    reasons: list[dict[str, object]]


@dataclass(frozen=True)
class LiveRow:
    """One live session's step to store: the tracker's state as JSON, its live state
    (ready | at_risk) and the latest MOS per end."""

    session_id: str
    tracker_json: str
    live_state: str
    client_mos: float | None
    therapist_mos: float | None


@dataclass(frozen=True)
class RiskChange:
    at: float  # unix seconds
    state: str
    reasons: list[dict[str, object]] = field(default_factory=list)


@dataclass(frozen=True)
class RiskSummary:
    """A session's current risk as a list shows it: the stored assessment, without its history."""

    state: str
    evaluated_at: float
    assessment: dict[str, object]  # the engine's SessionRisk as JSON
    live_state: str | None
    client_mos: float | None
    therapist_mos: float | None


@dataclass(frozen=True)
class StoredRisk:
    """A session's current risk as last stored, and its history of changes (oldest first)."""

    session_id: str
    state: str
    evaluated_at: float
    changed_at: float
    assessment: dict[str, object]  # the engine's SessionRisk as JSON
    live_state: str | None  # the live state ("ready"/"at_risk"), while or after live
    client_mos: float | None
    therapist_mos: float | None
    live_degraded: bool
    history: list[RiskChange]


class RiskStoreMixin:
    SCHEMA = """
-- The engine's latest conclusion per session; rewritten only when it changes.
CREATE TABLE IF NOT EXISTS session_risk (
    session_id TEXT PRIMARY KEY REFERENCES sessions(session_id),
    state TEXT NOT NULL,
    causes TEXT NOT NULL,            -- JSON list of "end:cause", for change detection
    assessment TEXT NOT NULL,        -- the SessionRisk as JSON (reasons, ends, end-to-end)
    evaluated_at REAL NOT NULL,
    changed_at REAL NOT NULL,
    live_tracker TEXT,               -- the live tracker's state (JSON) while live
    live_state TEXT,                 -- ready | at_risk, while or after live
    client_mos REAL,                 -- the latest live MOS per end
    therapist_mos REAL,
    live_degraded INTEGER NOT NULL DEFAULT 0  -- went at risk while live: the history the engine reads
);
CREATE TABLE IF NOT EXISTS session_risk_history (
    session_id TEXT NOT NULL REFERENCES sessions(session_id),
    at REAL NOT NULL,
    state TEXT NOT NULL,
    reasons TEXT NOT NULL           -- JSON list of {end, cause, severity, message, action}
);
CREATE INDEX IF NOT EXISTS session_risk_history_by_session ON session_risk_history (session_id, at);
"""

    _db: sqlite3.Connection
    _lock: threading.Lock
    _clock: Callable[[], float]
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _dialect: Dialect

    def risk_snapshot(self, now: float, horizon_s: float, samples_since: float, history_since: float) -> RiskSnapshot:
        """Sessions starting within ``horizon_s`` or under way, and what is known of their ends."""
        with self._lock:
            db = self._db
            rows = db.execute(
                "SELECT s.session_id, s.therapist_id, s.client_id, s.start_at, s.planned_duration_s, s.state,"
                " r.state, r.causes, r.live_tracker FROM sessions s LEFT JOIN session_risk r USING (session_id)"
                " WHERE s.state IN ('scheduled', 'live') AND s.start_at <= ?"
                " AND (s.state = 'live' OR s.start_at + s.planned_duration_s >= ?) ORDER BY s.start_at, s.session_id",
                (now + horizon_s, now),
            ).fetchall()
            sessions = [
                RiskSession(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(json.loads(r[7])) if r[7] else (), r[8]) for r in rows
            ]
            participants = sorted({p for s in sessions for p in (s.therapist_id, s.client_id)})
            latest: dict[str, LatestCheck] = {}
            for participant, check_id, received_at, report in db.execute(
                "SELECT t.participant_id, c.check_id, c.received_at, c.report FROM latest_checks l"
                " JOIN tokens t ON t.token_id = l.agent_id JOIN checks c ON c.check_id = l.check_id"
                " WHERE t.revoked_at IS NULL"
            ):
                if participant in participants and (participant not in latest or received_at > latest[participant].received_at):
                    latest[participant] = LatestCheck(check_id, received_at, report)
            last_seen = dict(
                db.execute(
                    f"SELECT t.participant_id, MAX({LAST_CONTACT}) FROM tokens t{LAST_CONTACT_JOINS}"
                    " WHERE t.revoked_at IS NULL AND t.role IN ('client', 'therapist')"
                    f" GROUP BY t.participant_id HAVING MAX({LAST_CONTACT}) IS NOT NULL"
                ).fetchall()
            )
            background: dict[str, list[dict[str, object]]] = {}
            from_json = ", ".join(self._dialect.json_text("sample", ("network", name)) for name in SAMPLE_JSON_NETWORK_FIELDS)
            names = (*SAMPLE_NETWORK_COLUMNS, *SAMPLE_JSON_NETWORK_FIELDS, "problem")
            # One query per 500 participants, not one each: on PostgreSQL each is a round trip,
            # and 1,100 of them made most of an assessment's 1.3-2.0 s (docs/scaling.md).
            for start in range(0, len(participants), 500):
                chunk = participants[start : start + 500]
                for participant, *row in db.execute(
                    f"SELECT participant_id, {', '.join(SAMPLE_NETWORK_COLUMNS)}, {from_json}, network_problem FROM samples"
                    f" WHERE participant_id IN ({', '.join('?' * len(chunk))}) AND taken_at >= ? AND kind = 'background' AND has_network = 1"
                    " ORDER BY participant_id, taken_at",
                    (*chunk, samples_since),
                ):
                    background.setdefault(participant, []).append(dict(zip(names, row)))
            history: dict[str, list[tuple[float, bool]]] = {}
            for therapist, client, start, degraded in db.execute(
                "SELECT s.therapist_id, s.client_id, s.start_at, COALESCE(r.live_degraded, 0) FROM sessions s"
                " LEFT JOIN session_risk r USING (session_id) WHERE s.state = 'ended' AND s.start_at >= ? AND s.start_at < ?",
                (history_since, now),
            ):
                for participant in (therapist, client):
                    history.setdefault(participant, []).append((float(start), bool(degraded)))
        return RiskSnapshot(sessions, latest, {p: last_seen[p] for p in participants if p in last_seen}, background, history)

    def save_risk(self, session_id: str, state: str, causes: Iterable[str], assessment: dict[str, object], reasons: list[dict[str, object]], at: float) -> bool:
        """Store one session's assessment; True when state or causes changed (a history row is added)."""
        return bool(self.save_risks([RiskRow(session_id, state, list(causes), assessment, reasons)], at))

    def save_risks(self, rows: Iterable[RiskRow], at: float) -> set[str]:
        """Store assessments in one transaction; the ids whose state or causes changed (each gets a history row)."""
        changed: set[str] = set()
        with self._transaction() as db:
            self._dialect.serialize(db, "session_risk")  # each row is read, compared, then written
            # Rows in session id order, as save_lives writes them: a live pass runs beside an
            # assessment, and two transactions locking the same rows in two orders deadlock.
            for row in sorted(rows, key=lambda row: row.session_id):
                causes_json = json.dumps(row.causes)
                stored = db.execute("SELECT state, causes FROM session_risk WHERE session_id = ?", (row.session_id,)).fetchone()
                differs = stored is None or (stored[0], stored[1]) != (row.state, causes_json)
                if stored is None:
                    # A live pass may have made the row since the look above (save_lives).
                    db.execute(
                        "INSERT INTO session_risk (session_id, state, causes, assessment, evaluated_at, changed_at) VALUES (?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (session_id) DO UPDATE SET state = excluded.state, causes = excluded.causes,"
                        " assessment = excluded.assessment, evaluated_at = excluded.evaluated_at, changed_at = excluded.changed_at",
                        (row.session_id, row.state, causes_json, json.dumps(row.assessment), at, at),
                    )
                else:
                    db.execute(
                        "UPDATE session_risk SET state = ?, causes = ?, assessment = ?, evaluated_at = ?,"
                        " changed_at = CASE WHEN ? THEN ? ELSE changed_at END WHERE session_id = ?",
                        (row.state, causes_json, json.dumps(row.assessment), at, differs, at, row.session_id),
                    )
                if differs:
                    changed.add(row.session_id)
                    db.execute(
                        "INSERT INTO session_risk_history (session_id, at, state, reasons) VALUES (?, ?, ?, ?)",
                        (row.session_id, at, row.state, json.dumps(row.reasons)),
                    )
        return changed

    def save_live(self, session_id: str, tracker_json: str, live_state: str, client_mos: float | None, therapist_mos: float | None, at: float) -> None:
        """Keep a live session's tracker state and latest MOS per end; remember if it ever degraded."""
        self.save_lives([LiveRow(session_id, tracker_json, live_state, client_mos, therapist_mos)], at)

    def save_lives(self, rows: Sequence[LiveRow], at: float) -> None:
        """``save_live`` for every session of a live-loop pass, in one transaction (one flush)."""
        if not rows:
            return
        ordered = sorted(rows, key=lambda row: row.session_id)  # rows locked in one order: no deadlock with another writer
        # One upsert a session, not an insert and an update: on PostgreSQL each row of an
        # executemany goes through the driver's pipeline in Python, and a pass makes one a session.
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO session_risk (session_id, state, causes, assessment, evaluated_at, changed_at,"
                " live_tracker, live_state, client_mos, therapist_mos, live_degraded) VALUES (?, 'unknown', '[]', '{}', ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (session_id) DO UPDATE SET live_tracker = excluded.live_tracker, live_state = excluded.live_state,"
                " client_mos = excluded.client_mos, therapist_mos = excluded.therapist_mos,"
                f" live_degraded = {self._dialect.greatest}(session_risk.live_degraded, excluded.live_degraded)",
                [
                    (row.session_id, at, at, row.tracker_json, row.live_state, row.client_mos, row.therapist_mos, int(row.live_state != "ready"))
                    for row in ordered
                ],
            )

    def live_activity(self, since: float) -> dict[str, set[str]]:
        """Which participants sent live samples for which session since ``since`` (monitor clock)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT session_id, participant_id FROM samples WHERE kind = 'live' AND received_at >= ? AND session_id IS NOT NULL",
                (since,),
            ).fetchall()
        activity: dict[str, set[str]] = {}
        for session_id, participant in rows:
            activity.setdefault(session_id, set()).add(participant)
        return activity

    def live_samples(self, session_id: str, since: float) -> list[tuple[str, float, dict[str, object]]]:
        """(participant, received_at, sample JSON) of a session's live samples received since ``since``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT participant_id, received_at, sample FROM samples WHERE session_id = ? AND kind = 'live' AND received_at >= ?"
                " ORDER BY taken_at",
                (session_id, since),
            ).fetchall()
        return [(participant, received_at, json.loads(sample)) for participant, received_at, sample in rows]

    def live_samples_since(
        self, since: Mapping[str, float], taken_after: Mapping[str, Mapping[str, float | None]]
    ) -> dict[str, list[tuple[str, float, dict[str, object]]]]:
        """Live samples of many sessions in one query (per 200 participants), by session id; a
        session without any is left out. Per session, those received since its ``since``; per
        participant listed in ``taken_after`` (the sample time, agent clock, of the last sample
        the caller has applied, or None for none yet), only those taken later, less
        TAKEN_AFTER_MARGIN_S; other participants' not at all. The risk pass has applied every
        earlier one and would ignore them (a live tracker never goes back in time): reading them
        again was most of its work (docs/scaling.md)."""
        wanted = [
            (session_id, participant, float(since[session_id]), -1e18 if after is None else float(after) - TAKEN_AFTER_MARGIN_S)
            for session_id in sorted(since)
            for participant, after in sorted((taken_after.get(session_id) or {}).items())
        ]
        found: dict[str, list[tuple[str, float, dict[str, object]]]] = {}
        for start in range(0, len(wanted), 200):  # 4 parameters a row: 800 a query
            chunk = wanted[start : start + 200]
            with self._lock:  # per chunk, and the JSON decoded after
                rows = self._db.execute(
                    f"WITH wanted (session_id, participant_id, since, after) AS (VALUES {', '.join(['(?, ?, ?, ?)'] * len(chunk))})"
                    " SELECT s.session_id, s.participant_id, s.received_at, s.sample FROM wanted w"
                    " JOIN samples s ON s.session_id = w.session_id AND s.participant_id = w.participant_id"
                    " AND s.kind = 'live' AND s.received_at >= w.since AND s.taken_at > w.after"
                    " ORDER BY s.session_id, s.taken_at",
                    [value for row in chunk for value in row],
                ).fetchall()
            for session_id, participant, received_at, sample in rows:
                found.setdefault(session_id, []).append((participant, received_at, json.loads(sample)))
        return found

    def stored_risk(self, session_id: str) -> StoredRisk | None:
        with self._lock:
            row = self._db.execute(
                "SELECT state, evaluated_at, changed_at, assessment, live_state, client_mos, therapist_mos, live_degraded"
                " FROM session_risk WHERE session_id = ?",
                (session_id,),
            ).fetchone()
            if row is None:
                return None
            history = self._db.execute(
                "SELECT at, state, reasons FROM session_risk_history WHERE session_id = ? ORDER BY at, rowid", (session_id,)
            ).fetchall()
        return StoredRisk(
            session_id, row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], bool(row[7]),
            [RiskChange(at, state, json.loads(reasons)) for at, state, reasons in history],
        )  # fmt: skip

    def risk_states(self, session_ids: Iterable[str]) -> dict[str, RiskSummary]:
        """The current risk of each listed session that has one, both ends included: one query
        per 500 ids (SQLite's old limit on bound parameters), never one per session."""
        ids = list(session_ids)
        result: dict[str, RiskSummary] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                for session_id, state, evaluated_at, assessment, live_state, client_mos, therapist_mos in self._db.execute(
                    "SELECT session_id, state, evaluated_at, assessment, live_state, client_mos, therapist_mos"
                    f" FROM session_risk WHERE session_id IN ({marks})",
                    chunk,
                ):
                    result[session_id] = RiskSummary(state, evaluated_at, json.loads(assessment), live_state, client_mos, therapist_mos)
        return result

    def session_counts(self) -> list[tuple[str, str, int]]:
        """(session state, risk state or "unassessed", count) for /metrics."""
        with self._lock:
            return self._db.execute(
                "SELECT s.state, COALESCE(CASE WHEN s.state = 'live' THEN r.live_state ELSE r.state END, 'unassessed'), COUNT(*)"
                " FROM sessions s LEFT JOIN session_risk r USING (session_id) GROUP BY 1, 2"
            ).fetchall()

    def live_mos(self) -> list[tuple[str, str, str, float | None, float | None]]:
        """(session, therapist, client, client MOS, therapist MOS) of live sessions, for /metrics."""
        with self._lock:
            return self._db.execute(
                "SELECT s.session_id, s.therapist_id, s.client_id, r.client_mos, r.therapist_mos FROM sessions s"
                " JOIN session_risk r USING (session_id) WHERE s.state = 'live'"
            ).fetchall()

    def live_sessions(self) -> list[RiskSession]:
        """Sessions in the live state, with their live tracker's state."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.session_id, s.therapist_id, s.client_id, s.start_at, s.planned_duration_s, s.state,"
                " r.state, r.causes, r.live_tracker FROM sessions s LEFT JOIN session_risk r USING (session_id)"
                " WHERE s.state = 'live' ORDER BY s.start_at, s.session_id"
            ).fetchall()
        return [RiskSession(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(json.loads(r[7])) if r[7] else (), r[8]) for r in rows]
