"""The browser check page (monitor/static/check/) in Debian's Chromium with fake media devices,
opened from a real check link of a real monitor: the monitor serves the page with its CSP
(monitor/http/link_page.py), answers the link's API, the probe endpoints and the WebRTC probe
stream, judges the posted check and stores it (docs/browser-check.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sessionready.typed import rfc3339
from tests.conftest import CHROMEDRIVER, CHROMIUM, HEADLESS_CHROMIUM, Monitor, new_token, require_or_fail, start_monitor


FIXED_SHORT = "link_adaptive = false\nlink_udp_seconds = 1\n"


def start_page_monitor(folder: Path, phases: str = FIXED_SHORT) -> Monitor:
    """A monitor for page tests. ``phases``: [monitor] lines for the idle phase; by default a
    fixed 1 s (tests/browser_check/test_adaptive.py runs the monitor's adaptive rule)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "monitor.toml"
    # Any UDP port for the probe streams: other monitors on this machine may hold the default range.
    # Short network phases: these tests prove the page, the lab and the benchmarks its numbers
    # (about 10 s less per page run).
    config.write_text(f"[monitor]\nrtc_port_min = 0\nrtc_port_max = 0\nlink_load_seconds = 1.5\n{phases}")
    return start_monitor(folder / "monitor", "--config", str(config))


_start = start_page_monitor


@pytest.fixture(scope="session")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    running = _start(tmp_path_factory.mktemp("browser-check"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def own_monitor(tmp_path: Path) -> Iterator[Monitor]:
    """A monitor of the test's own: refused secrets are counted per address (then delayed), so a
    test that uses a revoked link must not slow the other tests' links down."""
    running = _start(tmp_path / "own")
    try:
        yield running
    finally:
        running.stop()


@dataclass
class CheckLink:
    """A check link for a client with a session in half an hour, made through the monitor's API."""

    monitor: Monitor
    staff: str  # an it token
    link_id: str
    secret: str
    participant_id: str

    def page(self, secret: str | None = None) -> str:
        return f"{self.monitor.url}/c/{secret or self.secret}"

    @property
    def origin(self) -> str:
        return self.monitor.url

    def checks(self) -> list[dict]:
        """The checks made through this link, newest first, as the monitor stored them."""
        status, raw = self.monitor.request(
            "GET",
            "/api/v1/link/checks",
            None,
            headers={"Authorization": f"Link {self.secret}"},
        )
        assert status == 200, raw
        return json.loads(raw)["checks"]

    def revoke(self) -> None:
        status, _ = self.monitor.request(
            "DELETE", f"/api/v1/check-links/{self.link_id}", self.staff
        )
        assert status == 204


_links = iter(range(1, 1_000_000))


def make_link(monitor: Monitor) -> CheckLink:
    n = next(_links)
    staff = new_token(monitor, "it", f"bc-it{n}")
    client = f"bc-client{n}"
    status, made = monitor.json(
        "POST",
        "/api/v1/sessions",
        staff,
        {
            "therapist_id": f"bc-t{n}",
            "client_id": client,
            "start": rfc3339(time.time() + 1800),
            "planned_duration_s": 3000,
        },
    )
    assert status == 201, made
    status, created = monitor.json(
        "POST",
        "/api/v1/check-links",
        staff,
        {"participant_id": client, "session_id": made["session"]["session_id"]},
    )
    assert status == 201, created
    return CheckLink(monitor, staff, created["link_id"], created["secret"], client)


@pytest.fixture
def link(monitor: Monitor) -> CheckLink:
    return make_link(monitor)


def run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stderr


def make_pink(
    path: Path, level_db: float, rate: int = 48000, seconds: int = 20
) -> Path:
    """Pink noise whose unweighted RMS, as sox measures it ('RMS lev dB'), is ``level_db``."""
    from tests.audio import reference

    raw = path.with_name(path.stem + "-raw.wav")
    # -R: sox's repeatable mode (fixed seed): every run plays the same noise.
    run(
        "sox",
        "-R",
        "-n",
        "-r",
        str(rate),
        "-c",
        "1",
        "-b",
        "16",
        str(raw),
        "synth",
        str(seconds),
        "pinknoise",
        "vol",
        "0.1",
    )
    gain_db = level_db - reference.sox_rms_db(raw)
    run("sox", str(raw), "-b", "16", str(path), "vol", f"{10 ** (gain_db / 20):.9f}")
    return path


def chrome(
    audio_file: Path,
    *,
    window: tuple[int, int] = (1280, 800),
    fps: int | None = None,
    fake_ui: bool = True,
    video_file: Path | None = None,
):
    """Debian's Chromium through the system chromedriver, headless, with fake media devices.

    ``fake_ui``: every permission prompt is answered "allow"; without it, the test sets each
    permission itself (DevTools Browser.setPermission), e.g. to deny the microphone.
    ``video_file``: a .y4m the fake camera plays (its size and frame rate: ``write_y4m``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_or_fail(
        shutil.which("chromium") is not None
        and shutil.which("chromedriver") is not None,
        "Debian chromium and chromium-driver are not installed",
    )
    require_or_fail(shutil.which("sox") is not None, "sox is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    fake_device = "--use-fake-device-for-media-stream" + (f"=fps={fps}" if fps else "")
    for argument in (
        *HEADLESS_CHROMIUM,
        *(["--use-fake-ui-for-media-stream"] if fake_ui else []),
        fake_device,
        f"--use-file-for-fake-audio-capture={audio_file}",
        *([f"--use-file-for-fake-video-capture={video_file}"] if video_file else []),
        f"--window-size={window[0]},{window[1]}",
    ):
        options.add_argument(argument)
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"}
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # Collect CSP violations from the first script on: CDP-injected scripts are not subject to the CSP.
    driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {
            "source": "window.__csp = []; document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
        },
    )
    return driver


def wait_text(driver, element_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = driver.execute_script(
            f"const e = document.getElementById('{element_id}'); return e && !e.closest('[hidden]') ? e.textContent : '';"
        )
        if text:
            return text
        time.sleep(0.2)
    raise AssertionError(
        f"timed out after {timeout_s:g} s waiting for #{element_id}; page says: {driver.find_element('tag name', 'main').text}"
    )


def network_requests(driver) -> list[str]:
    """Every URL the browser asked for, from DevTools' performance log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def make_talk_over_noise(
    directory: Path, talk_db: float = -30.0, noise_db: float = -45.0, rate: int = 48000
) -> Path:
    """espeak-ng speech with short pauses, about 20 s, at ``talk_db`` (sox RMS) over pink noise at
    ``noise_db``: voices in the background, all the time (the fake microphone loops the file)."""
    from tests.audio import reference

    require_or_fail(shutil.which("espeak-ng") is not None, "espeak-ng is not installed")
    parts = []
    for index, sentence in enumerate(
        (
            "The weather was mild for the time of year.",
            "Please remember to bring the blue folder tomorrow morning.",
        )
    ):
        spoken = directory / f"espeak{index}.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en", "-w", str(spoken), sentence],
            check=True,
            capture_output=True,
        )
        resampled = directory / f"speech{index}.wav"
        run("sox", str(spoken), "-r", str(rate), "-c", "1", "-b", "16", str(resampled))
        parts.append(str(resampled))
    pause = directory / "pause.wav"
    run(
        "sox",
        "-n",
        "-r",
        str(rate),
        "-c",
        "1",
        "-b",
        "16",
        str(pause),
        "trim",
        "0",
        "0.3",
    )
    talk = directory / "talk-raw.wav"
    run("sox", *([parts[0], str(pause), parts[1], str(pause)] * 3), str(talk))
    scaled = directory / "talk.wav"
    run(
        "sox",
        str(talk),
        "-b",
        "16",
        str(scaled),
        "vol",
        f"{10 ** ((talk_db - reference.sox_rms_db(talk)) / 20):.9f}",
    )
    seconds = float(
        subprocess.run(
            ["soxi", "-D", str(scaled)], capture_output=True, text=True, check=True
        ).stdout
    )
    noise = make_pink(
        directory / "bed.wav", noise_db, rate=rate, seconds=int(seconds) + 1
    )
    mixed = directory / "talk-over-noise.wav"
    run(
        "sox",
        "-m",
        "-v",
        "1",
        str(scaled),
        "-v",
        "1",
        str(noise),
        "-b",
        "16",
        str(mixed),
        "trim",
        "0",
        str(seconds),
    )
    return mixed


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    pcm = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())
    return path


