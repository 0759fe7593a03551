"""The check page end to end in Chromium with fake devices (docs/browser-check.md section 5).

The page is opened from a real check link of a real monitor, which serves it with its CSP,
runs the probe stream, judges the check and stores it: what the tests read back is the report
the monitor stored. Ground truth comes from outside the page: the WAV's A-weighted level from
the file itself (tests/audio/reference.py, the IEC formula over the whole signal's FFT, after
sox set its level), the fake camera's frame rate from Chromium's own flag, the browser's own
logs of what it requested and of CSP violations, and axe-core for accessibility.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from tests.audio import reference
from tests.browser_check.conftest import (
    CheckLink,
    chrome,
    make_link,
    make_pink,
    make_reading,
    make_talk_over_noise,
    network_requests,
    wait_text,
)
from tests.conftest import Monitor

FAKE_FPS = 15  # --use-fake-device-for-media-stream=fps=15: what Chromium's fake camera delivers
AXE = Path(__file__).parent / "vendor" / "axe.min.js"


def click_start(driver) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if driver.execute_script("return !document.getElementById('start').disabled;"):
            # Keyboard, as a person without a mouse would: focus the button and press Enter.
            driver.execute_script("document.getElementById('start').focus();")
            driver.switch_to.active_element.send_keys("\n")
            return
        time.sleep(0.1)
    raise AssertionError(
        "Start never became usable: " + driver.find_element("tag name", "main").text
    )


def answer_speaker(driver, timeout_s: float = 90, answer: str = "Yes") -> None:
    """Press ``answer`` (by keyboard: "Yes" has the focus, Tab moves on) when the page asks
    whether the tone was heard."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if driver.execute_script(
            "return !document.getElementById('prompt').hidden && document.getElementById('prompt-text').textContent.includes('hear the tone');"
        ):
            focused = driver.switch_to.active_element
            assert focused.text == "Yes", (
                f"the focus is on {focused.text!r}, not on the first answer"
            )
            while focused.text != answer:
                focused.send_keys("\t")
                focused = driver.switch_to.active_element
            focused.send_keys(" ")
            return
        time.sleep(0.2)
    raise AssertionError(
        "the page never asked about the tone: "
        + driver.find_element("tag name", "main").text
    )


def wait_for_step(driver, step: str, state: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if driver.execute_script(
            f"return document.querySelector('[data-step=\"{step}\"]').dataset.state === '{state}';"
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"step {step} never became {state}")


def run_check(
    driver, link: CheckLink, shots: Path | None = None, label: str = "", heard: str = "Yes"
) -> dict:
    """Open the link, press Start, answer the speaker question; the report the monitor stored."""
    before = len(link.checks())
    driver.get(link.page())
    wait_text(driver, "title", 10)
    if shots:
        ready = time.monotonic() + 10
        while (
            driver.execute_script("return document.getElementById('start').disabled;")
            and time.monotonic() < ready
        ):
            time.sleep(0.1)
        driver.save_screenshot(str(shots / f"{label}-1-start.png"))
    click_start(driver)
    if shots:
        wait_for_step(driver, "down", "running")
        driver.save_screenshot(str(shots / f"{label}-2-progress.png"))
    answer_speaker(driver, answer=heard)
    wait_text(driver, "verdict-title", 60)
    if shots:
        driver.save_screenshot(str(shots / f"{label}-3-result.png"))
    checks = link.checks()
    assert len(checks) == before + 1
    return checks[0]["report"]


def wait_for_text(
    driver, element_id: str, texts: tuple[str, ...], timeout_s: float
) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = driver.find_element("id", element_id).text
        if text in texts:
            return text
        time.sleep(0.2)
    raise AssertionError(f"#{element_id} never said one of {texts}")


def console_errors(driver) -> list[str]:
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE"
    ]


def axe_violations(driver) -> list[dict]:
    """axe-core injected through WebDriver (not through the page: its CSP stays as it is)."""
    driver.execute_script(AXE.read_text())
    driver.set_script_timeout(60)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; axe.run(document).then(r => done(r.violations), e => done([{impact: 'critical', id: String(e)}]));"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": len(v.get("nodes", []))}
        for v in result
    ]


