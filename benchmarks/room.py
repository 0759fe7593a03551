"""Room probe: CPU cost of the analysis per second of 16 kHz audio, in steady state.

    .venv/bin/python -m benchmarks.room        # prints the markdown section

Feeds synthetic audio (pink noise with voice-like bursts, so the voice detector does its
full work) through the probe's analysis in 100 ms blocks, as the microphone delivers them,
and measures process CPU time (``time.process_time``). The reference, measured in the same
run over the same blocks, is the cheapest thing one could do with them: a numpy RMS per
block. Target: under 1 % of one core. Capture itself (PortAudio, the sound server) is not
included: it is not ours to make cheaper; docs/room.md gives its cost on the lab machine.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

import numpy as np

from benchmarks.core import Context, Section, spread, table

RATE = 16000
BLOCK = RATE // 10
TARGET_PCT = 1.0


def synthetic_audio(seconds: float, seed: int = 11) -> np.ndarray:
    """Pink noise at about -45 dBFS with 1 s harmonic bursts every 3 s (a 150 Hz buzz through
    two formant-like resonances, modulated at 4 Hz like syllables)."""
    n = round(seconds * RATE)
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.normal(size=n))
    spectrum /= np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / RATE), 10.0))
    noise = np.fft.irfft(spectrum, n)
    noise *= 10 ** (-45 / 20) / np.sqrt(np.mean(noise**2))
    t = np.arange(n) / RATE
    buzz = sum(np.sin(2 * np.pi * 150 * k * t) / k * (1 + 2 * np.exp(-(((150 * k) - 700) ** 2) / 2e4) + np.exp(-(((150 * k) - 1200) ** 2) / 2e4)) for k in range(1, 20))
    envelope = ((t % 3.0) < 1.0) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    return (noise + 0.02 * envelope * buzz).astype(np.float32)


def _cpu(work: Callable[[], None]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def _analyse(blocks: list[np.ndarray]) -> Callable[[], None]:
    from agents.probes.room.analyser import Analyser

    def work() -> None:
        analyser = Analyser(RATE, [0, RATE // 2], 2)
        for block in blocks:
            analyser.feed(block)
        analyser.flush()

    return work


def _probe(audio: np.ndarray) -> Callable[[], None]:
    from agents.probes.room import RoomSettings, measure_room
    from agents.probes.room.capture import ArraySource

    seconds = audio.size / RATE - 0.6

    def work() -> None:
        result = asyncio.run(measure_room(RoomSettings(seconds=seconds), source=ArraySource(audio)))
        assert result.available

    return work


def _weighting(blocks: list[np.ndarray]) -> Callable[[], None]:
    from agents.probes.room.weighting import AWeighting

    def work() -> None:
        weighting = AWeighting(RATE, BLOCK)
        for block in blocks:
            weighting.process(block.astype(np.float64))

    return work


def _vad(audio: np.ndarray) -> Callable[[], None]:
    import webrtcvad

    frame = RATE * 30 // 1000
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()

    def work() -> None:
        vad = webrtcvad.Vad(2)
        for start in range(0, len(pcm) - 2 * frame + 1, 2 * frame):
            vad.is_speech(pcm[start : start + 2 * frame], RATE)

    return work


def _rms(blocks: list[np.ndarray]) -> Callable[[], None]:
    def work() -> None:
        for block in blocks:
            float(np.sqrt(np.mean(block * block)))

    return work


def _setup_cost() -> float:
    from agents.probes.room.analyser import Analyser

    started = time.process_time()
    Analyser(RATE, [0, RATE // 2], 2)
    return time.process_time() - started


def measure(seconds: float = 60.0, runs: int = 5) -> dict[str, list[float]]:
    """CPU seconds per run for each workload over ``seconds`` of audio."""
    audio = synthetic_audio(seconds)
    blocks = [audio[i : i + BLOCK] for i in range(0, audio.size, BLOCK)]
    workloads = {
        "rms": _rms(blocks),
        "analyser": _analyse(blocks),
        "probe": _probe(audio),
        "weighting": _weighting(blocks),
        "vad": _vad(audio),
    }
    for work in workloads.values():  # warm up: imports, FFT plans, caches
        work()
    times: dict[str, list[float]] = {name: [] for name in workloads}
    for _ in range(runs):
        for name, work in workloads.items():  # interleaved, so machine noise hits all alike
            times[name].append(_cpu(work))
    return times


def bench_room(seconds: float = 60.0, runs: int = 5) -> str:
    """The markdown section for docs/benchmarks.md."""
    times = measure(seconds, runs)
    pct = {name: [100 * t / seconds for t in values] for name, values in times.items()}
    rms = statistics.median(times["rms"])
    rows = [
        ["Room analysis (`Analyser.feed`, everything)", spread(pct["analyser"], 3), f"{statistics.median(times['analyser']) / rms:.0f}×"],
        ["… through `measure_room` (async source, result)", spread(pct["probe"], 3), f"{statistics.median(times['probe']) / rms:.0f}×"],
        ["… of which A-weighting (FFT convolution)", spread(pct["weighting"], 3), f"{statistics.median(times['weighting']) / rms:.0f}×"],
        ["… of which webrtcvad (30 ms frames)", spread(pct["vad"], 3), f"{statistics.median(times['vad']) / rms:.0f}×"],
        ["Reference: numpy RMS per block", spread(pct["rms"], 4), "1×"],
    ]
    verdict = "meets" if statistics.median(pct["probe"]) < TARGET_PCT else "**misses**"
    return "\n".join(
        [
            f"CPU time per second of 16 kHz mono audio, fed in 100 ms blocks ({seconds:.0f} s of synthetic",
            f"audio per run, median (min–max) of {runs} runs, `time.process_time`). Target: under {TARGET_PCT:g} % of one",
            f"core in steady state; the probe {verdict} it. One-off set-up (filter design) per measurement:",
            f"{_setup_cost() * 1000:.1f} ms.",
            "",
            table(["Workload", "% of one core", "× reference"], rows),
        ]
    )


def room_analysis(context: Context) -> Section:
    """The ``benchmarks.run`` entry: ``(Context) -> Section``."""
    seconds, runs = (10.0, 1) if context.quick else (60.0, 5)
    return Section("Room probe analysis CPU", bench_room(seconds, runs))


if __name__ == "__main__":
    print("## Room probe analysis CPU\n")
    print(bench_room())
