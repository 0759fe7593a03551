"""The streaming analysis: audio in, summary numbers out, nothing kept in between.

Per block of 180 ms the analyser A-weights the samples (``weighting.AWeighting``), applies
Fast time weighting (tau = 125 ms) sampled every 10 ms, and runs webrtcvad on 30 ms frames;
a frame is a voice frame when webrtcvad says speech, the frame stands 3 dB above the recent
floor, and it belongs to a run of at least three such frames.
What it keeps is only: the filter's last 64 ms of input, less than one block of unprocessed
input, the last 1.5 s of per-frame power (numbers, for the voice gate's noise floor) and, per
segment, sums, counts and a 0.05 dB histogram of levels. No level series is stored: the
percentiles come from the histogram.

Segments are fixed sample ranges (settling, then the room or the quiet and speech parts of
the interactive mode); every 30 ms frame belongs to the segment its first sample falls in.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from agents.probes.room.weighting import AWeighting

FAST_TAU_S = 0.125  # IEC 61672-1 "Fast" time weighting
LEVEL_FRAME_S = 0.010  # the Fast level is sampled this often
VAD_FRAME_S = 0.030  # webrtcvad accepts 10, 20 or 30 ms; 30 ms frames err least on noise
HOP_VAD_FRAMES = 6  # 180 ms of audio per analysis step
# A frame counts as voice only if webrtcvad says so AND its A-weighted power stands at least
# this far above the lowest frame power of the last 1.5 s. webrtcvad alone takes loud steady
# noise for speech (pink noise at -30 dBFS: 82 % of frames at mode 3); speech always dips
# back to the floor between syllables, steady noise never rises 3 dB above it.
VOICE_GATE_DB = 3.0
FLOOR_WINDOW_S = 1.5
# A run of this many exact zeros is a dropout of the capture (a starved audio server, a
# device hiccup), not the room: no real microphone gives 1 ms of digital silence while the
# room has any sound. Such a frame is left out of the room: it neither sets the voice gate's
# floor nor counts as a voice (a floor taken from a gap let steady noise after it pass the
# gate as "voices"), and it is not in the levels (gaps of 8 % of the time read a steady tone
# 0.35 dB low), whose Fast time weighting holds still through it. Only when such frames are
# most of a segment are they the microphone itself (muted, or dead: digital silence), and the
# segment is then measured with them.
DROPOUT_SAMPLES = 16
# Speech activity for the speech level: voice frames widened by 0.3 s each side (like the
# hangover of ITU-T P.56), so the weak sounds between the loud ones that the detector
# misses in noise still count as speaking time.
ACTIVITY_HANGOVER_S = 0.3
# Voice comes in syllables of 100 ms and more; a click (a key, a cup) fills one or two 30 ms
# frames. Only runs of at least this many voice frames count, which stops typing from
# counting as talk (23 % of frames at any webrtcvad mode without it, see docs/room.md).
MIN_VOICE_RUN = 3
CLIP_THRESHOLD = 0.999  # |sample| at or above this is full scale (int16 max is 0.99997)
HIST_MIN_DB = -200.0
HIST_MAX_DB = 20.0
HIST_STEP_DB = 0.05
POWER_FLOOR = 1e-20  # -200 dB: log of digital silence


class VoiceDetector(Protocol):
    """webrtcvad.Vad's interface: is this frame of 16-bit little-endian PCM speech?"""

    def is_speech(self, buf: bytes, sample_rate: int, length: int | None = None) -> bool: ...


def power_db(power: float) -> float:
    return 10.0 * math.log10(max(power, POWER_FLOOR))


