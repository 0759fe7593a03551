"""The users part of the SQLite store (a mixin of ``monitor.store.core.SQLiteStore``): dashboard
users (therapist, it, admin) and their login sessions.

Methods use the store's ``_transaction()`` (a write transaction under the lock),
``_lock``, ``_db`` (sqlite3 connection, autocommit) and ``_clock`` (unix seconds).

The store never sees a password or a session token: it keeps an argon2id hash of each password
and a SHA-256 hash of each session token, both computed by ``monitor.http.users``.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from monitor.store.dialect import Dialect
from sessionready.terms import USER_ROLES

# User session tokens start "sru1_", agent tokens "sr1_": the prefix says which table to look in.
USER_TOKEN_PREFIX = "sru1"
# Expired and revoked sessions are kept this long (who was logged in when), then deleted.
SESSION_RETENTION_S = 30 * 86_400.0


@dataclass(frozen=True)
class UserInfo:
    """A dashboard user, minus the password hash. ``username`` is the staff member's login
    name, never client data; ``participant_id`` is the pseudonymous therapist id whose sessions
    a therapist sees (None for it and admin, who see everything)."""

    user_id: str
    username: str
    role: str
    participant_id: str | None
    created_at: float  # unix seconds
    disabled_at: float | None
    failed_logins: int  # wrong passwords from any address since the last successful login
    locked_until: float | None  # unix seconds; only set by versions that locked accounts

    def state(self, now: float) -> str:
        """active or disabled (at unix time ``now``). Accounts no longer lock (monitor/http/users.py)."""
        return "disabled" if self.disabled_at is not None else "active"


@dataclass(frozen=True)
class UserSession:
    """One login: valid until ``expires_at`` and while used at least every ``idle_s`` seconds."""

    session_id: str
    user_id: str
    created_at: float  # unix seconds
    expires_at: float  # unix seconds, absolute
    idle_s: float


@dataclass(frozen=True)
class UserPrincipal:
    """Who a request comes from when it carries a user session token.

    It has the attributes handlers read from an agent's ``TokenInfo`` (``token_id``, ``role``,
    ``participant_id``), so role checks and "a therapist sees only their own sessions" work the
    same for both; ``kind`` tells them apart, and ``monitor.auth.require_role`` refuses users
    unless an endpoint admits them explicitly. ``participant_id`` is "" for it and admin users,
    which matches no participant.
    """

    token_id: str  # "user:<user_id>"; never an agent id
    role: str
    participant_id: str
    user_id: str
    username: str
    session_id: str
    expires_at: float  # unix seconds: the earlier of the absolute and the idle expiry
    kind: Literal["user"] = "user"


_USER_COLUMNS = "user_id, username, role, participant_id, created_at, disabled_at, failed_logins, locked_until"


class UserStoreMixin:
    SCHEMA = """
