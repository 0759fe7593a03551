"""The room probe through a real microphone path: paplay -> PulseAudio null sink -> its monitor
source -> ALSA "pulse" device -> PortAudio -> sounddevice -> the probe.

Truth comes from the played files (sox's own level, and reference.py's A-weighting of the
file), never from the probe's code. Each test runs the probe the way the check does:
``measure_room`` with no source given, so the real ``SoundDeviceSource`` opens device "pulse".
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agents.probes.room import SPEECH_PROMPT, RoomResult, RoomSettings, measure_room

from . import reference
from .conftest import RATE, Pulse, Sounds, scale_to, stop

pytestmark = [pytest.mark.audio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
AGGRESSIVENESS = RoomSettings().vad_aggressiveness


@contextmanager
def playing(pulse: Pulse, path: Path) -> Iterator[None]:
    player = pulse.play(path)
    try:
        time.sleep(0.3)  # paplay connects and starts streaming
        yield
    finally:
        stop(player)


def listen(seconds: float = 3.0, **options: object) -> RoomResult:
    return asyncio.run(measure_room(RoomSettings(seconds=seconds, **options)))  # type: ignore[arg-type]


@pytest.mark.parametrize("level_db", [-50, -40, -30])
def test_pink_noise_level_within_1_db_of_the_files_a_weighted_level(pulse: Pulse, sounds: Sounds, level_db: int) -> None:
    path = sounds.pink(level_db)
    samples, _ = reference.read_wav(path)
    assert reference.rms_db(samples) == pytest.approx(reference.sox_rms_db(path), abs=0.01)  # same file, same level
    truth = reference.laeq_db(samples, RATE)
    with playing(pulse, path):
        result = listen()
    print(f"pink {level_db} dBFS: LAeq truth {truth:.2f}, reported {result.laeq_dbfs}, L90 {result.l90_dbfs}")
    assert result.available and result.problem is None and not result.silent
    assert result.laeq_dbfs == pytest.approx(truth, abs=1.0)
    assert result.l90_dbfs is not None and result.l10_dbfs is not None and result.lmax_dbfs is not None
    assert result.l90_dbfs <= result.laeq_dbfs + 0.1 and result.l10_dbfs >= result.l90_dbfs
    assert result.voice_ratio is not None and result.voice_ratio < 0.05  # noise is not a voice


def test_1khz_tone_reads_the_level_sox_reports(pulse: Pulse, sounds: Sounds) -> None:
    # A(1 kHz) = 0 dB, so the A-weighted level must be sox's "RMS lev dB" of the file.
    path = sounds.path("tone1k.wav")
    with playing(pulse, path):
        result = listen(2.0)
    assert result.laeq_dbfs == pytest.approx(reference.sox_rms_db(path), abs=0.1)


class PlayOnPrompt:
    """A Prompter that 'reads the sentence' by playing a speech file when asked to."""

    def __init__(self, pulse: Pulse, speech: Path) -> None:
        self.pulse, self.speech = pulse, speech
        self.players: list[subprocess.Popen] = []

    def say(self, text: str) -> None:
        if text == SPEECH_PROMPT:
            self.players.append(self.pulse.play(self.speech))


@pytest.mark.parametrize("snr_db", [20.0, 8.0])
def test_speech_to_noise_ratio_within_2_db(pulse: Pulse, sounds: Sounds, tmp_path: Path, snr_db: float) -> None:
    noise_path = sounds.pink(-45)
    noise, _ = reference.read_wav(noise_path)
    speech, _ = reference.read_wav(sounds.path("speech0.wav"))
    gain_db = reference.gain_for_snr_db(speech, noise, RATE, snr_db, AGGRESSIVENESS)
    scaled = tmp_path / "speech.wav"
    scale_to(sounds.path("speech0.wav"), scaled, gain_db)
    prompter = PlayOnPrompt(pulse, scaled)
    settings = RoomSettings(interactive=True, quiet_seconds=3.0, speech_seconds=5.0)
    try:
        with playing(pulse, noise_path):
            result = asyncio.run(measure_room(settings, prompter=prompter))
    finally:
        for player in prompter.players:
            stop(player)
    print(f"SNR constructed {snr_db} dB: reported {result.snr_db} dB (speech {result.speech_level_dbfs}, floor {result.l90_dbfs})")
    assert len(prompter.players) == 1
    assert result.available and result.speech_detected is True
    assert result.snr_db == pytest.approx(snr_db, abs=2.0)
    assert result.voice_ratio is not None and result.voice_ratio < 0.05  # nobody spoke in the quiet part


def test_background_talk_is_reported_as_voices(pulse: Pulse, sounds: Sounds) -> None:
    with playing(pulse, sounds.path("talk.wav")):
        result = listen(4.0)
    print(f"talk: voice_ratio {result.voice_ratio}")
    assert result.voice_ratio is not None and result.voice_ratio > 0.3


def test_nothing_playing_is_silence(pulse: Pulse) -> None:
    result = listen(1.5)
    assert result.available is True and result.silent is True
    assert result.laeq_dbfs is None


def test_muted_microphone_is_silence(pulse: Pulse, sounds: Sounds, room_monitor_muted: None) -> None:
    with playing(pulse, sounds.pink(-30)):
        result = listen(1.5)
    assert result.available is True and result.silent is True


def test_unreachable_sound_server_is_no_microphone(
    pulse: Pulse, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path / 'nobody-listens-here'}")
    result = listen(1.0)
    assert result.available is False
    assert result.problem in ("no_device", "device_error")
    assert result.error and "Traceback" not in result.error
    # ALSA and PortAudio print their diagnostics on descriptor 2 when this happens; the
    # person at the check's terminal must not see them.
    err = capfd.readouterr().err
    assert "ALSA lib" not in err and "Expression '" not in err, err


def test_unknown_device_name_is_no_device(pulse: Pulse) -> None:
    result = listen(1.0, device="no such microphone")
    assert result.available is False and result.problem == "no_device"


def test_recovers_after_the_server_comes_back(pulse: Pulse, sounds: Sounds) -> None:
    # Runs after the unreachable-server test in file order: PortAudio's device list was
    # emptied then, and the probe must scan again rather than report no microphone forever.
    with playing(pulse, sounds.pink(-40)):
        result = listen(1.0)
    assert result.available is True and not result.silent


def test_missing_portaudio_library_is_reported_not_raised(pulse: Pulse) -> None:
    # A fresh interpreter in which ctypes cannot find libportaudio, so sounddevice's own
    # import raises its real OSError("PortAudio library not found").
    code = (
        "import ctypes.util, asyncio, dataclasses, json\n"
        "ctypes.util.find_library = lambda name: None\n"
        "from agents.probes.room import RoomSettings, measure_room\n"
        "result = asyncio.run(measure_room(RoomSettings(seconds=1.0)))\n"
        "print(json.dumps(dataclasses.asdict(result)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no traceback, no warning
    result = json.loads(done.stdout)
    assert result["available"] is False and result["problem"] == "no_portaudio"
