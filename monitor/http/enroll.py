"""One-time enrollment codes: an admin creates one, a person types it into ``sessionready enroll``,
and the monitor trades it, once, for an agent token.

A code is 16 characters of Crockford's base32 (no I, L, O or U: nothing to confuse with 1 or
0, no accidental words), shown as four groups of four: ``K7Q2-9XMD-4TRB-WN3F``. That is 80
random bits. When redeemed it is read case-insensitively, with or without dashes and spaces,
and, as Crockford's decoding does, O is read as 0 and I or L as 1.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from monitor import keys
from monitor.auth import RateLimiter
from monitor.errors import ApiError, decode_body, json_error, read_body
from monitor.store.core import EnrollmentInfo
from monitor.store.protocols import TokenStore
from sessionready.terms import MAX_TTL_HOURS, MIN_TTL_HOURS
from sessionready.typed import encode, limits

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: 5 bits a character
CODE_CHARS = 16  # 80 bits
GROUP_CHARS = 4
# Per remote address. 80-bit codes cannot be guessed at any rate; the limit keeps a
# misbehaving script from hammering the store. Behind a TLS proxy every client shares the
# proxy's address and so one budget; enrollment is rare enough for that.
ATTEMPTS_PER_MINUTE = 10

_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})

log = logging.getLogger("sessionready.monitor")


def new_code() -> str:
    """A fresh code for a person to type, e.g. ``K7Q2-9XMD-4TRB-WN3F``."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_CHARS))
    return "-".join(raw[i : i + GROUP_CHARS] for i in range(0, CODE_CHARS, GROUP_CHARS))


def normalise_code(text: str) -> str | None:
    """The canonical 16 characters of a typed code, or None if it cannot be one."""
    compact = "".join(text.split()).replace("-", "").upper().translate(_READ_AS)
    if len(compact) != CODE_CHARS or any(c not in ALPHABET for c in compact):
        return None
    return compact


def hash_code(normalised: str) -> str:
    # Plain SHA-256, with a label so a code hash can never equal a token hash. Neither a key
    # nor a slow KDF would add anything: a code carries 80 random bits (2^80 SHA-256 guesses
    # is out of reach offline), it stops working within days at most and after one use, and a
    # key would live in the same database as the hashes it protects. A salted KDF would also
    # rule out finding the code by its hash in one indexed look-up.
    return hashlib.sha256(b"sessionready-enroll-v1:" + normalised.encode()).hexdigest()


def create_code(store: TokenStore, role: str, participant_id: str, ttl_hours: int) -> tuple[EnrollmentInfo, str]:
    """A new code (returned once, here) and what the store keeps about it (its hash only)."""
    if not MIN_TTL_HOURS <= ttl_hours <= MAX_TTL_HOURS:
        raise ValueError(f"the lifetime must be {MIN_TTL_HOURS} to {MAX_TTL_HOURS} hours")
    code = new_code()
    normalised = normalise_code(code)
    assert normalised is not None
    info = store.create_enrollment(hash_code(normalised), role, participant_id, ttl_hours * 3600.0)
    return info, code


@dataclass(frozen=True)
class EnrollRequest:
    """Redeem a one-time enrollment code for an agent token."""

    code: str = field(metadata=limits(max_len=64, doc="e.g. K7Q2-9XMD-4TRB-WN3F; case and dashes do not matter"))


@dataclass(frozen=True)
class EnrollResponse:
    """A new agent token, shown only in this answer; the monitor keeps only its hash."""

    token: str
    agent_id: str
    role: str
    participant_id: str


INVALID_CODE_MESSAGE = "the enrollment code is not valid; ask for a new one"


def redeem_handler(
    attempts_per_minute: int = ATTEMPTS_PER_MINUTE, clock: Callable[[], float] = time.monotonic
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The ``POST /api/v1/enroll`` handler, with its own per-address rate limiter (one per app)."""
    limiter = RateLimiter(attempts_per_minute, clock)

    async def redeem(request: web.Request) -> web.Response:
        # Counted before anything is read: bad JSON and wrong codes use up attempts too.
        if not limiter.allow(request.remote or "unknown"):
            raise ApiError(429, "rate_limited", "too many enrollment attempts from this address; wait a minute and try again")
        code = decode_body(EnrollRequest, await read_body(request)).code
        normalised = normalise_code(code)
        redeemed = None
        if normalised is not None:
            store: TokenStore = request.app[keys.STORE]
            redeemed = await asyncio.to_thread(store.redeem_enrollment, hash_code(normalised))
        if redeemed is None:
            # One answer for mistyped, unknown, expired, used and revoked codes, so that an
            # answer never tells which codes exist.
            return json_error(401, "invalid_code", INVALID_CODE_MESSAGE, headers={"WWW-Authenticate": 'EnrollmentCode realm="sessionready"'})
        enrollment, agent, token = redeemed
        # Ids only: never the code, never the token.
        log.info("enrolled", extra={"fields": {"code_id": enrollment.code_id, "agent_id": agent.token_id, "role": agent.role}})
        answer = EnrollResponse(token=token, agent_id=agent.token_id, role=agent.role, participant_id=agent.participant_id)
        return web.json_response(encode(answer), status=201)

    return redeem
