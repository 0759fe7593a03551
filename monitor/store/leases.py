"""Leases: which monitor runs a job that must run once across every monitor sharing the store
(a mixin of both back ends; the keeper that takes and renews them is ``monitor.leader``).

A lease is one row per job: who holds it and until when (unix seconds, by the holder's clock).
Taking it is one upsert that succeeds only when the row is free, expired or already the
taker's, so of two monitors asking at once exactly one gets it: SQLite lets one writer in at a
time (BEGIN IMMEDIATE), PostgreSQL's ``INSERT ... ON CONFLICT DO UPDATE`` locks the row and
re-reads it before judging the ``WHERE``. A holder that dies simply stops renewing; the row
expires and the next monitor to ask takes it. Version 5 of the schema
(``monitor.store.migrations``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

SCHEMA_STATEMENTS = (
    """CREATE TABLE leases (
        job TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        acquired_at REAL NOT NULL,
        expires_at REAL NOT NULL
    )""",
)


class LeaseStoreMixin:
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def take_lease(self, job: str, holder: str, now: float, ttl_s: float) -> bool:
        """Take or renew the lease on ``job`` for ``ttl_s`` seconds from ``now`` (unix
        seconds); False when another holder's lease has not yet expired (nothing changes)."""
        with self._transaction() as db:
            row = db.execute(
                "INSERT INTO leases (job, holder, acquired_at, expires_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,"
                " acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at ELSE excluded.acquired_at END"
                " WHERE leases.holder = excluded.holder OR leases.expires_at <= ?"
                " RETURNING holder",
                (job, holder, now, now + ttl_s, now),
            ).fetchone()
            return row is not None

    def release_lease(self, job: str, holder: str) -> bool:
        """Give ``job``'s lease up at once (a monitor stopping cleanly), so the next monitor need
        not wait for it to expire; False when ``holder`` did not hold it."""
        with self._transaction() as db:
            return db.execute("DELETE FROM leases WHERE job = ? AND holder = ?", (job, holder)).rowcount == 1
