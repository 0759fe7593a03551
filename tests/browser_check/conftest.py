"""The browser check page (monitor/static/check/) in Debian's Chromium with fake media devices.

Until the monitor serves the page itself (monitor/http/check_links.py, link_page.py), a small
aiohttp server here serves the page's files at /c/<secret> and /c/static/<file> with the
contract's headers (docs/browser-check.md section 5) and fakes ONLY the two link endpoints the
page calls (GET /api/v1/link, POST /api/v1/link/checks), answering per the contract. The probe
endpoints are not faked: they are a real monitor's, reached through a pass-through that swaps the
page's `Authorization: Link <secret>` for a client token of that monitor (the monitor does not
accept Link credentials yet). The page sees one origin, as it will behind the real monitor.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import ClientSession, ClientTimeout, web

from agents.check import CheckOptions
from tests.conftest import Monitor, new_token, require_or_fail, start_monitor

STATIC = Path(__file__).resolve().parents[2] / "monitor" / "static" / "check"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SECRET = "Abcdefghijklmnopqrstuvwxyz012345"  # the shape of secrets.token_urlsafe(24)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; worker-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
SESSION = web.AppKey("session", ClientSession)
TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript"}

# The BrowserCheck body of docs/browser-check.md section 4: the fake refuses anything else (400),
# as the monitor will, so a field the page invents or forgets fails the test.
BODY_KEYS = {"schema_version", "started_at", "duration_s", "browser", "rtc", "rtc_error", "throughput", "devices", "room", "device"}
ROOM_KEYS = {"available", "problem", "mode", "laeq_dbfs", "l90_dbfs", "l10_dbfs", "lmax_dbfs", "voice_ratio", "snr_db", "speech_detected", "silent", "clipping_ratio"}
DEVICE_KEYS = {"cores", "memory_gb", "battery_pct", "battery_charging", "connection_type", "compute_pressure"}
CAMERA_STATES = {"ok", "denied", "absent", "error", "not_tested"}

# What the fake monitor answers: canned words, so the test can see the page shows the monitor's.
ANSWER_REASON = {
    "code": "low_upload",
    "severity": "warning",
    "message": "Fake monitor: the upload is slower than a video call needs.",
    "fix": "Fake monitor: sit closer to the router.",
}


def contract_problems(body: dict) -> list[str]:
    """What in a posted BrowserCheck does not follow the contract (empty when it does)."""
    problems = []
    if set(body) != BODY_KEYS:
        problems.append(f"top-level keys {sorted(set(body) ^ BODY_KEYS)}")
        return problems
    if body["schema_version"] != 1:
        problems.append("schema_version")
    if set(body["browser"]) != {"family", "major"} or body["browser"]["family"] not in {"chrome", "edge", "firefox", "safari", "other"}:
        problems.append(f"browser {body['browser']}")
    if (body["rtc"] is None) == (body["rtc_error"] is None):
        problems.append("exactly one of rtc and rtc_error")
    if set(body["throughput"]) != {"down_mbps", "up_mbps", "error"}:
        problems.append("throughput keys")
    devices = body["devices"]
    if set(devices) != {"camera", "microphone", "speaker"}:
        problems.append("devices keys")
    else:
        if set(devices["camera"]) != {"state", "width", "height", "fps", "black"} or devices["camera"]["state"] not in CAMERA_STATES:
            problems.append(f"camera {devices['camera']}")
        if set(devices["microphone"]) != {"state", "signal"} or devices["microphone"]["state"] not in CAMERA_STATES:
            problems.append(f"microphone {devices['microphone']}")
        if devices["speaker"] not in ({"state": "heard"}, {"state": "not_heard"}, {"state": "not_tested"}):
            problems.append(f"speaker {devices['speaker']}")
    if set(body["room"]) != ROOM_KEYS:
        problems.append(f"room keys {sorted(set(body['room']) ^ ROOM_KEYS)}")
    if set(body["device"]) != DEVICE_KEYS:
        problems.append(f"device keys {sorted(set(body['device']) ^ DEVICE_KEYS)}")
    return problems


@dataclass
class PageServer:
    """The page's origin: static files, the two fake link endpoints, the probe pass-through."""

    url: str
    posted: list[dict] = field(default_factory=list)
    refused: list[list[str]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    answer_status: int = 201
    revoked: bool = False  # the link endpoints answer 401, as for a link revoked after the page loaded

    def page(self, secret: str = SECRET) -> str:
        return f"{self.url}/c/{secret}"


def _app(server: PageServer, monitor: Monitor, token: str) -> web.Application:
    settings = CheckOptions()
    link_settings = {
        "udp_seconds": settings.udp_seconds,
        "load_seconds": settings.throughput.seconds,
        "ramp_seconds": settings.throughput.ramp_seconds,
        "streams": settings.throughput.streams,
        "packet_interval_ms": 20,
        "packet_bytes": 172,
    }

    def authorised(request: web.Request) -> bool:
        return not server.revoked and request.headers.get("Authorization") == f"Link {SECRET}"

    def unauthorised() -> web.Response:
        return web.json_response({"error": {"code": "unauthorized", "message": "no valid credential"}}, status=401)

    @web.middleware
    async def record(request: web.Request, handler):  # noqa: ANN001, ANN202
        server.requests.append(f"{request.method} {request.path}")
        return await handler(request)

    async def page(request: web.Request) -> web.StreamResponse:
        if request.match_info["secret"] != SECRET:
            return web.Response(status=404, text="This check link is not valid.", headers=PAGE_HEADERS)
        return web.FileResponse(STATIC / "index.html", headers={**PAGE_HEADERS, "Content-Type": "text/html"})

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC / name
        if "/" in name or not path.is_file() or path.suffix not in TYPES:
            return web.Response(status=404)
        return web.FileResponse(path, headers={**PAGE_HEADERS, "Content-Type": TYPES[path.suffix]})

    async def link(request: web.Request) -> web.Response:
        if not authorised(request):
            return unauthorised()
        return web.json_response(
            {"link_id": "0123456789ab", "expires_at": "2026-12-10T09:00:00Z", "session_start": None, "settings": link_settings, "rtc": {"available": False}}
        )

    async def checks(request: web.Request) -> web.Response:
        if not authorised(request):
            return unauthorised()
        body = await request.json()
        problems = contract_problems(body)
        if problems:
            server.refused.append(problems)
            return web.json_response({"error": {"code": "bad_request", "message": "; ".join(problems)}}, status=400)
        server.posted.append(body)
        if server.answer_status != 201:
            return web.json_response({"error": {"code": "rate_limited", "message": "too many"}}, status=server.answer_status)
        answer = {
            "check_id": "c" * 32,
            "verdict": "at_risk",
            "reasons": [ANSWER_REASON],
            "network": {"rtt_ms": None, "jitter_ms": None, "loss": None,
                        "throughput_mbps": {"down": body["throughput"]["down_mbps"], "up": body["throughput"]["up_mbps"]}},
            "quality": {"mos": None, "r_factor": None, "video_tier": "unknown"},
            "room": body["room"],
            "devices": body["devices"],
        }  # fmt: skip
        return web.json_response(answer, status=201)

    async def probe(request: web.Request) -> web.StreamResponse:
        """A pass-through to the real monitor's probe endpoint, the body streamed both ways."""
        if not authorised(request):
            return unauthorised()
        session: ClientSession = request.app[SESSION]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
        if request.content_length is not None:
            headers["Content-Length"] = str(request.content_length)
        data = request.content if request.method == "POST" else None
        async with session.request(request.method, f"{monitor.url}{request.path_qs}", headers=headers, data=data) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={"Content-Type": upstream.headers.get("Content-Type", "application/octet-stream"), "Cache-Control": "no-store"})
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, ConnectionError):
                pass  # the page hung up: that is how a download phase ends
            return response

    async def session_ctx(app: web.Application):  # noqa: ANN202
        app[SESSION] = ClientSession(timeout=ClientTimeout(total=None))
        yield
        await app[SESSION].close()

    app = web.Application(middlewares=[record], client_max_size=64 << 20)
    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/c/static/{name}", asset)
    app.router.add_get("/c/{secret}", page)
    app.router.add_get("/api/v1/link", link)
    app.router.add_post("/api/v1/link/checks", checks)
    app.router.add_get("/api/v1/probe/download", probe)
    app.router.add_post("/api/v1/probe/upload", probe)
    return app


