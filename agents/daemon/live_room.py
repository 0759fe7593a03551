"""The room during a live session: the microphone stays open and each window yields numbers.

The room probe's pieces do the work: its audio source (``SoundDeviceSource``, or any
``AudioSource`` a test hands in) and its streaming ``Analyser`` (A-weighting, Fast levels,
webrtcvad with the level gate). Blocks are analysed as they arrive and then dropped; per
window only the analyser's running sums are read and reset (``Analyser.take_summary``).
Audio never leaves this process and is never written anywhere.

Per window:
- noise floor: L90 of the A-weighted Fast levels (the level exceeded 90 % of the window);
- voice ratio: share of 30 ms frames with a voice (webrtcvad, gated 3 dB above the floor,
  runs of three frames or more);
- SNR, as the room probe defines it: the speech level with the noise power taken out,
  minus the noise floor. Here both come from the same window: the speech power is the mean
  power of the speaking frames (voice frames widened by 0.3 s), the noise power the mean
  power of the other frames. Only when the window holds at least 0.3 s of voice and 0.3 s
  of frames without it; otherwise None.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from agents.probes.room.model import AudioSource, AudioUnavailable, RoomSettings
from sessionready import schema

if TYPE_CHECKING:
    from agents.probes.room.analyser import Analyser

log = logging.getLogger("sessionready.agent.room")

BLOCK_SECONDS = 0.1
MIN_WINDOW_AUDIO_S = 0.5  # less analysed sound in a window: no room numbers for it
MIN_VOICE_S = 0.3
MIN_NOISE_S = 0.3
SNR_FLOOR_DB = -20.0  # as the room probe: speech that does not rise above the noise at all
SILENT_BELOW_DB = -90.0  # unweighted RMS around the frame means: a muted or dead microphone
ROOM_SEGMENT = 1  # segment 0 is the settling time at the start


class LiveRoom:
    """``async with LiveRoom(settings, source)``; ``window()`` after each interval.

    ``source`` None means the microphone (``SoundDeviceSource(settings.device)``). When the
    audio extra is missing or the microphone cannot be opened or stops, ``window()`` returns
    None from then on and ``problem`` says why (a reason code, for local logs).
    """

    def __init__(self, settings: RoomSettings = RoomSettings(), source: AudioSource | None = None) -> None:
        self._settings = settings
        self._source = source
        self._analyser: Analyser | None = None
        self._task: asyncio.Task[None] | None = None
        self.problem: str | None = None

    async def __aenter__(self) -> LiveRoom:
        try:
            # numpy and webrtcvad take a fifth of a second to import: not on the event loop,
            # where the live UDP stream keeps its rhythm.
            analyser_module = await asyncio.to_thread(_import_analyser)
        except (ImportError, OSError):
            self.problem = "not_installed"
            return self
        rate = self._settings.sample_rate_hz
        frame = round(analyser_module.VAD_FRAME_S * rate)
        settle = max(1, round(self._settings.settle_seconds * rate / frame)) * frame
        self._analyser = analyser_module.Analyser(rate, [0, settle], self._settings.vad_aggressiveness)
        source = self._source
        if source is None:
            try:
                from agents.probes.room.capture import SoundDeviceSource
            except (ImportError, OSError):
                self.problem = "not_installed"
                self._analyser = None
                return self
            source = SoundDeviceSource(self._settings.device)
        self._task = asyncio.create_task(self._listen(source, self._analyser))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._analyser = None

    async def _listen(self, source: AudioSource, analyser: Analyser) -> None:
        rate = self._settings.sample_rate_hz
        try:
            async with contextlib.aclosing(source.blocks(rate, round(BLOCK_SECONDS * rate))) as blocks:
                async for block in blocks:
                    analyser.feed(block)
        except AudioUnavailable as exc:
            self.problem = exc.problem
            log.info("live room: the microphone is not available (%s)", exc.problem)
        else:
            self.problem = self.problem or "device_error"  # a source that ends has no more sound

    def window(self) -> schema.SampleRoom | None:
        """The room since the previous call; None without (enough) sound."""
        from agents.probes.room.analyser import VAD_FRAME_S, power_db

        analyser = self._analyser
        if analyser is None:
            return None
        if self.problem is not None:
            self._analyser = None  # the microphone is gone for the rest of the session
            return None
        window = analyser.take_summary(ROOM_SEGMENT)
        if window.duration_s < MIN_WINDOW_AUDIO_S:
            return None
        calibrated = self._settings.calibration_offset_db is not None
        if window.deviation_rms_db is not None and window.deviation_rms_db < SILENT_BELOW_DB:
            return schema.SampleRoom(noise_floor_dbfs=None, snr_db=None, voice_ratio=None, calibrated=calibrated)
        offset = self._settings.calibration_offset_db or 0.0
        frames = round(window.duration_s / VAD_FRAME_S)
        active_frames = round(window.active_s / VAD_FRAME_S)
        quiet_frames = frames - active_frames
        snr = None
        if (
            window.voice_frames * VAD_FRAME_S >= MIN_VOICE_S
            and quiet_frames * VAD_FRAME_S >= MIN_NOISE_S
            and window.active_mean_power is not None
            and window.l90_db is not None
        ):
            # The window's energy is the speaking frames' plus the others': the noise power
            # is what the speaking frames leave over.
            total_energy = window.mean_power * frames
            noise_power = max(0.0, total_energy - window.active_mean_power * active_frames) / quiet_frames
            excess = window.active_mean_power - noise_power
            snr = max(SNR_FLOOR_DB, power_db(excess) - window.l90_db) if excess > 0 else SNR_FLOOR_DB
        return schema.SampleRoom(
            noise_floor_dbfs=None if window.l90_db is None else round(window.l90_db + offset, 1),
            snr_db=None if snr is None else round(snr, 1),
            voice_ratio=None if window.voice_ratio is None else round(window.voice_ratio, 3),
            calibrated=calibrated,
        )


def _import_analyser():  # noqa: ANN202 - returns the module
    import agents.probes.room.analyser as analyser

    return analyser
