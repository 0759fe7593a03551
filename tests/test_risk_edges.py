"""Edges of the risk engine that mutation testing (mutmut, docs/testing.md) found unpinned:
limits of age, presence and sample count taken exactly, the recent-delay rule, the history
window, the end-to-end estimate's direction and tier, and the state of an ended session."""

from __future__ import annotations

import dataclasses

import pytest

from monitor.risk.engine import (
    CheckSummary,
    EndInputs,
    Finding,
    HistorySummary,
    LinkNumbers,
    PastSession,
    RecentSamples,
    RiskConfig,
    SessionInputs,
    assess_session,
    estimate_end_to_end,
    lower_tier,
    worst_state,
)
from sessionready import quality

NOW = 1_767_258_000.0  # 2026-01-01 09:00:00 UTC
HOUR = 3600.0
CONFIG = RiskConfig()
# A clean check summary with no findings: every reason in a test comes from the rule under test.
CLEAN = CheckSummary(
    check_id="c-1", received_at_unix=NOW - 300, verdict="ready", findings=(), mos=4.3, video_tier="1080p",
    rtt_p50_ms=20.0, jitter_up_ms=2.0, jitter_down_ms=2.0, loss_up_ratio=0.0, loss_down_ratio=0.0,
    throughput_up_mbps=20.0, throughput_down_mbps=90.0,
)  # fmt: skip
NO_CHECK = object()


def end(role: str, check: object = CLEAN, *, last_seen: float | None = NOW - 30, samples=None, history=None) -> EndInputs:
    chk = None if check is NO_CHECK else check
    return EndInputs(f"{role[0]}-1", role, last_seen, chk, samples, history)  # type: ignore[arg-type]


def session(client: EndInputs | None = None, therapist: EndInputs | None = None, *, start: float = NOW + 600, state: str = "scheduled") -> SessionInputs:
    return SessionInputs("s-1", start, 3000, state, client or end("client"), therapist or end("therapist"))  # type: ignore[arg-type]


def reasons(risk) -> dict[tuple[str, str], str]:  # noqa: ANN001
    return {(r.end, r.cause): r.severity for r in risk.reasons}


def summary(**changes: object) -> CheckSummary:
    return dataclasses.replace(CLEAN, **changes)  # type: ignore[arg-type]


# --- Limits taken exactly -----------------------------------------------------------------------


def test_a_check_exactly_max_age_old_still_counts() -> None:
    at = assess_session(session(end("client", summary(received_at_unix=NOW - CONFIG.check_max_age_s))), CONFIG, NOW)
    assert ("client", "stale_check") not in reasons(at) and at.client.state == "ready"
    older = assess_session(session(end("client", summary(received_at_unix=NOW - CONFIG.check_max_age_s - 1))), CONFIG, NOW)
    assert reasons(older)[("client", "stale_check")] == "warning"


def test_an_agent_seen_exactly_the_timeout_ago_is_online() -> None:
    at = assess_session(session(end("client", last_seen=NOW - CONFIG.online_timeout_s)), CONFIG, NOW)
    assert at.client.online and ("client", "agent_offline") not in reasons(at)
    later = assess_session(session(end("client", last_seen=NOW - CONFIG.online_timeout_s - 1)), CONFIG, NOW)
    assert not later.client.online and reasons(later)[("client", "agent_offline")] == "warning"


def test_offline_is_flagged_from_exactly_the_lead_time_before_the_start() -> None:
    lead = CONFIG.offline_warning_lead_s
    at = assess_session(session(end("client", last_seen=None), start=NOW + lead), CONFIG, NOW)
    assert reasons(at)[("client", "agent_offline")] == "warning"
    earlier = assess_session(session(end("client", last_seen=None), start=NOW + lead + 1), CONFIG, NOW)
    assert ("client", "agent_offline") not in reasons(earlier)


