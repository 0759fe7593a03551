"""Voices and the speech-to-noise ratio, with espeak-ng speech through a fake source.

The signals are mixed here, so the truth is known by construction: the speech level is
measured on the clean speech file, the noise floor on the noise file (reference.py), and the
speech is scaled to the wanted ratio before mixing. The lab tests repeat this through a real
PulseAudio microphone.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agents.probes.room import RoomResult, RoomSettings, measure_room
from agents.probes.room.capture import ArraySource

from . import reference
from .conftest import Sounds

RATE = 16000
SETTLE_S = 0.51
AGGRESSIVENESS = RoomSettings().vad_aggressiveness


class Silent:
    def say(self, text: str) -> None:
        pass


def interactive(signal: np.ndarray) -> RoomResult:
    settings = RoomSettings(interactive=True, quiet_seconds=3.0, speech_seconds=5.0)
    return asyncio.run(measure_room(settings, source=ArraySource(signal), prompter=Silent()))


def passive(signal: np.ndarray) -> RoomResult:
    return asyncio.run(measure_room(RoomSettings(seconds=signal.size / RATE - SETTLE_S), source=ArraySource(signal)))


@pytest.mark.parametrize("snr_db", [20.0, 8.0, 3.0])
@pytest.mark.parametrize("noise_db", [-50, -30])
def test_snr_of_speech_mixed_over_noise(sounds: Sounds, snr_db: float, noise_db: int) -> None:
    noise, _ = reference.read_wav(sounds.pink(noise_db))
    speech, _ = reference.read_wav(sounds.path("speech0.wav"))
    gain = 10 ** (reference.gain_for_snr_db(speech, noise, RATE, snr_db, AGGRESSIVENESS) / 20)
    quiet = round((SETTLE_S + 3.0) * RATE)
    reaction = round(0.4 * RATE)  # the person starts reading 0.4 s after the prompt
    signal = noise[: quiet + 5 * RATE].copy()
    signal[quiet + reaction : quiet + reaction + speech.size] += gain * speech
    result = interactive(signal)
    assert result.speech_detected is True
    # At 3 dB the detector finds only the loudest syllables and the widening has more to do.
    assert result.snr_db == pytest.approx(snr_db, abs=1.0 if snr_db >= 8 else 2.0)
    assert result.voice_ratio is not None and result.voice_ratio < 0.03  # the quiet part
    assert result.l90_dbfs == pytest.approx(reference.noise_floor_db(noise, RATE), abs=0.5)


def test_nobody_reading_means_no_speech_and_no_snr(sounds: Sounds) -> None:
    noise, _ = reference.read_wav(sounds.pink(-45))
    result = interactive(noise[: round(8.51 * RATE)])
    assert result.speech_detected is False and result.snr_db is None and result.speech_level_dbfs is None


def test_background_talk_is_reported_as_voices(sounds: Sounds) -> None:
    talk, _ = reference.read_wav(sounds.path("talk.wav"))
    noise, _ = reference.read_wav(sounds.pink(-50))
    result = passive(talk[: 10 * RATE] + noise[: 10 * RATE])
    assert result.voice_ratio is not None and result.voice_ratio > 0.5


def test_talk_far_below_loud_noise_is_missed_rather_than_invented(sounds: Sounds) -> None:
    # The honest failure mode: speech 10 dB under the noise is not claimed as a voice.
    talk, _ = reference.read_wav(sounds.path("talk.wav"))
    noise, _ = reference.read_wav(sounds.pink(-30))
    result = passive(0.1 * talk[: 8 * RATE] + noise[: 8 * RATE])
    assert result.voice_ratio is not None and result.voice_ratio < 0.1


def with_dropouts(signal: np.ndarray, gap_s: float, every_s: float) -> np.ndarray:
    """The capture as a starved audio server delivers it: gaps of digital silence."""
    out = signal.copy()
    for start in range(0, out.size, round(every_s * RATE)):
        out[start : start + round(gap_s * RATE)] = 0.0
    return out


@pytest.mark.parametrize(("gap_s", "every_s"), [(0.02, 0.3), (0.06, 0.5), (0.2, 1.0)])
def test_capture_dropouts_do_not_turn_steady_noise_into_voices(sounds: Sounds, gap_s: float, every_s: float) -> None:
    # Seen in CI on a loaded machine: pink noise read as 36 % voices. A gap set the voice gate's
    # floor to silence, so the noise after it stood "3 dB above the floor" (0.2-0.8 before).
    noise, _ = reference.read_wav(sounds.pink(-30))
    result = passive(with_dropouts(noise[: 6 * RATE], gap_s, every_s))
    assert result.voice_ratio is not None and result.voice_ratio < 0.05


def test_background_talk_with_dropouts_is_still_reported_as_voices(sounds: Sounds) -> None:
    talk, _ = reference.read_wav(sounds.path("talk.wav"))
    noise, _ = reference.read_wav(sounds.pink(-50))
    result = passive(with_dropouts(talk[: 10 * RATE] + noise[: 10 * RATE], 0.06, 0.5))
    assert result.voice_ratio is not None and result.voice_ratio > 0.5
