"""The alerts part of the SQLite store (a mixin of ``monitor.store.core.SQLiteStore``).

Three things are kept: every alert raised (with the session's therapist, so a therapist's
view needs no join), the last alert per (session, cause) for deduplication, and an outbox of
webhook deliveries with their status and every attempt's outcome. Deduplication and queueing
happen in one transaction, so two monitors sharing a store raise an alert once, and a
restarted monitor neither re-sends what was delivered nor forgets what was not.

Methods use the store's ``_transaction()`` (a write transaction under the lock),
``_lock``, ``_db`` (sqlite3 connection, autocommit) and ``_clock`` (unix seconds).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from monitor.store.dialect import Dialect

DeliveryStatus = Literal["pending", "sent", "failed"]
AttemptOutcome = Literal["sent", "retry", "failed"]


@dataclass(frozen=True)
class AlertRecord:
    """An alert as raised: pseudonymous ids, closed codes and our own generated reasons."""

    alert_id: str
    session_id: str
    therapist_id: str
    client_id: str
    kind: str
    cause: str
    end: str
    state: str
    reasons: tuple[dict[str, str], ...]  # code, end, message, action
    at: float  # unix seconds: when the change happened
    starts_at: float  # unix seconds: the session's start
    created_at: float  # unix seconds: when it was recorded


@dataclass(frozen=True)
class DeliveryState:
    """Where one alert stands with one webhook."""

    webhook: str
    status: DeliveryStatus
    attempts: int
    last_attempt_at: float | None  # unix seconds
    last_status_code: int | None  # HTTP status of the last attempt, if one came back
    last_error: str | None  # closed code: timeout, connect, tls, network, http_4xx, http_5xx, ...


@dataclass(frozen=True)
class StoredAlert:
    alert: AlertRecord
    deliveries: tuple[DeliveryState, ...]


@dataclass(frozen=True)
class PendingDelivery:
    """An outbox row the worker has claimed (leased) for one attempt."""

    delivery_id: int
    alert_id: str
    webhook: str
    payload: str  # JSON, built when the alert was raised
    attempts: int  # attempts made before this one
    created_at: float  # unix seconds


class AlertStoreMixin:
    SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    therapist_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    cause TEXT NOT NULL,
    end_side TEXT NOT NULL,
    state TEXT NOT NULL,
    reasons TEXT NOT NULL,
    at REAL NOT NULL,
    starts_at REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (created_at);
CREATE INDEX IF NOT EXISTS alerts_by_therapist ON alerts (therapist_id, created_at);
CREATE INDEX IF NOT EXISTS alerts_by_session ON alerts (session_id, created_at);
-- Deduplication: the last alert per (session, cause). The same kind and state again is not news.
CREATE TABLE IF NOT EXISTS alert_last (
    session_id TEXT NOT NULL,
    cause TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    alert_id TEXT NOT NULL REFERENCES alerts(alert_id),
    PRIMARY KEY (session_id, cause)
);
-- The outbox: one row per (alert, webhook). delivery_id orders each webhook's queue.
CREATE TABLE IF NOT EXISTS alert_deliveries (
    delivery_id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL REFERENCES alerts(alert_id),
    webhook TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    last_attempt_at REAL,
    last_status_code INTEGER,
    last_error TEXT,
    UNIQUE (alert_id, webhook)
);
CREATE INDEX IF NOT EXISTS alert_deliveries_pending ON alert_deliveries (webhook, delivery_id) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS alert_attempts (
    delivery_id INTEGER NOT NULL REFERENCES alert_deliveries(delivery_id),
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    duration_s REAL NOT NULL,
    outcome TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
"""

    _db: sqlite3.Connection
    _lock: threading.Lock
    _clock: Callable[[], float]
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _dialect: Dialect

    def forget_alert_cause(self, session_id: str, cause: str) -> None:
        """The cause has gone away: should it come back, its alert is news again."""
        with self._transaction() as db:
            db.execute("DELETE FROM alert_last WHERE session_id = ? AND cause = ?", (session_id, cause))

    def add_alert(self, alert: AlertRecord, payloads: Sequence[tuple[str, str]]) -> bool:
        """Record ``alert`` and queue one delivery per (webhook name, payload JSON).

        False, and nothing changes, when the last alert for the same session and cause had the
        same kind and state (a repeat, not a change).
        """
        with self._transaction() as db:
            # Deduplication reads the last alert, then writes: one monitor at a time per (session, cause).
            self._dialect.serialize(db, f"alert:{alert.session_id}:{alert.cause}")
            last = db.execute(
                "SELECT kind, state FROM alert_last WHERE session_id = ? AND cause = ?", (alert.session_id, alert.cause)
            ).fetchone()
            if last is not None and tuple(last) == (alert.kind, alert.state):
                return False
            db.execute(
                "INSERT INTO alerts (alert_id, session_id, therapist_id, client_id, kind, cause, end_side, state, reasons,"
                " at, starts_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    alert.alert_id,
                    alert.session_id,
                    alert.therapist_id,
                    alert.client_id,
                    alert.kind,
                    alert.cause,
                    alert.end,
                    alert.state,
                    json.dumps(list(alert.reasons)),
                    alert.at,
                    alert.starts_at,
                    alert.created_at,
                ),
            )
            db.execute(
                "INSERT INTO alert_last (session_id, cause, kind, state, alert_id) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (session_id, cause) DO UPDATE SET kind = excluded.kind, state = excluded.state,"
                " alert_id = excluded.alert_id",
                (alert.session_id, alert.cause, alert.kind, alert.state, alert.alert_id),
            )
            db.executemany(
                "INSERT INTO alert_deliveries (alert_id, webhook, payload, status, created_at, next_attempt_at)"
                " VALUES (?, ?, ?, 'pending', ?, ?)",
                [(alert.alert_id, webhook, payload, alert.created_at, alert.created_at) for webhook, payload in payloads],
            )
            return True

    def claim_alert_deliveries(self, webhooks: Sequence[str], now: float, lease_s: float, limit: int) -> list[PendingDelivery]:
        """The oldest pending delivery of each of ``webhooks`` that is due at ``now``, at most ``limit``.

        Only the head of each webhook's queue is handed out, so a channel receives its alerts in
        order. Claimed rows are leased: not due again for ``lease_s``, so another worker does
        not send them meanwhile and a crashed one's rows come back later.
        """
        if not webhooks or limit < 1:
            return []
        marks = ",".join("?" * len(webhooks))
        with self._transaction() as db:
            self._dialect.serialize(db, "alert_outbox")  # two workers must not lease the same head
            heads = db.execute(
                f"SELECT MIN(delivery_id) FROM alert_deliveries WHERE status = 'pending' AND webhook IN ({marks})"  # noqa: S608 - placeholders only
                " GROUP BY webhook",
                tuple(webhooks),
            ).fetchall()
            if not heads:
                return []
            head_marks = ",".join("?" * len(heads))
            rows = db.execute(
                "SELECT delivery_id, alert_id, webhook, payload, attempts, created_at FROM alert_deliveries"
                f" WHERE delivery_id IN ({head_marks}) AND next_attempt_at <= ?"  # noqa: S608 - placeholders only
                " ORDER BY next_attempt_at, delivery_id LIMIT ?",
                (*(h[0] for h in heads), now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE alert_deliveries SET next_attempt_at = ? WHERE delivery_id = ?", [(now + lease_s, r[0]) for r in rows]
            )
        return [PendingDelivery(*row) for row in rows]

    def finish_alert_attempt(
        self,
        delivery_id: int,
        at: float,
        duration_s: float,
        outcome: AttemptOutcome,
        status_code: int | None,
        error: str | None,
        next_attempt_at: float,
    ) -> None:
        """Record one attempt; ``outcome`` retry keeps the row pending until ``next_attempt_at``."""
        status = "pending" if outcome == "retry" else outcome
        with self._transaction() as db:
            row = db.execute(
                "UPDATE alert_deliveries SET attempts = attempts + 1, status = ?, next_attempt_at = ?, last_attempt_at = ?,"
                " last_status_code = ?, last_error = ? WHERE delivery_id = ? AND status = 'pending' RETURNING attempts",
                (status, next_attempt_at, at, status_code, error, delivery_id),
            ).fetchone()
            if row is not None:
                db.execute(
                    "INSERT INTO alert_attempts (delivery_id, attempt, at, duration_s, outcome, status_code, error)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (delivery_id, row[0], at, duration_s, outcome, status_code, error),
                )

    def expire_alert_deliveries(self, created_before: float, webhooks: Sequence[str]) -> int:
        """Give up on pending deliveries raised before ``created_before`` (stale) or meant for a
        webhook no longer in ``webhooks`` (removed from the config). Returns how many."""
        marks = ",".join("?" * len(webhooks))
        removed = f"webhook NOT IN ({marks})" if webhooks else "1 = 1"
        with self._transaction() as db:
            stale = db.execute(
                "UPDATE alert_deliveries SET status = 'failed', last_error = 'expired'"
                " WHERE status = 'pending' AND created_at < ?",
                (created_before,),
            ).rowcount
            gone = db.execute(
                f"UPDATE alert_deliveries SET status = 'failed', last_error = 'webhook_removed' WHERE status = 'pending' AND {removed}",  # noqa: S608
                tuple(webhooks),
            ).rowcount
        return stale + gone

    def next_alert_attempt_at(self, webhooks: Sequence[str]) -> float | None:
        """The earliest time the head of one of ``webhooks``' queues becomes due, if any.

        Only heads count: rows queued behind a head are not sent before it, so their due
        times would only wake the worker for nothing."""
        if not webhooks:
            return None
        marks = ",".join("?" * len(webhooks))
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_attempt_at) FROM alert_deliveries WHERE delivery_id IN"
                f" (SELECT MIN(delivery_id) FROM alert_deliveries WHERE status = 'pending' AND webhook IN ({marks}) GROUP BY webhook)",  # noqa: S608
                tuple(webhooks),
            ).fetchone()
        return row[0] if row else None

    def pending_alert_deliveries(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM alert_deliveries WHERE status = 'pending'").fetchone()[0]

    def list_alerts(self, therapist_id: str | None, session_id: str | None, limit: int) -> list[StoredAlert]:
        """Newest first; ``therapist_id`` / ``session_id`` narrow the list when given."""
        where: list[str] = []
        parameters: list[object] = []
        if therapist_id is not None:
            where.append("therapist_id = ?")
            parameters.append(therapist_id)
        if session_id is not None:
            where.append("session_id = ?")
            parameters.append(session_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            rows = self._db.execute(
                "SELECT alert_id, session_id, therapist_id, client_id, kind, cause, end_side, state, reasons, at, starts_at,"
                f" created_at FROM alerts {clause} ORDER BY created_at DESC, rowid DESC LIMIT ?",  # noqa: S608
                (*parameters, limit),
            ).fetchall()
            ids = [r[0] for r in rows]
            deliveries: dict[str, list[DeliveryState]] = {i: [] for i in ids}
            if ids:
                marks = ",".join("?" * len(ids))
                for d in self._db.execute(
                    "SELECT alert_id, webhook, status, attempts, last_attempt_at, last_status_code, last_error"
                    f" FROM alert_deliveries WHERE alert_id IN ({marks}) ORDER BY delivery_id",  # noqa: S608
                    ids,
                ):
                    deliveries[d[0]].append(DeliveryState(*d[1:]))
        return [
            StoredAlert(AlertRecord(*r[:8], tuple(json.loads(r[8])), r[9], r[10], r[11]), tuple(deliveries[r[0]]))
            for r in rows
        ]

    def alert_attempts(self, alert_id: str) -> list[tuple[str, int, float, str, int | None, str | None]]:
        """Every attempt for one alert: (webhook, attempt number, unix time, outcome, status code, error)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT d.webhook, a.attempt, a.at, a.outcome, a.status_code, a.error FROM alert_attempts a"
                " JOIN alert_deliveries d ON d.delivery_id = a.delivery_id WHERE d.alert_id = ? ORDER BY a.at, a.attempt",
                (alert_id,),
            ).fetchall()
        return [tuple(r) for r in rows]