@pytest.fixture(scope="session")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    running = start_monitor(tmp_path_factory.mktemp("browser-check-monitor") / "data")
    try:
        yield running
    finally:
        running.stop()


@contextmanager
def _serve(monitor: Monitor) -> Iterator[PageServer]:
    """The page's origin in a thread with its own event loop, on an ephemeral port."""
    token = new_token(monitor, "client", "p1")
    loop = asyncio.new_event_loop()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = PageServer(url=f"http://127.0.0.1:{port}")
    runner = web.AppRunner(_app(server, monitor, token))
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="page-server", daemon=True)
    thread.start()
    assert started.wait(10), "the page server did not start"
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def page_server(monitor: Monitor) -> Iterator[PageServer]:
    with _serve(monitor) as server:
        yield server


def run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stderr


def make_pink(path: Path, level_db: float, rate: int = 48000, seconds: int = 20) -> Path:
    """Pink noise whose unweighted RMS, as sox measures it ('RMS lev dB'), is ``level_db``."""
    from tests.audio import reference

    raw = path.with_name(path.stem + "-raw.wav")
    # -R: sox's repeatable mode (fixed seed): every run plays the same noise.
    run("sox", "-R", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(raw), "synth", str(seconds), "pinknoise", "vol", "0.1")
    gain_db = level_db - reference.sox_rms_db(raw)
    run("sox", str(raw), "-b", "16", str(path), "vol", f"{10 ** (gain_db / 20):.9f}")
    return path


