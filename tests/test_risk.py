"""The risk engine: the acceptance scenarios at engine level, end-to-end arithmetic, the live
state machine's hysteresis, determinism and monotonicity.

Checks are built the way the monitor builds them: from the check report's JSON wire form
(tests/data/report.json, adjusted), through ``CheckSummary.from_report``. E-model numbers are
compared with ``sessionready.quality`` (one formula, one place) and once with a value worked
out by hand from ITU-T G.107.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.risk.engine import (
    CAUSES,
    STATES,
    CheckSummary,
    Finding,
    HistorySummary,
    LinkNumbers,
    RecentSamples,
    RiskConfig,
    SessionInputs,
    assess_session,
    estimate_end_to_end,
    lower_tier,
)
from monitor.risk.live import LiveConfig, LiveSample, LiveState, LiveTracker
from monitor.risk.words import ACTIONS, FALLBACK_ACTION, render_action
from sessionready import quality, schema
from sessionready.typed import SchemaError, decode, encode
from tests.conftest import CONFIG, NOW, check, end, fine, report, session

DOC = Path(__file__).resolve().parent.parent / "docs" / "risk.md"


def causes(risk, severity=None):
    return [(r.end, r.cause) for r in risk.reasons if severity is None or r.severity == severity]


# --------------------------------------------------------------------------------------------
# Acceptance scenarios
# --------------------------------------------------------------------------------------------


def test_client_with_8_percent_upstream_loss_is_not_ready_naming_the_client() -> None:
    risk = assess_session(session(end("client", check(loss_up=0.08)), fine("therapist")), CONFIG, NOW)
    assert risk.state == "not_ready"
    assert risk.client.state == "not_ready" and risk.therapist.state == "ready"
    first = risk.reasons[0]
    assert (first.end, first.cause, first.severity) == ("client", "high_upload_loss", "critical")
    assert first.message == "The client's connection loses 8.0 % of packets upstream."
    assert first.action.startswith("Ask the client to move closer to the router or use a network cable")
    assert first.action.endswith(FALLBACK_ACTION)


def test_the_monitor_judges_the_numbers_not_the_reported_verdict() -> None:
    # The report still says "ready" with no reasons; its numbers say otherwise.
    data = report(loss_up=0.08)
    assert data["verdict"] == "ready"
    summary = CheckSummary.from_report(data, NOW)
    assert summary.verdict == "not_ready"
    assert Finding("high_upload_loss", "critical") in summary.findings


def _with_phases(data: dict, idle_stopped: str, unsettled: list[dict]) -> dict:
    data["settings"]["adaptive"] = True
    data["phases"] = [
        {"name": "idle", "seconds": 10.0, "stopped": idle_stopped, "min_s": 2.0, "max_s": 10.0, "unsettled": unsettled},
        {"name": "download", "seconds": 2.0, "stopped": "settled", "min_s": 2.0, "max_s": 6.0, "unsettled": []},
        {"name": "upload", "seconds": 2.0, "stopped": "settled", "min_s": 2.0, "max_s": 6.0, "unsettled": []},
    ]
    return data


@pytest.mark.parametrize("source", ["cli", "browser"])
def test_a_stored_checks_borderline_reaches_the_sessions_risk(source: str) -> None:
    # A clean link's numbers (0 lost: the point estimate says "ready"), but the idle phase ran
    # to its longest with upload loss 0.4-1.6 % still straddling the 1 % line: the check said
    # "borderline", at risk. The model alone cannot see that (it reads numbers, not phases).
    data = report()
    if source == "browser":
        # A browser check stores phases too (its idle phase ended by the monitor's rule).
        data.update(source="browser", browser="chrome 131", machine=None, agent={"version": "0.1.0", "os": "other"},
                    devices={"camera": {"state": "ok", "width": 1280, "height": 720, "fps": 30.0, "black": False},
                             "microphone": {"state": "ok", "signal": True}, "speaker": {"state": "heard"}})  # fmt: skip
    unsettled = [{"figure": "loss_up", "low": 0.004, "high": 0.016}]
    summary = CheckSummary.from_report(_with_phases(data, "max_length", unsettled), NOW - 300)
    assert summary.verdict == "at_risk" and Finding("borderline", "warning") in summary.findings
    risk = assess_session(session(end("client", summary), fine("therapist")), CONFIG, NOW)
    assert risk.state == "at_risk" and risk.client.state == "at_risk"
    (reason,) = [r for r in risk.reasons if r.cause == "borderline"]
    assert (reason.end, reason.severity) == ("client", "warning")
    assert reason.message == "The client's check ran its longest and one figure still sits on a threshold."
    assert reason.action == render_action("client", "borderline", "warning")
    # The same phases settled, or a figure with too few samples for any interval: no borderline.
    settled = CheckSummary.from_report(_with_phases(report(), "settled", []), NOW - 300)
    no_interval = CheckSummary.from_report(_with_phases(report(), "max_length", [{"figure": "loss_up", "low": 0.0, "high": None}]), NOW - 300)
    assert settled.verdict == no_interval.verdict == "ready" and settled.findings == no_interval.findings == ()


def test_client_without_a_check_by_t_minus_15_is_flagged_at_risk() -> None:
    client = end("client", None)
    at_deadline = assess_session(session(client, fine("therapist"), start=NOW + 900), CONFIG, NOW)
    assert at_deadline.state == "at_risk"
    reason = at_deadline.reasons[0]
    assert (reason.end, reason.cause, reason.severity) == ("client", "no_check", "warning")
    assert reason.message == "The client has not run a check yet."
    assert reason.action == "Ask the client to run the check now, and start 10 minutes early to troubleshoot if it cannot run."
    # One minute earlier it is only information, and nothing says the client is ready.
    before = assess_session(session(client, fine("therapist"), start=NOW + 960), CONFIG, NOW)
    assert before.state == "unknown"
    assert causes(before) == [("client", "no_check")] and before.reasons[0].severity == "info"
    assert before.reasons[0].action == "Ask the client to run the check before the session."


def test_therapist_with_pegged_cpu_is_flagged_naming_the_therapist() -> None:
    risk = assess_session(session(fine("client"), end("therapist", check(cpu=99.0))), CONFIG, NOW)
    assert risk.state == "not_ready"
    reason = risk.reasons[0]
    assert (reason.end, reason.cause, reason.severity) == ("therapist", "high_cpu", "critical")
    assert reason.message == "The therapist's computer's processor is 99 % busy with other work."
    assert reason.action.startswith("Close other programs, especially other video apps")
    busy = assess_session(session(fine("client"), end("therapist", check(cpu=90.0))), CONFIG, NOW)
    assert busy.state == "at_risk" and causes(busy, "warning") == [("therapist", "high_cpu")]


def test_both_ends_fine_is_ready() -> None:
    risk = assess_session(session(fine("client"), fine("therapist")), CONFIG, NOW)
    assert risk.state == "ready"
    assert [r for r in risk.reasons if r.severity != "info"] == []
    assert risk.client.online and risk.client.check_age_s == 300.0
    assert risk.end_to_end is not None and risk.end_to_end.mos > 4.3 and risk.end_to_end.video_tier == "1080p"


def test_no_data_at_all_far_ahead_is_unknown() -> None:
    nothing = session(end("client", last_seen=None), end("therapist", last_seen=None), start=NOW + 7200)
    risk = assess_session(nothing, CONFIG, NOW)
    assert risk.state == "unknown"
    assert risk.client.state == risk.therapist.state == "unknown"
    assert {r.severity for r in risk.reasons} == {"info"}
    assert risk.end_to_end is None


def test_agent_offline_with_a_session_soon_is_a_reason() -> None:
    client = end("client", check(age_s=1500), last_seen=NOW - 1200)
    soon = assess_session(session(client, fine("therapist"), start=NOW + 600), CONFIG, NOW)
    assert soon.state == "at_risk" and not soon.client.online
    reason = next(r for r in soon.reasons if r.cause == "agent_offline")
    assert reason.end == "client" and reason.message == "The client's sessionready agent has not been in touch for 20 minutes."
    # Hours ahead an agent that is off is normal: no reason.
    later = assess_session(session(client, fine("therapist"), start=NOW + 5400), CONFIG, NOW)
    assert later.state == "ready" and "agent_offline" not in [r.cause for r in later.reasons]
    never = assess_session(session(end("client", check(), last_seen=None), fine("therapist")), CONFIG, NOW)
    assert "has never been in touch" in next(r.message for r in never.reasons if r.cause == "agent_offline")


def test_history_of_degrading_at_this_time_of_day_is_at_risk() -> None:
    day = 86400.0
    past = [(NOW - k * day, k != 2) for k in (1, 2, 3, 4)]  # 09:00 UTC on four days, 3 degraded
    past += [(NOW - k * day + 6 * 3600, False) for k in (1, 2, 3)]  # 15:00: all fine, not "around this time"
    history = HistorySummary.from_records(past)
    risk = assess_session(session(end("client", check(), history=history), fine("therapist")), CONFIG, NOW)
    assert risk.state == "at_risk"
    reason = risk.reasons[0]
    assert (reason.end, reason.cause, reason.severity) == ("client", "history_degraded", "warning")
    assert reason.message == "The client's connection has degraded in 3 of the last 4 sessions around this time of day."
    assert reason.action == "Start 10 minutes early with the client to troubleshoot, and have the phone fallback ready."
    # The same history for a session at 15:00 looks at the fine afternoon sessions instead.
    later = NOW + 6 * 3600 - 600
    fresh = CheckSummary.from_report(report(), received_at_unix=later - 300)
    afternoon = assess_session(
        session(end("client", fresh, last_seen=later, history=history), end("therapist", fresh, last_seen=later), start=later + 600),
        CONFIG,
        later,
    )
    assert [r.severity for r in afternoon.reasons if r.cause == "history_degraded"] in ([], ["info"])
    assert afternoon.state == "ready"
    rates = history.degradation_rate_by_hour()
    assert rates[9] == 0.75 and rates[15] == 0.0 and rates[3] is None


def test_stale_check_does_not_count() -> None:
    old = end("client", check(age_s=2 * 86400, loss_up=0.08))
    risk = assess_session(session(old, fine("therapist"), start=NOW + 3600), CONFIG, NOW)
    assert risk.state == "unknown"  # its 8 % loss is two days old: neither ready nor a finding
    assert causes(risk) == [("client", "stale_check")]
    assert risk.reasons[0].message == "The client's last check was 2 days ago, too old to count."
    due = assess_session(session(old, fine("therapist"), start=NOW + 600), CONFIG, NOW)
    assert due.state == "at_risk" and due.reasons[0].severity == "warning"


def test_recent_background_samples_are_judged() -> None:
    samples = [
        schema.SampleNetwork(100, 95, 30.0, 40.0, 4.0, 5.0, 0.05, 0.0, None),
        {"packets_sent": 100, "packets_received": 94, "rtt_p50_ms": 34.0, "rtt_p95_ms": 50.0, "jitter_up_ms": 6.0,
         "jitter_down_ms": 5.0, "loss_up": 0.06, "loss_down": 0.0, "mos": None, "problem": None},
        {"packets_sent": 100, "packets_received": 96, "rtt_p50_ms": 32.0, "rtt_p95_ms": 44.0, "jitter_up_ms": 8.0,
         "jitter_down_ms": 5.0, "loss_up": 0.04, "loss_down": 0.0, "mos": None, "problem": None},
        {"packets_sent": 0, "packets_received": 0, "rtt_p50_ms": None, "rtt_p95_ms": None, "jitter_up_ms": None,
         "jitter_down_ms": None, "loss_up": None, "loss_down": None, "mos": None, "problem": "udp_blocked"},
    ]  # fmt: skip
    summary = RecentSamples.from_samples(samples)
    assert (summary.count, summary.problem_count) == (4, 1)
    assert summary.rtt_p50_ms == 32.0 and summary.jitter_up_ms == 6.0
    assert summary.loss_up_ratio == pytest.approx(0.05) and summary.loss_down_ratio == 0.0
    assert summary.rtt_p95_ms == pytest.approx(33.8)  # 32 + 0.9 * (34 - 32), linear interpolation
    client = end("client", check(), samples=summary)
    risk = assess_session(session(client, fine("therapist")), CONFIG, NOW)
    assert risk.state == "not_ready"
    reason = risk.reasons[0]
    assert (reason.end, reason.cause, reason.severity) == ("client", "recent_loss", "critical")
    assert reason.message == "The client's connection has lost 5.0 % of packets upstream in recent background measurements."
    # Too few samples are not judged.
    few = RecentSamples.from_samples(samples[:2])
    assert assess_session(session(end("client", check(), samples=few), fine("therapist")), CONFIG, NOW).state == "ready"


def test_samples_stand_in_for_the_network_when_there_is_no_check() -> None:
    samples = RecentSamples(count=10, rtt_p50_ms=30.0, jitter_up_ms=2.0, jitter_down_ms=2.0, loss_up_ratio=0.0, loss_down_ratio=0.0)
    risk = assess_session(session(end("client", samples=samples), fine("therapist"), start=NOW + 3600), CONFIG, NOW)
    assert risk.state == "unknown"  # no check yet: not "ready", but the estimate is there
    assert risk.end_to_end is not None and risk.end_to_end.client_to_therapist.network_one_way_ms == 25.0


# --------------------------------------------------------------------------------------------
# End-to-end arithmetic
# --------------------------------------------------------------------------------------------


def test_end_to_end_adds_delay_and_jitter_and_compounds_loss() -> None:
    client = LinkNumbers(40.0, 5.0, 3.0, 0.02, 0.01, 22.0, 95.0)
    therapist = LinkNumbers(20.0, 4.0, 6.0, 0.01, 0.03, 10.0, 50.0)
    e2e = estimate_end_to_end(client, therapist)
    c2t, t2c = e2e.client_to_therapist, e2e.therapist_to_client
    assert c2t.network_one_way_ms == t2c.network_one_way_ms == 30.0  # 40/2 + 20/2
    assert c2t.jitter_ms == 11.0 and t2c.jitter_ms == 7.0  # client up + therapist down; therapist up + client down
    assert c2t.loss_ratio == pytest.approx(1 - 0.98 * 0.97)  # 4.94 %
    assert t2c.loss_ratio == pytest.approx(1 - 0.99 * 0.99)  # 1.99 %
    assert c2t.mouth_to_ear_ms == 30.0 + 22.0 + 25.0  # one way + 2 x jitter buffer + codec
    assert c2t.r_factor == quality.r_factor(quality.mouth_to_ear_delay_ms(60.0, 11.0), 1 - 0.98 * 0.97)
    assert e2e.mos == min(quality.mos_from_r(c2t.r_factor), quality.mos_from_r(t2c.r_factor)) == c2t.mos
    assert c2t.video_tier == "1080p" and t2c.video_tier == "1080p"


def test_end_to_end_mos_matches_a_hand_computed_g107_value() -> None:
    # One way 55 ms (RTTs 60 + 50), no jitter -> buffer floor 20 ms, codec 25 ms: 100 ms mouth to ear.
    # G.107 at defaults, T = Ta = 100 ms, Tr = 200 ms:
    #   TERV = 65 - 40 log10(11 / 1.6667) = 32.218; Re = 80 + 2.5 (32.218 - 14) = 125.546
    #   Idte = (94.769 - 125.546)/2 + sqrt(30.777^2/4 + 100) - 1 = -15.389 + 18.352 - 1 = 1.964
    #   Rle = 10.5 x 117 x 201^-0.25 = 1228.5 / 3.7653 = 326.27
    #   Idle = (94.769 - 326.27)/2 + sqrt(231.50^2/4 + 169) = -115.75 + 116.48 = 0.728; Idd = 0
    #   R = 94.769 - 1.414 - 2.692 = 90.663; MOS = 1 + 3.1732 + 90.663 x 30.663 x 9.337 x 7e-6 = 4.355
    # With 5 % loss one way (G.711 + PLC, Bpl 25.1): Ie,eff = 95 x 5 / (5 + 25.1) = 15.781, R = 74.88.
    clean = estimate_end_to_end(LinkNumbers(60.0, 0.0, 0.0, 0.0, 0.0), LinkNumbers(50.0, 0.0, 0.0, 0.0, 0.0))
    assert clean.client_to_therapist.mouth_to_ear_ms == 100.0
    assert clean.client_to_therapist.r_factor == pytest.approx(90.663, abs=0.01)
    assert clean.mos == pytest.approx(4.355, abs=0.002)
    lossy = estimate_end_to_end(LinkNumbers(60.0, 0.0, 0.0, 0.05, 0.0), LinkNumbers(50.0, 0.0, 0.0, 0.0, 0.0))
    assert lossy.client_to_therapist.r_factor == pytest.approx(74.88, abs=0.01)
    assert lossy.therapist_to_client.r_factor == pytest.approx(90.663, abs=0.01)


def test_two_tolerable_losses_compound_into_a_session_problem() -> None:
    # 2 % up at the client and 2 % down at the therapist: each end only warns, the path loses 3.96 %.
    risk = assess_session(session(end("client", check(loss_up=0.02)), end("therapist", check(loss_down=0.02))), CONFIG, NOW)
    assert risk.client.state == risk.therapist.state == "at_risk"
    assert risk.state == "not_ready"
    reason = risk.reasons[0]
    assert (reason.end, reason.cause, reason.severity) == ("session", "e2e_loss", "critical")
    assert reason.message == "Together the two connections are expected to lose 4.0 % of sound and picture from the client to the therapist."
    assert reason.action.startswith("Agree with the client at the start to switch to audio only")


def test_video_tier_is_the_lower_direction_and_end_reasons_are_not_repeated() -> None:
    risk = assess_session(session(end("client", check(up_mbps=1.0)), fine("therapist")), CONFIG, NOW)
    assert risk.end_to_end.client_to_therapist.video_tier == "360p"  # 1.0 Mbit/s up >= 0.6 x 1.5
    assert risk.end_to_end.therapist_to_client.video_tier == "1080p"
    assert risk.end_to_end.video_tier == "360p"
    assert risk.state == "at_risk"
    assert ("client", "low_upload_throughput") in causes(risk, "warning")
    assert "e2e_video" not in [r.cause for r in risk.reasons]  # the client's own reason already says it
    assert lower_tier("unknown", "720p") == "720p" and lower_tier("none", "720p") == "none"


# --------------------------------------------------------------------------------------------
# Words, determinism, monotonicity
# --------------------------------------------------------------------------------------------


def test_every_check_finding_has_a_message_and_an_action() -> None:
    findings = tuple(Finding(code, "warning") for code in sorted(quality.REASON_CODES))
    base = check()
    summary = dataclasses.replace(base, findings=findings)
    risk = assess_session(session(end("client", summary), fine("therapist")), CONFIG, NOW)
    client_reasons = [r for r in risk.reasons if r.end == "client"]
    assert sorted(r.cause for r in client_reasons) == sorted(quality.REASON_CODES)
    for reason in client_reasons:
        assert reason.message.startswith(("The client", "Something on the client", "Another program", "Noise in the client", "Other voices"))
        assert reason.action.startswith("Ask the client to ")
        assert len(reason.message) <= 400 and len(reason.action) <= 400
    assert set(ACTIONS) | {"history_degraded", "e2e_delay", "e2e_loss", "e2e_audio_quality", "e2e_video"} == CAUSES


def test_every_cause_is_documented() -> None:
    text = DOC.read_text()
    missing = [cause for cause in sorted(CAUSES) if f"`{cause}`" not in text]
    assert missing == []


def test_actions_address_the_therapist_for_their_own_end() -> None:
    assert render_action("therapist", "low_battery", "warning") == "Charge the laptop: plug in the charger before the session."
    assert render_action("client", "low_battery", "warning") == "Ask the client to charge the laptop: plug in the charger before the session."
    assert render_action("client", "noisy_room", "critical").endswith(FALLBACK_ACTION)


def test_same_inputs_give_the_same_result_in_a_stable_order() -> None:
    history = [(NOW - k * 86400, k % 2 == 0) for k in range(1, 9)]
    shuffled = history[:]
    random.Random(7).shuffle(shuffled)
    a = session(end("client", check(loss_up=0.02, cpu=90.0, jitter_up=40.0), history=HistorySummary.from_records(history)),
                end("therapist", None, last_seen=None), start=NOW + 300)  # fmt: skip
    b = session(end("client", check(loss_up=0.02, cpu=90.0, jitter_up=40.0), history=HistorySummary.from_records(shuffled)),
                end("therapist", None, last_seen=None), start=NOW + 300)  # fmt: skip
    first, second = assess_session(a, CONFIG, NOW), assess_session(b, CONFIG, NOW)
    assert first == second
    ranks = [(quality.SEVERITIES.index(r.severity), ("client", "therapist", "session").index(r.end)) for r in first.reasons]
    assert ranks == sorted(ranks)
    assert json.loads(json.dumps(encode(first))) == encode(second)  # JSON-storable


def test_ended_and_cancelled_sessions_are_not_judged() -> None:
    risk = assess_session(session(end("client", check(loss_up=0.08)), fine("therapist"), state="cancelled"), CONFIG, NOW)
    assert risk.state == "unknown" and risk.reasons == ()


def test_bad_inputs_are_refused_with_the_field_named() -> None:
    bad = report()
    bad["network"]["loss"]["up"] = 1.5
    with pytest.raises(SchemaError, match="network.loss.up"):
        CheckSummary.from_report(bad, NOW)
    with pytest.raises(ValueError, match="client and therapist"):
        SessionInputs("s", NOW, 3000, "scheduled", fine("therapist"), fine("client"))
    with pytest.raises(ValueError, match="samples_min_count"):
        RiskConfig(samples_min_count=0)
    with pytest.raises(ValueError, match="loss_good_ratio"):
        LiveConfig(loss_good_ratio=0.2)


def _rank(state: str) -> int:
    return STATES.index(state)


_loss = st.floats(0.0, 0.3)
_rtt = st.floats(1.0, 800.0)
_jitter = st.floats(0.0, 80.0)
_cpu = st.floats(0.0, 100.0)
_mbps = st.floats(0.05, 100.0)


@settings(max_examples=60, deadline=None)
@given(
    loss=_loss, extra_loss=_loss, rtt=_rtt, extra_rtt=st.floats(0.0, 400.0), jitter=_jitter, extra_jitter=st.floats(0.0, 40.0),
    cpu=_cpu, extra_cpu=st.floats(0.0, 100.0), mbps=_mbps, factor=st.floats(0.05, 1.0),
    which=st.sampled_from(["loss_up", "loss_down", "rtt", "jitter_up", "cpu", "up_mbps", "down_mbps"]),
    role=st.sampled_from(["client", "therapist"]),
)  # fmt: skip
def test_worsening_a_measurement_never_improves_the_state(loss, extra_loss, rtt, extra_rtt, jitter, extra_jitter, cpu, extra_cpu, mbps, factor, which, role) -> None:
    base = dict(loss_up=loss, loss_down=loss / 2, rtt=rtt, jitter_up=jitter, cpu=cpu, up_mbps=mbps, down_mbps=mbps * 2)
    worse = dict(base)
    worse[which] = {
        "loss_up": min(1.0, loss + extra_loss), "loss_down": min(1.0, loss / 2 + extra_loss), "rtt": rtt + extra_rtt,
        "jitter_up": jitter + extra_jitter, "cpu": min(100.0, cpu + extra_cpu), "up_mbps": mbps * factor,
        "down_mbps": mbps * 2 * factor,
    }[which]  # fmt: skip

    def state(measured: dict) -> str:
        ends = {"client": fine("client"), "therapist": fine("therapist")}
        ends[role] = end(role, check(**measured))
        return assess_session(session(ends["client"], ends["therapist"]), CONFIG, NOW).state

    assert _rank(state(worse)) >= _rank(state(base))


@settings(max_examples=60, deadline=None)
@given(earlier=st.floats(0.0, 10_000.0), later=st.floats(0.0, 10_000.0), has_samples=st.booleans())
def test_time_running_out_without_a_check_never_improves_the_state(earlier, later, has_samples) -> None:
    first, second = sorted((earlier, later))
    samples = RecentSamples(count=5, rtt_p50_ms=20.0, loss_up_ratio=0.0, loss_down_ratio=0.0) if has_samples else None
    inputs = session(end("client", samples=samples, last_seen=None), fine("therapist"), start=NOW + 10_000)
    assert _rank(assess_session(inputs, CONFIG, NOW + second).state) >= _rank(assess_session(inputs, CONFIG, NOW + first).state)


# --------------------------------------------------------------------------------------------
# Live: the state machine with hysteresis
# --------------------------------------------------------------------------------------------

T0 = NOW


def live(end_: str, t: float, mos: float | None = 4.3, loss: float = 0.0) -> LiveSample:
    """A 2 s sample taken at T0 + t, received 0.1 s later."""
    return LiveSample(end_, T0 + t, 2.0, T0 + t + 0.1, mos, loss, 0.0)  # type: ignore[arg-type]


class Feed:
    """Steps the tracker every 2 s with both ends' samples; records transitions."""

    def __init__(self, config: LiveConfig = LiveConfig()) -> None:
        self.tracker = LiveTracker(config)
        self.state: LiveState = self.tracker.start("s-1", T0)
        self.transitions: list = []

    def run(self, t_from: float, t_to: float, client=None, therapist=None) -> None:
        """Samples at t_from+2, ..., t_to; client/therapist: t -> sample kwargs, or None for silence."""
        t = t_from
        while t < t_to:
            t += 2.0
            batch = []
            for name, make in (("client", client), ("therapist", therapist)):
                kwargs = make(t) if make else {}
                if kwargs is not None:
                    batch.append(live(name, t, **kwargs))
            step = self.tracker.step(self.state, batch, T0 + t + 0.2)
            self.state = step.state
            self.transitions += [(round(tr.at_unix - T0, 1), tr.end, tr.cause, tr.kind) for tr in step.transitions]


