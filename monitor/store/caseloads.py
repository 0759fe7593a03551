"""Caseloads: which clients each therapist works with (a mixin of ``monitor.store.core.SQLiteStore``).

A caseload is staff's word, never a therapist's: IT or an admin assigns a client to a
therapist (API, CLI), and a staff-made session or a calendar import assigns its pair as it
creates the session. A therapist may create sessions only with clients on their caseload and
sees a client's checks only while that client is on it, and only checks made around one of
that therapist's own sessions with the client (``CHECK_WINDOW_*``): a therapist never learns
what another therapist's client did on days that are not theirs.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from monitor.store.sessions import SessionStoreError  # one error type for participants and caseloads

# A check counts for a session from 24 hours before its start (the oldest check the risk engine
# uses: monitor.risk.engine.RiskConfig.check_max_age_s) until an hour after its planned end (a
# session may overrun, and the session page keeps linking to its check afterwards).
CHECK_WINDOW_BEFORE_S = 24 * 3600
CHECK_WINDOW_AFTER_S = 3600
CASELOAD_SOURCES = ("api", "cli", "session", "csv", "ics", "upgrade")


@dataclass(frozen=True)
class CaseloadEntry:
    therapist_id: str
    client_id: str
    assigned_at: float  # unix seconds
    source: str  # how it came: api | cli (staff), session (a staff-made session), csv | ics (an import), upgrade


class CaseloadStoreMixin:
    SCHEMA = """
CREATE TABLE IF NOT EXISTS caseload (
    therapist_id TEXT NOT NULL REFERENCES participants(participant_id),
    client_id TEXT NOT NULL REFERENCES participants(participant_id),
    assigned_at REAL NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (therapist_id, client_id)
);
CREATE INDEX IF NOT EXISTS caseload_by_client ON caseload (client_id);
"""
    # Sessions that imports made before caseloads existed were staff's word: their pairs are
    # assigned once, when the table is new. Sessions made through the API are not, since a
    # therapist's token could make those with anyone's client.
    UPGRADE = """
INSERT OR IGNORE INTO caseload (therapist_id, client_id, assigned_at, source)
SELECT DISTINCT therapist_id, client_id, ?, 'upgrade' FROM sessions WHERE source IN ('csv', 'ics')
"""

    _db: sqlite3.Connection
    _lock: threading.Lock
    _clock: Callable[[], float]
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _ensure_participant: Callable[..., object]

    def assign_client(self, therapist_id: str, client_id: str, source: str) -> tuple[CaseloadEntry, bool]:
        """Put ``client_id`` on ``therapist_id``'s caseload; True when new. Either id is
        registered with its role on first use; a known id with the other role is a conflict."""
        if source not in CASELOAD_SOURCES:
            raise ValueError(f"source must be one of {', '.join(CASELOAD_SOURCES)}")
        with self._transaction() as db:
            return self._assign(db, therapist_id, client_id, source)

    def _assign(self, db: sqlite3.Connection, therapist_id: str, client_id: str, source: str) -> tuple[CaseloadEntry, bool]:
        if therapist_id == client_id:
            raise SessionStoreError("invalid_field", "the therapist and the client must be different participants", "client_id")
        self._ensure_participant(db, therapist_id, "therapist", "therapist_id")
        self._ensure_participant(db, client_id, "client", "client_id")
        row = db.execute(
            "SELECT therapist_id, client_id, assigned_at, source FROM caseload WHERE therapist_id = ? AND client_id = ?", (therapist_id, client_id)
        ).fetchone()
        if row is not None:
            return CaseloadEntry(*row), False
        entry = CaseloadEntry(therapist_id, client_id, self._clock(), source)
        inserted = db.execute(
            "INSERT INTO caseload (therapist_id, client_id, assigned_at, source) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (therapist_id, client_id) DO NOTHING",
            (entry.therapist_id, entry.client_id, entry.assigned_at, entry.source),
        ).rowcount
        if inserted != 1:  # another monitor assigned the pair meanwhile: theirs stands
            return self._assign(db, therapist_id, client_id, source)
        return entry, True

    def unassign_client(self, therapist_id: str, client_id: str) -> bool:
        """Take a client off a therapist's caseload; False when they were not on it. Sessions
        stay as they are; the therapist stops seeing the client's checks at once."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM caseload WHERE therapist_id = ? AND client_id = ?", (therapist_id, client_id))
            return cursor.rowcount == 1

    def caseload(self, therapist_id: str | None = None) -> list[CaseloadEntry]:
        """Every assignment (or one therapist's), by therapist then client."""
        sql = "SELECT therapist_id, client_id, assigned_at, source FROM caseload"
        parameters: tuple[str, ...] = ()
        if therapist_id is not None:
            sql += " WHERE therapist_id = ?"
            parameters = (therapist_id,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY therapist_id, client_id", parameters).fetchall()
        return [CaseloadEntry(*row) for row in rows]

    def on_caseload(self, therapist_id: str, client_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM caseload WHERE therapist_id = ? AND client_id = ?", (therapist_id, client_id)).fetchone()
        return row is not None

    def check_visible_to_therapist(self, therapist_id: str, client_id: str, received_at: float) -> bool:
        """Whether a check the client's machine sent at ``received_at`` (unix seconds) is the
        therapist's to see: the client is on their caseload and the check falls in the window
        of one of their sessions with the client that is not cancelled."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM caseload c JOIN sessions s ON s.therapist_id = c.therapist_id AND s.client_id = c.client_id"
                " WHERE c.therapist_id = ? AND c.client_id = ? AND s.state != 'cancelled'"
                " AND s.start_at - ? <= ? AND ? <= s.start_at + s.planned_duration_s + ? LIMIT 1",
                (therapist_id, client_id, CHECK_WINDOW_BEFORE_S, received_at, received_at, CHECK_WINDOW_AFTER_S),
            ).fetchone()
        return row is not None

    def _upgrade_caseload(self, db: sqlite3.Connection, existed: bool) -> None:
        if not existed:
            db.execute(self.UPGRADE, (self._clock(),))
