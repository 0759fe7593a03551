"""Edges of the quality model that mutation testing (mutmut, docs/testing.md) found unpinned:
a direction not measured must not hide the other, values exactly at a limit, the limits a
custom config may set, and the words that tell which way a problem goes."""

from __future__ import annotations

import dataclasses

import pytest

from sessionready import quality as q

T = q.Thresholds()
# A clean wired home link: 250 of 250 echoes, low delay, fast both ways.
CLEAN = q.NetworkFacts(
    rtt_p50_ms=20.0, rtt_p95_ms=30.0, jitter_up_ms=1.0, jitter_down_ms=1.0, loss_up_ratio=0.0, loss_down_ratio=0.0,
    loss_up_ci95=(0.0, 0.015), loss_down_ci95=(0.0, 0.015), packets_sent=250, packets_received=250,
    throughput_down_mbps=50.0, throughput_up_mbps=20.0, loaded_latency_down_ms=5.0, loaded_latency_up_ms=5.0,
)  # fmt: skip
HEALTHY = q.MachineFacts(
    cpu_pct=20.0, memory_available_pct=60.0, swap_bytes_per_s=0.0, battery_pct=None, battery_charging=None,
    battery_time_left_s=None, link_type="wired", wifi_signal_dbm=None, background_up_mbps=0.1, background_down_mbps=0.2,
)  # fmt: skip
QUIET = q.RoomFacts(
    available=True, problem=None, laeq_dbfs=-62.0, l90_dbfs=-66.0, l10_dbfs=-60.0, lmax_dbfs=-50.0, voice_ratio=0.0,
    snr_db=25.0, speech_detected=True, calibrated=False, silent=False, clipping_ratio=0.0,
)  # fmt: skip


def found(network: q.NetworkFacts = CLEAN, thresholds: q.Thresholds = T, **kw: object) -> dict[str, q.Reason]:
    return {r.code: r for r in q.assess(network, thresholds, **kw).reasons}  # type: ignore[arg-type]


def net(**changes: object) -> q.NetworkFacts:
    return dataclasses.replace(CLEAN, **changes)  # type: ignore[arg-type]


# --- One direction not measured does not hide the other -----------------------------------


def test_download_problems_are_found_when_upload_was_not_measured() -> None:
    reasons = found(net(loss_up_ratio=None, loss_up_ci95=None, loss_down_ratio=0.05))
    assert reasons["high_download_loss"].severity == "critical"
    reasons = found(net(jitter_up_ms=None, jitter_down_ms=60.0))
    assert reasons["high_download_jitter"].severity == "critical"
    reasons = found(net(loaded_latency_down_ms=None, loaded_latency_up_ms=250.0))
    assert reasons["bufferbloat_upload"].severity == "critical"
    reasons = found(machine=dataclasses.replace(HEALTHY, background_up_mbps=None, background_down_mbps=5.0))
    assert reasons["background_download"].severity == "critical"
    assert "downloading at 5.0 Mbit/s" in reasons["background_download"].message


def test_download_speed_is_judged_when_upload_speed_was_not_measured() -> None:
    reasons = found(net(throughput_up_mbps=None, throughput_down_mbps=1.0))
    assert reasons["low_download_throughput"].severity == "warning"
    assert reasons["throughput_not_measured"].message == "Upload speed was not measured in this check."
    both = found(net(throughput_up_mbps=None, throughput_down_mbps=None))
    assert both["throughput_not_measured"].message == "Upload and download speed were not measured in this check."


def test_sound_quality_from_the_download_alone() -> None:
    # Upload loss not measured: the expected quality still follows the download (20 % loss: poor).
    result = q.assess(net(loss_up_ratio=None, loss_up_ci95=None, loss_down_ratio=0.2))
    assert result.mos is not None and result.mos < T.mos_critical_below
    reason = found(net(loss_up_ratio=None, loss_up_ci95=None, loss_down_ratio=0.2))["low_audio_quality"]
    assert "how you will hear the other person" in reason.message