def test_samples_are_judged_from_exactly_the_minimum_count() -> None:
    n = CONFIG.samples_min_count
    jittery = RecentSamples(count=n, rtt_p50_ms=20.0, jitter_up_ms=40.0, jitter_down_ms=1.0, loss_up_ratio=0.0, loss_down_ratio=0.0)
    at = assess_session(session(end("client", NO_CHECK, samples=jittery)), CONFIG, NOW)
    assert reasons(at)[("client", "recent_jitter")] == "warning"
    assert at.end_to_end is not None  # the samples stand in for the missing check's link numbers
    fewer = assess_session(session(end("client", NO_CHECK, samples=dataclasses.replace(jittery, count=n - 1))), CONFIG, NOW)
    assert ("client", "recent_jitter") not in reasons(fewer) and fewer.end_to_end is None


def test_probe_failures_count_only_when_more_than_half() -> None:
    half = RecentSamples(count=4, problem_count=2)
    assert ("client", "recent_probe_failed") not in reasons(assess_session(session(end("client", samples=half)), CONFIG, NOW))
    risk = assess_session(session(end("client", samples=RecentSamples(count=4, problem_count=3))), CONFIG, NOW)
    reason = next(r for r in risk.reasons if r.cause == "recent_probe_failed")
    assert (reason.end, reason.severity) == ("client", "warning")
    assert "3 of the last 4" in reason.message and reason.message.startswith("The client's")


# --- Recent delay -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rtt", "jitter_down", "expected"),
    [
        (200.0, None, None),  # mouth to ear 100 + 20 (buffer floor) + 25 = 145 ms: fine
        (200.0, 20.0, "warning"),  # 100 + 2 x 20 + 25 = 165 ms > 150
        (500.0, None, "warning"),  # 250 + 20 + 25 = 295 ms; the round trip is at, not above, 500
        (501.0, None, "critical"),  # a round trip above 500 ms is critical by itself
    ],
)
def test_recent_delay_from_background_samples(rtt: float, jitter_down: float | None, expected: str | None) -> None:
    samples = RecentSamples(count=5, rtt_p50_ms=rtt, jitter_up_ms=None, jitter_down_ms=jitter_down, loss_up_ratio=0.0, loss_down_ratio=0.0)
    risk = assess_session(session(therapist=end("therapist", samples=samples)), CONFIG, NOW)
    assert reasons(risk).get(("therapist", "recent_delay")) == expected
    if expected:
        reason = next(r for r in risk.reasons if r.cause == "recent_delay")
        assert reason.message.startswith("The therapist's") and f"{rtt:.0f} ms round trip" in reason.message


# --- History ------------------------------------------------------------------------------------


def past(hours_before: float, degraded: bool = True) -> PastSession:
    return PastSession(NOW + 600 - hours_before * HOUR, degraded)


def history_of(*sessions: PastSession) -> HistorySummary:
    return HistorySummary.from_records(sessions)


def history_reason(history: HistorySummary, start: float = NOW + 600):  # noqa: ANN201
    risk = assess_session(session(end("client", history=history), start=start), CONFIG, NOW)
    return next((r for r in risk.reasons if r.cause == "history_degraded"), None)


def test_history_around_this_time_includes_an_hour_either_side() -> None:
    # Start 09:10 UTC; sessions at 08:10 and 10:10 on other days are "around this time".
    reason = history_reason(history_of(past(24 + 1), past(48 - 1)))
    assert reason is not None and reason.severity == "warning" and "2 of the last 2" in reason.message


def test_two_hours_away_is_not_this_time_of_day() -> None:
    # 11:10 on earlier days: only the plain "recent sessions" rule applies, as information.
    reason = history_reason(history_of(past(24 - 2), past(48 - 2)))
    assert reason is not None and reason.severity == "info"


def test_history_window_wraps_around_midnight() -> None:
    start = NOW + 15 * HOUR - 1800  # 23:30 UTC; earlier sessions at 00:30 are within the hour after
    sessions = [PastSession(start - 23 * HOUR, True), PastSession(start - 47 * HOUR, True)]
    reason = history_reason(history_of(*sessions), start=start)
    assert reason is not None and reason.severity == "warning"


