"""CheckOptions.from_config: the one place the check command and the daemon turn config (and
options) into a check. Pure: no monitor, no microphone."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agents.check import MAX_TARGETS, CheckOptions, room_settings
from agents.config import AgentConfig, CheckSection, RoomSection
from agents.probes.room import RoomSettings

SERVER = "https://speed.example/speedtest/upload.php"


def config_with(check: CheckSection | None = None, room: RoomSection | None = None) -> AgentConfig:
    config = AgentConfig()
    return replace(config, check=check or config.check, room=room or config.room)


def test_the_daemons_check_is_the_configs() -> None:
    config = config_with(CheckSection(adaptive=False, udp_seconds=6, load_seconds=5, ramp_seconds=1, streams=3, speedtest=True, speedtest_servers=(SERVER,)))
    options = CheckOptions.from_config(config, session_id="s-1")
    assert (options.udp_seconds, options.throughput.seconds, options.throughput.ramp_seconds, options.throughput.streams) == (6, 5, 1, 3)
    assert options.speedtest and options.speedtest_config.servers == (SERVER,)
    assert options.session_id == "s-1" and options.measure_throughput and options.measure_machine
    assert options.thresholds == config.thresholds
    # Passive listening as long as the network phases, less a second: 6 + 2 * 5 - 1 = 15 s.
    assert options.room is not None and options.room.seconds == 15 and not options.room.interactive
    assert not options.room_not_allowed


def test_options_given_win_over_the_config() -> None:
    config = config_with(CheckSection(udp_seconds=6, load_seconds=5, streams=3, targets=("a.example:1",)))
    options = CheckOptions.from_config(
        config, udp_seconds=2, load_seconds=3, streams=8, targets=["b.example:2"], measure_throughput=False, measure_machine=False, interactive=True
    )
    assert (options.udp_seconds, options.throughput.seconds, options.throughput.streams) == (2, 3, 8)
    assert options.targets == ("b.example:2",)
    assert not options.measure_throughput and not options.measure_machine
    # Without throughput phases the room listens through the idle phase only: max(1, 2 - 1) = 1 s.
    assert options.room is not None and options.room.seconds == 1 and options.room.interactive


def test_the_ramp_keeps_half_of_a_short_phase() -> None:
    # ramp = min(ramp_seconds, load_seconds / 2): 2 s of a 3 s phase would leave 1 s, so 1.5 s.
    assert CheckOptions.from_config(config_with(CheckSection(adaptive=False, load_seconds=3, ramp_seconds=2))).throughput.ramp_seconds == 1.5
    # Exactly half: 2 s of a 4 s phase stays 2 s.
    assert CheckOptions.from_config(config_with(CheckSection(adaptive=False, load_seconds=4, ramp_seconds=2))).throughput.ramp_seconds == 2
    assert CheckOptions.from_config(config_with(CheckSection(adaptive=False, load_seconds=10, ramp_seconds=2))).throughput.ramp_seconds == 2


def test_targets_are_normalised_for_the_monitor() -> None:
    options = CheckOptions.from_config(AgentConfig(), targets=[" zoom.us:443 ", "[2001:db8::1]:3478", "192.0.2.1:80"])
    assert options.targets == ("zoom.us:443", "[2001:db8::1]:3478", "192.0.2.1:80")
    with pytest.raises(ValueError, match="'zoom.us' is not HOST:PORT"):
        CheckOptions.from_config(AgentConfig(), targets=["zoom.us"])
    CheckOptions.from_config(AgentConfig(), targets=[f"h{i}.example:1" for i in range(MAX_TARGETS)])
    with pytest.raises(ValueError, match=f"at most {MAX_TARGETS} targets, got {MAX_TARGETS + 1}"):
        CheckOptions.from_config(AgentConfig(), targets=[f"h{i}.example:1" for i in range(MAX_TARGETS + 1)])


def test_the_microphone() -> None:
    # Not allowed by the config: not opened, and the report says why.
    closed = CheckOptions.from_config(config_with(room=RoomSection(microphone=False)))
    assert closed.room is None and closed.room_not_allowed
    # --no-audio: not opened, and nothing to say (the person chose it for this check).
    skipped = CheckOptions.from_config(config_with(room=RoomSection(microphone=False)), audio=False)
    assert skipped.room is None and not skipped.room_not_allowed
    assert CheckOptions.from_config(AgentConfig(), audio=False).room is None


@pytest.mark.parametrize(("device", "expected"), [("", None), ("3", 3), ("pulse", "pulse"), ("USB Mic 2", "USB Mic 2")])
def test_the_device_is_an_index_or_a_name(device: str, expected: object) -> None:
    room = RoomSection(device=device, calibration_offset_db=94.0)
    settings = room_settings(room)
    assert settings.device == expected and settings.calibration_offset_db == 94.0 and not settings.interactive
    options = CheckOptions.from_config(config_with(room=room))
    assert options.room is not None and options.room.device == expected


@pytest.mark.parametrize("device", [-1, True, 10_001, "", "x" * 201, 2.0])
def test_a_device_that_is_neither_a_name_nor_an_index_is_refused(device: object) -> None:
    with pytest.raises(ValueError, match="device"):
        RoomSettings(device=device)  # type: ignore[arg-type]
