"""Per-token limits on the probe endpoints, counted in what costs the monitor.

A check is three probe sessions (UDP keys) and a few seconds of parallel HTTP transfers that,
on a fast link, are a hundred or more requests: counting requests refused a person who re-ran
a check at once. So the limits count probe sessions, bytes moved, and transfers in flight:

- sessions: a token bucket of ``session_burst``, refilled at ``sessions_per_hour``;
- bytes: a token bucket of ``bytes_per_hour`` (starting full), refilled at the same per hour;
  a transfer may start while the bucket is not empty and is charged as its bytes move;
- streams: at most ``streams_per_token`` downloads and uploads at once.

Kept in the process: with several monitors behind a balancer each enforces its own share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sessionready.ratelimit import Buckets


class Refused(Exception):
    """A probe request over a limit; ``retry_after_s`` (whole seconds, >= 1) says when to retry."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = max(1, math.ceil(retry_after_s))


class ProbeLimits:
    """The probe endpoints' limits per token id (see the module docstring)."""

    def __init__(
        self,
        *,
        session_burst: int,
        sessions_per_hour: int,
        bytes_per_hour: int,
        streams_per_token: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = Buckets(session_burst, sessions_per_hour / 3600.0, clock)
        self._bytes = Buckets(bytes_per_hour, bytes_per_hour / 3600.0, clock)
        self._streams_per_token = streams_per_token
        self._streams: dict[str, int] = {}

    def start_session(self, token_id: str) -> None:
        """Count one probe session (a UDP key); ``Refused`` when the token's bucket is empty."""
        wait = self._sessions.wait_s(token_id, 1)
        if wait > 0:
            raise Refused("too many probe sessions for this token; wait and try again", wait)
        self._sessions.charge(token_id, 1)

    @contextmanager
    def transfer(self, token_id: str) -> Iterator[Callable[[int], None]]:
        """One download or upload: yields ``moved(n_bytes)`` to charge bytes as they move.

        ``Refused`` before it starts when the token already has ``streams_per_token`` in flight
        or has used up its bytes for now.
        """
        if self._streams.get(token_id, 0) >= self._streams_per_token:
            raise Refused(f"at most {self._streams_per_token} downloads and uploads at once per token", 1)
        wait = self._bytes.wait_s(token_id, 1)
        if wait > 0:
            raise Refused("this token has moved too many throughput bytes for now; wait and try again", wait)
        self._streams[token_id] = self._streams.get(token_id, 0) + 1
        try:
            yield lambda count: self._bytes.charge(token_id, count)
        finally:
            left = self._streams[token_id] - 1
            if left:
                self._streams[token_id] = left
            else:
                del self._streams[token_id]