def test_desktop_end_to_end(link: CheckLink, tmp_path: Path) -> None:
    """A full check at 1280x800 through a real monitor: the verdict first in the monitor's words,
    the probe stream's network numbers, the room's LAeq within 1.5 dB of the file's, the camera's
    size and frame rate, nothing to another origin, no CSP violation, no serious accessibility
    problem."""
    wav = make_pink(tmp_path / "pink-30.wav", -30.0)
    samples, rate = reference.read_wav(wav)
    truth_laeq = reference.laeq_db(samples, rate)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    driver = chrome(wav, window=(1280, 800), fps=FAKE_FPS)
    try:
        driver.get(link.page())
        wait_text(driver, "title", 10)
        start_violations = axe_violations(driver)
        report = run_check(driver, link, shots, "desktop")
        driver.execute_script("document.getElementById('numbers').open = true;")
        result_violations = axe_violations(driver)
        page_text = driver.find_element("tag name", "main").text
        verdict = driver.find_element("id", "verdict-title").text
        focused = driver.switch_to.active_element.get_attribute("id")
        csp = driver.execute_script("return window.__csp;")
        errors = console_errors(driver)
        urls = network_requests(driver)
        entries = driver.execute_script(
            "return performance.getEntries().map(e => e.name).filter(n => /^[a-z]+:/.test(n));"
        )
        sample_rate = driver.execute_script("return new AudioContext().sampleRate;")
        # "Hear yourself": recorded and played back on the device; not one request meanwhile.
        driver.find_element("id", "hear-start").click()
        heard = wait_for_text(
            driver,
            "hear-state",
            (
                "Done. The recording is deleted.",
                "The recording could not be made or played.",
            ),
            30,
        )
        hear_requests = [
            u for u in network_requests(driver) if not u.startswith(("blob:", "data:"))
        ]
        csp_after = driver.execute_script("return window.__csp;")
    finally:
        driver.quit()
    print(
        json.dumps(
            {
                k: report[k]
                for k in (
                    "verdict",
                    "reasons",
                    "network",
                    "room",
                    "devices",
                    "browser",
                    "machine",
                )
            },
            indent=1,
        )
    )
    print(
        f"LAeq page {report['room']['laeq_dbfs']} dBFS(A), file {truth_laeq:.2f}; context {sample_rate} Hz; screenshots in {shots}"
    )
    print("axe at start:", start_violations, "at result:", result_violations)

    # The verdict first and in the monitor's words, each reason with its message and fix.
    words = {"ready": "✔ Ready", "at_risk": "! At risk", "not_ready": "✖ Not ready"}
    assert verdict == words[report["verdict"]]
    assert focused == "verdict-title"
    for reason in report["reasons"]:
        assert (
            reason["message"] in page_text
            and f"What to do: {reason['fix']}" in page_text
        )
    if report["reasons"]:
        assert (
            page_text.index(verdict)
            < page_text.index(report["reasons"][0]["message"])
            < page_text.index("The numbers")
        )

    # The room: pink noise at a level sox set, its A-weighted level as the formula says.
    room = report["room"]
    assert room["available"] and room["problem"] is None and not room["silent"]
    assert abs(room["laeq_dbfs"] - truth_laeq) <= 1.5, (room["laeq_dbfs"], truth_laeq)
    assert (
        room["l90_dbfs"] <= room["laeq_dbfs"] + 0.5
        and room["l10_dbfs"] >= room["l90_dbfs"]
        and room["lmax_dbfs"] >= room["l10_dbfs"]
    )
    assert room["voice_ratio"] == 0  # steady noise is not a voice
    assert (
        room["speech_detected"] is False and room["snr_db"] is None
    )  # nobody read the sentence
    assert room["clipping_ratio"] == 0
    devices = report["devices"]
    assert devices["microphone"] == {"state": "ok", "signal": True}

    # The camera: the size asked for (the fake device makes any size) at the flag's frame rate.
    camera = devices["camera"]
    assert camera["state"] == "ok" and camera["black"] is False
    assert (camera["width"], camera["height"]) == (1280, 720)
    assert abs(camera["fps"] - FAKE_FPS) <= 0.1 * FAKE_FPS, camera
    assert devices["speaker"] == {"state": "heard"}

    # The network: the probe stream ran (loopback: nothing lost), throughput was measured.
    network = report["network"]
    assert network["udp_error"] is None, network
    assert (
        network["rtt_ms"]["p50"] > 0
        and network["loss"]["up"] == 0
        and network["loss"]["down"] == 0
    )
    assert (
        network["loaded_latency_ms"]["down"] is not None
        and network["loaded_latency_ms"]["up"] is not None
    )
    assert network["throughput_error"] is None
    assert (
        network["throughput_mbps"]["down"] > 0 and network["throughput_mbps"]["up"] > 0
    )
    assert report["source"] == "browser" and report["browser"].startswith("chrome ")

    # Nothing left for another origin, and the CSP was never violated.
    outside = [
        u
        for u in urls + entries
        if not u.startswith((link.origin + "/", "data:", "blob:"))
    ]
    assert not outside, outside
    assert any("/api/v1/link/rtc" in u for u in urls), (
        "the DevTools log missed requests"
    )
    assert csp == [] and csp_after == [], (csp, csp_after)
    assert errors == [], errors
    assert heard == "Done. The recording is deleted."
    assert hear_requests == [], hear_requests
    assert not [
        v
        for v in start_violations + result_violations
        if v["impact"] in ("serious", "critical")
    ]


