"""The audio lab: a private PulseAudio server with a virtual microphone, and the sounds to play.

See /work/shared/TESTING.md, "Audio lab". A mono null sink "room" at 16 kHz is the room; its
monitor source is the default source, which PortAudio's "pulse" device records from. What a
test plays into the sink with paplay comes back bit for bit to the probe.

Needs Debian pulseaudio, pulseaudio-utils, libasound2-plugins, libportaudio2, sox and
espeak-ng. Without them these tests skip, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import ctypes.util
import importlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import unavailable

from . import reference

RATE = 16000
SINK = "room"
SENTENCES = (
    "A bright morning light came through the window and fell across the table.",
    "The train to the coast leaves at nine, and the next one an hour later.",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "audio: needs the audio lab (PulseAudio virtual microphone, sox, espeak-ng)")




def missing(*tools: str) -> list[str]:
    return [tool for tool in tools if shutil.which(tool) is None]


def require_tools(*tools: str) -> None:
    gone = missing(*tools)
    if gone:
        unavailable("missing " + ", ".join(gone) + " (Debian pulseaudio pulseaudio-utils sox espeak-ng)")


def require_portaudio() -> None:
    if ctypes.util.find_library("portaudio") is None:
        unavailable("PortAudio library missing (Debian libportaudio2)")
    try:
        importlib.import_module("sounddevice")
    except (ImportError, OSError) as exc:
        unavailable(f"sounddevice cannot be imported: {exc}")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


# --- Sounds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sounds:
    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    def pink(self, level_db: float) -> Path:
        """Pink noise whose unweighted RMS (sox 'RMS lev dB') is ``level_db``."""
        return self.directory / f"pink{int(level_db)}.wav"


def scale_to(source: Path, target: Path, gain_db: float) -> None:
    run("sox", str(source), "-b", "16", str(target), "vol", f"{10 ** (gain_db / 20):.9f}")


@pytest.fixture(scope="session")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> Sounds:
    """Files made with sox and espeak-ng, 16 kHz mono 16-bit."""
    require_tools("sox", "espeak-ng")
    directory = tmp_path_factory.mktemp("sounds")
    raw = directory / "pink-raw.wav"
    # -R: sox's repeatable mode (fixed seed), so every run plays the same noise.
    run("sox", "-R", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(raw), "synth", "16", "pinknoise", "vol", "0.1")
    raw_db = reference.sox_rms_db(raw)
    for level in (-50, -45, -40, -30):
        scale_to(raw, directory / f"pink{level}.wav", level - raw_db)
    run("sox", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(directory / "tone1k.wav"), "synth", "8", "sine", "1000", "vol", "0.1")
    # A recognisable tone sequence for the privacy test: 440, 660, 880, 1320 Hz, 0.25 s each.
    parts = []
    for index, freq in enumerate((440, 660, 880, 1320)):
        part = directory / f"seq{index}.wav"
        run("sox", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(part), "synth", "0.25", "sine", str(freq), "vol", "0.3")
        parts.append(str(part))
    run("sox", *parts, *parts, *parts, *parts, str(directory / "tones.wav"))
    for index, sentence in enumerate(SENTENCES):
        spoken = directory / f"espeak{index}.wav"
        run("espeak-ng", "-v", "en", "-w", str(spoken), sentence)
        run("sox", str(spoken), "-r", str(RATE), "-c", "1", "-b", "16", str(directory / f"speech{index}.wav"))
    # Background talk: both sentences, twice, with short pauses, at about -30 dBFS.
    pause = directory / "pause.wav"
    run("sox", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(pause), "trim", "0", "0.3")
    speech0, speech1 = str(directory / "speech0.wav"), str(directory / "speech1.wav")
    talk = directory / "talk-raw.wav"
    run("sox", speech0, str(pause), speech1, str(pause), speech0, str(pause), speech1, str(talk))
    scale_to(talk, directory / "talk.wav", -30 - reference.sox_rms_db(talk))
    return Sounds(directory)


# --- PulseAudio -----------------------------------------------------------------------------


@dataclass
class Pulse:
    runtime: Path
    env: dict[str, str]  # for pactl / paplay: reaches only this server

    def play(self, path: Path) -> subprocess.Popen:
        return subprocess.Popen(
            ["paplay", "-d", SINK, "--latency-msec=50", str(path)], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def pactl(self, *args: str) -> str:
        return run("pactl", *args, env=self.env)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pulse]:
    """A private PulseAudio server for this test session; this process's PortAudio uses it."""
    require_tools("pulseaudio", "pactl", "paplay", "pacat")
    require_portaudio()
    base = tmp_path_factory.mktemp("pulse")
    runtime, home = base / "run", base / "home"
    runtime.mkdir(mode=0o700)
    home.mkdir()
    socket = runtime / "pulse" / "native"
    server_env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(home)}
    for name in ("PULSE_SERVER", "PULSE_COOKIE", "PULSE_SINK", "PULSE_SOURCE"):
        server_env.pop(name, None)
    command = [
        "pulseaudio", "-D", "-n", "--exit-idle-time=-1", "--log-target=stderr",
        "--load=module-native-protocol-unix auth-anonymous=1",
        f"--load=module-null-sink sink_name={SINK} channels=1 rate={RATE}",
    ]  # fmt: skip
    if os.geteuid() == 0:
        command.insert(1, "--system=false")  # root gets a warning, not a system-wide server
    started = subprocess.run(command, env=server_env, capture_output=True, text=True, timeout=30, check=False)
    client_env = {**server_env, "PULSE_SERVER": f"unix:{socket}", "PULSE_COOKIE": str(home / ".config" / "pulse" / "cookie")}
    lab = Pulse(runtime, client_env)
    pid = _wait_for_server(lab, started)
    lab.pactl("set-default-source", f"{SINK}.monitor")
    # A null sink with no low-latency client renders in 2 s chunks, so a capture that starts
    # then waits up to 2 s for its first block. A stream of digital zeros (adding nothing to
    # what the tests play) keeps it rendering every few milliseconds.
    with open("/dev/zero", "rb") as zeros:
        keeper = subprocess.Popen(
            ["pacat", "--playback", "-d", SINK, "--latency-msec=20", "--raw", "--format=s16le", f"--rate={RATE}", "--channels=1"],
            stdin=zeros, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=client_env,
        )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        # libpulse inside PortAudio's ALSA "pulse" device reads these on every connect. The
        # cookie path keeps it from creating ~/.config/pulse/cookie in the user's home.
        patch.setenv("PULSE_SERVER", client_env["PULSE_SERVER"])
        patch.setenv("PULSE_COOKIE", client_env["PULSE_COOKIE"])
        try:
            yield lab
        finally:
            stop(keeper)
            _kill(pid)


def _wait_for_server(lab: Pulse, started: subprocess.CompletedProcess) -> int:
    deadline = time.monotonic() + 10
    pid_file = lab.runtime / "pulse" / "pid"
    while time.monotonic() < deadline:
        try:
            lab.pactl("info")
            return int(pid_file.read_text().strip())
        except (RuntimeError, OSError, ValueError):
            time.sleep(0.1)
    unavailable(f"PulseAudio did not start: {started.stderr.strip()[-500:]}")
    raise AssertionError("unreachable")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def room_monitor_muted(pulse: Pulse) -> Iterator[None]:
    pulse.pactl("set-source-mute", f"{SINK}.monitor", "1")
    try:
        yield
    finally:
        pulse.pactl("set-source-mute", f"{SINK}.monitor", "0")