-- Dashboard users. username is the staff member's login name (not client data).
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('therapist', 'it', 'admin')),
    participant_id TEXT,
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    disabled_at REAL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until REAL,
    CHECK ((role = 'therapist') = (participant_id IS NOT NULL))
);
-- Login sessions: only a SHA-256 hash of each session token is kept.
CREATE TABLE IF NOT EXISTS user_sessions (
    session_id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(user_id),
    created_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    idle_s REAL NOT NULL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS user_sessions_by_user ON user_sessions (user_id);
CREATE INDEX IF NOT EXISTS user_sessions_by_expiry ON user_sessions (expires_at);
-- Wrong logins per (typed username, address), for the progressive wait (monitor/http/users.py).
-- pair_hash is SHA-256 of both: a typed username may be a password typed in the wrong field.
-- user_id names the account when the username exists, so that a new password clears its waits.
CREATE TABLE IF NOT EXISTS login_failures (
    pair_hash TEXT PRIMARY KEY,
    user_id TEXT,
    failures INTEGER NOT NULL,
    last_failure_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_by_time ON login_failures (last_failure_at);
"""

    _db: sqlite3.Connection
    _lock: threading.Lock
    _clock: Callable[[], float]
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _dialect: Dialect

    def create_user(self, username: str, role: str, participant_id: str | None, password_hash: str) -> UserInfo:
        """A new active user; ValueError if the role does not fit or the username is taken."""
        if role not in USER_ROLES:
            raise ValueError(f"role must be one of {', '.join(USER_ROLES)}")
        if (role == "therapist") != (participant_id is not None):
            raise ValueError("a therapist needs a participant id, and only a therapist has one")
        info = UserInfo(secrets.token_hex(6), username, role, participant_id, self._clock(), None, 0, None)
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO users (user_id, username, role, participant_id, password_hash, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (info.user_id, username, role, participant_id, password_hash, info.created_at),
                )
        except self._dialect.integrity_errors:
            raise ValueError(f"the username '{username}' is taken") from None
        return info

    def user_for_login(self, username: str) -> tuple[UserInfo, str] | None:
        """The user and their password hash, or None if there is no such username."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE username = ?", (username,)
            ).fetchone()
        return (UserInfo(*row[:-1]), row[-1]) if row else None

    def list_users(self) -> list[UserInfo]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY created_at").fetchall()
        return [UserInfo(*row) for row in rows]

    def disable_user(self, username: str) -> bool:
        """Disable an active user and end their sessions at once; False if there is none."""
        with self._transaction() as db:
            now = self._clock()
            row = db.execute(
                "UPDATE users SET disabled_at = ? WHERE username = ? AND disabled_at IS NULL RETURNING user_id", (now, username)
            ).fetchone()
            if row is None:
                return False
            db.execute("UPDATE user_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", (now, row[0]))
            return True

    def set_user_password(self, username: str, password_hash: str) -> bool:
        """A new password: clears the user's failure counts and waits and ends their sessions;
        False if no such user."""
        with self._transaction() as db:
            row = db.execute("SELECT user_id FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                return False
            db.execute(
                "UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = NULL WHERE user_id = ?",
                (password_hash, row[0]),
            )
            db.execute("DELETE FROM login_failures WHERE user_id = ?", (row[0],))
            db.execute("UPDATE user_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", (self._clock(), row[0]))
            return True

    def login_failures(self, pair_hash: str, forget_after_s: float) -> tuple[int, float]:
        """(wrong logins, seconds since the last) for a username+address pair; (0, inf) for a
        pair without any in the last ``forget_after_s`` seconds."""
        with self._lock:
            row = self._db.execute("SELECT failures, last_failure_at FROM login_failures WHERE pair_hash = ?", (pair_hash,)).fetchone()
        since_s = self._clock() - row[1] if row else float("inf")
        if row is None or since_s > forget_after_s:
            return 0, float("inf")
        return int(row[0]), max(0.0, since_s)

    def record_login_failure(self, pair_hash: str, user_id: str | None, forget_after_s: float) -> None:
        """Count a refused login for a username+address pair (and, for a known user, on the
        user: ``user list`` shows it). Nothing locks: the wait this leads to is per pair.

        A pair's count starts again once ``forget_after_s`` seconds pass without a failure;
        pairs older than that are deleted here, so the table holds about one day's attempts.
        """
        with self._transaction() as db:
            now = self._clock()
            db.execute(
                "INSERT INTO login_failures (pair_hash, user_id, failures, last_failure_at) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (pair_hash) DO UPDATE SET"
                " failures = CASE WHEN login_failures.last_failure_at < ? THEN 1 ELSE login_failures.failures + 1 END,"
                " last_failure_at = excluded.last_failure_at",
                (pair_hash, user_id, now, now - forget_after_s),
            )
            if user_id is not None:
                db.execute("UPDATE users SET failed_logins = failed_logins + 1 WHERE user_id = ?", (user_id,))
            db.execute("DELETE FROM login_failures WHERE last_failure_at < ?", (now - forget_after_s,))

    def clear_login_failures(self, pair_hash: str) -> None:
        """A correct login from this username+address pair: its count starts again."""
        with self._transaction() as db:
            db.execute("DELETE FROM login_failures WHERE pair_hash = ?", (pair_hash,))

    def start_user_session(
        self, user_id: str, token_hash: str, lifetime_s: float, idle_s: float, new_password_hash: str | None = None
    ) -> tuple[UserInfo, UserSession] | None:
        """After a correct password: a new session, or None if the user is disabled.

        Resets the failure count and, when given, replaces the password hash (a rehash with
        current parameters). Also deletes sessions that ended long ago, so the table stays small.
        No account locks (a stranger could lock anyone out): a lock an older version left is
        cleared here.
        """
        with self._transaction() as db:
            now = self._clock()
            updated = db.execute(
                "UPDATE users SET failed_logins = 0, locked_until = NULL, password_hash = COALESCE(?, password_hash)"
                " WHERE user_id = ? AND disabled_at IS NULL",
                (new_password_hash, user_id),
            )
            if updated.rowcount != 1:
                return None
            session = UserSession(secrets.token_hex(8), user_id, now, now + lifetime_s, idle_s)
            db.execute(
                "INSERT INTO user_sessions (session_id, token_hash, user_id, created_at, last_seen_at, expires_at, idle_s)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session.session_id, token_hash, user_id, now, now, session.expires_at, idle_s),
            )
            db.execute(
                "DELETE FROM user_sessions WHERE expires_at < ? OR revoked_at < ? OR last_seen_at + idle_s < ?",
                (now - SESSION_RETENTION_S,) * 3,
            )
            row = db.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ?", (user_id,)).fetchone()
        return UserInfo(*row), session

    def authenticate_user(self, token_hash: str) -> UserPrincipal | None:
        """The principal of a live session of an active user, or None; marks the session used.

        The last-use time is written at most every tenth of the idle limit (and at most every
        minute), not on every request: the dashboard polls every few seconds.
        """
        with self._lock:
            now = self._clock()
            row = self._db.execute(
                "SELECT s.session_id, s.last_seen_at, s.expires_at, s.idle_s, u.user_id, u.username, u.role, u.participant_id"
                " FROM user_sessions s JOIN users u ON u.user_id = s.user_id"
                " WHERE s.token_hash = ? AND s.revoked_at IS NULL AND u.disabled_at IS NULL",
                (token_hash,),
            ).fetchone()
            if row is None:
                return None
            session_id, last_seen_at, expires_at, idle_s, user_id, username, role, participant_id = row
            if now >= expires_at or now - last_seen_at >= idle_s:
                return None
        if now - last_seen_at >= min(60.0, idle_s / 10):
            # A write of its own, after the read (a read never writes: SQLite reads on a
            # read-only connection of this thread's, PostgreSQL on an autocommit one).
            with self._transaction() as db:
                db.execute("UPDATE user_sessions SET last_seen_at = ? WHERE session_id = ?", (now, session_id))
            last_seen_at = now
        return UserPrincipal(
            token_id=f"user:{user_id}",
            role=role,
            participant_id=participant_id or "",
            user_id=user_id,
            username=username,
            session_id=session_id,
            expires_at=min(expires_at, last_seen_at + idle_s),
        )

    def revoke_user_session(self, session_id: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE user_sessions SET revoked_at = ? WHERE session_id = ? AND revoked_at IS NULL", (self._clock(), session_id)
            )
            return cursor.rowcount == 1