def test_history_limits_are_inclusive() -> None:
    # 2 of 4 degraded around this time: exactly the minimum count and exactly the 0.5 share.
    reason = history_reason(history_of(past(24), past(48), past(72, False), past(96, False)))
    assert reason is not None and reason.severity == "warning"
    # The same at other hours: 2 of the last 4 is still reported, as information.
    reason = history_reason(history_of(past(24 - 5), past(48 - 5), past(72 - 5, False), past(96 - 5, False)))
    assert reason is not None and reason.severity == "info" and "2 of the last 4" in reason.message
    # One degraded session is below the minimum count, whatever the share.
    assert history_reason(history_of(past(24))) is None


def test_history_keeps_the_newest_sessions() -> None:
    records = [(NOW - day * 86400, False) for day in range(60, 0, -1)]  # oldest first
    history = HistorySummary.from_records(records)
    assert len(history.sessions) == 50
    assert history.sessions[0].start_unix == NOW - 86400 and history.sessions[-1].start_unix == NOW - 50 * 86400
    assert len(history.degradation_rate_by_hour()) == 24


def test_every_rule_adds_to_the_reasons_of_an_end() -> None:
    check = summary(findings=(Finding("high_cpu", "warning"),))
    samples = RecentSamples(count=5, rtt_p50_ms=20.0, jitter_up_ms=40.0, jitter_down_ms=1.0, loss_up_ratio=0.0, loss_down_ratio=0.0)
    client = end("client", check, samples=samples, history=history_of(past(24), past(48)))
    found = reasons(assess_session(session(client), CONFIG, NOW))
    assert {("client", "high_cpu"), ("client", "recent_jitter"), ("client", "history_degraded")} <= set(found)


# --- End to end -------------------------------------------------------------------------------


def test_end_to_end_delay_names_the_worse_direction() -> None:
    # Client upstream jitter 60 ms: client -> therapist buffer 2 x 60 = 120 ms, so
    # 200/2 + 120 + 25 = 245 ms (> 150); the other way 100 + 20 + 25 = 145 ms.
    client = end("client", summary(rtt_p50_ms=100.0, jitter_up_ms=60.0, jitter_down_ms=0.0))
    therapist = end("therapist", summary(rtt_p50_ms=100.0, jitter_up_ms=0.0, jitter_down_ms=0.0))
    risk = assess_session(session(client, therapist), CONFIG, NOW)
    e2e = next(r for r in risk.reasons if r.cause == "e2e_delay")
    assert e2e.end == "session" and e2e.severity == "warning"
    assert "about 245 ms from the client to the therapist" in e2e.message
    assert risk.state == "at_risk"


def test_missing_jitter_counts_as_none_and_missing_loss_gives_no_quality() -> None:
    a = LinkNumbers(rtt_ms=40.0, jitter_up_ms=None, jitter_down_ms=None, loss_up_ratio=0.01, loss_down_ratio=None)
    b = LinkNumbers(rtt_ms=40.0, jitter_up_ms=None, jitter_down_ms=None, loss_up_ratio=None, loss_down_ratio=0.02)
    e2e = estimate_end_to_end(a, b)
    assert e2e.client_to_therapist.jitter_ms == 0.0 and e2e.therapist_to_client.jitter_ms == 0.0
    # a -> b: 1 - 0.99 x 0.98 = 2.98 % loss; b -> a: b's upstream loss unknown, so no estimate.
    assert e2e.client_to_therapist.loss_ratio == pytest.approx(0.0298)
    assert e2e.therapist_to_client.loss_ratio is None and e2e.therapist_to_client.mos is None
    assert e2e.mos == e2e.client_to_therapist.mos is not None
    unknown = estimate_end_to_end(dataclasses.replace(a, loss_up_ratio=None), b)
    assert unknown.mos is None