class _Accumulator:
    """Running sums for one segment. Numbers only."""

    def __init__(self, bins: int) -> None:
        self.frames = 0  # 30 ms frames
        self.samples = 0
        self.weighted_energy = 0.0  # sum of A-weighted x^2
        self.deviation_energy = 0.0  # sum of (x - frame mean)^2, unweighted: is there any signal?
        self.clipped = 0
        self.voice_frames = 0
        self.active_frames = 0
        self.active_power = 0.0  # sum of the mean A-weighted power of active frames
        self.level_counts = np.zeros(bins, dtype=np.int64)  # histogram of Fast levels
        self.levels = 0
        self.max_power = 0.0  # highest Fast-weighted power

    def merge(self, other: _Accumulator) -> None:
        for name in ("frames", "samples", "weighted_energy", "deviation_energy", "clipped", "voice_frames", "active_frames", "active_power", "levels"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.level_counts += other.level_counts
        self.max_power = max(self.max_power, other.max_power)


@dataclass(frozen=True)
class SegmentSummary:
    """What one segment measured. Levels in dBFS(A) (0 dB = RMS of 1.0), None without data."""

    duration_s: float
    laeq_db: float | None
    l90_db: float | None
    l10_db: float | None
    lmax_db: float | None
    mean_power: float  # linear A-weighted mean square (LAeq before the log)
    voice_ratio: float | None
    voice_frames: int
    active_s: float
    active_mean_power: float | None  # mean A-weighted power while speaking (noise included)
    deviation_rms_db: float | None  # unweighted RMS around each frame's mean
    clipping_ratio: float | None


class Analyser:
    """Feed it blocks of mono samples (floats, full scale 1.0); read summaries per segment.

    ``segment_starts`` are the sample indices where segments begin; the first must be 0.
    ``vad`` builds the voice detector (webrtcvad.Vad by default; a seam for tests).
    """

    def __init__(
        self,
        sample_rate_hz: int,
        segment_starts: Sequence[int],
        vad_aggressiveness: int,
        *,
        vad: Callable[[int], VoiceDetector] | None = None,
    ) -> None:
        if not segment_starts or segment_starts[0] != 0 or list(segment_starts) != sorted(segment_starts):
            raise ValueError("segment_starts must begin with 0 and increase")
        if vad is None:
            import webrtcvad

            vad = webrtcvad.Vad  # type: ignore[assignment]
        self.sample_rate_hz = sample_rate_hz
        self._vad = vad(vad_aggressiveness)
        self._starts = np.asarray(segment_starts, dtype=np.int64)
        self._level_len = round(LEVEL_FRAME_S * sample_rate_hz)
        self._vad_len = round(VAD_FRAME_S * sample_rate_hz)
        self._hop = HOP_VAD_FRAMES * self._vad_len
        self._weighting = AWeighting(sample_rate_hz, self._hop)
        self._bins = round((HIST_MAX_DB - HIST_MIN_DB) / HIST_STEP_DB)
        self._segments = [_Accumulator(self._bins) for _ in segment_starts]
        self._gaps = [_Accumulator(self._bins) for _ in segment_starts]  # the dropout frames

        # Fast time weighting y[n] = beta*y[n-1] + alpha*x[n]^2, advanced one 10 ms frame at a
        # time: y_end = B*y_start + kernel . x^2 (exact, no per-sample loop).
        alpha = 1.0 - math.exp(-1.0 / (FAST_TAU_S * sample_rate_hz))
        beta = 1.0 - alpha
        self._kernel = alpha * beta ** np.arange(self._level_len - 1, -1, -1, dtype=float)
        self._frame_decay = beta**self._level_len
        self._fast: float | None = None

        self._pending = np.zeros(0)
        self.samples_in = 0  # samples fed so far
        self._frame_index = 0  # 30 ms frames analysed so far
        self._recent_power: deque[float] = deque(maxlen=max(1, round(FLOOR_WINDOW_S / VAD_FRAME_S)))
        hangover = round(ACTIVITY_HANGOVER_S / VAD_FRAME_S)
        self._hangover = hangover
        self._not_active: deque[tuple[float, int]] = deque(maxlen=hangover)  # (power, segment)
        self._active_until = -1
        self._run: list[int] = []  # segments of a run of voice frames too short to count yet
        self._run_length = 0

    def feed(self, block: np.ndarray) -> None:
        samples = np.asarray(block, dtype=np.float64).ravel()
        if samples.size == 0:
            return
        if not np.isfinite(samples).all():  # a broken driver must not poison every sum
            samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
        self.samples_in += samples.size
        pending = np.concatenate((self._pending, samples)) if self._pending.size else samples
        offset = 0
        while pending.size - offset >= self._hop:
            self._process(pending[offset : offset + self._hop])
            offset += self._hop
        self._pending = pending[offset:].copy()

    def flush(self) -> None:
        """Analyse what is left in whole 30 ms frames; a shorter remainder is dropped."""
        whole = (self._pending.size // self._vad_len) * self._vad_len
        if whole:
            self._process(self._pending[:whole])
        self._pending = np.zeros(0)

    def summary(self, *segments: int) -> SegmentSummary:
        """Summary of one segment, or of several taken together."""
        total, gaps = _Accumulator(self._bins), _Accumulator(self._bins)
        for index in segments:
            total.merge(self._segments[index])
            gaps.merge(self._gaps[index])
        return self._summarise(total, gaps)

    def take_summary(self, segment: int) -> SegmentSummary:
        """Summary of one segment so far, which then starts afresh: for listening in
        consecutive windows (the agent's live mode) with bounded memory. Voice runs and
        speaking-time hangover still pending at the cut are counted in the next window."""
        summary = self._summarise(self._segments[segment], self._gaps[segment])
        self._segments[segment] = _Accumulator(self._bins)
        self._gaps[segment] = _Accumulator(self._bins)
        return summary

    # --- the work ---------------------------------------------------------------------

    def _process(self, raw: np.ndarray) -> None:
        frames = raw.size // self._vad_len
        weighted = self._weighting.process(raw)
        squared = weighted * weighted

        levels_per_frame = self._vad_len // self._level_len
        dropout = _zero_runs(raw.reshape(frames, self._vad_len) == 0.0, DROPOUT_SAMPLES)
        frame_power = squared.reshape(frames, self._vad_len).mean(axis=1)
        fast = self._fast_levels(squared, np.repeat(dropout, levels_per_frame)).reshape(frames, levels_per_frame)
        # A dropout frame's level is its own power (digital silence: the histogram's floor).
        fast[dropout] = frame_power[dropout, None]
        raw_frames = raw.reshape(frames, self._vad_len)
        deviation = ((raw_frames - raw_frames.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        clipped = np.count_nonzero(np.abs(raw_frames) >= CLIP_THRESHOLD, axis=1)
        first_samples = (self._frame_index + np.arange(frames)) * self._vad_len
        segment = np.searchsorted(self._starts, first_samples, side="right") - 1

        pcm = np.clip(np.rint(raw * 32768.0), -32768, 32767).astype("<i2").tobytes()
        del raw_frames
        frame_bytes = 2 * self._vad_len
        for i in range(frames):
            power = float(frame_power[i])
            if not dropout[i]:
                self._recent_power.append(power)
            floor = min(self._recent_power, default=power)
            # webrtcvad sees every frame (it adapts its noise model), the gate decides after.
            said = self._vad.is_speech(pcm[i * frame_bytes : (i + 1) * frame_bytes], self.sample_rate_hz)
            voice = bool(said) and not dropout[i] and power >= floor * 10 ** (VOICE_GATE_DB / 10)
            self._track_voice(voice, power, int(segment[i]))
            self._frame_index += 1
        del pcm

        level_bins = np.clip(
            ((10.0 * np.log10(np.maximum(fast, POWER_FLOOR)) - HIST_MIN_DB) / HIST_STEP_DB).astype(np.int64),
            0,
            self._bins - 1,
        )
        for index in np.unique(segment):
            for acc, mask in (
                (self._segments[int(index)], (segment == index) & ~dropout),
                (self._gaps[int(index)], (segment == index) & dropout),
            ):
                if mask.any():
                    self._add_frames(acc, mask, frame_power, deviation, clipped, level_bins, fast, levels_per_frame)

    def _fast_levels(self, squared: np.ndarray, held: np.ndarray) -> np.ndarray:
        """The Fast-weighted power at the end of each 10 ms level frame. It holds still through
        the frames in ``held`` (capture dropouts) and resumes from where it was."""
        contributions = squared.reshape(-1, self._level_len) @ self._kernel
        if self._fast is None:
            self._fast = float(np.mean(squared[: self._level_len]))
        # y_k = d_k * y_(k-1) + c_k with d = 1, c = 0 while held: y_k = P_k * (y_0 + sum c_j / P_j).
        steps = np.cumprod(np.where(held, 1.0, self._frame_decay))
        fast = steps * (self._fast + np.cumsum(np.where(held, 0.0, contributions) / steps))
        self._fast = float(fast[-1])
        return fast

    def _add_frames(
        self,
        acc: _Accumulator,
        mask: np.ndarray,
        frame_power: np.ndarray,
        deviation: np.ndarray,
        clipped: np.ndarray,
        level_bins: np.ndarray,
        fast: np.ndarray,
        levels_per_frame: int,
    ) -> None:
        acc.frames += int(mask.sum())
        acc.samples += int(mask.sum()) * self._vad_len
        acc.weighted_energy += float(frame_power[mask].sum()) * self._vad_len
        acc.deviation_energy += float(deviation[mask].sum())
        acc.clipped += int(clipped[mask].sum())
        acc.level_counts += np.bincount(level_bins[mask].ravel(), minlength=self._bins)
        acc.levels += int(mask.sum()) * levels_per_frame
        acc.max_power = max(acc.max_power, float(fast[mask].max()))

    def _track_voice(self, is_voice: bool, power: float, segment: int) -> None:
        """Count voice frames (in runs of MIN_VOICE_RUN or more) and speaking time."""
        counts = False
        if not is_voice:
            self._run.clear()
            self._run_length = 0
        else:
            self._run_length += 1
            if self._run_length < MIN_VOICE_RUN:
                self._run.append(segment)
            else:
                for earlier in self._run:  # the run just qualified: its first frames count too
                    self._segments[earlier].voice_frames += 1
                self._run.clear()
                self._segments[segment].voice_frames += 1
                counts = True
        self._track_activity(counts, power, segment)

    def _track_activity(self, is_voice: bool, power: float, segment: int) -> None:
        if is_voice:
            for pending_power, pending_segment in self._not_active:
                self._count_active(pending_power, pending_segment)
            self._not_active.clear()
            self._active_until = self._frame_index + self._hangover
        if self._frame_index <= self._active_until:
            self._count_active(power, segment)
        else:
            self._not_active.append((power, segment))

    def _count_active(self, power: float, segment: int) -> None:
        acc = self._segments[segment]
        acc.active_frames += 1
        acc.active_power += power

    def _summarise(self, room: _Accumulator, gaps: _Accumulator) -> SegmentSummary:
        """The segment's numbers without its dropout frames, or with them when they are most of it."""
        listened = room.samples + gaps.samples
        acc = room
        if gaps.frames > room.frames:
            acc = _Accumulator(self._bins)
            acc.merge(room)
            acc.merge(gaps)
        if not acc.samples:
            return SegmentSummary(0.0, None, None, None, None, 0.0, None, 0, 0.0, None, None, None)
        mean_power = acc.weighted_energy / acc.samples
        return SegmentSummary(
            duration_s=listened / self.sample_rate_hz,
            laeq_db=power_db(mean_power),
            l90_db=self._percentile(acc, 0.10),
            l10_db=self._percentile(acc, 0.90),
            lmax_db=power_db(acc.max_power),
            mean_power=mean_power,
            voice_ratio=acc.voice_frames / acc.frames,
            voice_frames=acc.voice_frames,
            active_s=acc.active_frames * self._vad_len / self.sample_rate_hz,
            active_mean_power=acc.active_power / acc.active_frames if acc.active_frames else None,
            deviation_rms_db=power_db(acc.deviation_energy / acc.samples),
            clipping_ratio=acc.clipped / acc.samples,
        )

    def _percentile(self, acc: _Accumulator, fraction: float) -> float | None:
        """The level below which ``fraction`` of the Fast levels lie (centre of its 0.05 dB bin)."""
        if not acc.levels:
            return None
        cumulative = np.cumsum(acc.level_counts)
        index = int(np.searchsorted(cumulative, fraction * acc.levels, side="left"))
        return HIST_MIN_DB + (index + 0.5) * HIST_STEP_DB


def _zero_runs(zero: np.ndarray, length: int) -> np.ndarray:
    """Per row of ``zero`` (frames x samples, booleans): whether it holds ``length`` Trues in a row."""
    if zero.shape[1] < length:
        return np.zeros(zero.shape[0], dtype=bool)
    return np.lib.stride_tricks.sliding_window_view(zero, length, axis=1).all(axis=2).any(axis=1)
