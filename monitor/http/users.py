"""Dashboard users: password hashing, ``POST /api/v1/login`` and ``POST /api/v1/logout``.

The dashboard (a server-side Dash app) logs a person in here and keeps the session token on
its own server; it calls the API with ``Authorization: Bearer <token>`` like an agent does.
The monitor sets no cookie, so a browser never authenticates to it by itself and the API is
not exposed to cross-site request forgery (docs/users.md).

Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher`` defaults; a hash made
with older parameters is replaced on the next successful login). Session tokens carry 256
random bits and are kept as SHA-256 hashes only, like agent tokens.

Guessing is slowed per address and per username+address, never per account alone: an account
that strangers could lock would be theirs to lock (docs/users.md "Guessing").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from monitor import keys
from monitor.config import MonitorConfig
from monitor.errors import ApiError, decode_body, json_error, read_body
from monitor.store.core import hash_token
from monitor.store.protocols import UserStore
from monitor.store.users import USER_TOKEN_PREFIX, UserInfo, UserPrincipal, UserSession
from sessionready import backoff, client_address
from sessionready.ratelimit import RateLimiter
from sessionready.typed import encode, limits

USERNAME_PATTERN = r"[a-z0-9._-]{3,64}"
USERNAME_RULE = "a username is 3 to 64 characters: lowercase letters a-z, digits, '.', '_' or '-'"
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024  # hashing cost does not grow with length, but nobody needs more
# The progressive wait, per (typed username, address): FREE_FAILURES wrong logins cost
# nothing, each one after doubles the wait from FIRST_WAIT_S up to MAX_WAIT_S. A pair that
# stays quiet for FAILURE_MEMORY_S starts again. From one address that is about 110 guesses a
# day at one username, while its owner, from their own address, logs in at once.
FREE_FAILURES = 5
FIRST_WAIT_S = 1.0
MAX_WAIT_S = 15 * 60.0
FAILURE_MEMORY_S = 24 * 3600.0
# argon2id with the default parameters takes 64 MiB and about 0.2 s of a core per hash: a
# burst of logins must not take the memory or every core of the machine the reflector runs on.
HASHING_AT_ONCE = 2
INVALID_LOGIN_MESSAGE = "the username or password is not right, or the account is disabled"

log = logging.getLogger("sessionready.monitor")


def password_problem(password: str) -> str | None:
    """Why ``password`` may not be set (one sentence), or None when it may."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"a password needs at least {MIN_PASSWORD_CHARS} characters"
    if len(password) > MAX_PASSWORD_CHARS:
        return f"a password may have at most {MAX_PASSWORD_CHARS} characters"
    return None


def failure_wait_s(failures: int) -> float:
    """Seconds a username+address pair waits after ``failures`` wrong logins (0 to MAX_WAIT_S)."""
    if failures < FREE_FAILURES:
        return 0.0
    return backoff.ceiling_s(failures - FREE_FAILURES + 1, FIRST_WAIT_S, MAX_WAIT_S)


def pair_hash(username: str, address: str) -> str:
    """The store's key for a username+address pair: a hash, since the typed name may be a
    password typed into the wrong field."""
    return hashlib.sha256(f"{username}\n{address}".encode()).hexdigest()


def valid_username(username: str) -> bool:
    return re.fullmatch(USERNAME_PATTERN, username) is not None


def new_session_token() -> str:
    """A user session token: the ``sru1_`` prefix tells it from an agent token (``sr1_``)."""
    return f"{USER_TOKEN_PREFIX}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class LoginRequest:
    """A dashboard user's login name and password."""

    username: str = field(metadata=limits(max_len=64, doc="the staff member's login name, e.g. 'a.therapist'"))
    password: str = field(metadata=limits(max_len=MAX_PASSWORD_CHARS))


@dataclass(frozen=True)
class LoginResponse:
    """A new user session token, shown only in this answer; the monitor keeps only its hash."""

    token: str
    expires_at: str = field(metadata=limits(timestamp=True, doc="the latest the session ends; unused for idle_timeout_s it ends sooner"))
    idle_timeout_s: float
    role: str
    participant_id: str | None = field(metadata=limits(doc="the therapist id whose sessions a therapist sees; null for it and admin"))
    username: str