def test_phone_width(link: CheckLink, tmp_path: Path) -> None:
    """At 360x740 nothing scrolls sideways and the verdict is on the first screen."""
    wav = make_pink(tmp_path / "pink-40.wav", -40.0)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    driver = chrome(wav, window=(360, 740))
    try:
        driver.set_window_size(360, 740)
        report = run_check(driver, link, shots, "phone")
        width = driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth];"
        )
        verdict_box = driver.execute_script(
            "const r = document.getElementById('verdict').getBoundingClientRect(); return [r.top, r.bottom, window.innerHeight];"
        )
        errors = console_errors(driver)
    finally:
        driver.quit()
    print(f"screenshots in {shots}; width {width}; verdict box {verdict_box}")
    assert width[0] <= width[1], width
    assert verdict_box[1] <= verdict_box[2], verdict_box
    assert report["room"]["available"]
    assert errors == [], errors


def test_microphone_denied(link: CheckLink, tmp_path: Path) -> None:
    """No microphone permission: one clear sentence, the check goes on, no room in the result.
    The person also answers "No" to the tone: the monitor's device reasons for both, shown on
    the page with their fixes (docs/quality-model.md, "The devices")."""
    wav = make_pink(tmp_path / "pink-30.wav", -30.0)
    driver = chrome(wav, fake_ui=False)
    try:
        for name, setting in (("camera", "granted"), ("microphone", "denied")):
            driver.execute_cdp_cmd(
                "Browser.setPermission",
                {
                    "permission": {"name": name},
                    "setting": setting,
                    "origin": link.origin,
                },
            )
        report = run_check(driver, link, heard="No")
        reasons_text = driver.find_element("id", "reasons").text
        step = driver.execute_script(
            "return document.querySelector('[data-step=\"room\"] .step-state').textContent;"
        )
        numbers = driver.find_element("id", "numbers-list").get_attribute("textContent")
        verdict = driver.find_element("id", "verdict-title").text
    finally:
        driver.quit()
    sentence = "not allowed: the browser was not given permission to use the microphone"
    assert step == sentence
    assert sentence in numbers
    assert verdict.split(" ", 1)[1] in ("Ready", "At risk", "Not ready")
    assert report["devices"]["microphone"] == {"state": "denied", "signal": None}
    room = report["room"]
    assert room["available"] is False and room["problem"] == "not_allowed"
    assert all(
        room[key] is None
        for key in (
            "laeq_dbfs",
            "l90_dbfs",
            "l10_dbfs",
            "lmax_dbfs",
            "voice_ratio",
            "snr_db",
        )
    )
    # The rest still ran.
    assert report["devices"]["camera"]["state"] == "ok"
    assert report["network"]["throughput_mbps"]["down"] > 0
    # The denied microphone is information (not measured, by choice), the unheard tone a
    # warning; no second word on the microphone from the room.
    assert report["devices"]["speaker"] == {"state": "not_heard"}
    by_code = {r["code"]: r for r in report["reasons"]}
    assert by_code["microphone_not_allowed"]["severity"] == "info"
    assert by_code["speaker_not_heard"]["severity"] == "warning"
    assert not {"no_microphone", "microphone_unavailable", "microphone_silent"} & set(by_code)
    assert report["verdict"] != "ready" and verdict.split(" ", 1)[1] != "Ready"
    for code, word in (("microphone_not_allowed", "Good to know"), ("speaker_not_heard", "Should fix")):
        shown = f"{word}\n{by_code[code]['message']}\nWhat to do: {by_code[code]['fix']}"
        assert shown in reasons_text, (shown, reasons_text)


