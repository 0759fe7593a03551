"""The live room: levels per window from an injected audio source, against constructed truth.

Signals are built here with known levels; the expected noise floor and speech level come
from tests/audio/reference.py (the analytic A-weighting, Fast weighting by convolution,
numpy percentiles), which shares no code with the probe. No PulseAudio needed: the audio
source is the room probe's seam (``ArraySource``, paced like a microphone).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from agents.client import MonitorClient, monitor_url
from agents.daemon.live_room import LiveRoom
from agents.daemon.samplers import LiveSampler
from agents.probes.room import AudioUnavailable, RoomSettings
from agents.probes.room.capture import ArraySource
from sessionready import schema
from tests.audio import reference
from tests.conftest import Monitor

RATE = 16000
VAD = RoomSettings().vad_aggressiveness


def pink(seconds: float, rms: float, seed: int = 2) -> np.ndarray:
    """White noise shaped by 1/sqrt(f) above 10 Hz, scaled to ``rms``."""
    n = round(seconds * RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).normal(size=n))
    spectrum *= 1 / np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / RATE), 10.0))
    x = np.fft.irfft(spectrum, n)
    return x * (rms / np.sqrt(np.mean(x**2)))


def speech_like(seconds: float, talk_s: float = 1.0, pause_s: float = 1.0) -> np.ndarray:
    """A voiced, speech-like signal: a glottal harmonic series (f0 110..170 Hz) through three
    formants, in syllables of 180 ms (70 ms gaps) for ``talk_s``, then ``pause_s`` of silence.
    webrtcvad takes it for speech; RMS about 1 while voiced."""
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = np.zeros(n)
    for h in range(1, 40):
        fh = h * f0
        formants = sum(np.exp(-(((fh - f) / bw) ** 2)) for f, bw in ((500, 150), (1500, 250), (2500, 300))) + 0.05
        x += np.where(fh < 7800, formants / np.sqrt(h), 0.0) * np.sin(h * phase)
    envelope = np.zeros(n)
    start = 0.0
    while start < seconds:
        syllable = start
        while syllable + 0.18 <= start + talk_s:
            a, b = round(syllable * RATE), round((syllable + 0.18) * RATE)
            if b <= n:
                envelope[a:b] = np.sqrt(np.hanning(b - a))
            syllable += 0.25
        start += talk_s + pause_s
    x *= envelope
    return x / np.sqrt(np.mean(x[envelope > 0.5] ** 2))


async def windows(room: LiveRoom, count: int, interval_s: float = 2.0) -> list[schema.SampleRoom | None]:
    out = []
    async with room:
        for _ in range(count):
            await asyncio.sleep(interval_s)
            out.append(room.window())
    return out


@pytest.mark.slow
def test_noise_floor_of_steady_pink_noise_per_window() -> None:
    noise = pink(9.0, 10 ** (-40 / 20))
    truth = reference.noise_floor_db(noise, RATE)
    rooms = asyncio.run(windows(LiveRoom(RoomSettings(), ArraySource(noise, realtime=True)), 4))
    assert all(room is not None for room in rooms)
    for room in rooms:
        assert room is not None and room.noise_floor_dbfs is not None
        assert room.noise_floor_dbfs == pytest.approx(truth, abs=1.0)
        assert room.voice_ratio is not None and room.voice_ratio < 0.05  # steady noise is no voice
        assert room.snr_db is None and room.calibrated is False


def test_calibration_offset_turns_levels_into_sound_pressure() -> None:
    noise = pink(5.0, 10 ** (-40 / 20))
    truth = reference.noise_floor_db(noise, RATE)
    settings = RoomSettings(calibration_offset_db=94.0)
    rooms = asyncio.run(windows(LiveRoom(settings, ArraySource(noise, realtime=True)), 2))
    for room in rooms:
        assert room is not None and room.calibrated and room.noise_floor_dbfs == pytest.approx(truth + 94.0, abs=1.0)


@pytest.mark.slow
def test_snr_of_speech_over_noise_in_live_windows(shared_monitor: Monitor) -> None:
    # 1 s of talk and 1 s of pause every 2 s, 15 dB over pink noise at -45 dBFS.
    seconds = 12.0
    noise = pink(seconds, 10 ** (-45 / 20))
    speech = speech_like(seconds)
    snr_db = 15.0
    gain = 10 ** (reference.gain_for_snr_db(speech, noise, RATE, snr_db, VAD) / 20)
    signal = noise + gain * speech
    floor = reference.noise_floor_db(noise, RATE)

    async def go() -> list[schema.Sample]:
        async with MonitorClient(monitor_url(shared_monitor.url), shared_monitor.token()) as client:
            async with LiveSampler(client, True, audio_source=ArraySource(signal, realtime=True)) as live:
                return [await live.next_sample("s-room") for _ in range(4)]

    samples = asyncio.run(go())
    rooms = [s.room for s in samples]
    assert all(room is not None for room in rooms)
    for room in rooms[1:]:  # the first window includes the settling time
        assert room is not None and room.snr_db is not None
        assert room.snr_db == pytest.approx(snr_db, abs=1.5)
        assert room.noise_floor_dbfs == pytest.approx(floor, abs=1.0)
        assert room.voice_ratio is not None and 0.2 < room.voice_ratio < 0.6
    assert all(s.network is not None and s.network.problem is None for s in samples)


class NoMicrophone:
    async def blocks(self, sample_rate_hz: int, block_samples: int) -> AsyncIterator[np.ndarray]:
        raise AudioUnavailable("no_device", "No microphone was found.")
        yield np.zeros(0)  # pragma: no cover - makes this an async generator


def test_no_microphone_leaves_the_room_out_and_the_rest_runs(shared_monitor: Monitor) -> None:
    async def go() -> list[schema.Sample]:
        async with MonitorClient(monitor_url(shared_monitor.url), shared_monitor.token()) as client:
            async with LiveSampler(client, True, audio_source=NoMicrophone()) as live:
                return [await live.next_sample("s-nomic") for _ in range(2)]

    for sample in asyncio.run(go()):
        assert sample.room is None
        assert sample.network is not None and sample.network.problem is None and sample.machine is not None


def test_room_not_allowed_never_opens_the_microphone(shared_monitor: Monitor) -> None:
    opened: list[int] = []

    class Watching:
        async def blocks(self, sample_rate_hz: int, block_samples: int) -> AsyncIterator[np.ndarray]:
            opened.append(sample_rate_hz)
            yield np.zeros(block_samples, dtype=np.float32)

    async def go() -> schema.Sample:
        async with MonitorClient(monitor_url(shared_monitor.url), shared_monitor.token()) as client:
            async with LiveSampler(client, False, audio_source=Watching()) as live:
                return await live.next_sample("s-private")

    assert asyncio.run(go()).room is None and opened == []
