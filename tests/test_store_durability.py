"""What the monitor acknowledges is on disk: the store commits with synchronous=FULL.

An agent deletes a report from its spool as soon as the monitor acknowledges it. With SQLite's
WAL in synchronous=NORMAL a commit reaches the disk only at the next checkpoint, so a power cut
after the answer could lose reports that exist nowhere else any more (issue 12, low). A real
power cut cannot be made here; the setting that decides it is read back from the store's own
connection.

SQLite only (not in the contract suite): WAL and its sync pragma are SQLite's. A PostgreSQL
commit is durable when the server's own synchronous_commit and fsync say so, which is the
database administrator's setting, not the monitor's (docs/postgresql.md).
"""

from __future__ import annotations

from pathlib import Path

from monitor.store.core import open_store

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def test_the_store_syncs_every_commit(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == FULL
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()