def test_sound_quality_names_who_hears_the_loss() -> None:
    up = found(net(loss_up_ratio=0.2))["low_audio_quality"]
    assert up.severity == "critical" and "how the other person will hear you" in up.message


# --- Exactly at a limit: not yet -------------------------------------------------------------


def test_round_trip_exactly_at_the_critical_limit_is_not_forced_critical() -> None:
    # rtt 500 ms: mouth to ear 500/2 + 20 (jitter buffer floor) + 25 (codec) = 295 ms: a warning by
    # delay alone; only a round trip strictly above 500 ms makes it critical.
    at = found(net(rtt_p50_ms=500.0, rtt_p95_ms=600.0, jitter_up_ms=0.0, jitter_down_ms=0.0))["high_delay"]
    assert at.severity == "warning" and "talk over each other" in at.message
    above = found(net(rtt_p50_ms=500.5, rtt_p95_ms=600.0, jitter_up_ms=0.0, jitter_down_ms=0.0))["high_delay"]
    assert above.severity == "critical" and "natural conversation becomes hard" in above.message


def test_loss_exactly_at_the_critical_limit_can_still_be_uncertain() -> None:
    # The point estimate is at the limit (not above it: a warning), the interval reaches past it.
    reasons = found(net(loss_up_ratio=0.03, loss_up_ci95=(0.01, 0.06)))
    assert reasons["high_upload_loss"].severity == "warning"
    assert reasons["uncertain_upload_loss"].severity == "info"
    # An interval whose top is exactly the limit cannot rule in anything worse: no uncertainty note.
    assert "uncertain_upload_loss" not in found(net(loss_up_ratio=0.02, loss_up_ci95=(0.01, 0.03)))


def test_throughput_exactly_at_a_tier_need_gives_that_tier() -> None:
    # 720p needs 1.2 Mbit/s x 1.5 headroom = 1.8 Mbit/s each way: exactly that is enough.
    assert "low_upload_throughput" not in found(net(throughput_up_mbps=1.8))
    assert "low_download_throughput" not in found(net(throughput_down_mbps=1.8))
    assert q.video_tier(1.8, 1.8) == "720p"
    below = found(net(throughput_up_mbps=1.7))["low_upload_throughput"]
    assert below.severity == "warning" and "needs at least 1.8 Mbit/s" in below.message


def test_a_720p_link_is_not_low_throughput() -> None:
    assert q.video_tier(2.0, 2.0) == "720p"
    assert not {"low_upload_throughput", "low_download_throughput"} & set(found(net(throughput_up_mbps=2.0, throughput_down_mbps=2.0)))


def test_a_custom_headroom_is_used_for_the_tier_and_the_findings() -> None:
    # 1.3 Mbit/s: 720p without headroom (1.2), 360p with the default 1.5 (needs 1.8).
    plain = q.Thresholds(throughput_headroom_factor=1.0)
    link = net(throughput_up_mbps=1.3, throughput_down_mbps=1.3)
    assert q.assess(link, plain).video_tier == "720p" and q.assess(link).video_tier == "360p"
    assert "low_upload_throughput" not in found(link, plain)
    assert found(link)["low_upload_throughput"].severity == "warning"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"swap_bytes_per_s": 1_000_000.0}, "swapping"),
        ({"battery_pct": 80.0, "battery_charging": False, "battery_time_left_s": 3000.0}, "low_battery"),
    ],
)
def test_machine_exactly_at_a_limit_is_fine(changes: dict[str, object], code: str) -> None:
    assert code not in found(machine=dataclasses.replace(HEALTHY, **changes))  # type: ignore[arg-type]


def test_battery_shorter_than_a_session_says_how_long_is_left() -> None:
    machine = dataclasses.replace(HEALTHY, battery_pct=80.0, battery_charging=False, battery_time_left_s=2940.0)
    reason = found(machine=machine)["low_battery"]
    assert reason.severity == "warning" and "(about 49 minutes left)" in reason.message


