"""The sessions part of the SQLite store (a mixin of ``monitor.store.core.SQLiteStore``).

Participants are pseudonymous ids with a role; sessions pair a therapist with a client at a
time. Nothing here holds a name, an e-mail address or a calendar title: imports hand over
``SessionRow``s that carry ids and times only.

Methods use the store's ``_transaction()`` (a write transaction under the lock),
``_lock``, ``_db`` (sqlite3 connection, autocommit) and ``_clock`` (unix seconds).
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from monitor.store.dialect import Dialect
from sessionready.terms import PARTICIPANT_ROLES

SESSION_STATES = ("scheduled", "live", "ended", "cancelled")
SESSION_SOURCES = ("api", "csv", "ics")
# What may follow what. Ended is final; a live session cannot be called off after the fact;
# a cancelled one may come back (the calendar un-cancelled it, or staff did).
TRANSITIONS: dict[str, frozenset[str]] = {
    "scheduled": frozenset({"live", "ended", "cancelled"}),
    "live": frozenset({"ended"}),
    "ended": frozenset(),
    "cancelled": frozenset({"scheduled"}),
}
# Reasons are codes (``api``, ``import_cancelled``, ``both_agents_live``), never free text.
REASON_PATTERN = r"[a-z][a-z0-9_]{0,39}"
RESERVED_SESSION_IDS = frozenset({"import"})  # words of the API's paths under /api/v1/sessions/
MAX_IMPORT_ERRORS = 100  # errors reported per import; the rest are counted


@dataclass(frozen=True)
class ParticipantInfo:
    participant_id: str
    role: str  # therapist | client
    created_at: float  # unix seconds


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    therapist_id: str
    client_id: str
    start_at_s: int  # unix seconds
    planned_duration_s: int
    state: str  # scheduled | live | ended | cancelled
    source: str  # api | csv | ics
    created_at: float  # unix seconds
    updated_at: float  # unix seconds

    @property
    def end_at_s(self) -> int:
        return self.start_at_s + self.planned_duration_s


@dataclass(frozen=True)
class StateChange:
    at_s: float  # unix seconds
    state: str
    reason: str  # a code, e.g. created, api, import_cancelled


@dataclass(frozen=True)
class SessionRow:
    """One session as an import produced it: ids and times, nothing else from the source."""

    session_id: str
    therapist_id: str
    client_id: str
    start_at_s: int  # unix seconds
    planned_duration_s: int
    state: Literal["scheduled", "cancelled"]
    source: Literal["csv", "ics"]
    external_key: str | None  # ICS: keyed hash of UID + recurrence id; CSV: None
    row: int | None  # CSV: the row number (header = 1); ICS: None


@dataclass(frozen=True)
class RowError:
    """Why one imported row or event was refused. Names the field, never echoes the source's text."""

    row: int | None
    session_id: str | None
    field: str
    message: str


@dataclass(frozen=True)
class ImportOutcome:
    """What an import did. When ``errors`` is not empty nothing was stored (all or nothing)."""

    created: int
    updated: int
    cancelled: int
    unchanged: int
    errors: tuple[RowError, ...]
    error_count: int  # all errors; ``errors`` holds the first MAX_IMPORT_ERRORS


