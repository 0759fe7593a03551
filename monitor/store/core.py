"""The monitor's store: the queries both back ends share, and the embedded SQLite back end.

Everything the monitor keeps goes through ``Store``, so that several monitor processes can
share one PostgreSQL database (``monitor.store.postgres``) without the rest of the code knowing;
``open_store_from_config`` picks the back end from ``[monitor] store_url``. Methods are
synchronous and short; the web handlers call them in a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.store import migrations
from monitor.store.alerts import AlertStoreMixin
from monitor.store.caseloads import CaseloadStoreMixin
from monitor.store.check_links import LINK_TOKEN_ROLE, CheckLinkStoreMixin
from monitor.store.dialect import SQLITE, Dialect
from monitor.store.leases import LeaseStoreMixin
from monitor.store.protocols import Store  # noqa: F401  (its home before the areas were split: monitor/store/protocols.py)
from monitor.store.reports import ReportStoreMixin
from monitor.store.retention import RetentionStoreMixin
from monitor.store.risk import RiskStoreMixin
from monitor.store.sessions import SessionStoreMixin
from monitor.store.summaries import SummaryStoreMixin
from monitor.store.trends import TrendStoreMixin
from monitor.store.users import UserStoreMixin
from sessionready.schema import CheckReport
from sessionready.terms import AGENT_ROLES, ENROLL_ROLES

if TYPE_CHECKING:
    from monitor.config import MonitorConfig

# client/therapist: an agent on a person's machine; metrics: a Prometheus scraper; it/admin:
# staff who see every session (the dashboard's users get these roles too).
ROLES = AGENT_ROLES
# Enrollment is how an agent (a person's machine) gets its token; Prometheus never enrolls.
TOKEN_PREFIX = "sr1"


@dataclass(frozen=True)
class TokenInfo:
    """An agent's credential, minus the secret. ``token_id`` doubles as the agent id."""

    token_id: str
    role: str
    participant_id: str
    created_at: float  # unix seconds
    revoked_at: float | None


@dataclass(frozen=True)
class StoredCheck:
    check_id: str
    agent_id: str
    participant_id: str
    session_id: str | None
    received_at: float  # unix seconds, the monitor's clock
    report: dict[str, object]  # the validated report as JSON


@dataclass(frozen=True)
class EnrollmentInfo:
    """A one-time enrollment code, minus the code. ``token_id`` is the agent it created, once used."""

    code_id: str
    role: str
    participant_id: str
    created_at: float  # unix seconds
    expires_at: float  # unix seconds
    used_at: float | None
    revoked_at: float | None
    token_id: str | None

    def state(self, now: float) -> str:
        """pending, used, revoked or expired (at unix time ``now``)."""
        if self.used_at is not None:
            return "used"
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "pending"


