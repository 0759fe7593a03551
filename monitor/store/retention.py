"""Retention: deleting what is older than its purpose needs, a bounded batch at a time (a mixin
of ``monitor.store.core.SQLiteStore``). The job that calls it is ``monitor.retention``.

Each kind is one short write transaction of at most ``limit`` rows, so ingest waits at most one
batch for the store's lock. Rows that others point at go with (or wait for) what points at
them: a check leaves ``latest_checks``; a delivery takes its attempts; an alert is deleted only
once its deliveries are gone.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

# What each kind deletes, oldest first by the monitor's own clock (never an agent's).
KINDS = ("samples", "checks", "risk_history", "alert_deliveries", "alerts", "trends")

SCHEMA_INDEXES = (
    # Version 2 of the schema (monitor/store/migrations.py): each kind's age is indexed, so a
    # batch finds its rows without scanning the table.
    "CREATE INDEX IF NOT EXISTS samples_by_received ON samples (received_at)",
    "CREATE INDEX IF NOT EXISTS checks_by_received ON checks (received_at)",
    "CREATE INDEX IF NOT EXISTS session_risk_history_by_time ON session_risk_history (at)",
    "CREATE INDEX IF NOT EXISTS alert_deliveries_by_created ON alert_deliveries (created_at)",
)


class RetentionStoreMixin:
    _db: sqlite3.Connection
    _lock: threading.Lock
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def expire_batch(self, kind: str, before: float, limit: int) -> int:
        """Delete at most ``limit`` rows of ``kind`` older than ``before`` (unix seconds);
        returns how many went. Call again until it returns less than ``limit``."""
        if kind not in KINDS:
            raise ValueError(f"unknown retention kind {kind!r}")
        self._before_expiry(kind, before)
        with self._transaction() as db:
            return getattr(self, f"_expire_{kind}")(db, before, limit)

    def _before_expiry(self, kind: str, before: float) -> None:
        """A back end's own work before a batch, in its own transaction: PostgreSQL drops the
        partitions of samples wholly older than ``before`` (``monitor.store.partitions``)."""

    @staticmethod
    def _expire_samples(db: sqlite3.Connection, before: float, limit: int) -> int:
        return db.execute(
            "DELETE FROM samples WHERE rowid IN (SELECT rowid FROM samples WHERE received_at < ? LIMIT ?)", (before, limit)
        ).rowcount

    @staticmethod
    def _expire_checks(db: sqlite3.Connection, before: float, limit: int) -> int:
        ids = [row[0] for row in db.execute("SELECT check_id FROM checks WHERE received_at < ? LIMIT ?", (before, limit))]
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            db.execute(f"DELETE FROM latest_checks WHERE check_id IN ({marks})", chunk)
            db.execute(f"DELETE FROM checks WHERE check_id IN ({marks})", chunk)
        return len(ids)

    @staticmethod
    def _expire_risk_history(db: sqlite3.Connection, before: float, limit: int) -> int:
        return db.execute(
            "DELETE FROM session_risk_history WHERE rowid IN (SELECT rowid FROM session_risk_history WHERE at < ? LIMIT ?)",
            (before, limit),
        ).rowcount

    @staticmethod
    def _expire_alert_deliveries(db: sqlite3.Connection, before: float, limit: int) -> int:
        # A delivery still pending is the worker's; it gives up on its own after [alerts] max_age_s.
        ids = [
            row[0]
            for row in db.execute(
                "SELECT delivery_id FROM alert_deliveries WHERE created_at < ? AND status != 'pending' LIMIT ?", (before, limit)
            )
        ]
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            db.execute(f"DELETE FROM alert_attempts WHERE delivery_id IN ({marks})", chunk)
            db.execute(f"DELETE FROM alert_deliveries WHERE delivery_id IN ({marks})", chunk)
        return len(ids)

    @staticmethod
    def _expire_alerts(db: sqlite3.Connection, before: float, limit: int) -> int:
        ids = [
            row[0]
            for row in db.execute(
                "SELECT alert_id FROM alerts WHERE created_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.alert_id = alerts.alert_id) LIMIT ?",
                (before, limit),
            )
        ]
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            db.execute(f"DELETE FROM alert_last WHERE alert_id IN ({marks})", chunk)
            db.execute(f"DELETE FROM alerts WHERE alert_id IN ({marks})", chunk)
        return len(ids)

    @staticmethod
    def _expire_trends(db: sqlite3.Connection, before: float, limit: int) -> int:
        # Rollups are keyed by UTC hour (and day, for the per-agent ranks): whole buckets go.
        hour, day = int(before // 3600), int(before // 86400)
        deleted = 0
        for table, key, bound in (
            ("trend_agent_hour", "hour", hour),
            ("trend_hour", "hour", hour),
            ("trend_hour_total", "hour", hour),
            ("trend_agent_day", "day", day),
        ):
            deleted += db.execute(
                f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {key} < ? LIMIT ?)", (bound, limit - deleted)
            ).rowcount
            if deleted >= limit:
                break
        return deleted


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    # SQLite allows 999 bound parameters in older builds: stay below it.
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
