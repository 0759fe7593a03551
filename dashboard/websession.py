"""Dashboard logins, carried by the browser sealed: encrypted and authenticated (AES-256-GCM) under
a key only the dashboards hold. Nothing about a login is kept in a dashboard process, so a login
survives a dashboard restart and is accepted by every dashboard that shares the secret key file
(several dashboards behind one load balancer).

What the old in-memory table gave still holds:
- The monitor's token never reaches a page or a script: the cookie that carries it is HttpOnly,
  and what it holds is ciphertext; without the key nobody can read the token out of it, and a
  changed byte fails the authentication tag (the whole cookie is refused).
- Logging out really ends a login: the dashboard tells the monitor, which revokes the token; a
  copy of the cookie kept anywhere is then refused by the monitor on its next use, and every
  full page load asks the monitor first (``dashboard/auth.py``).
- The idle limit: the sealed login carries when it was last used, re-sealed as it is used (at
  most every tenth of the limit, at most every minute, as the monitor writes its own last use);
  the monitor's expiry (``expires_at``) ends it at the latest. The monitor's own idle limit
  applies to the token as well.

Why sealed cookies rather than logins kept in the monitor: the monitor already keeps the user
session the token stands for (its expiry, idle limit and revocation) and every dashboard
checks the token with it; a second table of web sessions there would be one more store area
and one more call per request for no property the sealed cookie lacks. docs/dashboard.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT = "v1"  # the cookie's first characters: a later format can be told apart and refused
# Bound into every seal as associated data: a sealed value made for another purpose, even
# under the same key, fails the tag here.
PURPOSE = b"sessionready dashboard login v1"
NONCE_BYTES = 12  # AES-GCM's 96-bit nonce, random per seal
# The cookie stays well under the 4,096 bytes browsers keep: the fields below are bounded
# (token and CSRF token about 50 characters, username 64, participant id 64) and seal to
# about 500 characters; anything longer than this is not ours and is refused unread.
MAX_COOKIE_CHARS = 3000
REFRESH_CAP_S = 60.0


@dataclass(frozen=True)
class WebSession:
    token: str  # the monitor's login token: inside the sealed cookie only
    csrf_token: str  # sent back with every state-changing request
    username: str
    role: str
    participant_id: str
    expires_at_s: float  # the monitor's expires_at (unix s)
    last_used_s: float  # when a request last carried this login (unix s), at the refresh's grain


class SessionSealer:
    """Makes, seals and opens logins; expiry follows the monitor's ``expires_at`` and an idle limit.

    ``secret`` is the dashboards' shared secret (the secret key file's text); the AES key is
    derived from it with HKDF-SHA256, so the file's other use (signing the login form) and this
    one never share a key.
    """

    def __init__(self, secret: bytes, idle_limit_s: float, clock: Callable[[], float]) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"sessionready-dashboard-login-cookie-key").derive(secret)
        self._aead = AESGCM(key)
        self.idle_limit_s = idle_limit_s
        self._clock = clock

    def create(self, *, token: str, username: str, role: str, participant_id: str, expires_at: str) -> WebSession:
        now = self._clock()
        return WebSession(token, secrets.token_urlsafe(32), username, role, participant_id, _unix(expires_at, now), now)

    def seal(self, session: WebSession) -> str:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(asdict(session), separators=(",", ":")).encode()
        sealed = self._aead.encrypt(nonce, plain, PURPOSE)
        return f"{FORMAT}.{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def open(self, value: str | None) -> WebSession | None:
        """The live login sealed in ``value``, or None: absent, not ours (another key, changed,
        truncated, another format), expired, or idle too long."""
        if not value or len(value) > MAX_COOKIE_CHARS:
            return None
        head, _, body = value.partition(".")
        if head != FORMAT:
            return None
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) <= NONCE_BYTES:
            return None
        try:
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], PURPOSE)
        except InvalidTag:
            return None
        session = _session_of(plain)
        if session is None or not self._alive(session, self._clock()):
            return None
        return session

    def due_for_refresh(self, session: WebSession) -> bool:
        """Should the response carry the login re-sealed with this request's time? Not on every
        request: the Live page calls every 2 s, and a new cookie each time is needless churn."""
        return self._clock() - session.last_used_s >= min(REFRESH_CAP_S, self.idle_limit_s / 10)

    def touched(self, session: WebSession) -> WebSession:
        return replace(session, last_used_s=self._clock())

    def _alive(self, session: WebSession, now: float) -> bool:
        return now < session.expires_at_s and now - session.last_used_s < self.idle_limit_s


def _session_of(plain: bytes) -> WebSession | None:
    """The login in an authenticated plaintext. Only our own key could have sealed it, so a
    mismatch means a cookie from another version: refused, never a crash."""
    try:
        fields = json.loads(plain)
        session = WebSession(**fields)
    except (ValueError, TypeError):
        return None
    strings = (session.token, session.csrf_token, session.username, session.role, session.participant_id)
    numbers = (session.expires_at_s, session.last_used_s)
    if not all(isinstance(s, str) for s in strings) or not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
        return None
    return session


def _unix(timestamp: str, fallback: float) -> float:
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return fallback  # an unreadable expiry ends the session at once rather than never
