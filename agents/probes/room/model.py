"""What the room probe is configured with, what it returns, and the seams it talks through.

Nothing here needs numpy, PortAudio or webrtcvad, so the check can import these types on a
machine without the ``audio`` extra and still get a clear ``not_installed`` result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal, Protocol

from sessionready.typed import limits, validate

if TYPE_CHECKING:  # numpy is only needed once audio flows
    import numpy as np

# Stable reason codes. ``available`` is False for all of them, except "device_error" after a
# capture that broke off part-way and still measured enough (the result then carries both the
# numbers and the code).
Problem = Literal["not_installed", "no_portaudio", "no_device", "device_busy", "device_error"]
PROBLEMS: Final[tuple[str, ...]] = ("not_installed", "no_portaudio", "no_device", "device_busy", "device_error")

SAMPLE_RATES_HZ: Final[tuple[int, ...]] = (8000, 16000, 32000, 48000)  # what webrtcvad accepts

# The sentence the person reads aloud in interactive mode: neutral, about nothing personal,
# voiced sounds throughout, about three seconds at a normal pace.
SENTENCE: Final = "A bright morning light came through the window and fell across the table."
QUIET_PROMPT: Final = "Please stay quiet for a few seconds while we listen to your room."
SPEECH_PROMPT: Final = f'Now please read this sentence aloud in your normal speaking voice: "{SENTENCE}"'
DONE_PROMPT: Final = "Thank you, that is all."


@dataclass(frozen=True)
class RoomSettings:
    """How to measure the room. Validated once, on construction (ValueError names the field).

    Durations are seconds of captured audio, not wall time: opening a device can take a
    second or more before sound arrives, and that time is not counted.
    """

    seconds: float = field(default=12.0, metadata=limits(ge=1.0, le=600.0))  # passive mode only: how long to listen (after the settling time)
    sample_rate_hz: int = field(default=16000, metadata=limits(ge=8000, le=48000))  # and one of SAMPLE_RATES_HZ
    # A device name (sounddevice matches part of it) or PortAudio's index of the device; None:
    # PortAudio's "pulse" device when present, else the default input.
    device: str | int | None = None
    calibration_offset_db: float | None = field(default=None, metadata=limits(ge=-200.0, le=200.0))  # dBFS(A) + offset = dB(A) SPL for this device
    interactive: bool = False  # prompt for quiet, then a sentence read aloud (quiet + speech seconds)
    quiet_seconds: float = field(default=3.0, metadata=limits(ge=1.0, le=60.0))
    speech_seconds: float = field(default=5.0, metadata=limits(ge=2.0, le=60.0))
    # webrtcvad mode 0..3. 2, because together with the level gate (a frame must stand 3 dB
    # above the running noise floor) steady noise is never taken for voice at any mode, and
    # mode 3 then only loses quiet and noisy speech (see docs/room.md, "Voice activity").
    vad_aggressiveness: int = field(default=2, metadata=limits(ge=0, le=3))
    settle_seconds: float = field(default=0.5, metadata=limits(ge=0.1, le=5.0))  # discarded at the start: filter, time weighting and device settle

    def __post_init__(self) -> None:
        # Numbers, booleans and ranges as every config; the device (a name or an index) and the
        # rates webrtcvad accepts are rules of their own.
        device = self.device
        named = isinstance(device, str) and 0 < len(device) <= 200
        indexed = isinstance(device, int) and not isinstance(device, bool) and 0 <= device <= 10_000
        if not (device is None or named or indexed):
            raise ValueError(f"room.device: must be a device name, a device index or None, got {device!r}")
        validate(self, "room", skip=("device",))
        if self.sample_rate_hz not in SAMPLE_RATES_HZ:
            raise ValueError(f"room.sample_rate_hz: must be one of {SAMPLE_RATES_HZ}, got {self.sample_rate_hz!r}")


@dataclass(frozen=True)
class RoomResult:
    """Summary numbers about the room's sound: never audio, only numbers, flags and short codes.

    Levels are dBFS(A): A-weighted, relative to digital full scale, where a signal with an RMS
    of 1.0 (a full-scale square wave) is 0 dBFS and a full-scale sine is -3.01 dBFS, the
    reference sox uses for "RMS lev dB". With ``calibrated`` they are dB(A) sound pressure
    levels instead (the field names stay). In interactive mode the room levels and
    ``voice_ratio`` describe the quiet segment only, when the person was silent.
    """

    available: bool  # False: nothing was measured (see problem and error)
    problem: Problem | None  # stable reason code, None when all went well
    error: str | None  # one plain sentence when problem is set
    mode: Literal["passive", "interactive"]
    laeq_dbfs: float | None  # A-weighted equivalent continuous level
    l90_dbfs: float | None  # exceeded 90 % of the time: the noise floor (Fast time weighting)
    l10_dbfs: float | None  # exceeded 10 % of the time: intermittent noise
    lmax_dbfs: float | None  # highest Fast-weighted level (sampled every 10 ms)
    voice_ratio: float | None  # 0..1, share of 30 ms frames with a voice in them
    speech_level_dbfs: float | None  # interactive: the person's speech, room noise removed
    snr_db: float | None  # interactive: speech level minus the quiet segment's L90
    speech_detected: bool | None  # interactive: did the person's reading register at all
    calibrated: bool
    silent: bool  # digital silence or a flat line: the microphone is muted or dead
    clipping_ratio: float | None  # 0..1, share of samples at full scale (|x| >= 0.999)
    clipping: bool  # clipping_ratio >= 1e-4: loud sound is being cut off
    duration_s: float  # seconds of audio analysed (after the settling time)
    sample_rate_hz: int
    vad_aggressiveness: int


def unavailable(
    problem: Problem, error: str, settings: RoomSettings, *, duration_s: float = 0.0
) -> RoomResult:
    """The result for a probe that could not measure anything."""
    return RoomResult(
        available=False,
        problem=problem,
        error=error,
        mode="interactive" if settings.interactive else "passive",
        laeq_dbfs=None,
        l90_dbfs=None,
        l10_dbfs=None,
        lmax_dbfs=None,
        voice_ratio=None,
        speech_level_dbfs=None,
        snr_db=None,
        speech_detected=None,
        calibrated=False,
        silent=False,
        clipping_ratio=None,
        clipping=False,
        duration_s=round(duration_s, 3),
        sample_rate_hz=settings.sample_rate_hz,
        vad_aggressiveness=settings.vad_aggressiveness,
    )


class AudioUnavailable(Exception):
    """Raised by an audio source that cannot deliver sound; becomes a result, never a crash.

    The message is one plain sentence for a person. It must never contain samples.
    """

    def __init__(self, problem: Problem, sentence: str) -> None:
        super().__init__(sentence)
        self.problem: Problem = problem
        self.sentence = sentence


class AudioSource(Protocol):
    """The seam between the probe and a microphone.

    ``blocks`` opens the input, yields mono float32 blocks in [-1, 1] of about
    ``block_samples`` samples, and closes the input when the iterator is closed. It raises
    ``AudioUnavailable`` when the input cannot be opened or stops delivering sound, and may
    simply end when it has no more sound (a finite test signal). Blocks are handed over, not
    kept: a source holds at most a bounded queue of blocks not yet read.
    """

    def blocks(self, sample_rate_hz: int, block_samples: int) -> AsyncIterator[np.ndarray]: ...


class Prompter(Protocol):
    """How the probe asks the person to do something; the check decides how to show it.

    ``say`` is called from the event loop and must return at once and must not raise.
    """

    def say(self, text: str) -> None: ...
