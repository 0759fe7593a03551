"""Ground truth for the room probe, computed without any of the probe's code.

- A-weighting: the analytic IEC 61672-1 formula applied to the whole signal's spectrum in one
  FFT (exact for the sampled, band-limited signal), not the probe's FIR filter.
- Fast time weighting: the exponential average as a convolution of the squared signal with
  the sampled kernel (1/tau) e^(-t/tau), by FFT, not the probe's block recursion.
- Percentiles with numpy on the whole level series, not the probe's histogram.
- The IEC 61672-1 table of A-weightings and class 2 acceptance limits, copied from the
  standard (IEC 61672-1:2002, Table 2; reprinted publicly as IS 15575 (Part 1):2005).
"""

from __future__ import annotations

import re
import subprocess
import wave
from pathlib import Path

import numpy as np

# IEC 61672-1 annex E pole frequencies (Hz).
_F1, _F2, _F3, _F4 = 20.598997, 107.65265, 737.86223, 12194.217

# Nominal 1/3-octave frequency (Hz), A-weighting (dB), class 2 limits (dB): lower, upper.
IEC_61672_A_CLASS2 = [
    (31.5, -39.4, -3.5, 3.5),
    (40, -34.6, -2.5, 2.5),
    (50, -30.2, -2.5, 2.5),
    (63, -26.2, -2.5, 2.5),
    (80, -22.5, -2.5, 2.5),
    (100, -19.1, -2.0, 2.0),
    (125, -16.1, -2.0, 2.0),
    (160, -13.4, -2.0, 2.0),
    (200, -10.9, -2.0, 2.0),
    (250, -8.6, -1.9, 1.9),
    (315, -6.6, -1.9, 1.9),
    (400, -4.8, -1.9, 1.9),
    (500, -3.2, -1.9, 1.9),
    (630, -1.9, -1.9, 1.9),
    (800, -0.8, -1.9, 1.9),
    (1000, 0.0, -1.4, 1.4),
    (1250, 0.6, -1.9, 1.9),
    (1600, 1.0, -2.6, 2.6),
    (2000, 1.2, -2.6, 2.6),
    (2500, 1.3, -3.1, 3.1),
    (3150, 1.2, -3.1, 3.1),
    (4000, 1.0, -3.6, 3.6),
]


def exact_centre_hz(nominal_hz: float) -> float:
    """The exact base-ten 1/3-octave frequency 1000 * 10^(n/10) behind a nominal one."""
    n = round(10 * np.log10(nominal_hz / 1000))
    return 1000.0 * 10 ** (n / 10)


def a_gain(f_hz: np.ndarray | float) -> np.ndarray:
    f2 = np.asarray(f_hz, dtype=float) ** 2
    r = _F4**2 * f2**2 / ((f2 + _F1**2) * np.sqrt(f2 + _F2**2) * np.sqrt(f2 + _F3**2) * (f2 + _F4**2))
    r1k = _F4**2 * 1e12 / ((1e6 + _F1**2) * np.sqrt(1e6 + _F2**2) * np.sqrt(1e6 + _F3**2) * (1e6 + _F4**2))
    return r / r1k


def a_db(f_hz: float) -> float:
    return float(20 * np.log10(a_gain(f_hz)))


def a_weight(x: np.ndarray, rate: int) -> np.ndarray:
    """The A-weighted signal: whole-signal FFT times |A(f)| (zero phase; levels only)."""
    spectrum = np.fft.rfft(x)
    return np.fft.irfft(spectrum * a_gain(np.fft.rfftfreq(x.size, 1 / rate)), x.size)


def db(power: float) -> float:
    return float(10 * np.log10(power))


def rms_db(x: np.ndarray) -> float:
    return db(float(np.mean(np.square(x, dtype=float))))


def laeq_db(x: np.ndarray, rate: int) -> float:
    return rms_db(a_weight(x, rate))


def fast_levels_db(x: np.ndarray, rate: int, skip_s: float = 1.0, step_s: float = 0.010, tau_s: float = 0.125) -> np.ndarray:
    """A-weighted Fast levels every ``step_s`` from ``skip_s`` on (the average starts at 0)."""
    squared = a_weight(x, rate) ** 2
    kernel_len = int(12 * tau_s * rate)  # e^-12: the truncated tail is 6e-6 of the sum
    alpha = 1 - np.exp(-1 / (tau_s * rate))
    kernel = alpha * (1 - alpha) ** np.arange(kernel_len)
    size = 1 << int(np.ceil(np.log2(squared.size + kernel_len)))
    smoothed = np.fft.irfft(np.fft.rfft(squared, size) * np.fft.rfft(kernel, size), size)[: squared.size]
    step = round(step_s * rate)
    return 10 * np.log10(np.maximum(smoothed[round(skip_s * rate) + step - 1 :: step], 1e-30))


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """16-bit mono WAV -> (floats with full scale 1.0, sample rate)."""
    with wave.open(str(path)) as handle:
        assert handle.getsampwidth() == 2 and handle.getnchannels() == 1, path
        data = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
        return data.astype(float) / 32768.0, handle.getframerate()


def sox_rms_db(path: Path) -> float:
    """sox's own 'RMS lev dB' of a file: the reference level the probe must agree with."""
    out = subprocess.run(["sox", str(path), "-n", "stats"], capture_output=True, text=True, check=True).stderr
    match = re.search(r"^RMS lev dB\s+(-?[0-9.]+|-inf)", out, re.MULTILINE)
    assert match, out
    return float(match.group(1))


def speech_activity(x: np.ndarray, rate: int, aggressiveness: int, hangover_frames: int = 10) -> np.ndarray:
    """30 ms frames where the (clean) speech is active: webrtcvad's voice frames widened by
    ``hangover_frames`` on each side, the definition of speaking time in docs/room.md."""
    import webrtcvad

    vad = webrtcvad.Vad(aggressiveness)
    frame = round(0.03 * rate)
    pcm = np.clip(np.rint(x * 32768), -32768, 32767).astype("<i2")
    count = x.size // frame
    voice = np.array([vad.is_speech(pcm[i * frame : (i + 1) * frame].tobytes(), rate) for i in range(count)])
    active = np.zeros(count, dtype=bool)
    for i in np.flatnonzero(voice):
        active[max(0, i - hangover_frames) : i + hangover_frames + 1] = True
    return active


def speech_level_db(x: np.ndarray, rate: int, aggressiveness: int) -> float:
    """A-weighted mean power of clean speech over its speaking time, in dBFS(A)."""
    frame = round(0.03 * rate)
    active = speech_activity(x, rate, aggressiveness)
    powers = np.mean(a_weight(x, rate)[: active.size * frame].reshape(-1, frame) ** 2, axis=1)
    return db(float(np.mean(powers[active])))


def noise_floor_db(noise: np.ndarray, rate: int) -> float:
    """L90 of the noise: its A-weighted Fast level exceeded 90 % of the time."""
    return float(np.percentile(fast_levels_db(noise, rate), 10))


def gain_for_snr_db(speech: np.ndarray, noise: np.ndarray, rate: int, snr_db: float, aggressiveness: int) -> float:
    """The gain (dB) that puts ``speech`` ``snr_db`` above the noise floor of ``noise``."""
    return noise_floor_db(noise, rate) + snr_db - speech_level_db(speech, rate, aggressiveness)
