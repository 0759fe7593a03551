"""``measure_room``: listen to the room for a while and return summary numbers.

Runs alongside the check's network phases: it awaits blocks from the audio source and
analyses each as it comes (well under 1 % of a core), so it shares the event loop politely.

Timeline, in samples of captured audio:
  passive      [settle][room: seconds]
  interactive  [settle][quiet: quiet_seconds][speech: speech_seconds]
The quiet prompt is shown when the first sound arrives (the settling time gives the person
a moment), the reading prompt as soon as the quiet part has been captured. In interactive mode the room numbers come from the quiet part
and the speech-to-noise ratio compares the speech part with it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from agents.probes.room.model import (
    DONE_PROMPT,
    QUIET_PROMPT,
    SPEECH_PROMPT,
    AudioSource,
    AudioUnavailable,
    Prompter,
    RoomResult,
    RoomSettings,
    unavailable,
)

if TYPE_CHECKING:
    from agents.probes.room.analyser import Analyser

log = logging.getLogger("sessionready.agent.room")

BLOCK_SECONDS = 0.1  # what the source is asked for per block
SILENT_BELOW_DB = -90.0  # unweighted RMS around the frame means: below this, a flat line
CLIPPING_FLAG_RATIO = 1e-4  # about two clipped samples per second at 16 kHz
MIN_SPEECH_VOICE_S = 0.3  # less voice than this in the speech part: the reading did not register
SNR_FLOOR_DB = -20.0  # reported when the speech does not rise above the noise at all
MIN_MEASURED_S = 0.5  # less room audio than this: nothing to report
TOO_SHORT = "The microphone delivered too little sound to measure."
NOT_INSTALLED = "Sound support is not installed (the 'audio' extra), so the room was not measured."


async def measure_room(
    settings: RoomSettings,
    *,
    source: AudioSource | None = None,
    prompter: Prompter | None = None,
) -> RoomResult:
    """Measure the room. Never raises for audio trouble: it becomes ``problem`` and ``error``.

    ``source`` defaults to the microphone (``SoundDeviceSource(settings.device)``).
    ``prompter`` is required when ``settings.interactive`` (ValueError otherwise: a caller bug).
    """
    if settings.interactive and prompter is None:
        raise ValueError("interactive room measurement needs a prompter")
    try:
        from agents.probes.room.analyser import VAD_FRAME_S, Analyser
        from agents.probes.room.capture import SoundDeviceSource
    except ImportError as exc:  # numpy or webrtcvad missing: the 'audio' extra is not installed
        log.debug("room probe: %s", exc)
        return unavailable("not_installed", NOT_INSTALLED, settings)
    if source is None:
        source = SoundDeviceSource(settings.device)

    rate = settings.sample_rate_hz
    frame = round(VAD_FRAME_S * rate)

    def samples(seconds: float) -> int:  # whole analysis frames, so segments never share one
        return max(1, round(seconds * rate / frame)) * frame

    settle = samples(settings.settle_seconds)
    if settings.interactive:
        quiet_end = settle + samples(settings.quiet_seconds)
        starts = [0, settle, quiet_end]
        end = quiet_end + samples(settings.speech_seconds)
    else:
        quiet_end = None
        starts = [0, settle]
        end = settle + samples(settings.seconds)
    analyser = Analyser(rate, starts, settings.vad_aggressiveness)

    failure: AudioUnavailable | None = None
    prompted = False
    try:
        async with contextlib.aclosing(source.blocks(rate, round(BLOCK_SECONDS * rate))) as blocks:
            async for block in blocks:
                if quiet_end is not None and analyser.samples_in == 0:
                    # Only once sound flows: asking for quiet is pointless without a microphone.
                    prompter.say(QUIET_PROMPT)  # type: ignore[union-attr]
                analyser.feed(block[: end - analyser.samples_in])
                if quiet_end is not None and not prompted and analyser.samples_in >= quiet_end:
                    prompter.say(SPEECH_PROMPT)  # type: ignore[union-attr]
                    prompted = True
                if analyser.samples_in >= end:
                    break
    except AudioUnavailable as exc:
        failure = exc
        log.debug("room probe: %s", exc.problem)
    analyser.flush()
    if prompted:
        prompter.say(DONE_PROMPT)  # type: ignore[union-attr]
    return _result(settings, analyser, failure)


def _result(settings: RoomSettings, analyser: Analyser, failure: AudioUnavailable | None) -> RoomResult:
    from agents.probes.room.analyser import VAD_FRAME_S, power_db

    room = analyser.summary(1)
    captured = analyser.summary(*range(1, 3 if settings.interactive else 2))
    if room.duration_s < MIN_MEASURED_S:
        if failure is not None:
            return unavailable(failure.problem, failure.sentence, settings, duration_s=captured.duration_s)
        return unavailable("device_error", TOO_SHORT, settings, duration_s=captured.duration_s)

    silent = captured.deviation_rms_db is not None and captured.deviation_rms_db < SILENT_BELOW_DB
    offset = settings.calibration_offset_db or 0.0

    def level(value: float | None) -> float | None:
        return None if value is None or silent else round(value + offset, 2)

    speech_level = snr = None
    speech_detected: bool | None = None
    if settings.interactive:
        speech = analyser.summary(2)
        speech_detected = False
        voice_s = speech.voice_frames * VAD_FRAME_S
        if not silent and speech.duration_s and voice_s >= MIN_SPEECH_VOICE_S and speech.active_mean_power is not None:
            speech_detected = True
            # Speech and room noise add as powers: take the noise (the quiet part's mean
            # power) out of what was measured while the person spoke.
            excess = speech.active_mean_power - room.mean_power
            if excess > 0 and room.l90_db is not None:
                speech_level = power_db(excess)
                snr = max(SNR_FLOOR_DB, speech_level - room.l90_db)
            else:
                snr = SNR_FLOOR_DB

    clipping_ratio = captured.clipping_ratio
    return RoomResult(
        available=True,
        problem=failure.problem if failure is not None else None,
        error=failure.sentence if failure is not None else None,
        mode="interactive" if settings.interactive else "passive",
        laeq_dbfs=level(room.laeq_db),
        l90_dbfs=level(room.l90_db),
        l10_dbfs=level(room.l10_db),
        lmax_dbfs=level(room.lmax_db),
        voice_ratio=None if silent or room.voice_ratio is None else round(room.voice_ratio, 4),
        speech_level_dbfs=level(speech_level),
        snr_db=None if snr is None or silent else round(snr, 2),
        speech_detected=speech_detected,
        calibrated=settings.calibration_offset_db is not None,
        silent=silent,
        clipping_ratio=None if clipping_ratio is None else round(clipping_ratio, 6),
        clipping=clipping_ratio is not None and clipping_ratio >= CLIPPING_FLAG_RATIO,
        duration_s=round(captured.duration_s, 3),
        sample_rate_hz=settings.sample_rate_hz,
        vad_aggressiveness=settings.vad_aggressiveness,
    )
