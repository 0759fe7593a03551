"""Edges of the statistics that mutation testing (mutmut, docs/testing.md) found unpinned:
argument checks a caller relies on and the window arithmetic of ``steady_rate``."""

from __future__ import annotations

import pytest

from sessionready.stats import percentile, steady_rate, wilson_interval


def test_percentile_refuses_q_outside_0_to_100() -> None:
    assert percentile([1, 2, 3], 100) == 3
    for q in (100.5, -0.5):
        with pytest.raises(ValueError, match="q must be within 0..100"):
            percentile([1, 2, 3], q)


def test_wilson_refuses_more_lost_than_sent() -> None:
    # A lost count above the total is a caller's bug, not a 100 % loss.
    with pytest.raises(ValueError, match="lost=5 total=3"):
        wilson_interval(5, 3)
    with pytest.raises(ValueError):
        wilson_interval(-1, 3)


def test_steady_rate_with_no_samples_is_none() -> None:
    assert steady_rate([], 0.0, 1.0) is None


def test_steady_rate_window_starts_at_the_first_sample_not_before() -> None:
    # Samples from t = 10 s: a window asked from 0 s is clipped to 10..20 s: 1000 B / 10 s.
    assert steady_rate([(10.0, 0), (20.0, 1000)], 0.0, 20.0) == pytest.approx(100.0)


def test_steady_rate_interpolates_inside_a_sample_interval() -> None:
    # 100 B between 0 and 2 s: linear, so 50 B by 1 s and a rate of 50 B/s over 0..1 s.
    assert steady_rate([(0.0, 0), (2.0, 100)], 0.0, 1.0) == pytest.approx(50.0)


def test_steady_rate_of_a_short_window() -> None:
    # A half-second window is a window: 100 B/s, not "no window".
    assert steady_rate([(0.0, 0), (1.0, 100)], 0.0, 0.5) == pytest.approx(100.0)


def test_steady_rate_window_that_only_touches_the_samples_is_none() -> None:
    # Asked for 2..4 s, covered 0..2 s: the overlap is one instant, no rate (and no division by 0).
    assert steady_rate([(0.0, 0), (2.0, 10)], 2.0, 4.0) is None
