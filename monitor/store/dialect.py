"""What differs between the store's two SQL back ends, in one place.

The area mixins (``monitor/store/*.py``) hold one SQL text for SQLite and PostgreSQL: ``?``
placeholders (the PostgreSQL connection rewrites them), ``ON CONFLICT`` upserts (SQLite since
3.24), ``RETURNING`` (SQLite since 3.35) and ``rowid`` (a real identity column of that name in
the PostgreSQL tables that need an insertion order, see ``monitor.store.postgres``). What one
text cannot say is here: a scalar maximum, reading a field of a JSON text column, an hour number
from unix seconds, the error a broken unique constraint raises, and how a write transaction
makes a read-then-write safe against another monitor writing at the same time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dialect:
    name: str  # sqlite | postgresql
    greatest: str  # the two-argument maximum (SQLite's MAX(a, b) is NULL if either is; GREATEST skips NULLs)
    json_text: Callable[[str, tuple[str, ...]], str]  # a JSON text column's field at a path, as text
    hour_of: Callable[[str], str]  # the UTC hour number (floor of unix seconds / 3600) of a REAL column
    integrity_errors: tuple[type[BaseException], ...]
    # Inside a write transaction: hold ``key`` until it ends, so that two monitors running the
    # same read-then-write on the same thing take turns. SQLite needs nothing: BEGIN IMMEDIATE
    # already lets one writer at a time in, across processes.
    serialize: Callable[[Any, str], None]
    # Inside a write transaction: no other transaction may change ``table`` until it ends.
    block_writes: Callable[[Any, str], None]


def _sqlite_json(column: str, path: tuple[str, ...]) -> str:
    return f"json_extract({column}, '$.{'.'.join(path)}')"


def _postgres_json(column: str, path: tuple[str, ...]) -> str:
    return f"({column}::jsonb #>> '{{{','.join(path)}}}')"


SQLITE = Dialect(
    name="sqlite",
    greatest="MAX",
    json_text=_sqlite_json,
    # CAST truncates towards zero; the subtraction makes it the floor for times before 1970.
    hour_of=lambda column: f"CAST({column} / 3600 AS INTEGER) - ({column} < 0)",
    integrity_errors=(sqlite3.IntegrityError,),
    serialize=lambda db, key: None,
    block_writes=lambda db, table: None,
)


def postgres_dialect(integrity_error: type[BaseException]) -> Dialect:
    """PostgreSQL's; ``integrity_error`` is psycopg's (imported only where psycopg is installed)."""
    return Dialect(
        name="postgresql",
        greatest="GREATEST",
        json_text=_postgres_json,
        hour_of=lambda column: f"CAST(FLOOR({column} / 3600) AS BIGINT)",
        integrity_errors=(integrity_error,),
        # A transaction-scoped advisory lock on a 64-bit hash of the key: released at COMMIT or
        # ROLLBACK, never left behind by a monitor that dies.
        serialize=lambda db, key: db.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (key,)),
        # Readers go on; writers wait (and this waits for those under way to commit); SHARE ROW
        # EXCLUSIVE, unlike SHARE, also makes a second holder (another monitor's rebuild) wait.
        block_writes=lambda db, table: db.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"),
    )