def test_wifi_signal_is_not_judged_on_a_cable() -> None:
    assert "weak_wifi" not in found(machine=dataclasses.replace(HEALTHY, link_type="wired", wifi_signal_dbm=-90.0))


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"clipping_ratio": 0.001}, "microphone_clipping"),
        ({"l90_dbfs": -66.0, "l10_dbfs": -51.0}, "intermittent_noise"),  # exactly 15 dB of swing
        ({"voice_ratio": 0.10}, "voices_in_background"),
    ],
)
def test_room_exactly_at_a_limit_is_fine(changes: dict[str, object], code: str) -> None:
    assert code not in found(room=dataclasses.replace(QUIET, **changes))  # type: ignore[arg-type]


def test_noise_floor_unit_follows_calibration() -> None:
    loud = found(room=dataclasses.replace(QUIET, l90_dbfs=-45.0, l10_dbfs=-44.0))["noisy_room"]
    assert "dB on your microphone's scale" in loud.message
    calibrated = found(room=dataclasses.replace(QUIET, l90_dbfs=50.0, l10_dbfs=51.0, calibrated=True))["noisy_room"]
    assert "50 dBA" in calibrated.message


def test_udp_blocked_says_whether_packets_were_sent() -> None:
    none_back = found(net(packets_sent=1, packets_received=0))["udp_blocked"].message
    assert none_back.startswith("None of the 1 test packets came back.")
    never_ran = found(net(packets_sent=0, packets_received=0))["udp_blocked"].message
    assert never_ran.startswith("The live sound-and-picture test could not run")
    errored = found(net(udp_error="socket error"))["udp_blocked"].message
    assert errored.startswith("The live sound-and-picture test could not run")


# --- The E-model and its arguments ---------------------------------------------------------


def test_delay_impairment_at_zero_delay_is_the_listener_echo_term() -> None:
    # G.107 at T = 0 with defaults: Idte = 0 (x (1 - e^0)), Idd = 0, so Id = Idle with
    # Rle = 10.5 (WEPL 110 + 7)(2T + 1)^-0.25 = 1228.5, Idle = (Ro - Rle)/2 + sqrt((Ro - Rle)^2/4 + 169)
    # = -566.866 + 567.015 = 0.14905 (Ro 94.7688): the 93.36 - 0.15 = 93.2 quoted for R at defaults.
    assert q.delay_impairment(0.0) == pytest.approx(0.149046, abs=1e-5)
    assert q.r_factor(0.0, 0.0) == pytest.approx(93.2062, abs=1e-3)


def test_r_factor_passes_the_codec_and_burst_parameters_on() -> None:
    base = q.r_factor(100.0, 0.02)
    # Ie adds one for one at zero loss.
    assert q.r_factor(100.0, 0.0, ie=10.0) == pytest.approx(q.r_factor(100.0, 0.0) - 10.0)
    # Bursty loss hurts more than random loss: Ie,eff 2/(1 + 25.1) x 95 = 7.28 vs 2/(2 + 25.1) x 95 = 7.01.
    assert q.r_factor(100.0, 0.02, burst_ratio=2.0) == pytest.approx(base - (7.279693 - 7.011070), abs=1e-5)
    # A more robust codec (larger Bpl) loses less.
    assert q.r_factor(100.0, 0.02, bpl=50.0) > base


def test_equipment_impairment_parameter_ranges_are_inclusive() -> None:
    assert q.effective_equipment_impairment(0.0, ie=95.0) == 95.0
    assert q.effective_equipment_impairment(0.5, bpl=0.5) == pytest.approx(95 * 50 / (50 + 0.5))
    for kwargs in ({"ie": 95.5}, {"bpl": 0.0}):
        with pytest.raises(ValueError):
            q.effective_equipment_impairment(0.0, **kwargs)  # type: ignore[arg-type]


