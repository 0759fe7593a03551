"""Exponential backoff, in one place: the agent's forwarder and the monitor's webhook worker
wait like this after failures in a row. Pure functions; the caller draws the jitter (0..1), so
tests choose it."""

from __future__ import annotations


def ceiling_s(failures: int, min_s: float, max_s: float) -> float:
    """``min_s`` doubled for every failure after the first (1, 2, ...), never above ``max_s``."""
    return min(max_s, min_s * 2 ** min(max(failures, 1) - 1, 64))


def full_jitter_s(failures: int, min_s: float, max_s: float, jitter: float) -> float:
    """Anywhere from ``min_s`` to the ceiling: agents that failed together spread out widely."""
    return min_s + jitter * (ceiling_s(failures, min_s, max_s) - min_s)


def half_jitter_s(failures: int, min_s: float, max_s: float, jitter: float) -> float:
    """From half the ceiling to the ceiling: the wait still grows steadily with each failure."""
    return ceiling_s(failures, min_s, max_s) * (0.5 + 0.5 * jitter)