def make_reading(
    directory: Path,
    snr_db: float,
    speech_at_s: float,
    noise_db: float = -45.0,
    rate: int = 48000,
) -> tuple[Path, float]:
    """Pink noise with one sentence read into it at ``speech_at_s``, the speech scaled so that it
    stands ``snr_db`` above the noise floor as docs/room.md defines it (the CLI tests' reference:
    webrtcvad speaking time, A-weighted, over the noise's L90). Returns the file and the
    constructed ratio."""
    from tests.audio import reference

    require_or_fail(shutil.which("espeak-ng") is not None, "espeak-ng is not installed")
    spoken = directory / "sentence-raw.wav"
    subprocess.run(
        [
            "espeak-ng",
            "-v",
            "en",
            "-w",
            str(spoken),
            "A bright morning light came through the window and fell across the table.",
        ],
        check=True,
        capture_output=True,
    )
    resampled = directory / "sentence.wav"
    run("sox", str(spoken), "-r", str(rate), "-c", "1", "-b", "16", str(resampled))
    speech, _ = reference.read_wav(resampled)
    noise, _ = reference.read_wav(
        make_pink(directory / "reading-bed.wav", noise_db, rate=rate, seconds=16)
    )
    gain_db = reference.gain_for_snr_db(speech, noise, rate, snr_db, aggressiveness=2)
    mixed = noise.copy()
    start = round(speech_at_s * rate)
    mixed[start : start + speech.size] += speech * 10 ** (gain_db / 20)
    return write_wav(directory / f"reading-{snr_db:g}.wav", mixed, rate), snr_db


def write_y4m(path: Path, width: int, height: int, fps: int, frames: int = 8, *, black: bool = False) -> Path:
    """A YUV4MPEG2 file for Chromium's fake camera (--use-file-for-fake-video-capture), written
    here: ``frames`` 4:2:0 frames of ``width`` x ``height`` at ``fps`` (the header's F fps:1),
    which the camera plays in a loop. Chromium reads W, H and F from the header (its
    media/capture/video/file_video_capture_device.cc: only 4:2:0, F taken as whole frames/s)
    and delivers the file's own size and rate (measured: 640x480@30 and 320x240@5 arrive as such).

    ``black``: every frame video black (Y 16, chroma neutral). Otherwise a picture that is
    plainly not black: a horizontal luma ramp from 16 to 216 with a white bar that moves one
    step each frame."""
    if width % 2 or height % 2:
        raise ValueError("4:2:0 needs an even width and height")
    chroma = bytes([128]) * (width * height // 2)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        ramp = np.linspace(16, 216, width).astype(np.uint8)
        for index in range(frames):
            if black:
                luma = np.full((height, width), 16, dtype=np.uint8)
            else:
                luma = np.tile(ramp, (height, 1))
                start = index * width // frames
                luma[:, start : start + width // 10] = 235
            out.write(b"FRAME\n" + luma.tobytes() + chroma)
    return path