class SessionStoreError(ValueError):
    """A request the store refuses; ``code`` and ``field`` become the API's error body."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class SessionConflict(SessionStoreError):
    """The request contradicts what is stored (HTTP 409)."""


def _check_session_id(session_id: str) -> None:
    if session_id in RESERVED_SESSION_IDS:
        raise SessionStoreError("invalid_field", f"'{session_id}' is reserved; choose another session id", "session_id")


class _Refused(Exception):
    """An import had a bad row: leave the transaction without keeping anything."""


_SESSION_COLUMNS = "session_id, therapist_id, client_id, start_at, planned_duration_s, state, source, created_at, updated_at"


class SessionStoreMixin:
    SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    participant_id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('therapist', 'client')),
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    therapist_id TEXT NOT NULL REFERENCES participants(participant_id),
    client_id TEXT NOT NULL REFERENCES participants(participant_id),
    start_at INTEGER NOT NULL,
    planned_duration_s INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('scheduled', 'live', 'ended', 'cancelled')),
    source TEXT NOT NULL CHECK (source IN ('api', 'csv', 'ics')),
    -- ICS imports: a keyed hash of the event's UID and recurrence id, never the UID itself.
    external_key TEXT UNIQUE,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_therapist ON sessions (therapist_id, start_at);
CREATE INDEX IF NOT EXISTS sessions_by_client ON sessions (client_id, start_at);
CREATE INDEX IF NOT EXISTS sessions_by_start ON sessions (start_at);
CREATE TABLE IF NOT EXISTS session_states (
    session_id TEXT NOT NULL REFERENCES sessions(session_id),
    at REAL NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS session_states_by_session ON session_states (session_id, at);
"""

    _db: sqlite3.Connection
    _lock: threading.Lock
    _clock: Callable[[], float]
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _assign: Callable[..., object]  # monitor/store/caseloads.py
    _shared_secret: Callable[[str], bytes]  # monitor/store/core.py
    _dialect: Dialect

    # --- participants ---------------------------------------------------------------------

    def add_participant(self, participant_id: str, role: str) -> tuple[ParticipantInfo, bool]:
        """Register a participant; True when new. The same id with another role is a conflict."""
        with self._transaction() as db:
            return self._ensure_participant(db, participant_id, role, "participant_id")

    def get_participant(self, participant_id: str) -> ParticipantInfo | None:
        with self._lock:
            row = self._db.execute(
                "SELECT participant_id, role, created_at FROM participants WHERE participant_id = ?", (participant_id,)
            ).fetchone()
        return ParticipantInfo(*row) if row else None

    def list_participants(self) -> list[ParticipantInfo]:
        with self._lock:
            rows = self._db.execute("SELECT participant_id, role, created_at FROM participants ORDER BY participant_id").fetchall()
        return [ParticipantInfo(*row) for row in rows]

    def _ensure_participant(self, db: sqlite3.Connection, participant_id: str, role: str, field: str) -> tuple[ParticipantInfo, bool]:
        if role not in PARTICIPANT_ROLES:
            raise SessionStoreError("invalid_field", "role must be therapist or client", "role")
        row = db.execute("SELECT participant_id, role, created_at FROM participants WHERE participant_id = ?", (participant_id,)).fetchone()
        if row is not None:
            if row[1] != role:
                raise SessionConflict("participant_role", f"participant '{participant_id}' is registered as a {row[1]}, not a {role}", field)
            return ParticipantInfo(*row), False
        info = ParticipantInfo(participant_id, role, self._clock())
        inserted = db.execute(
            "INSERT INTO participants (participant_id, role, created_at) VALUES (?, ?, ?) ON CONFLICT (participant_id) DO NOTHING",
            (participant_id, role, info.created_at),
        ).rowcount
        if inserted != 1:  # another monitor registered it meanwhile: judge its row
            return self._ensure_participant(db, participant_id, role, field)
        return info, True

    # --- sessions -------------------------------------------------------------------------

    def create_session(
        self, session_id: str | None, therapist_id: str, client_id: str, start_at_s: int, planned_duration_s: int, *, assign: bool = False
    ) -> tuple[SessionInfo, bool]:
        """Create a session through the API; True when new.

        Participants are registered with their role on first use (a known id must have that
        role). Creating an existing id again with the same content changes nothing (a retry);
        with different content it is a conflict. ``assign``: staff made it, so the client goes
        on the therapist's caseload in the same transaction.
        """
        if therapist_id == client_id:
            raise SessionStoreError("invalid_field", "therapist_id and client_id must be different participants", "client_id")
        with self._transaction() as db:
            self._dialect.serialize(db, "sessions")  # read-then-insert: one creator at a time
            self._ensure_participant(db, therapist_id, "therapist", "therapist_id")
            self._ensure_participant(db, client_id, "client", "client_id")
            if assign:
                self._assign(db, therapist_id, client_id, "session")
            if session_id is None:
                session_id = f"s-{secrets.token_hex(8)}"
            _check_session_id(session_id)
            existing = self._session(db, session_id)
            if existing is not None:
                same = (existing.therapist_id, existing.client_id, existing.start_at_s, existing.planned_duration_s) == (
                    therapist_id,
                    client_id,
                    start_at_s,
                    planned_duration_s,
                )
                if not same:
                    raise SessionConflict("conflict", f"session '{session_id}' already exists with different content", "session_id")
                return existing, False
            now = self._clock()
            self._insert_session(db, session_id, therapist_id, client_id, start_at_s, planned_duration_s, "scheduled", "api", None, now)
            created = self._session(db, session_id)
            assert created is not None
            return created, True

    def get_session(self, session_id: str) -> SessionInfo | None:
        with self._lock:
            return self._session(self._db, session_id)

    def list_sessions(
        self,
        *,
        therapist_id: str | None = None,
        state: str | None = None,
        start_from_s: float | None = None,
        start_to_s: float | None = None,
        limit: int = 200,
    ) -> list[SessionInfo]:
        """Sessions ordered by start; ``start_from_s`` <= start < ``start_to_s`` (unix seconds)."""
        where: list[str] = []
        parameters: list[object] = []
        for clause, value in (
            ("therapist_id = ?", therapist_id),
            ("state = ?", state),
            ("start_at >= ?", start_from_s),
            ("start_at < ?", start_to_s),
        ):
            if value is not None:
                where.append(clause)
                parameters.append(value)
        sql = f"SELECT {_SESSION_COLUMNS} FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY start_at, session_id LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*parameters, limit)).fetchall()
        return [SessionInfo(*row) for row in rows]

    def sessions_for_participant(self, participant_id: str, start_before_s: float, end_after_s: float) -> list[tuple[SessionInfo, str]]:
        """The participant's sessions that start before ``start_before_s`` and end after
        ``end_after_s`` (unix seconds), in every state, with the participant's role in each."""
        sql = (
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE {{who}} = ? AND start_at < ? AND start_at + planned_duration_s > ?"
        )
        with self._lock:
            rows = [
                (SessionInfo(*row), role)
                for role, column in (("therapist", "therapist_id"), ("client", "client_id"))
                for row in self._db.execute(sql.format(who=column), (participant_id, start_before_s, end_after_s)).fetchall()
            ]
        rows.sort(key=lambda item: (item[0].start_at_s, item[0].session_id))
        return rows

    def set_session_state(self, session_id: str, state: str, at_s: float, reason: str) -> SessionInfo | None:
        """Move a session to ``state`` and record why; None when there is no such session.

        Unchanged state: nothing is written (agents and staff may say "live" many times).
        An impossible move (ended -> live) raises SessionConflict and changes nothing.
        """
        if state not in SESSION_STATES:
            raise SessionStoreError("invalid_field", f"state must be one of {', '.join(SESSION_STATES)}", "state")
        if not re.fullmatch(REASON_PATTERN, reason):
            raise SessionStoreError("invalid_field", "a reason is a code of lowercase letters, digits and '_'", "reason")
        with self._transaction() as db:
            current = self._session(db, session_id)
            if current is None:
                return None
            if current.state == state:
                return current
            # A change is judged on the current state: one writer of sessions at a time (imports
            # change states too), and the state read again under that lock.
            self._dialect.serialize(db, "sessions")
            current = self._session(db, session_id)
            assert current is not None  # sessions are never deleted
            if current.state == state:
                return current
            if state not in TRANSITIONS[current.state]:
                raise SessionConflict("invalid_transition", f"a session that is {current.state} cannot become {state}", "state")
            self._change_state(db, session_id, state, at_s, reason)
            return self._session(db, session_id)

    def session_history(self, session_id: str) -> list[StateChange]:
        """Every state the session has been in, oldest first, with the reason code."""
        with self._lock:
            rows = self._db.execute(
                "SELECT at, state, reason FROM session_states WHERE session_id = ? ORDER BY rowid", (session_id,)
            ).fetchall()
        return [StateChange(*row) for row in rows]

    def calendar_key(self) -> bytes:
        """The secret that keys the hashes of calendar UIDs (a UID may hold an e-mail address,
        and a plain hash of one can be found by guessing). Kept in the store so every monitor
        sharing it derives the same session ids."""
        return self._shared_secret("calendar_key")

    def import_sessions(self, rows: Sequence[SessionRow]) -> ImportOutcome:
        """Create or update imported sessions in one transaction: all of them, or none when
        any row is refused (then ``errors`` says which and why).

        An import updates only sessions it created (same source) that have not started;
        live and ended sessions are history and stay as they are.
        """
        counts = {"created": 0, "updated": 0, "cancelled": 0, "unchanged": 0}
        errors: list[RowError] = []
        try:
            with self._transaction() as db:
                self._dialect.serialize(db, "sessions")
                for row in rows:
                    try:
                        counts[self._import_row(db, row)] += 1
                    except SessionStoreError as error:
                        errors.append(RowError(row.row, row.session_id, error.field or "session_id", error.message))
                if errors:
                    raise _Refused  # rolls the transaction back
        except _Refused:
            return ImportOutcome(0, 0, 0, 0, tuple(errors[:MAX_IMPORT_ERRORS]), len(errors))
        return ImportOutcome(counts["created"], counts["updated"], counts["cancelled"], counts["unchanged"], (), 0)

    def _import_row(self, db: sqlite3.Connection, row: SessionRow) -> str:
        if row.therapist_id == row.client_id:
            raise SessionStoreError("invalid_field", "the therapist and the client must be different participants", "client_id")
        _check_session_id(row.session_id)
        self._assign(db, row.therapist_id, row.client_id, row.source)  # registers both participants too
        existing = self._session(db, row.session_id)
        now = self._clock()
        if existing is None:
            self._insert_session(
                db, row.session_id, row.therapist_id, row.client_id, row.start_at_s, row.planned_duration_s, row.state, row.source, row.external_key, now
            )
            return "cancelled" if row.state == "cancelled" else "created"
        if existing.source != row.source:
            raise SessionConflict("conflict", f"session '{row.session_id}' was created by {existing.source}; an import from {row.source} may not change it", "session_id")
        if existing.state in ("live", "ended"):
            return "unchanged"
        content = (row.therapist_id, row.client_id, row.start_at_s, row.planned_duration_s)
        changed = content != (existing.therapist_id, existing.client_id, existing.start_at_s, existing.planned_duration_s)
        if changed:
            db.execute(
                "UPDATE sessions SET therapist_id = ?, client_id = ?, start_at = ?, planned_duration_s = ?, updated_at = ? WHERE session_id = ?",
                (*content, now, row.session_id),
            )
        if row.state != existing.state:
            self._change_state(db, row.session_id, row.state, now, "import_cancelled" if row.state == "cancelled" else "import_restored")
            return "cancelled" if row.state == "cancelled" else "updated"
        return "updated" if changed else "unchanged"

    def _insert_session(
        self,
        db: sqlite3.Connection,
        session_id: str,
        therapist_id: str,
        client_id: str,
        start_at_s: int,
        planned_duration_s: int,
        state: str,
        source: str,
        external_key: str | None,
        now: float,
    ) -> None:
        db.execute(
            "INSERT INTO sessions (session_id, therapist_id, client_id, start_at, planned_duration_s, state, source, external_key, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (session_id, therapist_id, client_id, start_at_s, planned_duration_s, state, source, external_key, now, now),
        )
        reason = "created" if state == "scheduled" else "import_cancelled"
        db.execute("INSERT INTO session_states (session_id, at, state, reason) VALUES (?, ?, ?, ?)", (session_id, now, state, reason))

    def _change_state(self, db: sqlite3.Connection, session_id: str, state: str, at_s: float, reason: str) -> None:
        db.execute("UPDATE sessions SET state = ?, updated_at = ? WHERE session_id = ?", (state, self._clock(), session_id))
        db.execute("INSERT INTO session_states (session_id, at, state, reason) VALUES (?, ?, ?, ?)", (session_id, at_s, state, reason))

    @staticmethod
    def _session(db: sqlite3.Connection, session_id: str) -> SessionInfo | None:
        row = db.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        return SessionInfo(*row) if row else None