def hash_token(token: str) -> str:
    # Tokens carry 256 bits of randomness, so a plain SHA-256 is enough: there is nothing to
    # brute-force that a slow KDF would protect.
    return hashlib.sha256(token.encode()).hexdigest()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token_id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checks (
    check_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES tokens(token_id),
    participant_id TEXT NOT NULL,
    session_id TEXT,
    received_at REAL NOT NULL,
    verdict TEXT NOT NULL,
    report TEXT NOT NULL
);
-- One-time enrollment codes: only a hash of the code is kept (see monitor/http/enroll.py).
CREATE TABLE IF NOT EXISTS enrollments (
    code_id TEXT PRIMARY KEY,
    code_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL,
    revoked_at REAL,
    token_id TEXT REFERENCES tokens(token_id)
);
CREATE INDEX IF NOT EXISTS checks_by_agent ON checks (agent_id, received_at);
-- The newest check of each agent, kept on insert: /metrics reads it on every scrape, and
-- finding it in the checks table would grow with the history.
CREATE TABLE IF NOT EXISTS latest_checks (
    agent_id TEXT PRIMARY KEY,
    check_id TEXT NOT NULL REFERENCES checks(check_id),
    received_at REAL NOT NULL
);
"""


class StoreQueries(ReportStoreMixin, SessionStoreMixin, CaseloadStoreMixin, CheckLinkStoreMixin, AlertStoreMixin, UserStoreMixin, RiskStoreMixin, TrendStoreMixin, RetentionStoreMixin, SummaryStoreMixin, LeaseStoreMixin):
    """Every method of ``Store``, in SQL that both back ends run (``monitor.store.dialect``).

    A back end provides ``_lock`` (a context in which ``_db`` reads), ``_db``, ``_transaction()``
    (a write transaction that yields the connection), ``_clock``, ``_dialect`` and ``close()``:
    ``SQLiteStore`` below, ``monitor.store.postgres.PostgresStore``.
    """

    _dialect: Dialect = SQLITE

    def create_token(self, role: str, participant_id: str) -> tuple[TokenInfo, str]:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        with self._transaction() as db:
            return self._insert_token(db, role, participant_id)

    def _insert_token(self, db: sqlite3.Connection, role: str, participant_id: str) -> tuple[TokenInfo, str]:
        token_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        info = TokenInfo(token_id, role, participant_id, self._clock(), None)
        db.execute(
            "INSERT INTO tokens (token_id, token_hash, role, participant_id, created_at) VALUES (?, ?, ?, ?, ?)",
            (token_id, hash_token(token), role, participant_id, info.created_at),
        )
        return info, token

    def revoke_token(self, token_id: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL AND role != ?",
                (self._clock(), token_id, LINK_TOKEN_ROLE),
            )
            return cursor.rowcount == 1

    def create_enrollment(self, code_hash: str, role: str, participant_id: str, ttl_s: float) -> EnrollmentInfo:
        """Keep a new code by its hash (the store never sees the code itself)."""
        if role not in ENROLL_ROLES:
            raise ValueError(f"role must be one of {', '.join(ENROLL_ROLES)}")
        now = self._clock()
        info = EnrollmentInfo(secrets.token_hex(6), role, participant_id, now, now + ttl_s, None, None, None)
        with self._transaction() as db:
            # The registry holds each id's one role: a code for a known client's id cannot make
            # a therapist's machine (SessionConflict, 409), and a new id is registered now.
            self._ensure_participant(db, participant_id, role, "participant_id")
            db.execute(
                "INSERT INTO enrollments (code_id, code_hash, role, participant_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (info.code_id, code_hash, role, participant_id, info.created_at, info.expires_at),
            )
        return info

    def redeem_enrollment(self, code_hash: str) -> tuple[EnrollmentInfo, TokenInfo, str] | None:
        """Consume a pending code and create its token, or None (unknown, used, revoked, expired).

        The code is taken by one conditional UPDATE: of two redemptions of one code, in this
        process or another monitor, only one changes the row (SQLite: BEGIN IMMEDIATE lets one
        writer in at a time; PostgreSQL: the second UPDATE waits for the first to commit, then
        finds the code used).
        """
        with self._transaction() as db:
            now = self._clock()
            row = db.execute(
                "UPDATE enrollments SET used_at = ? WHERE code_hash = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?"
                " RETURNING code_id, role, participant_id, created_at, expires_at",
                (now, code_hash, now),
            ).fetchone()
            if row is None:
                return None
            code_id, role, participant_id, created_at, expires_at = row
            token_info, token = self._insert_token(db, role, participant_id)
            db.execute("UPDATE enrollments SET token_id = ? WHERE code_id = ?", (token_info.token_id, code_id))
        return EnrollmentInfo(code_id, role, participant_id, created_at, expires_at, now, None, token_info.token_id), token_info, token

    def revoke_enrollment(self, code_id: str) -> bool:
        """Revoke a code that has not been used; False when there is none with that id."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE enrollments SET revoked_at = ? WHERE code_id = ? AND used_at IS NULL AND revoked_at IS NULL",
                (self._clock(), code_id),
            )
            return cursor.rowcount == 1

    def list_enrollments(self) -> list[EnrollmentInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT code_id, role, participant_id, created_at, expires_at, used_at, revoked_at, token_id"
                " FROM enrollments ORDER BY created_at"
            ).fetchall()
        return [EnrollmentInfo(*row) for row in rows]

    def list_tokens(self) -> list[TokenInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT token_id, role, participant_id, created_at, revoked_at FROM tokens WHERE role != ? ORDER BY created_at",
                (LINK_TOKEN_ROLE,),  # a check link's row is managed as a link ('monitor link'), never as a token
            ).fetchall()
        return [TokenInfo(*row) for row in rows]

    def authenticate(self, token: str) -> TokenInfo | None:
        with self._lock:
            row = self._db.execute(
                "SELECT token_id, role, participant_id, created_at, revoked_at FROM tokens"
                " WHERE token_hash = ? AND revoked_at IS NULL",
                (hash_token(token),),
            ).fetchone()
        return TokenInfo(*row) if row else None

    def probe_secret(self) -> bytes:
        # Kept in the store, not in a local file, so every monitor sharing the store accepts
        # the probe keys any of them issued.
        return self._shared_secret("probe_key")

    def _shared_secret(self, name: str) -> bytes:
        """The secret ``name``, made on first use. Two monitors making it at once keep the one
        that was inserted first (the primary key and ON CONFLICT DO NOTHING), and both read it."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
            if row is None:
                db.execute("INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, secrets.token_bytes(32)))
                row = db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
            return bytes(row[0])

    def add_check(self, agent: TokenInfo, report: CheckReport, report_json: str, received_at: float) -> bool | None:
        """Store a check. False: this agent already stored this check id (a retry; nothing
        changes). None: another agent holds the id (nothing changes either)."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO checks (check_id, agent_id, participant_id, session_id, received_at, verdict, report)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (check_id) DO NOTHING",
                (
                    report.check_id,
                    agent.token_id,
                    agent.participant_id,
                    report.session_id,
                    received_at,
                    report.verdict,
                    report_json,
                ),
            )
            if cursor.rowcount != 1:
                owner = db.execute("SELECT agent_id FROM checks WHERE check_id = ?", (report.check_id,)).fetchone()
                return False if owner and owner[0] == agent.token_id else None
            db.execute(
                "INSERT INTO latest_checks (agent_id, check_id, received_at) VALUES (?, ?, ?)"
                " ON CONFLICT (agent_id) DO UPDATE SET check_id = excluded.check_id, received_at = excluded.received_at"
                " WHERE excluded.received_at >= latest_checks.received_at",
                (agent.token_id, report.check_id, received_at),
            )
            return True

    def get_check(self, check_id: str) -> StoredCheck | None:
        rows = self._select_checks("WHERE check_id = ?", (check_id,))
        return rows[0] if rows else None

    def checks_for_agent(self, agent_id: str, limit: int) -> list[StoredCheck]:
        return self._select_checks("WHERE agent_id = ? ORDER BY received_at DESC LIMIT ?", (agent_id, limit))

    def latest_check_per_agent(self) -> list[StoredCheck]:
        return self._select_checks(
            "WHERE check_id IN (SELECT l.check_id FROM latest_checks l JOIN tokens t ON t.token_id = l.agent_id"
            " WHERE t.revoked_at IS NULL AND t.role != ?)",
            (LINK_TOKEN_ROLE,),  # a check link is not an agent: no series of its own, that would grow per link
        )

    def _select_checks(self, where: str, parameters: tuple[object, ...]) -> list[StoredCheck]:
        with self._lock:
            rows = self._db.execute(
                "SELECT check_id, agent_id, participant_id, session_id, received_at, report FROM checks " + where,
                parameters,
            ).fetchall()
        return [StoredCheck(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]



# How long close() waits for reads under way (the longest, a Trends query over 90 days, takes
# seconds; a shutdown must not hang on a stuck one).
CLOSE_WAIT_S = 30.0


class _ReadConnection(sqlite3.Connection):
    """A reading thread's connection (a subclass only so that the store can hold it weakly: a
    thread that ends takes its connection with it)."""


class _SQLiteReading:
    """``with store._lock:`` for SQLite: this thread's own read connection as ``store._db``,
    inside one read transaction (a snapshot: the block's statements see the same commits).

    WAL lets readers and the one writer work at once, so a long read (the risk pass over every
    live session, a Trends query, the dashboard's lists) no longer holds up ingest's commits;
    with one connection behind one lock it did, and an agent's report waited for the slowest
    read in the process (issue 16: the p99 spikes at 1,000 agents).
    """

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        store, bound = self._store, self._store._bound
        if getattr(bound, "reading", None) is not None:
            raise RuntimeError("a store read inside another read of the same thread")
        store._begin_read()
        try:
            conn = getattr(bound, "reader", None)
            if conn is None:
                conn = bound.reader = store._open_reader()
            conn.execute("BEGIN")  # deferred: the snapshot is taken at the first read
        except BaseException:
            store._end_read()
            raise
        bound.reading = conn

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        bound = self._store._bound
        conn, bound.reading = bound.reading, None
        try:
            if conn.in_transaction:
                conn.execute("COMMIT")  # a read transaction: nothing to write, the snapshot let go
        except sqlite3.Error:
            if error is None:
                raise  # a failure of its own; otherwise the block's error is the one to tell
        finally:
            self._store._end_read()


class SQLiteStore(StoreQueries):
    """The embedded store: one SQLite file in WAL mode, safe for one process with many threads.

    Writes go through one connection, one at a time (``_transaction``); reads through a
    connection of the reading thread's own (``_lock``, ``_SQLiteReading``), which WAL lets run
    beside the writer. Other processes (the token command while the monitor runs) may open the
    same file: WAL lets them read and write without blocking the monitor for long.
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        """``clock`` gives unix seconds for created/expiry/revocation times (tests move it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._clock = clock
        self._write_lock = threading.Lock()
        self._bound = threading.local()
        self._lock = _SQLiteReading(self)
        # The read connections, and the reads under way, so that close() waits for them: a read
        # connection closed under a thread still reading with it can crash the monitor (a worker
        # thread's risk pass outlives the cancelled task that started it, and the store closes
        # next at shutdown). One condition guards all three.
        self._reads = threading.Condition()
        self._readers: weakref.WeakSet[_ReadConnection] = weakref.WeakSet()
        self._reads_open = 0
        self._closed = False
        self._writer = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        try:
            version = migrations.check_not_newer(self._writer, path)  # before anything writes to it
        except BaseException:
            self._writer.close()
            raise
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the monitor answers. An agent deletes a report from
        # its spool once the monitor acknowledges it, so NORMAL (WAL synced only at checkpoints)
        # could lose acknowledged reports to a power cut: acknowledged must mean durable.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        if version < migrations.BASELINE:
            # A new store, or one from before schema versions: the baseline schema, and the
            # caseloads that stores older than caseloads derive from their sessions.
            had_caseload = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'caseload'").fetchone() is not None
            self._db.executescript(
                _SCHEMA + ReportStoreMixin.SCHEMA + SessionStoreMixin.SCHEMA + CaseloadStoreMixin.SCHEMA + AlertStoreMixin.SCHEMA
                + UserStoreMixin.SCHEMA + RiskStoreMixin.SCHEMA + TrendStoreMixin.SCHEMA
            )  # fmt: skip
            with self._transaction() as db:
                self._upgrade_caseload(db, had_caseload)
        with self._write_lock:
            self.migrations_applied = migrations.upgrade(self._writer, path)
        self._ensure_rollups()  # trends: a one-off backfill for samples older than the rollups
        path.chmod(0o600)

    @property
    def _db(self) -> sqlite3.Connection:
        """Inside ``with self._lock``: this thread's read connection; elsewhere the writer's."""
        reading = getattr(self._bound, "reading", None)
        return reading if reading is not None else self._writer

    def _open_reader(self) -> _ReadConnection:
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=10, factory=_ReadConnection)
        conn.execute("PRAGMA query_only=ON")  # a read connection never writes, whatever it is asked
        with self._reads:
            self._readers.add(conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if getattr(self._bound, "reading", None) is not None:
            raise RuntimeError("a store transaction inside a read of the same thread")
        with self._write_lock:
            try:
                self._writer.execute("BEGIN IMMEDIATE")
                try:
                    yield self._writer
                except BaseException:
                    if self._writer.in_transaction:  # SQLite may have rolled back already (a full disk does)
                        self._writer.execute("ROLLBACK")
                    raise
                self._writer.execute("COMMIT")
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_FULL:
                    raise
                if self._writer.in_transaction:  # a COMMIT that could not append to the WAL
                    self._writer.execute("ROLLBACK")
                # The journal keeps the file consistent: the write is undone, nothing else lost.
                raise StoreFull(f"the disk under the store {self._path} is full: nothing was written") from None

    def _begin_read(self) -> None:
        with self._reads:
            if self._closed:
                raise StoreUnavailable(f"the store {self._path} is closed (the monitor is stopping)")
            self._reads_open += 1

    def _end_read(self) -> None:
        with self._reads:
            self._reads_open -= 1
            self._reads.notify_all()

    def close(self) -> None:
        """Close every connection once the reads under way have ended (at most CLOSE_WAIT_S);
        reads asked for afterwards raise StoreUnavailable."""
        with self._reads:
            self._closed = True
            self._reads.wait_for(lambda: self._reads_open == 0, timeout=CLOSE_WAIT_S)
        with self._write_lock, self._reads:
            for conn in list(self._readers):
                conn.close()
            self._writer.close()


def open_store(data_dir: Path, clock: Callable[[], float] = time.time) -> SQLiteStore:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The WAL and shared-memory files SQLite creates next to the database get the process
    # umask; a private directory keeps reports, token hashes and the probe-key secret private.
    data_dir.chmod(0o700)
    return SQLiteStore(data_dir / "sessionready.sqlite3", clock)


class StoreUnavailable(Exception):
    """The configured store cannot be opened or used now (no driver, no connection, a database
    restarting). ``str()`` is one sentence for a person, without any password. A request that
    meets it is answered 503 with ``code`` (monitor/app.py): nothing was stored, try again."""

    code = "store_unavailable"


class StoreFull(StoreUnavailable):
    """The disk under the SQLite store is full: the write was rolled back, the file is intact."""

    code = "store_full"


def open_store_from_config(config: MonitorConfig, clock: Callable[[], float] = time.time) -> Store:
    """The store ``[monitor] store_url`` names: "" the SQLite file in ``data_dir``, a
    postgresql:// URL that database. Every command and the monitor open their store here."""
    if not config.store_url:
        return open_store(config.data_path, clock)
    try:
        from monitor.store.postgres import open_postgres
    except ImportError:
        raise StoreUnavailable(
            "store_url is a postgresql:// URL, but the PostgreSQL driver is not installed: pip install 'sessionready[postgresql]'"
        ) from None
    return open_postgres(config.store_url, clock)