def test_background_voices(link: CheckLink, tmp_path: Path) -> None:
    """Speech 15 dB over pink noise all the time: the voice detector finds voices, and the
    monitor says so in its words."""
    wav = make_talk_over_noise(tmp_path)
    driver = chrome(wav)
    try:
        report = run_check(driver, link)
    finally:
        driver.quit()
    room = report["room"]
    print("voices:", room, [r["code"] for r in report["reasons"]])
    # The CLI's webrtcvad + gate finds 0.51-0.57 of frames in speech 10 dB over pink noise.
    assert room["voice_ratio"] >= 0.3, room


def test_revoked_link(own_monitor: Monitor, tmp_path: Path) -> None:
    """A link revoked while its page is open: the next call answers 401 and the page says so
    in one sentence."""
    link = make_link(own_monitor)
    driver = chrome(make_pink(tmp_path / "pink.wav", -40.0, seconds=2))
    try:
        driver.get(link.page())
        wait_text(driver, "title", 10)
        wait = time.monotonic() + 10
        while (
            driver.execute_script("return document.getElementById('start').disabled;")
            and time.monotonic() < wait
        ):
            time.sleep(0.1)
        link.revoke()
        click_start(driver)
        error = wait_text(driver, "error", 60)
    finally:
        driver.quit()
    assert (
        error
        == "This check link has expired or was withdrawn. Please ask your practice for a new link."
    )
    # The page stopped at the first refusals instead of sending one per stream: fewer than the
    # 5 refused secrets an address has free, so another client's valid link from the same
    # address (a shared network) still works at once.
    other = make_link(own_monitor)
    status, raw = own_monitor.request(
        "GET", "/api/v1/link", None, headers={"Authorization": f"Link {other.secret}"}
    )
    assert status == 200, raw


def test_too_many_checks(link: CheckLink, tmp_path: Path) -> None:
    """A link runs at most 12 checks an hour: the 13th, the page's, is 429 and one sentence."""
    body = {
        "schema_version": 1, "started_at": "2026-12-07T09:00:00Z", "duration_s": 1.0, "browser": {"family": "chrome", "major": 131},
        "rtc": None, "rtc_error": "rtc_failed", "throughput": {"down_mbps": None, "up_mbps": None, "error": "no_data"},
        "devices": {"camera": {"state": "not_tested"}, "microphone": {"state": "not_tested"}, "speaker": {"state": "not_tested"}},
        "room": None, "device": None,
    }  # fmt: skip
    for _ in range(12):
        status, raw = link.monitor.request(
            "POST",
            "/api/v1/link/checks",
            None,
            json.dumps(body).encode(),
            headers={"Authorization": f"Link {link.secret}"},
        )
        assert status == 201, raw
    driver = chrome(make_pink(tmp_path / "pink.wav", -40.0))
    try:
        driver.get(link.page())
        click_start(driver)
        answer_speaker(driver)
        error = wait_text(driver, "error", 60)
        start_visible = driver.execute_script(
            "return !document.getElementById('intro').hidden;"
        )
    finally:
        driver.quit()
    assert (
        error
        == "Too many checks were run with this link in the last hour. Please try again later."
    )
    assert start_visible