def test_low_mos_for_10_seconds_marks_at_risk_and_20_seconds_good_recovers() -> None:
    feed = Feed()
    feed.run(0, 10)
    feed.run(10, 18, client=lambda t: {"mos": 3.2})  # 4 low samples: 8 s, not yet
    assert feed.state.state == "ready" and feed.transitions == []
    feed.run(18, 20, client=lambda t: {"mos": 3.2})  # the fifth: 10 s of low MOS
    assert feed.state.state == "at_risk"
    assert feed.transitions == [(20.1, "client", "live_low_audio_quality", "degraded")]
    feed.run(20, 38, client=lambda t: {"mos": 4.2})  # 18 s good: still at risk
    assert feed.state.state == "at_risk" and len(feed.transitions) == 1
    feed.run(38, 40)  # 20 s good
    assert feed.state.state == "ready"
    assert feed.transitions[-1] == (40.1, "client", "live_low_audio_quality", "recovered")


def test_a_flap_within_the_recovery_window_stays_at_risk_without_new_alerts() -> None:
    feed = Feed()
    feed.run(0, 10, client=lambda t: {"mos": 3.0})
    assert feed.state.state == "at_risk"
    feed.run(10, 24)  # 14 s good
    feed.run(24, 26, client=lambda t: {"mos": 3.0})  # one bad sample: the recovery run restarts
    feed.run(26, 44)  # 18 s good: not yet
    assert feed.state.state == "at_risk"
    assert [k for *_, k in feed.transitions] == ["degraded"]
    feed.run(44, 46)
    assert feed.state.state == "ready"
    assert [k for *_, k in feed.transitions] == ["degraded", "recovered"]


