"""A token bucket per key, for login and request limits in the monitor and the dashboard alike
(standard library only)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests, refilled continuously, bursts up to the same.

    Kept in the process: with several monitors behind a balancer each enforces its own share.
    Thread-safe: the dashboard's server calls it from its worker threads.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Take one request from ``key``'s budget; False when it is spent."""
        with self._lock:
            return self._take(key)

    def _take(self, key: str) -> bool:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            while len(self._buckets) >= self._max_keys:
                # Forget the least recently seen key, never everyone's budget at once.
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = _Bucket(self._capacity, now)
        else:
            self._buckets.move_to_end(key)
        bucket.tokens = min(self._capacity, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True
