"""Token buckets per key, for login, request and probe limits in the monitor and the dashboard
alike (standard library only)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Level:
    units: float
    updated: float


class Buckets:
    """Token buckets by key: ``capacity`` units each, refilled at ``per_second``; starts full.

    Forgets the least recently used key beyond ``max_keys`` (a forgotten key starts full
    again, which only ever errs towards serving).
    """

    def __init__(self, capacity: float, per_second: float, clock: Callable[[], float], max_keys: int = 100_000) -> None:
        self._capacity = capacity
        self._per_second = per_second
        self._clock = clock
        self._max_keys = max_keys
        self._levels: OrderedDict[str, _Level] = OrderedDict()

    def level(self, key: str) -> float:
        """Units available to ``key`` now (negative after an overdraft by ``charge``)."""
        now = self._clock()
        level = self._levels.get(key)
        if level is None:
            while len(self._levels) >= self._max_keys:
                self._levels.popitem(last=False)
            level = self._levels[key] = _Level(self._capacity, now)
        else:
            self._levels.move_to_end(key)
        level.units = min(self._capacity, level.units + (now - level.updated) * self._per_second)
        level.updated = now
        return level.units

    def wait_s(self, key: str, units: float) -> float:
        """Seconds until ``key`` has ``units`` (0 if it has them now)."""
        return max(0.0, (units - self.level(key)) / self._per_second)

    def charge(self, key: str, units: float) -> None:
        """Take ``units`` whatever the level: for work already done (bytes that moved)."""
        self.level(key)
        self._levels[key].units -= units


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests, refilled continuously, bursts up to the same.

    Kept in the process: with several monitors behind a balancer each enforces its own share.
    Thread-safe: the dashboard's server calls it from its worker threads.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._buckets = Buckets(float(per_minute), per_minute / 60.0, clock, max_keys)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Take one request from ``key``'s budget; False when it is spent."""
        with self._lock:
            if self._buckets.level(key) < 1:
                return False
            self._buckets.charge(key, 1)
            return True