def test_loss_bursts_twice_within_10_seconds_mark_at_risk() -> None:
    feed = Feed()
    feed.run(0, 2, therapist=lambda t: {"loss": 0.12})
    feed.run(2, 14)  # the next burst 12 s later: two isolated bursts are not a problem
    feed.run(14, 16, therapist=lambda t: {"loss": 0.12})
    assert feed.state.state == "ready"
    feed.run(16, 22)
    feed.run(22, 24, therapist=lambda t: {"loss": 0.15})  # 8 s after the previous one
    assert feed.state.state == "at_risk"
    assert feed.transitions == [(24.1, "therapist", "live_loss_burst", "degraded")]
    feed.run(24, 44, therapist=lambda t: {"loss": 0.05})  # better, but above 3 %: not recovered
    assert feed.state.state == "at_risk"
    feed.run(44, 64, therapist=lambda t: {"loss": 0.01})
    assert feed.state.state == "ready"
    assert feed.transitions[-1] == (64.1, "therapist", "live_loss_burst", "recovered")


def test_a_dropped_agent_marks_at_risk_and_its_return_recovers_after_the_recovery_period() -> None:
    feed = Feed()
    feed.run(0, 10)
    feed.run(10, 20, client=lambda t: None)  # client silent; last sample received at 10.1
    assert feed.state.state == "at_risk"
    assert feed.transitions == [(20.2, "client", "live_agent_dropped", "degraded")]  # 10.1 s of silence noticed
    feed.run(20, 30, client=lambda t: None)
    assert len(feed.transitions) == 1  # still dropped: no repeated alert
    feed.run(30, 48)  # samples again from 32.1: 16 s later not yet recovered
    assert feed.state.state == "at_risk"
    feed.run(48, 52)
    assert feed.state.state == "ready"
    assert feed.transitions[-1] == (52.1, "client", "live_agent_dropped", "recovered")


