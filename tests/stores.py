"""The contract suite's store factory: one test body, run on SQLite and on PostgreSQL.

A test that takes the ``stores`` fixture (tests/conftest.py) runs twice, with ids ending
``[sqlite]`` and ``[postgresql]``. ``stores.open()`` opens the test's store (the same file or
database each time, so a test can close it and open it again like a restarted monitor);
everything opened is closed, and the database dropped, when the test ends.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.pg import PostgresServer

BACKENDS = ("sqlite", "postgresql")
# PostgreSQL's tables as the store names them: partitions left out (their parent reads them all).
TABLES = (
    "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')"
    " AND NOT relispartition AND relname != 'schema_version' ORDER BY 1"
)


@dataclass
class StoreFactory:
    backend: str  # sqlite | postgresql
    directory: Path  # the SQLite store's data directory (a temporary directory)
    server: PostgresServer | None = None
    url: str | None = None  # the PostgreSQL database, made on the first open
    opened: list = field(default_factory=list)

    def open(self, clock: Callable[[], float] = time.time):  # a Store (SQLiteStore or PostgresStore)
        if self.backend == "sqlite":
            from monitor.store.core import SQLiteStore

            store = SQLiteStore(self.directory / "sessionready.sqlite3", clock=clock)
        else:
            from monitor.store.postgres import PostgresStore

            assert self.server is not None
            if self.url is None:
                self.url = self.server.new_database(migrated=True)
            store = PostgresStore(self.url, clock=clock)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            with contextlib.suppress(Exception):  # a test may have closed it already
                store.close()
        if self.url is not None and self.server is not None:
            self.server.drop_database(self.url)

    def table_counts(self) -> dict[str, int]:
        """Rows per table of the store, read beside it (the back end's own client), bookkeeping
        tables left out (SQLite's own, PostgreSQL's schema_version); a partitioned table counts
        once, its partitions' rows together (PostgreSQL's samples)."""
        if self.backend == "sqlite":
            import sqlite3

            with sqlite3.connect(self.directory / "sessionready.sqlite3") as db:
                tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
                return {table: db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}
        import psycopg

        assert self.url is not None
        with psycopg.connect(self.url) as conn:
            tables = [row[0] for row in conn.execute(TABLES)]
            return {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}

    def sql(self, statement: str) -> list[tuple]:
        """Run one statement beside the store with the back end's own client (committed at once);
        its rows, if it returns any. For a test's look at, or damage to, what is stored."""
        if self.backend == "sqlite":
            import sqlite3

            with sqlite3.connect(self.directory / "sessionready.sqlite3") as db:
                return db.execute(statement).fetchall()
        import psycopg

        assert self.url is not None
        with psycopg.connect(self.url) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []
