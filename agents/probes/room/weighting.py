"""IEC 61672-1 A-weighting as a minimum-phase FIR filter, applied block by block with FFTs.

Why not the usual IIR (the analogue poles through the bilinear transform)? Two reasons. At
16 kHz the bilinear transform squeezes the A-curve's 12.2 kHz poles under the 8 kHz Nyquist
frequency, so the response is 0.5 dB low at 4 kHz and 4 dB low at 6 kHz. And a recursive
filter needs a per-sample loop, which pure numpy cannot vectorise.

Instead the exact analogue magnitude |A(f)| is sampled on a fine grid up to Nyquist, turned
into a minimum-phase impulse response through the real cepstrum (homomorphic method), and cut
to 64 ms. Minimum phase puts the filter's energy at its start, so 64 ms is enough: the
response is within 0.002 dB of the formula from 40 Hz to 7.9 kHz and within 0.02 dB at
20-40 Hz (``max_deviation_db`` reports it; a test checks it), and the output is not delayed
by more than a fraction of a millisecond. Filtering is overlap-save convolution with numpy's
real FFT: about 0.05 % of one core at 16 kHz.
"""

from __future__ import annotations

import numpy as np

# IEC 61672-1:2013, annex E: pole frequencies of the A-weighting in Hz.
F1_HZ = 20.598997
F2_HZ = 107.65265
F3_HZ = 737.86223
F4_HZ = 12194.217

FILTER_SECONDS = 0.064  # length of the FIR filter (rounded up to a power of two in samples)
_DESIGN_GRID = 1 << 16  # frequency samples of the design (per sample rate)
_FLOOR = 1e-7  # -140 dB: log|A| needs a floor at DC, where A(f) is zero
_TAPER = 64  # half-Hann taper on the last samples of the truncated response


def a_weighting_gain(f_hz: np.ndarray | float) -> np.ndarray:
    """|A(f)| as a linear gain, 1.0 at 1 kHz (IEC 61672-1 analytic formula)."""
    f2 = np.asarray(f_hz, dtype=float) ** 2
    gain = (F4_HZ**2 * f2**2) / ((f2 + F1_HZ**2) * np.sqrt((f2 + F2_HZ**2) * (f2 + F3_HZ**2)) * (f2 + F4_HZ**2))
    at_1k = (F4_HZ**2 * 1e12) / ((1e6 + F1_HZ**2) * np.sqrt((1e6 + F2_HZ**2) * (1e6 + F3_HZ**2)) * (1e6 + F4_HZ**2))
    return gain / at_1k


def a_weighting_db(f_hz: np.ndarray | float) -> np.ndarray:
    """A(f) in dB, 0 dB at 1 kHz."""
    return 20.0 * np.log10(np.maximum(a_weighting_gain(f_hz), 1e-300))


def filter_length(sample_rate_hz: int) -> int:
    return 1 << int(np.ceil(np.log2(FILTER_SECONDS * sample_rate_hz)))


def design_fir(sample_rate_hz: int) -> np.ndarray:
    """The minimum-phase FIR approximating |A(f)| up to sample_rate_hz / 2."""
    taps = filter_length(sample_rate_hz)
    grid = max(_DESIGN_GRID, 16 * taps)
    freqs = np.arange(grid // 2 + 1) * (sample_rate_hz / grid)
    log_magnitude = np.log(np.maximum(a_weighting_gain(freqs), _FLOOR))
    # Real cepstrum of the magnitude, folded onto positive quefrencies: the minimum-phase
    # response with this magnitude (Oppenheim & Schafer, homomorphic deconvolution).
    cepstrum = np.fft.irfft(log_magnitude, grid)
    folded = np.zeros(grid)
    folded[0] = cepstrum[0]
    folded[1 : grid // 2] = 2.0 * cepstrum[1 : grid // 2]
    folded[grid // 2] = cepstrum[grid // 2]
    response = np.fft.irfft(np.exp(np.fft.rfft(folded)), grid)[:taps].copy()
    response[-_TAPER:] *= 0.5 * (1.0 + np.cos(np.pi * np.arange(1, _TAPER + 1) / _TAPER))
    return response


def response_db(fir: np.ndarray, f_hz: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """The FIR's magnitude response in dB at the given frequencies (direct DTFT)."""
    n = np.arange(len(fir))
    phases = np.exp(-2j * np.pi * np.outer(np.asarray(f_hz, dtype=float), n) / sample_rate_hz)
    return 20.0 * np.log10(np.abs(phases @ fir))


def max_deviation_db(fir: np.ndarray, sample_rate_hz: int, lo_hz: float, hi_hz: float) -> float:
    """Largest |FIR response - A(f)| in dB over [lo_hz, hi_hz] (200 log-spaced points)."""
    f = np.geomspace(lo_hz, hi_hz, 200)
    return float(np.max(np.abs(response_db(fir, f, sample_rate_hz) - a_weighting_db(f))))


class AWeighting:
    """Streaming A-weighting: overlap-save FFT convolution with the FIR from ``design_fir``.

    ``process(block)`` returns the weighted block, same length, aligned sample for sample
    (the minimum-phase filter delays by well under a millisecond). It keeps the last
    ``taps - 1`` input samples as filter state and nothing else.
    """

    def __init__(self, sample_rate_hz: int, max_block: int) -> None:
        fir = design_fir(sample_rate_hz)
        self.taps = len(fir)
        self.fft_size = 1 << int(np.ceil(np.log2(max_block + self.taps - 1)))
        self.max_block = self.fft_size - self.taps + 1
        self._spectrum = np.fft.rfft(fir, self.fft_size)
        self._history = np.zeros(self.taps - 1)

    def process(self, block: np.ndarray) -> np.ndarray:
        n = len(block)
        if n > self.max_block:
            raise ValueError(f"block of {n} samples is longer than {self.max_block}")
        frame = np.concatenate((self._history, block))
        out = np.fft.irfft(np.fft.rfft(frame, self.fft_size) * self._spectrum, self.fft_size)
        self._history = frame[n:]
        return out[self.taps - 1 : self.taps - 1 + n]
