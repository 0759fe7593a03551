"""Audio sources: the microphone through sounddevice (PortAudio), and a numpy array for tests.

The microphone source opens a 16 kHz mono float32 input stream. PortAudio calls back from
its own thread with each block; the callback copies the block and hands it to the event loop
(``call_soon_threadsafe``) into a bounded queue, which the probe reads. Nothing else happens
in the callback, nothing is written anywhere, and a full queue drops the new block (counted)
rather than growing. Opening, starting and closing the stream block for up to a few hundred
milliseconds (device enumeration, the sound server's handshake), so they run in a worker
thread: the check's UDP stream shares the event loop and must keep its rhythm.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from agents.probes.room.model import AudioUnavailable

log = logging.getLogger("sessionready.agent.room")

# PortAudio's PaErrorCode values that tell us something specific.
PA_INVALID_CHANNEL_COUNT = -9998
PA_INVALID_DEVICE = -9996
PA_DEVICE_UNAVAILABLE = -9985

NO_PORTAUDIO = "The sound library PortAudio is missing on this computer, so the microphone could not be used."
NOT_INSTALLED = "Sound support is not installed (the 'audio' extra), so the room was not measured."
NO_DEVICE = "No microphone was found."
NO_NAMED_DEVICE = "The microphone named in the settings was not found."
DEVICE_BUSY = "The microphone is busy: another program is using it."
DEVICE_ERROR = "The microphone could not be opened."
STOPPED = "The microphone stopped sending sound."

# What ALSA, PortAudio and JACK print on file descriptor 2 when a device cannot be opened:
# C-level diagnostics a person at the check's terminal should not have to read.
_LIBRARY_NOISE = (b"ALSA lib ", b"Expression '", b"PaAlsa", b"Cannot connect to server", b"jack server", b"JackShm")


def import_sounddevice() -> ModuleType:
    """The import seam: ``import sounddevice`` raises OSError when PortAudio is missing."""
    import sounddevice

    return sounddevice


def classify(exc: BaseException, *, named: bool) -> AudioUnavailable:
    """Turn what sounddevice raised while finding or opening a device into a reason code.

    ``ValueError`` is sounddevice's "no input device matching ..."; PortAudioError carries
    a PaErrorCode as args[1] and, for host errors, (api, code, text) as args[2].
    """
    if isinstance(exc, ValueError):
        return AudioUnavailable("no_device", NO_NAMED_DEVICE if named else NO_DEVICE)
    args = getattr(exc, "args", ())
    code = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    text = " ".join(str(part) for part in _flatten(args)).lower()
    if code == PA_DEVICE_UNAVAILABLE or "busy" in text or "device unavailable" in text:
        return AudioUnavailable("device_busy", DEVICE_BUSY)
    if code in (PA_INVALID_DEVICE, PA_INVALID_CHANNEL_COUNT) or "querying device" in text or "invalid device" in text:
        return AudioUnavailable("no_device", NO_NAMED_DEVICE if named else NO_DEVICE)
    return AudioUnavailable("device_error", DEVICE_ERROR)


def _flatten(items: Any) -> list[object]:
    out: list[object] = []
    for item in items if isinstance(items, tuple) else (items,):
        out.extend(_flatten(item) if isinstance(item, tuple) else [item])
    return out


class SoundDeviceSource:
    """The microphone, through sounddevice. An ``AudioSource``.

    ``device``: a sounddevice device name (substring match) or None for the "pulse" device
    when PortAudio lists one (PulseAudio or PipeWire: their default source, which the person
    chose in their sound settings), else PortAudio's default input.
    """

    def __init__(
        self,
        device: str | int | None = None,
        *,
        importer: Callable[[], ModuleType] = import_sounddevice,
        queue_blocks: int = 32,
        first_block_timeout_s: float = 6.0,
        block_timeout_s: float = 2.0,
    ) -> None:
        self._device = device
        self._importer = importer
        self._queue_blocks = queue_blocks
        # ALSA through PulseAudio takes about 1.5 s to deliver the first block of a process's
        # first stream; later blocks come every block length.
        self._first_block_timeout_s = first_block_timeout_s
        self._block_timeout_s = block_timeout_s

    async def blocks(self, sample_rate_hz: int, block_samples: int) -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[np.ndarray] = asyncio.Queue(self._queue_blocks)
        counts = {"dropped": 0, "overflows": 0}

        def deliver(block: np.ndarray) -> None:
            if queue.full():
                counts["dropped"] += 1
            else:
                queue.put_nowait(block)

        def callback(indata: np.ndarray, frames: int, time_info: object, status: Any) -> None:
            if status and getattr(status, "input_overflow", False):
                counts["overflows"] += 1
            try:
                loop.call_soon_threadsafe(deliver, indata[:, 0].copy())
            except RuntimeError:
                pass  # the event loop is closed: nobody is listening any more

        opening = loop.run_in_executor(None, self._open, sample_rate_hz, block_samples, callback)
        try:
            stream = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The stream may still open in the worker thread: close it when it does.
            opening.add_done_callback(lambda done: done.exception() or _close(done.result()))
            raise
        try:
            timeout = self._first_block_timeout_s
            while True:
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can return a block
                    # that arrived just as the probe was cancelled and drop the cancellation
                    # (CPython bpo-42130), and the microphone then kept being read.
                    async with asyncio.timeout(timeout):
                        block = await queue.get()
                except TimeoutError:
                    raise AudioUnavailable("device_error", STOPPED) from None
                timeout = self._block_timeout_s
                yield block
        finally:
            await asyncio.to_thread(_close, stream)
            while not queue.empty():
                queue.get_nowait()
            if counts["dropped"] or counts["overflows"]:
                log.debug("room capture: %d blocks dropped, %d input overflows", counts["dropped"], counts["overflows"])

    def _open(self, sample_rate_hz: int, block_samples: int, callback: Callable[..., None]) -> Any:
        """Runs in a worker thread. Returns a started stream or raises AudioUnavailable."""
        with NativeStderrToLog():
            return self._import_and_start(sample_rate_hz, block_samples, callback)

    def _import_and_start(self, sample_rate_hz: int, block_samples: int, callback: Callable[..., None]) -> Any:
        try:
            sd = self._importer()
        except OSError as exc:  # sounddevice's import raises this when libportaudio is missing
            log.debug("room capture: sounddevice import failed: %s", exc)
            raise AudioUnavailable("no_portaudio", NO_PORTAUDIO) from None
        except ImportError:
            raise AudioUnavailable("not_installed", NOT_INSTALLED) from None
        try:
            return self._start(sd, sample_rate_hz, block_samples, callback)
        except AudioUnavailable as first:
            if first.problem != "no_device" or not _rescan(sd):
                raise
        # PortAudio lists devices once, when it starts; one plugged in (or a sound server
        # started) since then only shows up after a fresh scan.
        return self._start(sd, sample_rate_hz, block_samples, callback)

    def _start(self, sd: Any, sample_rate_hz: int, block_samples: int, callback: Callable[..., None]) -> Any:
        named = self._device is not None
        try:
            device = self._device if named else _pulse_device(sd)
            stream = sd.InputStream(
                samplerate=sample_rate_hz,
                blocksize=block_samples,
                channels=1,
                dtype="float32",
                device=device,
                callback=callback,
            )
        except (ValueError, sd.PortAudioError) as exc:
            log.debug("room capture: cannot open the input: %s", exc)
            raise classify(exc, named=named) from None
        try:
            stream.start()
        except sd.PortAudioError as exc:
            log.debug("room capture: cannot start the input: %s", exc)
            _stop_and_close(stream)
            raise classify(exc, named=named) from None
        return stream


def _pulse_device(sd: Any) -> int | None:
    """Index of the input device named exactly "pulse", or None for the default input."""
    for index, info in enumerate(sd.query_devices()):
        if info.get("name") == "pulse" and info.get("max_input_channels", 0) > 0:
            return index
    return None


def _rescan(sd: Any) -> bool:
    # sounddevice has no public call for this; _terminate/_initialize is what its author
    # recommends. Only the room probe uses PortAudio in this process, so no other stream dies.
    terminate, initialize = getattr(sd, "_terminate", None), getattr(sd, "_initialize", None)
    if terminate is None or initialize is None:
        return False
    try:
        terminate()
        initialize()
    except Exception:  # noqa: BLE001 - a failed rescan just means "still no device"
        log.debug("room capture: PortAudio rescan failed", exc_info=True)
        return False
    return True


def _close(stream: Any) -> None:
    with NativeStderrToLog():
        _stop_and_close(stream)


def _stop_and_close(stream: Any) -> None:
    try:
        stream.stop()
    except Exception:  # noqa: BLE001 - closing must not fail the measurement
        pass
    try:
        stream.close()
    except Exception:  # noqa: BLE001
        pass


class NativeStderrToLog:
    """While open, lines that C audio libraries write to file descriptor 2 go to the debug log.

    Only for the fraction of a second a device takes to open or close. Everything else that
    reaches descriptor 2 meanwhile (Python's own stderr, other threads) is written back to
    it unchanged when the window closes. Without a descriptor 2 to redirect, it does nothing.
    """

    def __init__(self) -> None:
        self._saved: int | None = None
        self._chunks: list[bytes] = []
        self._reader: threading.Thread | None = None

    def __enter__(self) -> NativeStderrToLog:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            return self
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._saved = saved
        self._reader = threading.Thread(target=self._drain, args=(read_end,), name="room-stderr", daemon=True)
        self._reader.start()
        return self

    def _drain(self, read_end: int) -> None:
        try:
            while chunk := os.read(read_end, 65536):
                self._chunks.append(chunk)
        finally:
            os.close(read_end)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._saved is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
        os.dup2(self._saved, 2)  # closes the pipe's last write end: the reader sees its end
        os.close(self._saved)
        if self._reader is not None:
            self._reader.join(timeout=1.0)  # a child that inherited the pipe may keep it open
        keep = []
        for line in b"".join(self._chunks).splitlines(keepends=True):
            if line.lstrip().startswith(_LIBRARY_NOISE):
                log.debug("audio library: %s", line.decode(errors="replace").rstrip())
            else:
                keep.append(line)
        if keep:
            os.write(2, b"".join(keep))


class ArraySource:
    """A finite signal as an ``AudioSource``, for tests and benchmarks: yields it, then ends.

    ``realtime`` paces the blocks like a microphone would (one block per block duration).
    """

    def __init__(self, samples: np.ndarray, *, realtime: bool = False) -> None:
        self._samples = np.asarray(samples, dtype=np.float32).ravel()
        self._realtime = realtime

    async def blocks(self, sample_rate_hz: int, block_samples: int) -> AsyncIterator[np.ndarray]:
        for start in range(0, self._samples.size, block_samples):
            if self._realtime:
                await asyncio.sleep(block_samples / sample_rate_hz)
            else:
                await asyncio.sleep(0)
            yield self._samples[start : start + block_samples].copy()
