"""Session summaries in the SQLite store (a mixin of ``monitor.store.core.SQLiteStore``).

A summary is written once, when its session has ended (``monitor/risk/summaries.py``), and
never changes: it outlives the raw samples it was made from (kept 90 days), holding only
ids, codes, numbers, times and our own words. Besides the summary's JSON, a row keeps what
Trends' "How well the warnings worked" counts, so that section never reads a summary whole:
the last pre-session rating (state and "end:cause" codes) and the "end:cause" codes of the
stretches of trouble. The table comes with migration 4 (``monitor/store/migrations.py``).

Methods use the store's ``_transaction()`` (a write transaction under the lock),
``_lock`` and ``_db`` (sqlite3 connection, autocommit).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from monitor.store.trends import TrendFilter

SCHEMA_STATEMENTS = (
    """CREATE TABLE session_summaries (
        session_id TEXT PRIMARY KEY REFERENCES sessions(session_id),
        written_at REAL NOT NULL,
        start_at INTEGER NOT NULL,
        live_at REAL NOT NULL,
        measured INTEGER NOT NULL,
        rating_state TEXT,
        rating_causes TEXT NOT NULL,
        live_causes TEXT NOT NULL,
        summary TEXT NOT NULL
    )""",
    "CREATE INDEX session_summaries_by_start ON session_summaries (start_at)",
)


@dataclass(frozen=True)
class SummaryRow:
    """One summary to store. ``rating_causes``/``live_causes``: "end:cause" codes;
    ``rating_state`` None when the session had no rating before it went live."""

    session_id: str
    start_at: int
    live_at: float
    measured: bool
    rating_state: str | None
    rating_causes: tuple[str, ...]
    live_causes: tuple[str, ...]
    summary: dict[str, object]


@dataclass(frozen=True)
class WarningRow:
    """What Trends counts of one summarised session (measured only)."""

    start_at: int
    rating_state: str | None
    rating_causes: tuple[str, ...]
    live_causes: tuple[str, ...]


class SummaryStoreMixin:
    _db: sqlite3.Connection
    _lock: threading.Lock
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def save_summary(self, row: SummaryRow, at: float) -> bool:
        """Keep a session's summary; False when one is already there (it is never rewritten:
        two monitors summarising the same session keep the first)."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO session_summaries (session_id, written_at, start_at, live_at, measured, rating_state, rating_causes,"
                " live_causes, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING",
                (
                    row.session_id, at, row.start_at, row.live_at, int(row.measured), row.rating_state,
                    json.dumps(list(row.rating_causes)), json.dumps(list(row.live_causes)), json.dumps(row.summary),
                ),
            )  # fmt: skip
            return cursor.rowcount == 1

    def stored_summary(self, session_id: str) -> dict[str, object] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT summary FROM session_summaries WHERE session_id = ?",
                (session_id,),
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def sessions_to_summarise(self, ended_since: float, limit: int) -> list[str]:
        """Sessions that went live, have ended since ``ended_since`` and have no summary yet,
        the earliest ended first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.session_id FROM sessions s JOIN session_states e ON e.session_id = s.session_id AND e.state = 'ended'"
                " WHERE s.state = 'ended' AND e.at >= ?"
                " AND EXISTS (SELECT 1 FROM session_states l WHERE l.session_id = s.session_id AND l.state = 'live')"
                " AND NOT EXISTS (SELECT 1 FROM session_summaries m WHERE m.session_id = s.session_id)"
                " ORDER BY e.at, s.session_id LIMIT ?",
                (ended_since, limit),
            ).fetchall()
        return [r[0] for r in rows]

    def rating_before(self, session_id: str, before: float) -> tuple[float, str, list[dict[str, object]]] | None:
        """The last risk rating stored for a session before ``before``: (at, state, reasons)."""
        with self._lock:
            row = self._db.execute(
                "SELECT at, state, reasons FROM session_risk_history WHERE session_id = ? AND at < ? ORDER BY at DESC, rowid DESC LIMIT 1",
                (session_id, before),
            ).fetchone()
        return None if row is None else (row[0], row[1], json.loads(row[2]))

    def warning_rows(self, start_s: float, end_s: float, where: TrendFilter) -> list[WarningRow]:
        """Measured summaries of sessions (not cancelled) starting in ``[start_s, end_s)``."""
        clauses = [
            "s.start_at >= ?",
            "s.start_at < ?",
            "s.state != 'cancelled'",
            "m.measured = 1",
        ]
        parameters: list[object] = [start_s, end_s]
        for column, value in (
            ("s.therapist_id", where.therapist_id),
            ("s.client_id", where.client_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                parameters.append(value)
        if where.session_participant is not None:
            clauses.append("(s.therapist_id = ? OR s.client_id = ?)")
            parameters += [where.session_participant, where.session_participant]
        with self._lock:
            rows = self._db.execute(
                "SELECT s.start_at, m.rating_state, m.rating_causes, m.live_causes FROM sessions s"
                f" JOIN session_summaries m USING (session_id) WHERE {' AND '.join(clauses)} ORDER BY s.start_at",
                parameters,
            ).fetchall()
        return [WarningRow(int(start), state, tuple(json.loads(rating)), tuple(json.loads(live))) for start, state, rating, live in rows]