def test_mos_stays_on_its_scale_just_above_r_100() -> None:
    # The polynomial gives 4.503 at R = 100.5; G.107 Annex B says 4.5 for R >= 100.
    assert q.mos_from_r(100.5) == 4.5


# --- What a config may set, and what facts refuse ------------------------------------------


def test_a_warning_may_equal_its_critical_limit() -> None:
    # "must not exceed" allows equal: a config that wants no warning band can have one line.
    q.Thresholds(jitter_warning_ms=40.0, jitter_critical_ms=40.0)
    q.Thresholds(mos_warning_below=3.8, mos_critical_below=3.8)
    q.Thresholds(cpu_warning_pct=90.0, cpu_critical_pct=90.0)
    q.Thresholds(battery_warning_pct=20.0, battery_critical_pct=20.0)


def test_facts_name_the_field_they_refuse() -> None:
    cases = [
        (lambda: net(loaded_latency_down_ms=float("nan")), "loaded_latency_down_ms"),
        (lambda: net(packets_sent=True), "packets_sent"),
        (lambda: net(udp_error=5), "udp_error"),
        (lambda: net(loss_up_ci95=(0.0, 0.1, 0.2)), "loss_up_ci95"),
        (lambda: net(loss_down_ci95=(0.0, 2.0)), "loss_down_ci95"),
        (lambda: net(jitter_up_ms=-1.0), "jitter_up_ms"),
        (lambda: net(loss_up_ratio=1.5), "loss_up_ratio"),
        (lambda: dataclasses.replace(HEALTHY, cpu_pct=100.5), "cpu_pct"),
        (lambda: dataclasses.replace(HEALTHY, swap_bytes_per_s=-1.0), "swap_bytes_per_s"),
        (lambda: dataclasses.replace(HEALTHY, wifi_signal_dbm=float("inf")), "wifi_signal_dbm"),
        (lambda: dataclasses.replace(QUIET, l90_dbfs=float("nan")), "l90_dbfs"),
        (lambda: q.Thresholds(jitter_warning_ms=-1.0), "jitter_warning_ms"),
        (lambda: q.mouth_to_ear_delay_ms(-1.0, 0.0), "rtt_ms"),
        (lambda: q.mouth_to_ear_delay_ms(10.0, -1.0), "jitter_ms"),
        (lambda: q.delay_impairment(-1.0), "one_way_delay_ms"),
        (lambda: q.effective_equipment_impairment(2.0), "loss_ratio"),
        (lambda: q.video_tier(-1.0, 1.0), "up_mbps"),
        (lambda: q.video_tier(1.0, -1.0), "down_mbps"),
    ]
    for build, name in cases:
        with pytest.raises(ValueError, match=name):
            build()


def test_percentages_at_the_ends_of_their_range_are_accepted() -> None:
    assert dataclasses.replace(HEALTHY, cpu_pct=100.0).cpu_pct == 100.0
    assert dataclasses.replace(HEALTHY, cpu_pct=0.5).cpu_pct == 0.5


def test_text_is_not_a_number() -> None:
    with pytest.raises(ValueError):
        q.check_finite("x", "12")
    with pytest.raises(ValueError):
        q.mos_from_r("80")  # type: ignore[arg-type]


def test_a_reason_needs_both_a_message_and_a_fix() -> None:
    with pytest.raises(ValueError):
        q.Reason("high_cpu", "warning", "", "Close programs.")
    with pytest.raises(ValueError):
        q.Reason("high_cpu", "warning", "Busy.", "")


def test_a_speed_just_under_the_need_never_reads_as_meeting_it() -> None:
    from sessionready import quality as q
    from tests.conftest import CLEAN_NETWORK

    network = dataclasses.replace(CLEAN_NETWORK, throughput_up_mbps=1.79)
    [reason] = [r for r in q.assess(network).reasons if r.code == "low_upload_throughput"]
    assert "1.79 Mbit/s" in reason.message and "at least 1.80 Mbit/s" in reason.message, reason.message
