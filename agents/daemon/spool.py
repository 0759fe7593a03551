"""The agent's on-disk spool: reports wait here until the monitor has acknowledged them.

An agent that cannot reach the monitor keeps its reports and delivers them later, once
(docs/reports.md). The spool is one SQLite file in WAL mode with ``synchronous=FULL``: when
``add_sample``/``add_check`` return, the report has been fsynced and survives SIGKILL and
power loss. Every report gets a random ``report_id`` (the monitor deduplicates by it) and the
next ``seq`` from a persisted counter, so sequence numbers never repeat, even across restarts.

The spool is bounded by the bytes of the reports it holds. When a new report does not fit,
the oldest background samples are dropped first, then the oldest live ones; pre-session
checks are never dropped, so a spool full of checks grows past its bound (checks are
a few per day). Drops and rejections are counted in the file and sent with every batch.

Calls are short and synchronous (one transaction each, one fsync); the class is safe to use
from several threads, so an asyncio agent may call it inline or via ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sessionready import schema
from sessionready.typed import encode

SPOOL_FORMAT = 1  # PRAGMA user_version: a spool written by a newer agent is not touched
DROP_ORDER = ("background", "live")  # what goes first when the spool is full; checks never

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    seq INTEGER PRIMARY KEY,
    report_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_by_kind ON reports (kind, seq);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES
    ('last_seq', 0), ('pending_bytes', 0), ('dropped_background', 0), ('dropped_live', 0), ('rejected', 0);
"""


class SpoolError(Exception):
    """The spool file cannot be used. ``message`` is one sentence for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Spooled:
    """A report as kept in the spool; ``body`` is the envelope's JSON (UTF-8)."""

    report_id: str
    seq: int
    kind: str
    body: bytes


@dataclass(frozen=True)
class SpoolStats:
    """What waits and what was lost, counted since the spool file was created."""

    pending: int
    pending_bytes: int
    dropped_background: int
    rejected: int
    dropped_live: int = 0

    def status(self) -> schema.SpoolStatus:
        """The ``spool`` object of a batch."""
        return schema.SpoolStatus(self.pending, self.dropped_background, self.rejected, self.dropped_live)


class Spool:
    def __init__(self, path: Path, max_bytes: int) -> None:
        """Open (or create) the spool at ``path``; ``max_bytes`` bounds the reports' bodies.

        The directory is made private (0700) and the file 0600: reports describe a person's
        machine and sessions. SQLite gives its WAL and shared-memory files the database
        file's permissions.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self._path = path
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.parent.chmod(0o700)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            path.chmod(0o600)
        except OSError as error:
            raise SpoolError(f"cannot create the spool {path}: {error.strerror or error.__class__.__name__}") from None
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        except sqlite3.Error as error:
            raise SpoolError(f"cannot open the spool {path}: {error}") from None
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SPOOL_FORMAT:
                raise SpoolError(f"the spool {path} was written by a newer agent (format {version}); move it away or upgrade")
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit, so a returned add_* survives power loss.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SPOOL_FORMAT}")
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise SpoolError(f"the spool {path} is not a usable spool ({error}); move it away to start an empty one") from None
        except SpoolError:
            self._db.close()
            raise

    def add_sample(self, kind: Literal["background", "live"], sample: schema.Sample) -> Spooled:
        """Spool a sample; durable when this returns.

        When the spool is full of reports that rank above this one (checks, or live samples
        for a background one), this very sample is the oldest of its kind and is dropped
        (and counted) at once; it is still returned.
        """
        if kind not in DROP_ORDER:
            raise ValueError(f"a sample's kind is background or live, not {kind!r}")
        report_id = secrets.token_hex(16)
        return self._add(report_id, kind, lambda seq: schema.ReportEnvelope(report_id, seq, kind, sample=sample))

    def add_check(self, report: schema.CheckReport) -> Spooled:
        """Spool a pre-session check (its ``check_id`` is the report id); durable when this
        returns. A check already in the spool is not added twice."""
        return self._add(report.check_id, "check", lambda seq: schema.ReportEnvelope(report.check_id, seq, "check", check=report))

    def _add(self, report_id: str, kind: str, envelope_for: Callable[[int], schema.ReportEnvelope]) -> Spooled:
        with self._transaction():
            existing = self._db.execute("SELECT report_id, seq, kind, body FROM reports WHERE report_id = ?", (report_id,)).fetchone()
            if existing is not None:
                return _spooled(existing)
            seq = self._counter("last_seq") + 1
            envelope = envelope_for(seq)
            body = json.dumps(encode(envelope), separators=(",", ":"), ensure_ascii=False).encode()
            self._db.execute("INSERT INTO reports (seq, report_id, kind, body) VALUES (?, ?, ?, ?)", (seq, report_id, kind, body))
            self._bump("last_seq", 1)
            self._bump("pending_bytes", len(body))
            self._make_room()
        return Spooled(report_id, seq, kind, body)

    def _make_room(self) -> None:
        excess = self._counter("pending_bytes") - self._max_bytes
        for kind in DROP_ORDER:
            if excess <= 0:
                return
            freed, count, last = 0, 0, None
            for seq, size in self._db.execute("SELECT seq, length(body) FROM reports WHERE kind = ? ORDER BY seq", (kind,)):
                freed, count, last = freed + size, count + 1, seq
                if freed >= excess:
                    break
            if last is None:
                continue
            self._db.execute("DELETE FROM reports WHERE kind = ? AND seq <= ?", (kind, last))
            self._bump("pending_bytes", -freed)
            self._bump(f"dropped_{kind}", count)
            excess -= freed

    def pending(self, limit: int) -> list[Spooled]:
        """Up to ``limit`` reports, oldest ``seq`` first."""
        with self._lock:
            rows = self._db.execute("SELECT report_id, seq, kind, body FROM reports ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [_spooled(row) for row in rows]

    def acknowledge(self, report_ids: Iterable[str], rejected_ids: Iterable[str] = ()) -> None:
        """Remove reports the monitor answered for; ``rejected_ids`` are also counted."""
        acknowledged, rejected = list(report_ids), list(rejected_ids)
        with self._transaction():
            for ids, counter in ((acknowledged, None), (rejected, "rejected")):
                for start in range(0, len(ids), 500):  # SQLite's host-parameter limit
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    count, size = self._db.execute(
                        f"SELECT count(*), coalesce(sum(length(body)), 0) FROM reports WHERE report_id IN ({marks})", chunk
                    ).fetchone()
                    self._db.execute(f"DELETE FROM reports WHERE report_id IN ({marks})", chunk)
                    self._bump("pending_bytes", -size)
                    if counter:
                        self._bump(counter, count)

    def stats(self) -> SpoolStats:
        with self._lock:
            pending = self._db.execute("SELECT count(*) FROM reports").fetchone()[0]
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return SpoolStats(pending, counters["pending_bytes"], counters["dropped_background"], counters["rejected"], counters["dropped_live"])

    def last_seq(self) -> int:
        """The highest seq ever given out by this spool (0 for a new one)."""
        with self._lock:
            return self._counter("last_seq")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock first: the counters read inside stay true until COMMIT.
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _counter(self, name: str) -> int:
        return self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0]

    def _bump(self, name: str, delta: int) -> None:
        self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (delta, name))


def _spooled(row: tuple[str, int, str, bytes]) -> Spooled:
    return Spooled(row[0], row[1], row[2], bytes(row[3]))