@pytest.mark.parametrize(
    ("client_up_mbps", "expected"),
    [(None, None), (2.0, None), (1.0, "warning"), (0.5, "critical")],  # unknown, 720p, 360p, sound only
)
def test_end_to_end_video_tier(client_up_mbps: float | None, expected: str | None) -> None:
    client = end("client", summary(throughput_up_mbps=client_up_mbps, throughput_down_mbps=None))
    therapist = end("therapist", summary(throughput_up_mbps=None, throughput_down_mbps=90.0 if client_up_mbps else None))
    risk = assess_session(session(client, therapist), CONFIG, NOW)
    assert reasons(risk).get(("session", "e2e_video")) == expected


def test_end_to_end_uses_the_configured_headroom() -> None:
    # 1.3 Mbit/s up: 360p with the default 1.5 headroom (720p needs 1.8), 720p with none.
    client = end("client", summary(throughput_up_mbps=1.3))
    plain = RiskConfig(quality=quality.Thresholds(throughput_headroom_factor=1.0))
    assert ("session", "e2e_video") in reasons(assess_session(session(client), CONFIG, NOW))
    risk = assess_session(session(client), plain, NOW)
    assert ("session", "e2e_video") not in reasons(risk) and risk.end_to_end.video_tier == "720p"


def test_lower_tier_and_worst_state() -> None:
    assert lower_tier("720p", "unknown") == "720p" and lower_tier("unknown", "360p") == "360p"
    assert lower_tier("1080p", "360p") == "360p" and lower_tier("360p", "1080p") == "360p"
    assert worst_state([]) == "ready"


# --- What a list shows -------------------------------------------------------------------------


def test_an_ended_session_keeps_who_and_when_but_is_not_judged() -> None:
    risk = assess_session(session(state="ended"), CONFIG, NOW)
    assert (risk.session_id, risk.evaluated_at_unix, risk.state, risk.reasons) == ("s-1", NOW, "unknown", ())
    assert (risk.client.role, risk.client.participant_id, risk.client.state) == ("client", "c-1", "unknown")
    assert (risk.therapist.role, risk.therapist.participant_id, risk.therapist.state) == ("therapist", "t-1", "unknown")


def test_an_end_shows_its_checks_id_and_age() -> None:
    risk = assess_session(session(end("client", summary(check_id="c-42", received_at_unix=NOW - 0.5))), CONFIG, NOW)
    assert risk.client.check_id == "c-42" and risk.client.check_age_s == pytest.approx(0.5)
    future = assess_session(session(end("client", summary(received_at_unix=NOW + 5))), CONFIG, NOW)
    assert future.client.check_age_s == 0.0


def test_recent_samples_summary_of_failed_probes_only() -> None:
    failed = {"problem": "udp_blocked", "rtt_p50_ms": None, "jitter_up_ms": None, "jitter_down_ms": None, "loss_up": None, "loss_down": None}
    ok = {"problem": None, "rtt_p50_ms": 30.0, "jitter_up_ms": 2.0, "jitter_down_ms": 4.0, "loss_up": 0.0, "loss_down": 0.1}
    assert RecentSamples.from_samples([failed] * 3) == RecentSamples(count=3, problem_count=3)
    mixed = RecentSamples.from_samples([failed, ok, failed, dict(ok, loss_down=0.0)])
    assert (mixed.count, mixed.problem_count, mixed.rtt_p50_ms, mixed.jitter_down_ms) == (4, 2, 30.0, 4.0)
    assert mixed.loss_down_p95_ratio == pytest.approx(0.095) and mixed.loss_up_p95_ratio == 0.0


def test_inputs_refuse_what_cannot_be() -> None:
    with pytest.raises(ValueError):
        RecentSamples(count=True)  # type: ignore[arg-type]
    assert RecentSamples(count=2, problem_count=2).problem_count == 2
    with pytest.raises(ValueError):
        session(end("client"), end("client"))


def test_a_risk_reason_without_words_is_refused() -> None:
    from monitor.risk.engine import RiskReason

    with pytest.raises(ValueError, match="message and an action"):
        RiskReason("client", "no_check", "warning", "", "Ask the client to run the check now.")
    with pytest.raises(ValueError, match="message and an action"):
        RiskReason("client", "no_check", "warning", "The client has not run a check yet.", "")