class Login:
    """The login and logout handlers with their rate limit and hashing budget (one per app)."""

    def __init__(self, config: MonitorConfig, clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._hasher = PasswordHasher()
        self._by_address = RateLimiter(config.login_attempts_per_minute, clock)
        self._wall_clock = wall_clock  # unix seconds, for the age of a signed client address
        # Read once at start-up: a ConfigError here stops the monitor with one sentence.
        self._address_secret = client_address.read_shared_secret(config.client_address_secret_file) if config.client_address_secret_file else None
        self._hashing = asyncio.Semaphore(HASHING_AT_ONCE)
        self._dummy_hash: str | None = None

    def _rate_limited(self, what: str, retry_s: float) -> web.Response:
        return json_error(
            429, "rate_limited", f"too many login attempts {what}; wait {math.ceil(retry_s)} s and try again", headers={"Retry-After": str(math.ceil(retry_s))}
        )

    def client_address(self, request: web.Request) -> str:
        """Whom a login is from: the address the dashboard signed for it, else the peer's.

        A header that is not signed with the shared secret (or has gone stale) is ignored:
        anyone may send the header, only the dashboard can sign it.
        """
        header = request.headers.get(client_address.HEADER)
        peer = request.remote or "unknown"
        if header is None:
            return peer
        signed = client_address.verify(self._address_secret, header, self._wall_clock()) if self._address_secret else None
        if signed is None:
            log.warning("login with an unsigned client address header; counted by its own address", extra={"fields": {"peer": peer}})
            return peer
        return signed

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _verify_unknown(self, password: str) -> bool:
        # The same work as for a real user, so that the time taken does not tell whether a
        # username exists. The dummy hash is made once, with the current parameters.
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        self._verify(self._dummy_hash, password)
        return False

    async def login(self, request: web.Request) -> web.Response:
        address = self.client_address(request)
        # Counted before the body is read: malformed requests use up attempts too.
        if not self._by_address.allow(address):
            return self._rate_limited("from this address", 60 / self._config.login_attempts_per_minute)
        body = decode_body(LoginRequest, await read_body(request))
        # ASCII only: str.lower() maps a few other characters onto a-z (the Kelvin sign onto k),
        # which would give one account several names, each with its own attempt budget.
        username = body.username.lower() if body.username.isascii() else ""
        store: UserStore = request.app[keys.STORE]
        pair = pair_hash(username, address)
        # The wait is the same for unknown and known usernames (no enumeration), and costs
        # no hash: a pair that is waiting is answered before argon2 runs.
        failures, since_s = await asyncio.to_thread(store.login_failures, pair, FAILURE_MEMORY_S)
        wait_s = failure_wait_s(failures) - since_s
        if wait_s > 0:
            return self._rate_limited("for this username from this address", wait_s)
        found = await asyncio.to_thread(store.user_for_login, username) if valid_username(username) else None
        async with self._hashing:
            if found is None:
                correct = await asyncio.to_thread(self._verify_unknown, body.password)
            else:
                correct = await asyncio.to_thread(self._verify, found[1], body.password)
            rehashed = None
            if correct and found is not None and self._hasher.check_needs_rehash(found[1]):
                rehashed = await asyncio.to_thread(self._hasher.hash, body.password)
        if found is not None and correct:
            token = new_session_token()
            started = await asyncio.to_thread(
                store.start_user_session,
                found[0].user_id,
                hash_token(token),
                self._config.user_session_hours * 3600,
                self._config.user_idle_minutes * 60,
                rehashed,
            )
            if started is not None:
                if failures:
                    await asyncio.to_thread(store.clear_login_failures, pair)
                return _logged_in(token, *started)
        await asyncio.to_thread(store.record_login_failure, pair, found[0].user_id if found else None, FAILURE_MEMORY_S)
        # Ids and a reason for the log, never the typed username (it may be a password typed
        # into the wrong field) and never the password.
        reason = "unknown_user" if found is None else ("wrong_password" if not correct else "disabled")
        log.info("login refused", extra={"fields": {"reason": reason, "user_id": found[0].user_id if found else None, "pair_failures": failures + 1}})
        # One answer for unknown users, wrong passwords and disabled accounts.
        return json_error(401, "invalid_login", INVALID_LOGIN_MESSAGE, headers={"WWW-Authenticate": 'Bearer realm="sessionready"'})

    async def logout(self, request: web.Request) -> web.Response:
        principal = request[keys.AGENT]
        if not isinstance(principal, UserPrincipal):
            raise ApiError(403, "forbidden", "only a dashboard login can log out; revoke an agent token with 'sessionready monitor token revoke'")
        store: UserStore = request.app[keys.STORE]
        await asyncio.to_thread(store.revoke_user_session, principal.session_id)
        log.info("logout", extra={"fields": {"user_id": principal.user_id, "session_id": principal.session_id}})
        return web.Response(status=204)


def _logged_in(token: str, user: UserInfo, session: UserSession) -> web.Response:
    log.info("login", extra={"fields": {"user_id": user.user_id, "role": user.role, "session_id": session.session_id}})
    answer = LoginResponse(
        token=token,
        expires_at=datetime.fromtimestamp(session.expires_at, timezone.utc).isoformat(),
        idle_timeout_s=session.idle_s,
        role=user.role,
        participant_id=user.participant_id,
        username=user.username,
    )
    return web.json_response(encode(answer), status=201, headers={"Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    """``POST /api/v1/login`` (public) and ``POST /api/v1/logout`` (a user session token)."""
    login = Login(app[keys.CONFIG])
    app.router.add_post("/api/v1/login", login.login)
    app.router.add_post("/api/v1/logout", login.logout)
