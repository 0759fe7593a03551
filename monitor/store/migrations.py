"""Schema versions of the SQLite store, and the migrations between them.

SQLite's ``PRAGMA user_version`` holds the version a store is at. Version 1 (``BASELINE``) is
the schema every store had before versions existed: the release at commit ef71fbc wrote it
(``tests/data/release_store/``), and such a store reads 0. Each later change to the schema is
one ``Migration`` here, applied in order, each in one transaction together with its version
number, so a store is never half-way between two versions.

A store at a version newer than this code knows is refused before anything touches it: an
older monitor must not write into a layout it does not understand (``StoreTooNew``). Before
migrating a store that holds data, ``upgrade`` copies it next to itself
(``sessionready.sqlite3.before-v<N>``), so a failed upgrade can be undone by hand.

New tables and columns come only through migrations: the baseline script (``CREATE ... IF NOT
EXISTS`` of every area's SCHEMA) runs for new and unversioned stores, never again afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.store.leases import SCHEMA_STATEMENTS as LEASE_STATEMENTS
from monitor.store.partitions import partition_samples
from monitor.store.retention import SCHEMA_INDEXES as RETENTION_INDEXES
from monitor.store.summaries import SCHEMA_STATEMENTS as SUMMARY_STATEMENTS

BASELINE = 1


@dataclass(frozen=True)
class Migration:
    """One step: from ``version - 1`` to ``version``. ``apply`` runs inside the step's
    transaction and must not commit (no ``executescript``)."""

    version: int
    summary: str  # one line, shown by ``sessionready monitor migrate``
    apply: Callable[[sqlite3.Connection], None]
    # The step on PostgreSQL when it is not ``apply``'s statements translated: given the psycopg
    # connection (``%s`` placeholders) inside the step's transaction. Versions stay one sequence
    # for both back ends, so a step may do nothing on one of them.
    postgresql: Callable[[Any], None] | None = None


def _statements(*sql: str) -> Callable[[sqlite3.Connection], None]:
    def apply(db: sqlite3.Connection) -> None:
        for statement in sql:
            db.execute(statement)

    return apply


# Add a migration at the end: version = the previous one + 1. Never edit one that has shipped.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "index each kind's age, for retention's batches", _statements(*RETENTION_INDEXES)),
    Migration(
        3,
        "check links: a client's browser check (monitor/store/check_links.py)",
        _statements(
            """CREATE TABLE check_links (
                link_id TEXT PRIMARY KEY REFERENCES tokens(token_id),
                secret_hash TEXT NOT NULL UNIQUE,
                participant_id TEXT NOT NULL REFERENCES participants(participant_id),
                session_id TEXT,
                created_at REAL NOT NULL,
                expires_at REAL NOT NULL,
                revoked_at REAL,
                last_used_at REAL
            )""",
            "CREATE INDEX check_links_by_participant ON check_links (participant_id, created_at)",
        ),
    ),
    Migration(4, "session summaries: what happened, written when a session ends (monitor/store/summaries.py)", _statements(*SUMMARY_STATEMENTS)),
    Migration(5, "leases: the jobs that run once across monitors sharing the store (monitor/store/leases.py)", _statements(*LEASE_STATEMENTS)),
    Migration(
        6,
        "PostgreSQL: samples partitioned by week of arrival, retention drops whole weeks (monitor/store/partitions.py); SQLite: nothing changes",
        _statements(),
        postgresql=partition_samples,
    ),
)


def latest(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return migrations[-1].version if migrations else BASELINE


class StoreTooNew(Exception):
    """The store was written by a newer sessionready. ``str()`` is one sentence for a person."""

    def __init__(self, path: Path, found: int, known: int) -> None:
        super().__init__(
            f"the store {path} is at schema version {found}, written by a newer sessionready; this version knows up to "
            f"{known}: upgrade sessionready, or restore the backup made before that upgrade"
        )
        self.found = found
        self.known = known


def stored_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def check_not_newer(db: sqlite3.Connection, path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """The store's version; raises ``StoreTooNew`` before anything is written."""
    found = stored_version(db)
    if found > latest(migrations):
        raise StoreTooNew(path, found, latest(migrations))
    return found


def pending(db: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
    """The migrations a store still needs (an unversioned store counts as the baseline)."""
    at = max(stored_version(db), BASELINE)
    return [migration for migration in migrations if migration.version > at]


def upgrade(db: sqlite3.Connection, path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
    """Bring a store that already has the baseline schema to the latest version: back it up
    (when it holds data and a step is pending), then apply each step in its own transaction.
    Returns the steps applied. ``db`` must be in autocommit mode (``isolation_level=None``)."""
    _check_order(migrations)
    check_not_newer(db, path, migrations)
    steps = pending(db, migrations)
    if steps and _holds_data(db):
        backup(db, path.with_name(f"{path.name}.before-v{steps[0].version}"))
    if stored_version(db) < BASELINE:
        db.execute(f"PRAGMA user_version = {BASELINE}")
    for step in steps:
        db.execute("BEGIN IMMEDIATE")
        try:
            step.apply(db)
            db.execute(f"PRAGMA user_version = {step.version}")  # part of the same transaction
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return steps


def backup(db: sqlite3.Connection, to: Path) -> Path:
    """A consistent copy of the whole store (SQLite's online backup), private like the store."""
    to.touch(mode=0o600, exist_ok=True)
    to.chmod(0o600)
    with sqlite3.connect(to) as target:
        db.backup(target)
    target.close()
    return to


def _holds_data(db: sqlite3.Connection) -> bool:
    tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return any(db.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() for table in tables)


def _check_order(migrations: Sequence[Migration]) -> None:
    expected = list(range(BASELINE + 1, BASELINE + 1 + len(migrations)))
    if [m.version for m in migrations] != expected:
        raise AssertionError(f"migrations must be numbered {expected}, one after another")
