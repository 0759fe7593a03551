"""Check links: a client's browser check from a link (a mixin of ``monitor.store.core.SQLiteStore``).

A link lets whoever holds its secret run checks for one client participant and read the checks
made through it, nothing else (docs/browser-check.md, docs/security.md). Only the secret's
SHA-256 is kept (it carries 192 random bits: a slow KDF would add nothing).

Each link also has a row in ``tokens`` with the link id as its token id and role ``link``: the
checks made through it are stored like any agent's (``checks.agent_id`` references
``tokens``), so the risk engine, ``/metrics`` and reading a check by id treat them as they
treat a CLI check. That row's hash is ``link:<link_id>``, which no SHA-256 hex digest can
equal: it never authenticates anything. Revoking a link stops new checks; the checks already
made stay the participant's, like an agent's checks when its token is revoked later.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from monitor.store.sessions import SessionStoreError

LINK_TOKEN_ROLE = "link"  # the role of a link's row in ``tokens`` (never an agent's role)


@dataclass(frozen=True)
class LinkInfo:
    """A check link, minus its secret. Times are unix seconds (the monitor's clock)."""

    link_id: str
    participant_id: str
    session_id: str | None
    created_at: float
    expires_at: float
    revoked_at: float | None
    last_used_at: float | None
    # Checks stored through this link; None when not counted: a secret's lookup, made on every
    # request of a running page (each throughput request too), does not count them.
    checks: int | None

    def state(self, now: float) -> str:
        """active, revoked or expired (at unix time ``now``)."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "active"


class CheckLinkStoreMixin:
    # The table ``check_links`` (link_id, secret_hash, participant_id, session_id, created_at,
    # expires_at, revoked_at, last_used_at) comes with schema version 3 (monitor/store/migrations.py).

    _db: sqlite3.Connection
    _lock: threading.Lock
    _clock: Callable[[], float]
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    _LINK_COLUMNS = "l.link_id, l.participant_id, l.session_id, l.created_at, l.expires_at, l.revoked_at, l.last_used_at"
    _CHECK_COUNT = "(SELECT COUNT(*) FROM checks c WHERE c.agent_id = l.link_id)"

    def create_check_link(self, secret_hash: str, participant_id: str, session_id: str | None, ttl_s: float) -> LinkInfo:
        """Keep a new link by its secret's hash. SessionStoreError ``not_a_client`` (field
        participant_id) unless the participant is registered as a client."""
        with self._transaction() as db:
            row = db.execute("SELECT role FROM participants WHERE participant_id = ?", (participant_id,)).fetchone()
            if row is None or row[0] != "client":
                raise SessionStoreError("not_a_client", "a check link is for a registered client participant", "participant_id")
            now = self._clock()
            link_id = secrets.token_hex(6)
            while db.execute("SELECT 1 FROM tokens WHERE token_id = ?", (link_id,)).fetchone() is not None:
                link_id = secrets.token_hex(6)
            db.execute(
                "INSERT INTO tokens (token_id, token_hash, role, participant_id, created_at) VALUES (?, ?, ?, ?, ?)",
                (link_id, f"link:{link_id}", LINK_TOKEN_ROLE, participant_id, now),
            )
            db.execute(
                "INSERT INTO check_links (link_id, secret_hash, participant_id, session_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (link_id, secret_hash, participant_id, session_id, now, now + ttl_s),
            )
        return LinkInfo(link_id, participant_id, session_id, now, now + ttl_s, None, None, 0)

    def check_link_by_secret(self, secret_hash: str) -> LinkInfo | None:
        """The link with this secret's hash, in whatever state (the caller judges it), or None.
        Its ``checks`` is None: not counted on this, every request's, path."""
        return next(iter(self._select_links("WHERE l.secret_hash = ?", (secret_hash,), count=False)), None)

    def get_check_link(self, link_id: str) -> LinkInfo | None:
        return next(iter(self._select_links("WHERE l.link_id = ?", (link_id,))), None)

    def list_check_links(self, participant_ids: set[str] | None = None) -> list[LinkInfo]:
        """Every link (or those of ``participant_ids``), oldest first."""
        if participant_ids is None:
            return self._select_links("ORDER BY l.created_at, l.link_id", ())
        if not participant_ids:
            return []
        marks = ", ".join("?" * len(participant_ids))
        return self._select_links(f"WHERE l.participant_id IN ({marks}) ORDER BY l.created_at, l.link_id", tuple(sorted(participant_ids)))

    def revoke_check_link(self, link_id: str) -> bool:
        """Revoke a link that is not revoked yet; False when there is none with that id."""
        with self._transaction() as db:
            cursor = db.execute("UPDATE check_links SET revoked_at = ? WHERE link_id = ? AND revoked_at IS NULL", (self._clock(), link_id))
            return cursor.rowcount == 1

    def touch_check_link(self, link_id: str) -> None:
        """Note that the link was used now (at most one write a minute per link)."""
        with self._transaction() as db:
            now = self._clock()
            db.execute(
                "UPDATE check_links SET last_used_at = ? WHERE link_id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
                (now, link_id, now - 60),
            )

    def link_check_times(self, link_id: str, limit: int) -> list[float]:
        """When the newest ``limit`` checks made through a link were received (unix seconds),
        newest first: the link's hourly limit needs no report. (The checks themselves are an
        agent's: ``checks_for_agent`` with the link id.)"""
        with self._lock:
            rows = self._db.execute(
                "SELECT received_at FROM checks WHERE agent_id = ? ORDER BY received_at DESC LIMIT ?", (link_id, limit)
            ).fetchall()
        return [row[0] for row in rows]

    def _select_links(self, where: str, parameters: tuple[object, ...], *, count: bool = True) -> list[LinkInfo]:
        columns = f"{self._LINK_COLUMNS}, {self._CHECK_COUNT if count else 'NULL'}"
        with self._lock:
            rows = self._db.execute(f"SELECT {columns} FROM check_links l {where}", parameters).fetchall()
        return [LinkInfo(*row) for row in rows]
