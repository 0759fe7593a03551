"""Small statistics used by the probes and the monitor. Pure functions, standard library only."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks.

    Raises ValueError on an empty sequence: callers decide what "no data" means.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def wilson_interval(lost: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a loss ratio: (lo, hi), both within 0..1.

    Unlike the normal approximation it stays honest at 0 lost: 0 of 250 gives (0, ~1.5 %).
    With no trials at all nothing is known: (0, 1).
    """
    if total < 0 or not 0 <= lost <= total:
        raise ValueError(f"need 0 <= lost <= total, got lost={lost} total={total}")
    if total == 0:
        return (0.0, 1.0)
    p = lost / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    # At the edges the bound is exact; computed, it would be off by a rounding error.
    lo = 0.0 if lost == 0 else max(0.0, centre - half)
    hi = 1.0 if lost == total else min(1.0, centre + half)
    return (lo, hi)


def rfc3550_jitter(pairs: Iterable[tuple[int, int]]) -> float | None:
    """Interarrival jitter per RFC 3550 section 6.4.1, in the unit of the inputs.

    ``pairs`` are (send time, receive time) per packet in arrival order, each taken on its own
    side's clock: only differences of transit times are used, so the clocks need not agree.
    J += (|D| - J) / 16. Returns None with fewer than two packets.
    """
    jitter = 0.0
    count = 0
    previous_transit = 0
    for sent, received in pairs:
        transit = received - sent
        if count:
            jitter += (abs(transit - previous_transit) - jitter) / 16
        previous_transit = transit
        count += 1
    return jitter if count >= 2 else None


def abs_transit_differences(pairs: Iterable[tuple[int, int]]) -> list[int]:
    """|D| of RFC 3550 section 6.4.1 between consecutive packets, in the unit of the inputs.

    ``pairs`` as for ``rfc3550_jitter``: (send time, receive time) per packet in arrival order,
    each on its own side's clock. The running jitter J is an exponential mean of these values
    with gain 1/16; their plain mean is the quantity J estimates (in a steady state E[J] =
    E|D|), and unlike J's last value it converges as the stream gets longer.
    """
    differences = []
    previous = None
    for sent, received in pairs:
        transit = received - sent
        if previous is not None:
            differences.append(abs(transit - previous))
        previous = transit
    return differences


def mean_abs_transit_difference(pairs: Iterable[tuple[int, int]]) -> float | None:
    """The mean of ``abs_transit_differences``; None with fewer than two packets (as J)."""
    differences = abs_transit_differences(pairs)
    return math.fsum(differences) / len(differences) if differences else None


def steady_rate(samples: Sequence[tuple[float, int]], start_s: float, end_s: float) -> float | None:
    """Bytes per second between ``start_s`` and ``end_s`` from cumulative (time s, bytes) samples.

    Used to ignore TCP ramp-up: the window starts after it. Interpolates the cumulative count
    linearly at both edges. None when the samples do not cover a usable window.
    """
    if end_s <= start_s or len(samples) < 2:
        return None
    first_t, last_t = samples[0][0], samples[-1][0]
    start, end = max(start_s, first_t), min(end_s, last_t)
    if end - start <= 0:
        return None
    return (_cumulative_at(samples, end) - _cumulative_at(samples, start)) / (end - start)


def _cumulative_at(samples: Sequence[tuple[float, int]], t: float) -> float:
    previous_t, previous_bytes = samples[0]
    for sample_t, sample_bytes in samples:
        if sample_t >= t:
            if sample_t == previous_t:
                return float(sample_bytes)
            share = (t - previous_t) / (sample_t - previous_t)
            return previous_bytes + (sample_bytes - previous_bytes) * share
        previous_t, previous_bytes = sample_t, sample_bytes
    return float(previous_bytes)