def test_both_agents_silent_from_the_start_are_dropped() -> None:
    tracker = LiveTracker()
    state = tracker.start("s-1", T0)
    assert tracker.step(state, [], T0 + 10).transitions == ()
    step = tracker.step(state, [], T0 + 10.5)
    assert [(t.end, t.cause) for t in step.transitions] == [("client", "live_agent_dropped"), ("therapist", "live_agent_dropped")]
    assert step.state_before == "ready" and step.state_after == "at_risk"
    assert step.transitions[0].message == "No live measurements from the client's agent for 10 seconds: the connection may have dropped."
    assert step.transitions[0].action == "Ask the client to rejoin the call; if it does not come back, use the phone fallback."


def test_live_state_survives_a_json_round_trip_and_replays_the_same() -> None:
    samples = [live("client", t, mos=3.0 if 6 <= t <= 16 else 4.3, loss=0.2 if t in (8, 12) else 0.0) for t in range(2, 60, 2)]
    samples += [live("therapist", t) for t in range(2, 60, 2)]
    tracker = LiveTracker()
    direct = stored = tracker.start("s-1", T0)
    direct_events, stored_events = [], []
    for t in range(2, 60, 2):
        batch = [s for s in samples if s.taken_at_unix == T0 + t]
        step = tracker.step(direct, batch, T0 + t + 0.2)
        direct, direct_events = step.state, direct_events + list(step.transitions)
        step = tracker.step(decode(LiveState, json.loads(json.dumps(encode(stored)))), batch, T0 + t + 0.2)
        stored, stored_events = step.state, stored_events + list(step.transitions)
    assert direct == stored and direct_events == stored_events
    assert {(e.cause, e.kind) for e in direct_events} == {
        ("live_low_audio_quality", "degraded"), ("live_low_audio_quality", "recovered"),
        ("live_loss_burst", "degraded"), ("live_loss_burst", "recovered"),
    }  # fmt: skip


