"""The two backoffs' shapes, pinned at their edges (the forwarder's and the webhook worker's
own tests check them in use)."""

from __future__ import annotations

import pytest

from sessionready.backoff import ceiling_s, full_jitter_s, half_jitter_s


def test_the_ceiling_doubles_from_the_minimum_and_stops_at_the_maximum() -> None:
    assert [ceiling_s(n, 0.5, 4.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert ceiling_s(10_000, 1.0, 3600.0) == 3600.0  # no overflow after a very long outage


@pytest.mark.parametrize("failures", [1, 2, 3, 8])
def test_full_jitter_spans_minimum_to_ceiling_and_half_jitter_half_to_ceiling(failures: int) -> None:
    ceiling = ceiling_s(failures, 0.5, 4.0)
    assert full_jitter_s(failures, 0.5, 4.0, 0.0) == 0.5
    assert full_jitter_s(failures, 0.5, 4.0, 1.0) == ceiling
    assert half_jitter_s(failures, 0.5, 4.0, 0.0) == ceiling / 2
    assert half_jitter_s(failures, 0.5, 4.0, 1.0) == ceiling
