"""The statistics every number rests on, against values computed by hand or by definition."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionready.stats import percentile, rfc3550_jitter, steady_rate, wilson_interval


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10], 95) == 10
    assert percentile([5, 1, 3], 0) == 1 and percentile([5, 1, 3], 100) == 5
    with pytest.raises(ValueError):
        percentile([], 50)


def test_wilson_zero_of_250_is_not_zero_percent() -> None:
    lo, hi = wilson_interval(0, 250)
    # z^2/(n+z^2) = 3.8415/253.8415 = 0.015133
    assert lo == 0.0
    assert hi == pytest.approx(0.015133, abs=1e-5)


def test_wilson_known_value() -> None:
    # 10 of 100: centre = (0.1 + 0.019207)/1.038415 = 0.114798;
    # half = 1.96*sqrt(0.0009 + 0.0000960)/1.038415 = 0.059573
    lo, hi = wilson_interval(10, 100)
    assert lo == pytest.approx(0.055225, abs=1e-4)
    assert hi == pytest.approx(0.174371, abs=1e-4)


def test_wilson_no_trials_knows_nothing() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


@given(st.integers(min_value=1, max_value=100_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_point_estimate(case: tuple[int, int]) -> None:
    lost, total = case
    lo, hi = wilson_interval(lost, total)
    assert 0 <= lo <= lost / total <= hi <= 1


def test_jitter_of_constant_transit_is_zero() -> None:
    pairs = [(i * 20_000, i * 20_000 + 5_000) for i in range(100)]
    assert rfc3550_jitter(pairs) == 0.0


def test_jitter_converges_to_alternating_step() -> None:
    # Transit alternates between 0 and d: every |D| = d, so J -> d (J_n = d(1 - (15/16)^n)).
    d = 4_000_000
    pairs = [(i * 20_000_000, i * 20_000_000 + (d if i % 2 else 0)) for i in range(500)]
    assert rfc3550_jitter(pairs) == pytest.approx(d, rel=1e-6)
    n = 10
    short = pairs[: n + 1]
    assert rfc3550_jitter(short) == pytest.approx(d * (1 - (15 / 16) ** n), rel=1e-9)


def test_jitter_needs_two_packets() -> None:
    assert rfc3550_jitter([]) is None
    assert rfc3550_jitter([(0, 1)]) is None


@given(st.lists(st.tuples(st.integers(0, 10**12), st.integers(0, 10**12)), min_size=2, max_size=200))
def test_jitter_is_bounded_by_the_largest_transit_step(pairs: list[tuple[int, int]]) -> None:
    transits = [r - s for s, r in pairs]
    largest = max(abs(b - a) for a, b in zip(transits, transits[1:]))
    jitter = rfc3550_jitter(pairs)
    assert jitter is not None and 0 <= jitter <= largest + 1e-6


def test_steady_rate_ignores_the_ramp() -> None:
    # 1 MB in the first second (slow start), then a steady 2 MB/s.
    samples = [(0.0, 0), (1.0, 1_000_000)] + [(1.0 + t / 10, 1_000_000 + 200_000 * t) for t in range(1, 31)]
    assert steady_rate(samples, 1.0, 4.0) == pytest.approx(2_000_000)
    assert steady_rate(samples, 0.0, 4.0) == pytest.approx(7_000_000 / 4)


def test_steady_rate_without_a_window() -> None:
    assert steady_rate([(0.0, 0)], 1.0, 4.0) is None
    assert steady_rate([(0.0, 0), (0.5, 10)], 1.0, 4.0) is None
    assert math.isclose(steady_rate([(0.0, 0), (2.0, 10)], 0.0, 2.0) or 0, 5.0)
