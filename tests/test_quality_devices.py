"""The quality model's device group (a browser check's camera, microphone and speaker): each
state on the right side of its rule, "not measured" never failing, one reason per microphone
fact, and the CLI's results unchanged without device facts (docs/quality-model.md, "The
devices"). The end-to-end submission through the monitor is in tests/test_link_checks.py."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from monitor.risk import words as say
from monitor.risk.engine import CheckSummary
from sessionready import quality, schema
from sessionready.facts import assess_check, device_facts
from sessionready.quality import DeviceFacts, NetworkFacts, RoomFacts, Thresholds, assess, fix_text

# A clean, fast link: on its own it gives no reason at all (tests/test_quality.py's clean case).
CLEAN = NetworkFacts(
    rtt_p50_ms=20.0, rtt_p95_ms=25.0, jitter_up_ms=2.0, jitter_down_ms=2.0, loss_up_ratio=0.0, loss_down_ratio=0.0,
    loss_up_ci95=(0.0, 0.005), loss_down_ci95=(0.0, 0.005), packets_sent=1000, packets_received=1000,
    throughput_down_mbps=100.0, throughput_up_mbps=20.0, loaded_latency_down_ms=5.0, loaded_latency_up_ms=5.0,
)
FINE = DeviceFacts(camera="ok", camera_black=False, microphone="ok", microphone_signal=True, speaker="heard")
QUIET_ROOM = RoomFacts(
    available=True, problem=None, laeq_dbfs=-60.0, l90_dbfs=-65.0, l10_dbfs=-58.0, lmax_dbfs=-45.0, voice_ratio=0.0,
    snr_db=30.0, speech_detected=True, calibrated=False, silent=False, clipping_ratio=0.0,
)
DEVICE_CODES = {
    "camera_not_allowed", "camera_not_found", "camera_unavailable", "camera_black",
    "microphone_not_allowed", "microphone_not_found", "microphone_unavailable", "speaker_not_heard",
}  # fmt: skip


def found(devices: DeviceFacts, room: RoomFacts | None = None) -> dict[str, str]:
    return {r.code: r.severity for r in assess(CLEAN, devices=devices, room=room).reasons}


def test_fine_devices_add_nothing() -> None:
    assert assess(CLEAN).reasons == ()
    assessment = assess(CLEAN, devices=FINE, room=QUIET_ROOM)
    assert (assessment.verdict, assessment.reasons) == ("ready", ())


# Each state, the reason it gives and the verdict it leaves a clean link with. The line between
# critical and warning: the browser could not find or start the device (critical) / it opened
# but its picture or sound did not get through (warning); the person's "no" to a permission is
# info; not tried is nothing.
@pytest.mark.parametrize(
    ("change", "code", "severity", "verdict"),
    [
        ({"camera": "absent", "camera_black": None}, "camera_not_found", "critical", "not_ready"),
        ({"camera": "error", "camera_black": None}, "camera_unavailable", "critical", "not_ready"),
        ({"camera_black": True}, "camera_black", "warning", "at_risk"),
        ({"camera": "denied", "camera_black": None}, "camera_not_allowed", "info", "ready"),
        ({"microphone": "absent", "microphone_signal": None}, "microphone_not_found", "critical", "not_ready"),
        ({"microphone": "error", "microphone_signal": None}, "microphone_unavailable", "critical", "not_ready"),
        ({"microphone_signal": False}, "microphone_silent", "warning", "at_risk"),
        ({"microphone": "denied", "microphone_signal": None}, "microphone_not_allowed", "info", "ready"),
        ({"speaker": "not_heard"}, "speaker_not_heard", "warning", "at_risk"),
    ],
)
def test_each_device_state_on_its_side_of_the_rule(change: dict, code: str, severity: str, verdict: str) -> None:
    assessment = assess(CLEAN, devices=dataclasses.replace(FINE, **change))
    assert [(r.code, r.severity) for r in assessment.reasons] == [(code, severity)]
    assert assessment.verdict == verdict
    reason = assessment.reasons[0]
    assert reason.fix == fix_text(code, severity)
    if severity == "critical":
        assert reason.fix.endswith(quality.CRITICAL_FALLBACK)


@pytest.mark.parametrize(
    "devices",
    [
        # Not tried (no mediaDevices, no Web Audio) and not measured (null) are never a reason.
        DeviceFacts(camera="not_tested", camera_black=None, microphone="not_tested", microphone_signal=None, speaker="not_tested"),
        DeviceFacts(camera="ok", camera_black=None, microphone="ok", microphone_signal=None, speaker="heard"),
    ],
)
def test_not_measured_is_never_a_reason(devices: DeviceFacts) -> None:
    # The page's room for a microphone it could not try is "device_error": alone, the room
    # group would call that "no microphone"; the device check speaks for the microphone.
    unavailable = dataclasses.replace(QUIET_ROOM, available=False, problem="device_error", laeq_dbfs=None, l90_dbfs=None, l10_dbfs=None, lmax_dbfs=None, voice_ratio=None, snr_db=None, speech_detected=None, clipping_ratio=None)  # fmt: skip
    assert found(devices, unavailable) == {}
    assert found(devices) == {}


def test_the_cli_without_device_facts_is_judged_as_before() -> None:
    unavailable = dataclasses.replace(QUIET_ROOM, available=False, problem="no_device", l90_dbfs=None, l10_dbfs=None)
    assert {r.code: r.severity for r in assess(CLEAN, room=unavailable).reasons} == {"no_microphone": "warning"}
    silent = dataclasses.replace(QUIET_ROOM, silent=True)
    assert {r.code: r.severity for r in assess(CLEAN, room=silent).reasons} == {"microphone_silent": "warning"}


def test_one_microphone_fact_one_reason() -> None:
    # Silence: the page's microphone signal and the room's "silent" are the same measurement.
    silent = dataclasses.replace(QUIET_ROOM, silent=True)
    reasons = assess(CLEAN, devices=dataclasses.replace(FINE, microphone_signal=False), room=silent).reasons
    assert [(r.code, r.severity) for r in reasons] == [("microphone_silent", "warning")]
    # No microphone: the device check's reason, not also the room's "no_microphone".
    gone = dataclasses.replace(QUIET_ROOM, available=False, problem="no_device", l90_dbfs=None, l10_dbfs=None)
    assert found(dataclasses.replace(FINE, microphone="absent", microphone_signal=None), gone) == {"microphone_not_found": "critical"}
    # Denied: the room has problem not_allowed; one info reason says both were not checked.
    denied = dataclasses.replace(gone, problem="not_allowed")
    assert found(dataclasses.replace(FINE, microphone="denied", microphone_signal=None), denied) == {"microphone_not_allowed": "info"}
    # A microphone that worked leaves the room judged as ever.
    noisy = dataclasses.replace(QUIET_ROOM, l90_dbfs=-45.0)
    assert found(FINE, noisy) == {"noisy_room": "warning"}


def test_denied_permissions_read_differently_from_missing_and_busy_devices() -> None:
    messages = {}
    for state in ("denied", "absent", "error"):
        reasons = assess(CLEAN, devices=DeviceFacts(state, None, state, None, "heard")).reasons
        messages[state] = {r.code.split("_")[0]: r for r in reasons}
    for device in ("camera", "microphone"):
        denied, absent, busy = (messages[s][device] for s in ("denied", "absent", "error"))
        assert "did not allow" in denied.message and "found no" in absent.message and "another app" in busy.message
        assert len({denied.fix, absent.fix, busy.fix}) == 3
        assert "allow" in denied.fix.lower() and "plug in" in absent.fix.lower() and "close other apps" in busy.fix.lower()
        for reason in (denied, absent, busy):
            assert len(reason.message) <= 400 and len(reason.fix) <= 400


def test_device_facts_validate() -> None:
    with pytest.raises(ValueError, match="camera"):
        DeviceFacts(camera="on", camera_black=None, microphone="ok", microphone_signal=None, speaker="heard")
    with pytest.raises(ValueError, match="speaker"):
        DeviceFacts(camera="ok", camera_black=None, microphone="ok", microphone_signal=None, speaker="ok")
    with pytest.raises(ValueError, match="microphone_signal"):
        DeviceFacts(camera="ok", camera_black=None, microphone="ok", microphone_signal=1, speaker="heard")  # type: ignore[arg-type]


def _report(devices: schema.Devices | None) -> schema.CheckReport:
    network = schema.Network(
        path="monitor", rtt_ms=schema.RttMs(18.0, 20.0, 25.0), jitter_ms=schema.DirectionMs(2.0, 2.0),
        loss=schema.Loss(0.0, 0.0, (0.0, 0.005), (0.0, 0.005)), packets=schema.Packets(1000, 1000, 1000),
        reordered=schema.Counts(0, 0), duplicates=schema.Counts(0, 0), throughput_mbps=schema.Throughput(100.0, 20.0),
        loaded_latency_ms=schema.LoadedLatency(5.0, 5.0), udp_error=None, throughput_error=None,
    )  # fmt: skip
    return schema.CheckReport(
        schema_version=1, check_id="c" * 32, started_at="2026-12-07T09:00:00Z", duration_s=14.0, session_id=None,
        agent=schema.Agent(version="1", os="other"), verdict="ready", reasons=(), network=network, targets=(), speedtest=None,
        quality=schema.Quality(r_factor=90.0, mos=4.3, video_tier="1080p"),
        settings=schema.CheckSettings(udp_seconds=5.0, load_seconds=5.0, ramp_seconds=1.0, packet_interval_ms=20.0, packet_bytes=172, streams=4),
        source="browser", browser="chrome 131", devices=devices,
    )  # fmt: skip


def test_a_stored_reports_devices_reach_the_risk_engine_and_its_words() -> None:
    devices = schema.Devices(schema.Camera("error"), schema.Microphone("ok", True), schema.Speaker("not_heard"))
    assert device_facts(devices) == DeviceFacts("error", None, "ok", True, "not_heard")
    codes = {r.code for r in assess_check(_report(devices).network, None, None, Thresholds(), devices).reasons}
    assert codes == {"camera_unavailable", "speaker_not_heard"}
    summary = CheckSummary.from_report(_report(devices), 0.0)
    assert summary.verdict == "not_ready"
    assert {(f.code, f.severity) for f in summary.findings} == {("camera_unavailable", "critical"), ("speaker_not_heard", "warning")}
    assert CheckSummary.from_report(_report(None), 0.0).findings == ()
    for code in sorted(DEVICE_CODES):
        message = say.check_message("client", code, summary)
        assert message.startswith("The client") and len(message) <= 400
        assert say.render_action("client", code, "warning").startswith("Ask the client to ")
    assert say.render_action("client", "camera_unavailable", "critical").endswith(say.FALLBACK_ACTION)


def test_every_device_code_is_a_reason_code() -> None:
    assert DEVICE_CODES <= quality.REASON_CODES


def test_the_models_states_are_the_reports() -> None:
    hints = {cls: typing.get_type_hints(cls)["state"] for cls in (schema.Camera, schema.Microphone, schema.Speaker)}
    assert typing.get_args(hints[schema.Camera]) == typing.get_args(hints[schema.Microphone]) == quality.MEDIA_STATES
    assert typing.get_args(hints[schema.Speaker]) == quality.SPEAKER_STATES
