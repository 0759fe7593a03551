"""Which side of a threshold a value falls on, pinned (issue 13): a limit triggers only when it is
strictly passed. Turning a ``>`` into ``>=`` (or ``<`` into ``<=``) in the quality model's grading
or the risk engine's must fail here. Thresholds are the defaults (``quality.Thresholds``)."""

from __future__ import annotations

import dataclasses

import pytest

from monitor.risk.engine import RecentSamples, assess_session
from sessionready import quality as q
from tests.conftest import CLEAN_NETWORK, CONFIG, HEALTHY, NOW, QUIET, end, fine, session

T = q.Thresholds()
EPS = 1e-6


def severities(network: q.NetworkFacts = CLEAN_NETWORK, **machine: object) -> dict[str, str]:
    result = q.assess(network, T, machine=dataclasses.replace(HEALTHY, **machine), room=QUIET)
    return {reason.code: reason.severity for reason in result.reasons}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T.cpu_warning_pct, None),  # at the warning limit: not yet
        (T.cpu_warning_pct + EPS, "warning"),
        (T.cpu_critical_pct, "warning"),  # at the critical limit: still a warning
        (T.cpu_critical_pct + EPS, "critical"),
    ],
)
def test_cpu_above_a_limit_not_at_it(value: float, expected: str | None) -> None:
    assert severities(cpu_pct=value).get("high_cpu") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T.battery_warning_pct, None),  # lower is worse: at the limit is still fine
        (T.battery_warning_pct - EPS, "warning"),
        (T.battery_critical_pct, "warning"),
        (T.battery_critical_pct - EPS, "critical"),
    ],
)
def test_battery_below_a_limit_not_at_it(value: float, expected: str | None) -> None:
    assert severities(battery_pct=value, battery_charging=False, battery_time_left_s=None).get("low_battery") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(T.jitter_warning_ms, None), (T.jitter_warning_ms + EPS, "warning"), (T.jitter_critical_ms, "warning"), (T.jitter_critical_ms + EPS, "critical")],
)
def test_jitter_above_a_limit_not_at_it(value: float, expected: str | None) -> None:
    network = dataclasses.replace(CLEAN_NETWORK, jitter_up_ms=value)
    assert severities(network).get("high_upload_jitter") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(T.loss_warning_ratio, None), (T.loss_warning_ratio + EPS, "warning"), (T.loss_critical_ratio, "warning"), (T.loss_critical_ratio + EPS, "critical")],
)
def test_recent_loss_in_the_risk_engine_above_a_limit_not_at_it(value: float, expected: str | None) -> None:
    samples = RecentSamples(count=10, rtt_p50_ms=20.0, jitter_up_ms=1.0, jitter_down_ms=1.0, loss_up_ratio=value, loss_down_ratio=0.0)
    risk = assess_session(session(end("client", samples=samples), fine("therapist")), CONFIG, NOW)
    found = {(r.end, r.cause): r.severity for r in risk.reasons}
    assert found.get(("client", "recent_loss")) == expected, risk.reasons


@pytest.mark.parametrize(
    ("value", "expected"),
    [(T.jitter_warning_ms, None), (T.jitter_warning_ms + EPS, "warning"), (T.jitter_critical_ms, "warning"), (T.jitter_critical_ms + EPS, "critical")],
)
def test_recent_jitter_in_the_risk_engine_above_a_limit_not_at_it(value: float, expected: str | None) -> None:
    samples = RecentSamples(count=10, rtt_p50_ms=1.0, jitter_up_ms=value, jitter_down_ms=0.0, loss_up_ratio=0.0, loss_down_ratio=0.0)
    risk = assess_session(session(end("client", samples=samples), fine("therapist")), CONFIG, NOW)
    found = {(r.end, r.cause): r.severity for r in risk.reasons}
    assert found.get(("client", "recent_jitter")) == expected, risk.reasons
