"""Every way the microphone can fail becomes a reason code and a sentence, never a crash.

The seam is the importer of ``SoundDeviceSource``: these tests hand it a fake sounddevice
module that raises what the real one raises (its exception types, messages and PaErrorCodes
as sounddevice 0.5 builds them) or delivers blocks from its own thread, like PortAudio.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from agents.probes.room import DONE_PROMPT, QUIET_PROMPT, SPEECH_PROMPT, RoomResult, RoomSettings, measure_room
from agents.probes.room.capture import SoundDeviceSource

RATE = 16000


class PortAudioError(Exception):
    """Shaped like sounddevice.PortAudioError: (message, PaErrorCode[, (api, code, text)])."""


class FakeStream:
    def __init__(self, owner: FakeSoundDevice, callback: Any, blocksize: int) -> None:
        self.owner, self.callback, self.blocksize = owner, callback, blocksize
        self.started = self.closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.owner.start_error is not None:
            raise self.owner.start_error
        self.started = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:  # PortAudio's callback thread
        rng = np.random.default_rng(5)
        for _ in range(self.owner.blocks):
            if self._stop.wait(self.blocksize / RATE / 10):
                return
            block = rng.normal(0, 0.01, (self.blocksize, 1)).astype(np.float32)
            self.callback(block, self.blocksize, None, SimpleNamespace(input_overflow=False))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self.closed = True


class FakeSoundDevice:
    PortAudioError = PortAudioError

    def __init__(
        self,
        devices: list[dict[str, Any]] | None = None,
        open_error: Exception | None = None,
        start_error: Exception | None = None,
        blocks: int = 1000,
    ) -> None:
        self.devices = devices if devices is not None else [{"name": "default", "max_input_channels": 2}]
        self.open_error, self.start_error, self.blocks = open_error, start_error, blocks
        self.streams: list[FakeStream] = []
        self.opened_with: dict[str, Any] = {}

    def query_devices(self) -> list[dict[str, Any]]:
        return self.devices

    def InputStream(self, **kwargs: Any) -> FakeStream:  # noqa: N802 - sounddevice's name
        self.opened_with = kwargs
        if self.open_error is not None:
            raise self.open_error
        stream = FakeStream(self, kwargs["callback"], kwargs["blocksize"])
        self.streams.append(stream)
        return stream


def run_probe(module: Any, *, seconds: float = 1.0, device: str | None = None, timeout_s: float = 0.5) -> RoomResult:
    def importer() -> Any:
        if isinstance(module, BaseException):
            raise module
        return module

    source = SoundDeviceSource(device, importer=importer, first_block_timeout_s=timeout_s, block_timeout_s=timeout_s)
    return asyncio.run(measure_room(RoomSettings(seconds=seconds, device=device), source=source))


def assert_unavailable(result: RoomResult, problem: str) -> None:
    assert result.available is False
    assert result.problem == problem
    assert result.error and result.error.endswith(".") and "\n" not in result.error and "Traceback" not in result.error
    assert result.laeq_dbfs is None and result.voice_ratio is None


def test_missing_portaudio_library() -> None:
    # What `import sounddevice` raises on a machine without libportaudio2.
    result = run_probe(OSError("PortAudio library not found"))
    assert_unavailable(result, "no_portaudio")
    assert "PortAudio" in (result.error or "")


def test_missing_python_packages() -> None:
    assert_unavailable(run_probe(ModuleNotFoundError("No module named 'sounddevice'")), "not_installed")


def test_no_default_input_device() -> None:
    module = FakeSoundDevice(devices=[], open_error=PortAudioError("Error querying device -1"))
    assert_unavailable(run_probe(module), "no_device")


def test_named_device_not_found() -> None:
    module = FakeSoundDevice(open_error=ValueError("No input device matching 'USB headset'"))
    result = run_probe(module, device="USB headset")
    assert_unavailable(result, "no_device")
    assert "settings" in (result.error or "")


@pytest.mark.parametrize(
    "error",
    [
        PortAudioError("Error starting stream: Device unavailable", -9985),
        PortAudioError("Error starting stream: Unanticipated host error", -9999, (0, -16, "Device or resource busy")),
    ],
    ids=["pa-device-unavailable", "alsa-ebusy"],
)
def test_device_busy(error: Exception) -> None:
    module = FakeSoundDevice(start_error=error)
    assert_unavailable(run_probe(module), "device_busy")
    assert module.streams and module.streams[0].closed  # the half-opened stream was closed


def test_other_portaudio_errors_are_device_errors() -> None:
    module = FakeSoundDevice(open_error=PortAudioError("Error opening InputStream: Invalid sample rate", -9997))
    assert_unavailable(run_probe(module), "device_error")


def test_input_that_never_delivers() -> None:
    module = FakeSoundDevice(blocks=0)
    said: list[str] = []

    class Recorder:
        def say(self, text: str) -> None:
            said.append(text)

    source = SoundDeviceSource(importer=lambda: module, first_block_timeout_s=0.5)
    assert asyncio.run(measure_room(RoomSettings(interactive=True), source=source, prompter=Recorder())).problem == "device_error"
    assert said == []  # nobody is asked to be quiet for a microphone that sends nothing
    result = run_probe(module)
    assert_unavailable(result, "device_error")
    assert "stopped" in (result.error or "")
    assert module.streams[0].closed


def test_input_that_stops_part_way_keeps_what_it_measured() -> None:
    module = FakeSoundDevice(blocks=20)  # 2 s of a 4.5 s measurement
    result = run_probe(module, seconds=4.0)
    assert result.available is True and result.problem == "device_error" and result.error
    assert result.laeq_dbfs is not None
    assert result.duration_s == pytest.approx(2.0 - 0.51, abs=0.1)
    assert module.streams[0].closed


def test_records_16_khz_mono_from_the_pulse_device_when_listed() -> None:
    module = FakeSoundDevice(
        devices=[
            {"name": "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "max_input_channels": 2},
            {"name": "pulse", "max_input_channels": 32},
            {"name": "default", "max_input_channels": 32},
        ]
    )
    result = run_probe(module)
    assert result.available is True and result.problem is None
    assert module.opened_with["device"] == 1
    assert module.opened_with["samplerate"] == RATE and module.opened_with["channels"] == 1
    assert module.opened_with["dtype"] == "float32"
    assert module.streams[0].closed


def test_without_pulse_the_default_input_is_used() -> None:
    module = FakeSoundDevice()
    assert run_probe(module).available is True
    assert module.opened_with["device"] is None


def test_devices_are_scanned_again_when_none_is_found() -> None:
    # A sound server started (or a headset plugged in) after PortAudio listed the devices.
    module = FakeSoundDevice(devices=[], open_error=PortAudioError("Error querying device -1"))

    def rescan() -> None:
        module.devices = [{"name": "pulse", "max_input_channels": 32}]
        module.open_error = None

    module._terminate = lambda: None  # type: ignore[attr-defined]
    module._initialize = rescan  # type: ignore[attr-defined]
    result = run_probe(module)
    assert result.available is True
    assert module.opened_with["device"] == 0


def test_cancelling_the_probe_closes_the_stream() -> None:
    module = FakeSoundDevice()
    source = SoundDeviceSource(importer=lambda: module)

    async def cancel_midway() -> None:
        task = asyncio.create_task(measure_room(RoomSettings(seconds=30.0), source=source))
        while not (module.streams and module.streams[0].started):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert module.streams[0].closed


class CountingSource:
    """A fake source that tells how many samples it has handed out."""

    def __init__(self, seconds: float) -> None:
        self.samples = np.random.default_rng(7).normal(0, 0.01, round(seconds * RATE)).astype(np.float32)
        self.given = 0

    async def blocks(self, sample_rate_hz: int, block_samples: int) -> AsyncIterator[np.ndarray]:
        for start in range(0, self.samples.size, block_samples):
            await asyncio.sleep(0)
            block = self.samples[start : start + block_samples]
            self.given += block.size
            yield block


def test_interactive_prompts_come_in_order_at_the_segment_boundaries() -> None:
    source = CountingSource(10.0)
    said: list[tuple[str, int]] = []

    class Recorder:
        def say(self, text: str) -> None:
            said.append((text, source.given))

    settings = RoomSettings(interactive=True, quiet_seconds=3.0, speech_seconds=4.0)
    result = asyncio.run(measure_room(settings, source=source, prompter=Recorder()))
    assert [text for text, _ in said] == [QUIET_PROMPT, SPEECH_PROMPT, DONE_PROMPT]
    assert said[0][1] == RATE // 10  # as the first block arrived, before it was analysed
    quiet_end = (17 + 100) * 480  # settling and quiet part, in whole 30 ms frames
    assert quiet_end <= said[1][1] < quiet_end + RATE // 10 + 1  # within one block after it
    assert result.mode == "interactive"
    assert result.speech_detected is False and result.snr_db is None  # nobody spoke
    assert result.duration_s == pytest.approx(7.0, abs=0.02)


def test_probe_does_not_block_the_event_loop() -> None:
    # The check's UDP stream shares the loop: measure the longest gap a 5 ms ticker sees
    # while a 3 s measurement runs from a real-time-paced fake microphone.
    module = FakeSoundDevice()

    async def main() -> float:
        worst = 0.0
        task = asyncio.create_task(
            measure_room(RoomSettings(seconds=3.0), source=SoundDeviceSource(importer=lambda: module))
        )
        last = time.monotonic()
        while not task.done():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            worst = max(worst, now - last)
            last = now
        assert (await task).available
        return worst

    # A probe that blocked the loop would do it on every run; a busy machine's scheduler (CI
    # once saw 0.12 s, with the other workers running) now and then, so a slow run is run again.
    gaps = [asyncio.run(main())]
    if gaps[0] >= 0.1:
        gaps.append(asyncio.run(main()))
    assert min(gaps) < 0.1, gaps


def test_audio_library_chatter_on_stderr_goes_to_the_debug_log(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import os

    from agents.probes.room.capture import NativeStderrToLog

    caplog.set_level(logging.DEBUG, logger="sessionready.agent.room")
    with NativeStderrToLog():
        os.write(2, b"ALSA lib pulse.c:242:(pulse_connect) PulseAudio: Unable to connect: Connection refused\n")
        os.write(2, b"Expression 'ret' failed in 'src/hostapi/alsa/pa_linux_alsa.c', line: 1736\n")
        os.write(2, b"something else the program said\n")
    err = capfd.readouterr().err
    assert err == "something else the program said\n"
    assert "Unable to connect" in caplog.text and "pa_linux_alsa.c" in caplog.text
