"""Bearer-token authentication and per-token rate limits for the monitor's HTTP API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from monitor.errors import ApiError, json_error
from monitor.store.core import TokenInfo, hash_token
from monitor.store.protocols import TokenStore, UserStore
from monitor.store.users import USER_TOKEN_PREFIX, UserPrincipal
from sessionready.ratelimit import RateLimiter  # noqa: F401  (its home before the dashboard needed it too)
from sessionready.terms import (  # the same for a token and a dashboard user: staff who see every session
    LINK_PAGE_PREFIX,
    STAFF_ROLES,
)

# Paths that need no token: liveness, the API description, enrollment (how an agent gets
# its token; the one-time code is its credential) and login (how a dashboard user gets one).
# /favicon.ico: a browser asks for it by itself on the check page, with no credential; it has
# no route, so it gets 404, not an authentication error.
PUBLIC_PATHS = frozenset({"/healthz", "/api/v1/openapi.json", "/api/v1/enroll", "/api/v1/login", "/favicon.ico"})
# The browser check's page and its assets: the link's secret in the path is the page's own
# credential, judged by its handler (monitor/http/link_page.py).
PUBLIC_PREFIX = LINK_PAGE_PREFIX
# All that a check link's holder may call (docs/browser-check.md section 2). Any other route
# answers a Link credential as if there were none.
LINK_ROUTES = frozenset(
    {
        ("GET", "/api/v1/link"),
        ("POST", "/api/v1/link/rtc"),
        ("GET", "/api/v1/probe/download"),
        ("POST", "/api/v1/probe/upload"),
        ("POST", "/api/v1/link/checks"),
        ("GET", "/api/v1/link/checks"),
    }
)


@dataclass(frozen=True)
class LinkPrincipal:
    """Whoever holds a check link's secret: a client who may run checks for one participant
    and read the checks made through this link, nothing else."""

    link_id: str
    participant_id: str
    session_id: str | None
    expires_at: float  # unix seconds
    role: str = "client"

    @property
    def token_id(self) -> str:
        """The key of the link's probe limits: its link id (link ids and agent token ids are one
        namespace, since each link has a row in the tokens table: monitor/store/check_links.py)."""
        return self.link_id


# Who a request comes from: an agent's token, a dashboard user's login session, or a check link.
Principal = TokenInfo | UserPrincipal | LinkPrincipal

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Looks up a link's secret for a request: its principal, or the answer to give (401, 429).
LinkAuthenticator = Callable[[web.Request, str], Awaitable["LinkPrincipal | web.Response"]]

# Where an agent token's lookup may be remembered for a few seconds (TokenCache): report ingest,
# which every live agent calls every 2 s. Everywhere else a revoked token is refused at once.
CACHED_ROUTES = frozenset({("POST", "/api/v1/reports")})
# How long a remembered lookup is used: a token revoked meanwhile (by this monitor's store or any
# other process sharing it) may still post reports for this long, and no longer.
TOKEN_CACHE_S = 10.0
TOKEN_CACHE_MAX = 100_000  # tokens remembered at most: about 30 MB; a live agent is one

_NO_CREDENTIAL = "this endpoint needs a token (an agent's, or a dashboard login's): send 'Authorization: Bearer <token>'"


class CredentialStore(TokenStore, UserStore, Protocol):
    """What the middleware reads: agents' tokens and dashboard users' login sessions."""


class TokenCache:
    """Agent tokens found valid in the store, each for ``ttl_s`` after its lookup (monotonic clock).

    Why: the lookup is a store query run in a worker thread, and the hop to that thread and back
    cost more of the monitor's CPU than the query (docs/scaling.md). Only successful lookups of
    agent tokens are kept, keyed by the token's SHA-256 (as the store keeps it), never the token.
    The bound on revocation is ``ttl_s``: an entry is never used past it, whatever else happens.
    """

    def __init__(self, ttl_s: float = TOKEN_CACHE_S, max_entries: int = TOKEN_CACHE_MAX, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._found: dict[str, tuple[float, TokenInfo]] = {}

    def get(self, token_hash: str) -> TokenInfo | None:
        entry = self._found.get(token_hash)
        if entry is None:
            return None
        if self._clock() - entry[0] >= self._ttl_s:
            del self._found[token_hash]
            return None
        return entry[1]

    def put(self, token_hash: str, info: TokenInfo) -> None:
        if len(self._found) >= self._max_entries:
            now = self._clock()
            self._found = {key: entry for key, entry in self._found.items() if now - entry[0] < self._ttl_s}
            if len(self._found) >= self._max_entries:
                self._found.clear()
        self._found[token_hash] = (self._clock(), info)


def auth_middleware(
    store_of: Callable[[web.Request], CredentialStore], agent_key: web.AppKey, links: LinkAuthenticator | None = None, tokens: TokenCache | None = None
) -> Callable:
    """``tokens``: agent tokens' lookups remembered on ``CACHED_ROUTES`` (none: every request asks the store)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Content-Encoding", "identity").lower() != "identity":
            # Decompressing a request body would let a small upload cost the server a lot
            # of time on the event loop the UDP reflector shares.
            return _unread(json_error(415, "unsupported_encoding", "send request bodies without Content-Encoding"))
        if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIX):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "link" and token.strip() and links is not None and (request.method, request.path) in LINK_ROUTES:
            found = await links(request, token.strip())
            if isinstance(found, web.Response):
                return _unread(found)
            request[agent_key] = found
            return await handler(request)
        if scheme.lower() != "bearer" or not token.strip():
            return _unread(json_error(401, "unauthenticated", _NO_CREDENTIAL, headers={"WWW-Authenticate": 'Bearer realm="sessionready"'}))
        token = token.strip()
        store: CredentialStore = store_of(request)
        info: Principal | None
        if token.startswith(USER_TOKEN_PREFIX + "_"):
            info = await asyncio.to_thread(store.authenticate_user, hash_token(token))
        elif tokens is not None and (request.method, request.path) in CACHED_ROUTES:
            key = hash_token(token)
            info = tokens.get(key)
            if info is None:
                info = await asyncio.to_thread(store.authenticate, token)
                if info is not None:
                    tokens.put(key, info)
        else:
            info = await asyncio.to_thread(store.authenticate, token)
        if info is None:
            return _unread(
                json_error(
                    401,
                    "invalid_token",
                    "the token is not valid or has been revoked",
                    headers={"WWW-Authenticate": 'Bearer realm="sessionready", error="invalid_token"'},
                )
            )
        request[agent_key] = info
        return await handler(request)

    return middleware


def _unread(response: web.Response) -> web.Response:
    """Answer without reading the body: the connection closes instead of draining it."""
    response.force_close()
    return response


def require_role(info: Principal, *roles: str, users: bool = False, links: bool = False) -> None:
    """403 unless ``info`` has one of ``roles``.

    An it or admin dashboard user passes like a token of that role: staff are staff. A
    therapist *user* has role "therapist" like a therapist's *agent* (a machine), so it passes
    only where the endpoint admits users with ``users=True``: it must never post checks or
    reports or run probes as if it were a machine. A check link has role "client" but passes
    only where the endpoint admits links with ``links=True`` (the middleware lets it reach no
    other route; this is the second lock): elsewhere it is answered as no credential, 401.
    """
    if isinstance(info, LinkPrincipal) and not links:
        raise ApiError(401, "unauthenticated", _NO_CREDENTIAL)
    if isinstance(info, UserPrincipal) and not users and info.role not in STAFF_ROLES:
        raise ApiError(403, "forbidden", f"this endpoint is for agent tokens, not dashboard logins (needs: {', '.join(roles)})")
    if info.role not in roles:
        raise ApiError(403, "forbidden", f"a {info.role} token may not do this (needs: {', '.join(roles)})")