def test_duplicate_and_out_of_order_samples_are_applied_once_in_order() -> None:
    tracker = LiveTracker()
    state = tracker.start("s-1", T0)
    batch = [live("client", t, mos=3.0) for t in (10, 4, 8, 2, 6)] + [live("therapist", 10)]
    step = tracker.step(state, batch + batch, T0 + 10.2)
    assert [(t.end, t.cause) for t in step.transitions] == [("client", "live_low_audio_quality")]
    again = tracker.step(step.state, batch, T0 + 10.4)
    assert again.transitions == () and again.state == step.state


def test_live_samples_are_read_from_the_stored_wire_form() -> None:
    wire = {
        "schema_version": 1, "taken_at": "2026-01-01T09:00:10Z", "interval_s": 2.0, "session_id": "s-1",
        "agent": {"version": "0.1.0", "os": "linux"},
        "network": {"packets_sent": 100, "packets_received": 88, "rtt_p50_ms": 30.0, "rtt_p95_ms": 40.0, "jitter_up_ms": 3.0,
                    "jitter_down_ms": 2.0, "loss_up": 0.12, "loss_down": 0.0, "mos": 3.1, "problem": None},
        "machine": None, "traffic_mbps": None, "room": None,
    }  # fmt: skip
    from_json = LiveSample.from_sample("client", wire, T0 + 10.3)
    from_schema = LiveSample.from_sample("client", decode(schema.Sample, wire), T0 + 10.3)
    assert from_json == from_schema == LiveSample("client", T0 + 10, 2.0, T0 + 10.3, 3.1, 0.12, 0.0)
    quiet = LiveSample.from_sample("therapist", {**wire, "network": None, "taken_at": "2026-01-01T10:00:10+01:00"}, T0 + 10.3)
    assert quiet.taken_at_unix == T0 + 10 and quiet.mos is None and quiet.loss_up_ratio is None


def test_a_check_summary_can_be_stored_as_json_and_read_back() -> None:
    summary = check(loss_up=0.08, cpu=90.0)
    assert decode(CheckSummary, json.loads(json.dumps(encode(summary)))) == summary
    assert CheckSummary.from_report(decode(schema.CheckReport, report(loss_up=0.08, cpu=90.0)), NOW - 300) == summary
