"""Dashboard logins, kept on the server. The browser's cookie holds only a random session id
(signed); the monitor's token never reaches the browser, so a stolen page or a script cannot
carry it off, and logging out really ends it (the monitor forgets the token)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

MAX_SESSIONS = 10_000  # a practice has tens of staff; this bounds memory against login floods


@dataclass(frozen=True)
class WebSession:
    session_id: str  # 256 random bits, the cookie's (signed) value
    token: str  # the monitor's login token: server-side only
    csrf_token: str  # sent back with every state-changing request
    username: str
    role: str
    participant_id: str
    expires_at_s: float  # the monitor's expires_at (unix s)
    last_used_s: float


class SessionTable:
    """Thread-safe table of logins; expiry follows the monitor's ``expires_at`` and an idle limit."""

    def __init__(self, idle_limit_s: float, clock: Callable[[], float]) -> None:
        self.idle_limit_s = idle_limit_s
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, WebSession] = {}

    def create(self, *, token: str, username: str, role: str, participant_id: str, expires_at: str) -> WebSession:
        now = self._clock()
        session = WebSession(secrets.token_urlsafe(32), token, secrets.token_urlsafe(32), username, role, participant_id, _unix(expires_at, now), now)
        with self._lock:
            self._purge(now)
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.last_used_s)
                del self._sessions[oldest.session_id]
            self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None, *, touch: bool = True) -> WebSession | None:
        """The live session with this id, or None (unknown, expired, idle too long)."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if not self._alive(session, now):
                del self._sessions[session_id]
                return None
            if touch:
                session = replace(session, last_used_s=now)
                self._sessions[session_id] = session
            return session

    def drop(self, session_id: str) -> WebSession | None:
        with self._lock:
            return self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _alive(self, session: WebSession, now: float) -> bool:
        return now < session.expires_at_s and now - session.last_used_s < self.idle_limit_s

    def _purge(self, now: float) -> None:
        for session_id in [s.session_id for s in self._sessions.values() if not self._alive(s, now)]:
            del self._sessions[session_id]


def _unix(timestamp: str, fallback: float) -> float:
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return fallback  # an unreadable expiry ends the session at once rather than never
