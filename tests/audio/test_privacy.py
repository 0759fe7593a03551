"""Audio never leaves the process that reads it and is never written anywhere.

A recognisable signal (a tone sequence, then espeak-ng speech) is played into the virtual
microphone and the probe listens through the real PulseAudio path. Then:

1. Nothing it produced contains the audio: not the result, its repr or JSON, not a log
   record (all loggers, DEBUG), not stdout/stderr. The search looks for any 4 consecutive
   samples as int16 bytes, any 2 as float32 bytes, any 1 as float64 bytes, and any 3
   consecutive sample values written as numbers in text. Positive controls prove the search
   finds each of these encodings.
2. No file appears in the HOME, TMPDIR, XDG directories and working directory it ran with.
3. An audit hook (PEP 578) saw no file opened for writing, no socket connected, bound or
   sent on, no file renamed or removed, no temporary file and no child process while the
   probe ran. Allowed, because they carry no audio: the event loop's internal socketpair,
   loading the PortAudio library, and ``ldconfig -p`` (with its /dev/null), which
   ``ctypes.util.find_library`` runs when sounddevice is first imported.

What an audit hook cannot see is C code: the connection to the sound server through which
the audio arrives is libpulse's. Item 2 covers files C code might write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from agents.probes.room import RoomResult, RoomSettings, measure_room

from . import reference
from .conftest import Pulse, Sounds, run, stop

pytestmark = [pytest.mark.audio, pytest.mark.slow]

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_FORBIDDEN_PREFIXES = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty")
_FORBIDDEN = {
    "os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.truncate", "os.link", "os.symlink",
    "os.chmod", "os.chown", "os.utime", "shutil.copyfile", "shutil.move", "shutil.rmtree",
    "tempfile.mkstemp", "tempfile.mkdtemp", "sqlite3.connect", "urllib.Request", "http.client.connect",
}  # fmt: skip


class Audit:
    """One PEP 578 hook per process (hooks cannot be removed); it records only while armed."""

    installed: Audit | None = None

    def __init__(self) -> None:
        self.armed = False
        self.events: list[tuple[str, str]] = []

    @classmethod
    def get(cls) -> Audit:
        if cls.installed is None:
            cls.installed = Audit()
            sys.addaudithook(cls.installed.hook)
        return cls.installed

    def hook(self, event: str, args: tuple) -> None:
        if not self.armed:
            return
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writes and path != "/dev/null":
                self.events.append((event, repr(args)[:200]))
        elif event in _FORBIDDEN or event.startswith(_FORBIDDEN_PREFIXES):
            if event == "socket.__new__":
                return  # asyncio's self-pipe (socketpair); connect/bind/send would show separately
            if event == "subprocess.Popen" and args and str(args[0]).endswith("ldconfig"):
                return  # ctypes.util.find_library("portaudio") at sounddevice's first import
            self.events.append((event, repr(args)[:200]))


class AudioFinder:
    """Finds any trace of a known signal (its int16 samples) in bytes or text.

    Byte traces are 8-byte windows: 4 consecutive samples as int16, 2 as float32, 1 as
    float64, each little-endian, at every sample position where the signal is not a pause.
    """

    def __init__(self, samples_int16: np.ndarray) -> None:
        s = np.ascontiguousarray(samples_int16, dtype="<i2")
        self.values = s.astype(float) / 32768.0
        self.ints = s.astype(np.int64)
        windows = np.lib.stride_tricks.sliding_window_view(s, 4)
        ordered = np.sort(windows, axis=1)
        lively = (np.diff(ordered, axis=1) != 0).sum(axis=1) >= 2  # >= 3 distinct values
        n = windows.shape[0]
        as_int16 = np.ascontiguousarray(windows).view("<u8").ravel()
        f32 = (s.astype(np.float32) / np.float32(32768)).astype("<f4")
        as_float32 = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(f32, 2)[:n]).view("<u8").ravel()
        as_float64 = self.values[:n].astype("<f8").view("<u8")
        self.keys = np.unique(np.concatenate([as_int16[lively], as_float32[lively], as_float64[lively]]))

    def in_bytes(self, blob: bytes) -> bool:
        for offset in range(8):
            count = (len(blob) - offset) // 8
            if count <= 0:
                continue
            words = np.frombuffer(blob, dtype="<u8", count=count, offset=offset)
            found = np.minimum(np.searchsorted(self.keys, words), self.keys.size - 1)
            if (self.keys[found] == words).any():
                return True
        return False

    def in_text(self, text: str) -> bool:
        numbers = [float(t) for t in re.findall(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text)]
        for k in range(len(numbers) - 2):
            triple = numbers[k : k + 3]
            if all(abs(t) < 1e-4 for t in triple):
                continue  # zeros match every pause
            for series, tolerance in ((self.values, 2e-5), (self.ints, 0.5)):
                if max(abs(t) for t in triple) > np.abs(series).max() + tolerance:
                    continue
                hits = np.flatnonzero(np.abs(series[:-2] - triple[0]) <= tolerance)
                for i in hits:
                    if abs(series[i + 1] - triple[1]) <= tolerance and abs(series[i + 2] - triple[2]) <= tolerance:
                        return True
        return self.in_bytes(text.encode("utf-8", "surrogateescape"))


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    files: dict[str, tuple[int, int]] = {}
    for root in roots:
        for path in root.rglob("*"):
            stat = path.lstat()
            files[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return files


@pytest.fixture
def signal_file(sounds: Sounds, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("privacy-signal") / "signal.wav"
    run("sox", str(sounds.path("tones.wav")), str(sounds.path("speech1.wav")), str(sounds.path("speech0.wav")), str(path))
    return path


def test_finder_finds_every_encoding_it_looks_for(signal_file: Path) -> None:
    samples, _ = reference.read_wav(signal_file)
    ints = np.rint(samples * 32768).astype(np.int16)
    finder = AudioFinder(ints)
    middle = slice(20000, 20006)
    assert finder.in_bytes(b"prefix" + ints[middle].astype("<i2").tobytes() + b"suffix")
    assert finder.in_bytes((ints[middle].astype(np.float32) / 32768).astype("<f4").tobytes())
    assert finder.in_bytes((ints[middle].astype(float) / 32768).astype("<f8").tobytes())
    assert finder.in_text(repr(ints[middle].astype(np.float32) / 32768))  # numpy's array repr
    assert finder.in_text(str(ints[middle].tolist()))
    assert finder.in_text(json.dumps((ints[middle] / 32768).tolist()))
    assert not finder.in_text("laeq_dbfs=-34.09, l90_dbfs=-34.22, duration_s=3.0, 16000")
    assert not finder.in_bytes(bytes(range(256)) * 4)


def test_audit_hook_sees_writes_sockets_and_processes(tmp_path: Path) -> None:
    import socket
    import subprocess

    audit = Audit.get()
    audit.events.clear()
    audit.armed = True
    try:
        (tmp_path / "written.txt").write_text("x")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"x", ("127.0.0.1", 9))
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    finally:
        audit.armed = False
    seen = {event for event, _ in audit.events}
    assert {"open", "socket.sendto", "subprocess.Popen"} <= seen


def test_the_probe_leaves_no_trace_of_the_audio(
    pulse: Pulse,
    signal_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    samples, _ = reference.read_wav(signal_file)
    finder = AudioFinder(np.rint(samples * 32768).astype(np.int16))

    home, tmp, cwd = tmp_path / "home", tmp_path / "tmp", tmp_path / "cwd"
    for directory in (home, tmp, cwd):
        directory.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp))
    for name, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"), ("XDG_DATA_HOME", ".local/share")):
        monkeypatch.setenv(name, str(home / sub))
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.chdir(cwd)
    caplog.set_level(logging.DEBUG)
    before = snapshot(home, tmp, cwd)

    audit = Audit.get()
    player = pulse.play(signal_file)
    try:
        time.sleep(0.3)
        audit.events.clear()
        audit.armed = True
        try:
            result = asyncio.run(measure_room(RoomSettings(seconds=5.0)))
        finally:
            audit.armed = False
    finally:
        stop(player)

    # The probe did hear it (otherwise finding nothing would prove nothing).
    assert result.available and not result.silent
    assert result.voice_ratio is not None and result.voice_ratio > 0.2

    # 3. No writes, no network, no processes.
    assert audit.events == []

    # 2. No files.
    assert snapshot(home, tmp, cwd) == before

    # The result holds numbers, flags and short codes only.
    for field in dataclasses.fields(RoomResult):
        value = getattr(result, field.name)
        assert value is None or isinstance(value, (bool, int, float, str)), field.name
        if isinstance(value, str):
            assert len(value) <= 120, field.name

    # 1. No trace of the audio in anything it produced.
    captured = capfd.readouterr()
    texts = [repr(result), str(result), json.dumps(dataclasses.asdict(result)), captured.out, captured.err]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
    for text in texts:
        assert not finder.in_text(text), text[:300]
