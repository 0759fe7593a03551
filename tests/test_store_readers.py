"""SQLite: reads run on each thread's own connection beside the one writer (issue 16).

With one connection behind one lock, every commit of ingest waited for whatever read held the
lock: the risk pass over every live session, a Trends query, the dashboard's lists. WAL lets
readers and the writer work at once; the store now reads on a connection of the reading thread's
own, in a read transaction (one snapshot per ``with store._lock`` block).

SQLite only: PostgreSQL's reads borrow pooled connections and never shared one (tests/stores.py
runs the contract suite on both).
"""

from __future__ import annotations

import gc
import sqlite3
import threading
from pathlib import Path

import pytest

from monitor.store.core import open_store

WAIT_S = 10.0  # how long a blocked side may wait before the test calls it blocked


def test_a_commit_does_not_wait_for_a_long_read(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    reading, written = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def long_read() -> None:
        with store._lock:
            store._db.execute("SELECT count(*) FROM tokens").fetchone()
            reading.set()
            # Still inside the read when the write below ends (or WAIT_S, when it never could).
            outcome["written_during_read"] = written.wait(WAIT_S)

    reader = threading.Thread(target=long_read)
    reader.start()
    try:
        assert reading.wait(WAIT_S)
        store.create_token("client", "c-1")  # a write transaction on this thread
        written.set()
    finally:
        reader.join()
        store.close()
    assert outcome["written_during_read"] is True


def test_a_read_sees_one_snapshot_and_the_next_read_sees_the_commit(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        store.create_token("client", "c-1")
        with store._lock:
            before = store._db.execute("SELECT count(*) FROM tokens").fetchone()[0]
            writer = threading.Thread(target=store.create_token, args=("client", "c-2"))
            writer.start()
            writer.join(WAIT_S)
            committed_during_read = not writer.is_alive()
            during = store._db.execute("SELECT count(*) FROM tokens").fetchone()[0]
        writer.join()
        after = len(store.list_tokens())
    finally:
        store.close()
    assert committed_during_read
    assert (before, during, after) == (1, 1, 2)


def test_a_read_connection_refuses_to_write(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        with store._lock, pytest.raises(sqlite3.OperationalError, match="readonly"):
            store._db.execute("DELETE FROM tokens")
        with store._lock, pytest.raises(RuntimeError, match="inside a read"):
            with store._transaction():
                pass
    finally:
        store.close()


def test_a_finished_threads_connection_goes_with_it_and_close_closes_the_rest(tmp_path: Path) -> None:
    store = open_store(tmp_path)  # opening read on this thread: its reader stays until close()
    (kept,) = list(store._readers)
    started, finish = threading.Barrier(6), threading.Event()

    def read_then_wait() -> None:
        store.list_tokens()
        started.wait(WAIT_S)
        finish.wait(WAIT_S)

    threads = [threading.Thread(target=read_then_wait) for _ in range(5)]
    for thread in threads:
        thread.start()
    started.wait(WAIT_S)
    assert len(store._readers) == 6  # one per reading thread
    finish.set()
    for thread in threads:
        thread.join()
    gc.collect()
    assert list(store._readers) == [kept]
    store.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        kept.execute("SELECT 1")


def test_close_waits_for_a_read_under_way_and_later_reads_are_refused(tmp_path: Path) -> None:
    # At shutdown a worker thread's risk pass outlives the cancelled task that started it, and
    # the store closed its read connection under it: CI saw the monitor die of SIGSEGV.
    from monitor.store.core import StoreUnavailable

    store = open_store(tmp_path)
    inside, release, closed = threading.Event(), threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def long_read() -> None:
        with store._lock:
            inside.set()
            release.wait(WAIT_S)
            outcome["closed_meanwhile"] = closed.is_set()
            try:
                outcome["count"] = store._db.execute("SELECT count(*) FROM tokens").fetchone()[0]
            except sqlite3.Error as error:
                outcome["count"] = error

    reader = threading.Thread(target=long_read)
    reader.start()
    assert inside.wait(WAIT_S)
    closer = threading.Thread(target=lambda: (store.close(), closed.set()))
    closer.start()
    closer.join(0.5)
    assert closer.is_alive(), "close() returned while a read was under way"
    release.set()
    reader.join(WAIT_S)
    closer.join(WAIT_S)
    assert outcome == {"closed_meanwhile": False, "count": 0}
    assert closed.is_set()
    with pytest.raises(StoreUnavailable, match="closed"):
        with store._lock:
            pass
