"""Machine and room findings in the quality model."""

from __future__ import annotations

import dataclasses

import pytest

from sessionready import quality as q
from tests.conftest import CLEAN_NETWORK, HEALTHY, QUIET


def codes(**changes: object) -> dict[str, str]:
    machine = dataclasses.replace(HEALTHY, **{k: v for k, v in changes.items() if hasattr(HEALTHY, k)})
    room = dataclasses.replace(QUIET, **{k: v for k, v in changes.items() if hasattr(QUIET, k)})
    result = q.assess(CLEAN_NETWORK, machine=machine, room=room)
    return {reason.code: reason.severity for reason in result.reasons}


def test_a_healthy_machine_in_a_quiet_room_is_ready() -> None:
    assert q.assess(CLEAN_NETWORK, machine=HEALTHY, room=QUIET).verdict == "ready"


def test_pegged_cpu_is_critical_and_busy_cpu_a_warning() -> None:
    assert codes(cpu_pct=99.0) == {"high_cpu": "critical"}
    assert codes(cpu_pct=90.0) == {"high_cpu": "warning"}
    assert q.assess(CLEAN_NETWORK, machine=dataclasses.replace(HEALTHY, cpu_pct=99.0)).verdict == "not_ready"


def test_battery_only_matters_when_not_charging() -> None:
    assert codes(battery_pct=6.0, battery_charging=True) == {}
    assert codes(battery_pct=6.0, battery_charging=False) == {"low_battery": "critical"}
    assert codes(battery_pct=20.0, battery_charging=False) == {"low_battery": "warning"}
    assert codes(battery_pct=80.0, battery_charging=False, battery_time_left_s=1200.0) == {"low_battery": "warning"}
    assert codes(battery_pct=None, battery_charging=None) == {}


def test_wifi_signal_only_on_wifi() -> None:
    assert codes(link_type="wifi", wifi_signal_dbm=-80.0) == {"weak_wifi": "critical"}
    assert codes(link_type="wifi", wifi_signal_dbm=-70.0) == {"weak_wifi": "warning"}
    assert codes(link_type="wifi", wifi_signal_dbm=-55.0) == {}


def test_background_traffic_names_the_direction() -> None:
    result = q.assess(CLEAN_NETWORK, machine=dataclasses.replace(HEALTHY, background_up_mbps=4.0))
    reason = result.reasons[0]
    assert reason.code == "background_upload" and reason.severity == "critical"
    assert "4.0 Mbit/s" in reason.message and "uploading" in reason.message
    assert codes(background_down_mbps=1.5) == {"background_download": "warning"}


def test_memory_and_swap() -> None:
    assert codes(memory_available_pct=3.0) == {"low_memory": "critical"}
    assert codes(swap_bytes_per_s=5e6) == {"swapping": "warning"}


def test_a_silent_microphone_says_only_that() -> None:
    assert codes(silent=True, voice_ratio=0.9, l90_dbfs=-20.0) == {"microphone_silent": "warning"}


def test_no_microphone_and_not_allowed() -> None:
    assert codes(available=False, problem="no_device") == {"no_microphone": "warning"}
    assert codes(available=False, problem="no_portaudio") == {"no_microphone": "warning"}
    assert codes(available=False, problem="device_busy") == {"microphone_busy": "warning"}
    assert codes(available=False, problem="not_allowed") == {}


def test_room_noise_voices_and_speech() -> None:
    assert codes(l90_dbfs=-45.0, l10_dbfs=-40.0) == {"noisy_room": "warning"}
    assert codes(l90_dbfs=-35.0, l10_dbfs=-30.0) == {"noisy_room": "critical"}
    assert codes(l90_dbfs=50.0, l10_dbfs=52.0, calibrated=True) == {"noisy_room": "warning"}
    assert codes(l10_dbfs=-45.0) == {"intermittent_noise": "warning"}
    result = q.assess(CLEAN_NETWORK, room=dataclasses.replace(QUIET, voice_ratio=0.4))
    assert result.reasons[0].code == "voices_in_background" and "private room" in result.reasons[0].fix
    assert codes(snr_db=10.0) == {"low_speech_to_noise": "warning"}
    assert codes(snr_db=3.0) == {"low_speech_to_noise": "critical"}
    assert codes(speech_detected=False, snr_db=None) == {"speech_not_heard": "warning"}
    assert codes(clipping_ratio=0.02) == {"microphone_clipping": "warning"}


def test_below_thresholds_must_keep_their_order() -> None:
    with pytest.raises(ValueError, match="battery_warning_pct"):
        q.Thresholds.from_mapping({"battery_warning_pct": 5})
    with pytest.raises(ValueError, match="wifi_signal_warning_dbm"):
        q.Thresholds.from_mapping({"wifi_signal_warning_dbm": 10})
    assert q.Thresholds.from_mapping({"cpu_warning_pct": 70}).cpu_warning_pct == 70.0


def test_facts_reject_impossible_values() -> None:
    with pytest.raises(ValueError, match="cpu_pct"):
        dataclasses.replace(HEALTHY, cpu_pct=150.0)
    with pytest.raises(ValueError, match="voice_ratio"):
        dataclasses.replace(QUIET, voice_ratio=2.0)