def test_a_weighting_follows_the_formula(link: CheckLink, tmp_path: Path) -> None:
    """The page's IIR A-weighting against the IEC 61672-1 formula (computed here, in Python),
    at the rates browsers run audio at: within 0.25 dB from 20 Hz to 16 kHz (0.45 fs below)."""
    driver = chrome(make_pink(tmp_path / "pink.wav", -40.0, seconds=2))
    try:
        driver.get(link.page())
        wait_text(driver, "title", 10)
        driver.set_script_timeout(30)
        designs = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "import('/c/static/room.js').then(m => done([44100, 48000, 96000].map(fs => m.aWeightingDesign(fs))));"
        )
    finally:
        driver.quit()
    for design in designs:
        fs = design["sampleRate"]
        freqs = np.geomspace(20, min(16000, 0.45 * fs), 400)
        z = np.exp(-1j * 2 * np.pi * freqs / fs)
        response = np.full(freqs.shape, design["gain"], dtype=complex)
        for section in design["sections"]:
            b, a = section["b"], section["a"]
            response *= (b[0] + b[1] * z + b[2] * z * z) / (
                a[0] + a[1] * z + a[2] * z * z
            )
        error = 20 * np.log10(np.abs(response)) - np.array(
            [reference.a_db(f) for f in freqs]
        )
        worst = float(np.max(np.abs(error)))
        print(
            f"{fs} Hz: worst {worst:.3f} dB (the page says {design['maxDeviationDb']:.3f})"
        )
        assert worst <= 0.25, (fs, worst)
        assert math.isclose(worst, design["maxDeviationDb"], abs_tol=0.02)


@pytest.mark.parametrize(
    ("ua", "family", "major"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "chrome",
            131,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
            "edge",
            131,
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "firefox",
            133,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Safari/605.1.15",
            "safari",
            18,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1",
            "safari",
            18,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
            "chrome",
            131,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0",
            "other",
            115,
        ),
        ("curl/8.5.0", "other", 8),
        ("", "other", None),
    ],
)
def test_browser_family_from_user_agent(
    ua: str, family: str, major: int | None, browser_page
) -> None:
    got = browser_page.execute_async_script(
        "const [ua, done] = arguments; import('/c/static/devices.js').then(m => done(m.parseUserAgent(ua)));",
        ua,
    )
    assert got == {"family": family, "major": major}


@pytest.fixture(scope="module")
def browser_page(monitor, tmp_path_factory: pytest.TempPathFactory):
    """One Chromium on the page's origin for the pure-function tests."""
    made = make_link(monitor)
    wav = make_pink(tmp_path_factory.mktemp("ua") / "pink.wav", -40.0, seconds=2)
    driver = chrome(wav)
    try:
        driver.get(made.page())
        wait_text(driver, "title", 10)
        driver.set_script_timeout(30)
        yield driver
    finally:
        driver.quit()


def test_speech_to_noise(link: CheckLink, tmp_path: Path) -> None:
    """The "read this sentence" step: a sentence 20 dB over the room, read when the page asks
    for it (the fake microphone plays the file from its start when the room's capture opens:
    quiet for 4 s, then the sentence), gives the speech-to-noise ratio within 3 dB."""
    wav, constructed = make_reading(tmp_path, 20.0, speech_at_s=4.2)
    driver = chrome(wav)
    try:
        report = run_check(driver, link)
    finally:
        driver.quit()
    room = report["room"]
    print("reading:", room)
    assert room["speech_detected"] is True
    assert abs(room["snr_db"] - constructed) <= 3.0, room
    assert room["voice_ratio"] <= 0.05, room  # the quiet part was quiet