def chrome(audio_file: Path, *, window: tuple[int, int] = (1280, 800), fps: int | None = None, fake_ui: bool = True):  # noqa: ANN201
    """Debian's Chromium through the system chromedriver, headless, with fake media devices.

    ``fake_ui``: every permission prompt is answered "allow"; without it, the test sets each
    permission itself (DevTools Browser.setPermission), e.g. to deny the microphone."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_or_fail(shutil.which("chromium") is not None and shutil.which("chromedriver") is not None, "Debian chromium and chromium-driver are not installed")
    require_or_fail(shutil.which("sox") is not None, "sox is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    fake_device = "--use-fake-device-for-media-stream" + (f"=fps={fps}" if fps else "")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        *(["--use-fake-ui-for-media-stream"] if fake_ui else []),
        fake_device,
        f"--use-file-for-fake-audio-capture={audio_file}",
        f"--window-size={window[0]},{window[1]}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # Collect CSP violations from the first script on: CDP-injected scripts are not subject to the CSP.
    driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {"source": "window.__csp = []; document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"},
    )
    return driver


def wait_text(driver, element_id: str, timeout_s: float) -> str:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = driver.execute_script(f"const e = document.getElementById('{element_id}'); return e && !e.closest('[hidden]') ? e.textContent : '';")
        if text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for #{element_id}; page says: {driver.find_element('tag name', 'main').text}")


def network_requests(driver) -> list[str]:  # noqa: ANN001
    """Every URL the browser asked for, from DevTools' performance log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def make_talk_over_noise(directory: Path, talk_db: float = -30.0, noise_db: float = -45.0, rate: int = 48000) -> Path:
    """espeak-ng speech with short pauses, about 20 s, at ``talk_db`` (sox RMS) over pink noise at
    ``noise_db``: voices in the background, all the time (the fake microphone loops the file)."""
    from tests.audio import reference

    require_or_fail(shutil.which("espeak-ng") is not None, "espeak-ng is not installed")
    parts = []
    for index, sentence in enumerate(("The weather was mild for the time of year.", "Please remember to bring the blue folder tomorrow morning.")):
        spoken = directory / f"espeak{index}.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-w", str(spoken), sentence], check=True, capture_output=True)
        resampled = directory / f"speech{index}.wav"
        run("sox", str(spoken), "-r", str(rate), "-c", "1", "-b", "16", str(resampled))
        parts.append(str(resampled))
    pause = directory / "pause.wav"
    run("sox", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(pause), "trim", "0", "0.3")
    talk = directory / "talk-raw.wav"
    run("sox", *([parts[0], str(pause), parts[1], str(pause)] * 3), str(talk))
    scaled = directory / "talk.wav"
    run("sox", str(talk), "-b", "16", str(scaled), "vol", f"{10 ** ((talk_db - reference.sox_rms_db(talk)) / 20):.9f}")
    seconds = float(subprocess.run(["soxi", "-D", str(scaled)], capture_output=True, text=True, check=True).stdout)
    noise = make_pink(directory / "bed.wav", noise_db, rate=rate, seconds=int(seconds) + 1)
    mixed = directory / "talk-over-noise.wav"
    run("sox", "-m", "-v", "1", str(scaled), "-v", "1", str(noise), "-b", "16", str(mixed), "trim", "0", str(seconds))
    return mixed
