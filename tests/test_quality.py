"""The quality model: E-model arithmetic against hand-worked G.107 values, properties, scenarios.

Expected E-model numbers are worked out by hand from the formulas of ITU-T G.107 (06/2015)
at its default values (arithmetic in the comments), never by calling the code under test.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionready import quality
from sessionready.quality import (
    REASON_CODES,
    SEVERITIES,
    VERDICTS,
    VIDEO_TIERS,
    Assessment,
    NetworkFacts,
    Reason,
    Thresholds,
    assess,
    delay_impairment,
    effective_equipment_impairment,
    fix_text,
    mos_from_r,
    mouth_to_ear_delay_ms,
    r_factor,
    video_tier,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "quality-model.md"

# A clean, fast home link: 20 ms round trip, little jitter, no loss over 1000 packets
# (Wilson 95 % upper bound for 0 of 1000: 3.8415 / (1000 + 3.8415) = 0.38 %), plenty of
# throughput and almost no extra delay under load.
CLEAN = NetworkFacts(
    rtt_p50_ms=20.0,
    rtt_p95_ms=28.0,
    jitter_up_ms=2.0,
    jitter_down_ms=3.0,
    loss_up_ratio=0.0,
    loss_down_ratio=0.0,
    loss_up_ci95=(0.0, 0.0038),
    loss_down_ci95=(0.0, 0.0038),
    packets_sent=1000,
    packets_received=1000,
    throughput_down_mbps=95.0,
    throughput_up_mbps=22.0,
    loaded_latency_down_ms=8.0,
    loaded_latency_up_ms=12.0,
)


def facts(**changes: object) -> NetworkFacts:
    return dataclasses.replace(CLEAN, **changes)


def codes(assessment: Assessment) -> set[str]:
    return {reason.code for reason in assessment.reasons}


# ---------------------------------------------------------------------------------------------
# E-model: known values
# ---------------------------------------------------------------------------------------------


def test_r_at_defaults_without_delay_or_loss_is_93_2():
    # G.107: Ro 94.77 - Is 1.41 - Idle(T=0) 0.15 (Idte is 0 at T=0 because of its 1 - e^-T term)
    assert r_factor(0.0, 0.0) == pytest.approx(93.2, abs=0.05)


def test_mos_from_r_annex_b_values():
    # 1 + 0.035*93.2 + 93.2*(93.2-60)*(100-93.2)*7e-6 = 1 + 3.262 + 0.14729 = 4.4093
    assert mos_from_r(93.2) == pytest.approx(4.409, abs=0.001)
    # 1 + 0.035*50 + 50*(-10)*50*7e-6 = 1 + 1.75 - 0.175 = 2.575
    assert mos_from_r(50) == pytest.approx(2.575, abs=0.001)
    # G.109 band edges: R 80 -> 4.03, R 70 -> 3.60, R 60 -> 3.10
    # 1 + 2.8 + 80*20*20*7e-6 = 4.024; 1 + 2.45 + 70*10*30*7e-6 = 3.597; 1 + 2.1 + 0 = 3.1
    assert mos_from_r(80) == pytest.approx(4.024, abs=0.001)
    assert mos_from_r(70) == pytest.approx(3.597, abs=0.001)
    assert mos_from_r(60) == pytest.approx(3.1, abs=0.001)


def test_mos_clamps_outside_the_scale():
    assert mos_from_r(-5) == 1.0
    assert mos_from_r(0) == 1.0
    assert mos_from_r(100) == 4.5
    assert mos_from_r(130) == 4.5
    # The Annex B polynomial gives 0.989 at R = 3: 1 + 0.105 + 3*(-57)*97*7e-6 = 1.105 - 0.1161
    assert mos_from_r(3) == 1.0


def test_delay_impairment_matches_g107_worked_values():
    # Id = Idte(T) + Idle(Tr = 2T) + Idd(Ta), T = Ta, Ro = 94.77, TELR 65, WEPL 110.
    #
    # Ta = 100 ms
    #   TERV = 65 - 40 log10((1 + 10) / (1 + 100/150)) = 65 - 40 log10(6.6) = 65 - 32.78 = 32.22
    #   Re = 80 + 2.5 (32.22 - 14) = 125.55; Ro - Re = -30.78
    #   Idte = -15.39 + sqrt(30.78^2/4 + 100) - 1 = -15.39 + 18.35 - 1 = 1.96
    #   Rle = 10.5 * 117 * 201^-0.25 = 1228.5 / 3.765 = 326.3; Ro - Rle = -231.5
    #   Idle = -115.75 + sqrt(231.5^2/4 + 169) = -115.75 + 116.48 = 0.73
    #   Idd = 0 (Ta <= 100)                                                    Id = 2.69
    # Ta = 200 ms
    #   TERV = 65 - 40 log10(21 / 2.333) = 65 - 38.17 = 26.83; Re = 112.08; Ro - Re = -17.31
    #   Idte = -8.65 + sqrt(74.9 + 100) - 1 = -8.65 + 13.22 - 1 = 3.57
    #   Rle = 1228.5 / 401^0.25 = 1228.5 / 4.475 = 274.5; Idle = -89.88 + 90.82 = 0.94
    #   X = log2(2) = 1: Idd = 25 (2^(1/6) - 3 (1 + 1/729)^(1/6) + 2)
    #                        = 25 (1.12246 - 3.00069 + 2) = 3.04                  Id = 7.55
    # Ta = 400 ms
    #   TERV = 65 - 40 log10(41 / 3.667) = 65 - 41.94 = 23.06; Re = 102.65; Ro - Re = -7.88
    #   Idte = -3.94 + sqrt(15.5 + 100) - 1 = -3.94 + 10.75 - 1 = 5.81
    #   Rle = 1228.5 / 801^0.25 = 1228.5 / 5.320 = 230.9; Idle = -68.08 + 69.31 = 1.23
    #   X = 2: Idd = 25 (65^(1/6) - 3 (1 + 64/729)^(1/6) + 2)
    #              = 25 (2.00510 - 3.04237 + 2) = 24.07                           Id = 31.11
    ids = [delay_impairment(ta) for ta in (100.0, 200.0, 400.0)]
    assert ids == pytest.approx([2.69, 7.55, 31.11], abs=0.03)
    assert ids[0] < ids[1] < ids[2]


def test_pure_delay_term_alone_follows_the_ln_power_expression():
    # Subtracting Id at 100 ms from Id at 200 ms leaves Idd(200) plus the small echo growth:
    # (3.57 + 0.94 + 3.04) - (1.96 + 0.73) = 4.86, of which Idd is 3.04 (see above).
    assert delay_impairment(200.0) - delay_impairment(100.0) == pytest.approx(4.86, abs=0.03)


def test_effective_equipment_impairment_g711_plc():
    # Ie,eff = 0 + 95 * Ppl / (Ppl + 25.1): 1 % -> 95 / 26.1 = 3.640; 5 % -> 475 / 30.1 = 15.781
    assert effective_equipment_impairment(0.01) == pytest.approx(3.640, abs=0.001)
    assert effective_equipment_impairment(0.05) == pytest.approx(15.781, abs=0.001)
    # Bursty loss (BurstR 2) hurts more: 475 / (5/2 + 25.1) = 475 / 27.6 = 17.210
    assert effective_equipment_impairment(0.05, burst_ratio=2.0) == pytest.approx(17.210, abs=0.001)
    # A codec with its own impairment: Ie 10, Bpl 19, 2 %: 10 + 85*2/21 = 18.095
    assert effective_equipment_impairment(0.02, ie=10.0, bpl=19.0) == pytest.approx(18.095, abs=0.001)


def test_r_with_loss_subtracts_ie_eff():
    # 93.21 - 3.640 = 89.57 at 1 % loss and no delay
    assert r_factor(0.0, 0.01) == pytest.approx(89.57, abs=0.05)


def test_mouth_to_ear_delay():
    # 40/2 + max(2*5, 20) + 25 = 20 + 20 + 25 = 65
    assert mouth_to_ear_delay_ms(40.0, 5.0) == pytest.approx(65.0)
    # 100/2 + max(2*30, 20) + 25 = 50 + 60 + 25 = 135
    assert mouth_to_ear_delay_ms(100.0, 30.0) == pytest.approx(135.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: r_factor(-1.0, 0.0),
        lambda: r_factor(10.0, 1.5),
        lambda: r_factor(math.nan, 0.0),
        lambda: mos_from_r(math.nan),
        lambda: mouth_to_ear_delay_ms(-5.0, 1.0),
        lambda: video_tier(-1.0, 5.0),
        lambda: video_tier(5.0, 5.0, headroom=0.5),
        lambda: effective_equipment_impairment(0.01, burst_ratio=0.0),
    ],
)
def test_e_model_rejects_nonsense(call):
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------------------------------------
# Video tier
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("up", "down", "tier"),
    [
        (20.0, 100.0, "1080p"),
        (5.8, 4.6, "1080p"),  # 3.8 x 1.5 = 5.7 up, 3.0 x 1.5 = 4.5 down
        (5.6, 100.0, "720p"),
        (1.81, 1.81, "720p"),  # 1.2 x 1.5 = 1.8
        (1.79, 50.0, "360p"),
        (0.91, 0.91, "360p"),  # 0.6 x 1.5 = 0.9
        (0.5, 50.0, "audio_only"),
        (0.13, 0.13, "audio_only"),  # 0.08 x 1.5 = 0.12
        (0.1, 50.0, "none"),
        (None, None, "unknown"),
        (None, 10.0, "1080p"),  # one direction known: the tier it allows
        (1.0, None, "360p"),
    ],
)
def test_video_tier_table(up, down, tier):
    assert video_tier(up, down) == tier


def test_video_tier_headroom_is_configurable():
    assert video_tier(1.3, 1.3) == "360p"
    assert video_tier(1.3, 1.3, headroom=1.0) == "720p"


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

delays = st.floats(min_value=0, max_value=20_000, allow_nan=False)
losses = st.floats(min_value=0, max_value=1, allow_nan=False)
rates = st.floats(min_value=0, max_value=10_000, allow_nan=False)


@given(st.floats(allow_nan=False))
def test_mos_always_within_1_and_4_5(r):
    assert 1.0 <= mos_from_r(r) <= 4.5


@given(delays, delays, losses)
def test_r_non_increasing_in_delay(d1, d2, loss):
    low, high = sorted((d1, d2))
    assert r_factor(high, loss) <= r_factor(low, loss) + 1e-9


@given(delays, losses, losses)
def test_r_non_increasing_in_loss(delay, l1, l2):
    low, high = sorted((l1, l2))
    assert r_factor(delay, high) <= r_factor(delay, low) + 1e-9


@given(rates, rates, rates, rates)
def test_video_tier_monotonic_in_throughput(u1, u2, d1, d2):
    up_low, up_high = sorted((u1, u2))
    down_low, down_high = sorted((d1, d2))
    better = VIDEO_TIERS.index(video_tier(up_high, down_high))
    worse = VIDEO_TIERS.index(video_tier(up_low, down_low))
    assert better <= worse


@st.composite
def network_facts(draw: st.DrawFn) -> NetworkFacts:
    sent = draw(st.integers(min_value=0, max_value=5000))
    received = draw(st.integers(min_value=0, max_value=sent))

    def maybe(strategy: st.SearchStrategy) -> object:
        return draw(st.none() | strategy)

    def interval() -> tuple[float, float] | None:
        if draw(st.booleans()):
            return None
        low = draw(losses)
        return (low, draw(st.floats(min_value=low, max_value=1)))

    ms = st.floats(min_value=0, max_value=3000, allow_nan=False)
    return NetworkFacts(
        rtt_p50_ms=maybe(ms),
        rtt_p95_ms=maybe(ms),
        jitter_up_ms=maybe(st.floats(min_value=0, max_value=300)),
        jitter_down_ms=maybe(st.floats(min_value=0, max_value=300)),
        loss_up_ratio=maybe(losses),
        loss_down_ratio=maybe(losses),
        loss_up_ci95=interval(),
        loss_down_ci95=interval(),
        packets_sent=sent,
        packets_received=received,
        throughput_down_mbps=maybe(st.floats(min_value=0, max_value=500)),
        throughput_up_mbps=maybe(st.floats(min_value=0, max_value=500)),
        loaded_latency_down_ms=maybe(st.floats(min_value=-50, max_value=1000)),
        loaded_latency_up_ms=maybe(st.floats(min_value=-50, max_value=1000)),
        udp_error=draw(st.none() | st.just("recvfrom 203.0.113.7:4444 timed out for host alice-laptop")),
        throughput_error=draw(st.none() | st.just("bad gateway from monitor.example.org")),
    )


def plainly_critical(f: NetworkFacts) -> bool:
    """Conditions that the default thresholds call critical, restated independently."""
    if f.udp_error is not None or f.packets_received == 0:
        return True
    if any(loss is not None and loss > 0.03 for loss in (f.loss_up_ratio, f.loss_down_ratio)):
        return True
    jitters = [j for j in (f.jitter_up_ms, f.jitter_down_ms) if j is not None]
    if any(j > 50 for j in jitters):
        return True
    if f.rtt_p50_ms is not None:
        mouth_to_ear = f.rtt_p50_ms / 2 + max(2 * max(jitters, default=0.0), 20) + 25
        if f.rtt_p50_ms > 500 or mouth_to_ear > 400:
            return True
    if any(x is not None and x > 200 for x in (f.loaded_latency_down_ms, f.loaded_latency_up_ms)):
        return True
    # Basic video needs 0.6 Mbit/s x 1.5; stay clear of the float edge at 0.9.
    return any(x is not None and x < 0.89 for x in (f.throughput_down_mbps, f.throughput_up_mbps))


@given(network_facts())
def test_never_ready_when_a_critical_condition_holds(f):
    result = assess(f)
    if plainly_critical(f):
        assert result.verdict == "not_ready"


@given(network_facts())
def test_assessment_is_well_formed(f):
    result = assess(f)
    assert result.verdict in VERDICTS
    assert result.video_tier in VIDEO_TIERS
    severities = [SEVERITIES.index(reason.severity) for reason in result.reasons]
    assert severities == sorted(severities), "most severe first"
    expected = (
        "not_ready" if 0 in severities else "at_risk" if 1 in severities else "ready"
    )
    assert result.verdict == expected
    if result.r_factor is not None:
        assert 0.0 <= result.r_factor <= 100.0
        assert 1.0 <= result.mos <= 4.5
    for reason in result.reasons:
        assert reason.code in REASON_CODES
        # The report schema caps both at 400 characters.
        assert 0 < len(reason.message) <= 400
        assert 0 < len(reason.fix) <= 400
        # Error texts (addresses, host names) never reach what a person reads.
        for leaked in ("203.0.113.7", "alice", "example.org", "gateway"):
            assert leaked not in reason.message
            assert leaked not in reason.fix


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------


def test_clean_fast_link_is_ready_without_warnings():
    result = assess(CLEAN)
    assert result.verdict == "ready"
    assert result.reasons == ()
    assert result.video_tier == "1080p"
    assert result.mos is not None and result.mos >= 4.3


def test_eight_percent_upload_loss_is_not_ready():
    result = assess(facts(loss_up_ratio=0.08, loss_up_ci95=(0.066, 0.097)))
    assert result.verdict == "not_ready"
    loss = [r for r in result.reasons if r.code == "high_upload_loss"]
    assert loss and loss[0].severity == "critical"
    assert "8.0%" in loss[0].message
    assert result.reasons[0].severity == "critical"


def test_two_percent_download_loss_is_at_risk():
    result = assess(facts(loss_down_ratio=0.02, loss_down_ci95=(0.013, 0.031)))
    assert result.verdict == "at_risk"
    assert "high_download_loss" in codes(result)


def test_loaded_latency_increase_gives_a_bufferbloat_reason():
    result = assess(facts(loaded_latency_down_ms=150.0))
    assert result.verdict == "at_risk"
    (reason,) = result.reasons
    assert reason.code == "bufferbloat_download"
    assert "150 ms" in reason.message
    assert assess(facts(loaded_latency_up_ms=250.0)).verdict == "not_ready"


def test_half_a_megabit_upload_is_not_ready():
    result = assess(facts(throughput_up_mbps=0.5))
    assert result.verdict == "not_ready"
    assert result.video_tier == "audio_only"
    (reason,) = result.reasons
    assert reason.code == "low_upload_throughput"
    assert reason.severity == "critical"
    assert "0.5 Mbit/s" in reason.message


def test_below_720p_throughput_is_at_risk():
    result = assess(facts(throughput_down_mbps=1.2))
    assert result.verdict == "at_risk"
    assert result.video_tier == "360p"
    assert codes(result) == {"low_download_throughput"}


def test_no_echo_is_not_ready_with_udp_blocked():
    result = assess(
        facts(
            packets_received=0,
            rtt_p50_ms=None,
            rtt_p95_ms=None,
            jitter_up_ms=None,
            jitter_down_ms=None,
            loss_up_ratio=None,
            loss_down_ratio=None,
            loss_up_ci95=None,
            loss_down_ci95=None,
        )
    )
    assert result.verdict == "not_ready"
    assert result.reasons[0].code == "udp_blocked"
    assert "1000" in result.reasons[0].message
    fix = result.reasons[0].fix
    assert "firewall" in fix.lower() and "VPN" in fix and "UDP" in fix and "TCP" in fix
    assert result.r_factor is None and result.mos is None


def test_udp_error_alone_is_not_ready_and_the_error_text_stays_out():
    result = assess(facts(udp_error="bind failed on 192.168.1.20", packets_sent=0, packets_received=0))
    assert result.verdict == "not_ready"
    assert codes(result) == {"udp_blocked"}
    assert "192.168" not in result.reasons[0].message


def test_zero_of_250_is_not_a_problem():
    # Wilson 95 % upper bound for 0 of 250: 3.8415 / (250 + 3.8415) = 1.51 %
    result = assess(facts(packets_sent=250, packets_received=250, loss_up_ci95=(0.0, 0.0151), loss_down_ci95=(0.0, 0.0151)))
    assert result.verdict == "ready"
    assert all(reason.severity == "info" for reason in result.reasons)
    assert not codes(result) & {"high_upload_loss", "high_download_loss"}


def test_too_few_packets_is_said_not_hidden():
    # 0 of 100: upper bound 3.8415 / 103.8415 = 3.70 %, above the 3 % critical line
    result = assess(facts(packets_sent=100, packets_received=100, loss_up_ci95=(0.0, 0.037)))
    assert result.verdict == "ready"
    (reason,) = result.reasons
    assert (reason.code, reason.severity) == ("uncertain_upload_loss", "info")
    assert "3.7%" in reason.message and "100" in reason.message


def test_high_delay_warns_then_becomes_critical():
    # 240/2 + 20 + 25 = 165 ms mouth to ear: above G.114's 150 ms
    assert {(r.code, r.severity) for r in assess(facts(rtt_p50_ms=240.0)).reasons} >= {("high_delay", "warning")}
    # Teams CQD: a round trip above 500 ms is poor, even though 255 + 20 + 25 < 400
    assert ("high_delay", "critical") in {(r.code, r.severity) for r in assess(facts(rtt_p50_ms=510.0)).reasons}


def test_jitter_per_direction():
    result = assess(facts(jitter_up_ms=35.0))
    assert result.verdict == "at_risk"
    assert "high_upload_jitter" in codes(result)
    assert ("high_download_jitter", "critical") in {(r.code, r.severity) for r in assess(facts(jitter_down_ms=55.0)).reasons}


def test_speech_quality_uses_the_worse_direction():
    result = assess(facts(loss_down_ratio=0.02, loss_down_ci95=(0.013, 0.031)))
    worse = r_factor(mouth_to_ear_delay_ms(20.0, 3.0), 0.02)
    assert result.r_factor == pytest.approx(worse)
    assert result.mos == pytest.approx(mos_from_r(worse))


def test_extreme_link_clamps_r_and_mos():
    result = assess(facts(rtt_p50_ms=3000.0, loss_up_ratio=0.9, loss_up_ci95=(0.88, 0.92)))
    assert result.r_factor == 0.0
    assert result.mos == 1.0
    assert result.verdict == "not_ready"


def test_throughput_not_measured_or_failed():
    unmeasured = assess(facts(throughput_down_mbps=None, throughput_up_mbps=None))
    assert unmeasured.verdict == "ready"
    assert unmeasured.video_tier == "unknown"
    assert codes(unmeasured) == {"throughput_not_measured"}
    failed = assess(facts(throughput_down_mbps=None, throughput_up_mbps=None, throughput_error="timed out"))
    assert failed.verdict == "at_risk"
    assert codes(failed) == {"throughput_test_failed"}


def test_thresholds_change_the_verdict():
    strict = Thresholds(loaded_latency_critical_ms=100.0)
    assert assess(facts(loaded_latency_down_ms=150.0), strict).verdict == "not_ready"


# ---------------------------------------------------------------------------------------------
# Thresholds, facts and reasons validate their input
# ---------------------------------------------------------------------------------------------


def test_thresholds_from_mapping_accepts_known_keys():
    assert Thresholds.from_mapping({}) == Thresholds()
    loaded = Thresholds.from_mapping({"jitter_warning_ms": 20, "loss_critical_ratio": 0.05})
    assert loaded.jitter_warning_ms == 20.0 and isinstance(loaded.jitter_warning_ms, float)
    assert loaded.loss_critical_ratio == 0.05


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"jitter_warnin_ms": 30}, "jitter_warnin_ms"),
        ({"loss_warning_ratio": 1.5}, "loss_warning_ratio"),
        ({"jitter_warning_ms": "30"}, "jitter_warning_ms"),
        ({"jitter_warning_ms": True}, "jitter_warning_ms"),
        ({"rtt_critical_ms": -1}, "rtt_critical_ms"),
        ({"rtt_critical_ms": math.nan}, "rtt_critical_ms"),
        ({"mos_critical_below": 5.0}, "mos_critical_below"),
        ({"throughput_headroom_factor": 0.5}, "throughput_headroom_factor"),
        ({"loss_warning_ratio": 0.05}, "loss_warning_ratio"),  # above the 3 % critical default
        ({"mos_warning_below": 3.0}, "mos_warning_below"),  # below the 3.6 critical default
    ],
)
def test_thresholds_from_mapping_rejects_naming_the_key(data, key):
    with pytest.raises(ValueError, match=re.escape(key)):
        Thresholds.from_mapping(data)


def test_network_facts_validate():
    with pytest.raises(ValueError, match="rtt_p50_ms"):
        facts(rtt_p50_ms=-1.0)
    with pytest.raises(ValueError, match="loss_up_ratio"):
        facts(loss_up_ratio=1.2)
    with pytest.raises(ValueError, match="packets_received"):
        facts(packets_received=1001)
    with pytest.raises(ValueError, match="loss_down_ci95"):
        facts(loss_down_ci95=(0.2, 0.1))
    # A JSON list becomes a tuple; a negative loaded-latency change is allowed (noise)
    converted = facts(loss_up_ci95=[0.0, 0.01], loaded_latency_up_ms=-3.0)
    assert converted.loss_up_ci95 == (0.0, 0.01)


def test_reason_rejects_unknown_code_and_severity():
    with pytest.raises(ValueError):
        Reason("made_up", "warning", "m", "f")
    with pytest.raises(ValueError):
        Reason("high_delay", "fatal", "m", "f")


# ---------------------------------------------------------------------------------------------
# Words and documentation
# ---------------------------------------------------------------------------------------------

JARGON = re.compile(r"\b(jitter|bufferbloat|latency|packets?|mos|r-factor|throughput|bandwidth)\b", re.IGNORECASE)


@pytest.mark.parametrize("code", sorted(REASON_CODES))
def test_fixes_are_plain_and_short(code):
    for severity in ("warning", "critical"):
        fix = fix_text(code, severity)
        assert not JARGON.search(fix), fix
        assert len(fix) <= 400


def test_codes_are_stable_snake_case():
    for code in REASON_CODES:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", code)


def test_docs_cover_codes_thresholds_and_fixes():
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    for code in REASON_CODES:
        assert f"`{code}`" in text, code
        assert fix_text(code, "warning") in text, code
    assert quality.CRITICAL_FALLBACK in text
    for spec in dataclasses.fields(Thresholds):
        assert f"`{spec.name}`" in text, spec.name
        assert f"{getattr(Thresholds(), spec.name):g}" in text, spec.name
