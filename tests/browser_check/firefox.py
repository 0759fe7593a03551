"""Debian's Firefox ESR, headless, driven over WebDriver BiDi: the W3C protocol Firefox's own
remote agent speaks (`--remote-debugging-port`), so no geckodriver is needed (Debian has none,
and the PyPI package that claims to ship one for offline use, geckodriver-wrapper 0.4, holds a
32-bit Windows binary). The client is aiohttp's websocket, which the project has anyway; nothing
is downloaded at test time.

Firefox runs as root here with a HOME, a profile and an XDG_RUNTIME_DIR of the test's own
(so it reaches no one else's PulseAudio), in a process group of its own that is ended on the
way out, whatever happened."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

FIREFOX = "/usr/bin/firefox-esr"
# Firefox's fake devices (MediaEngineFake): a camera that draws a changing picture and a
# microphone that plays a sine, here 1 kHz, at amplitude 0.1 (its SineWaveGenerator: "-20 dB").
FAKE_TONE_HZ = 1000
FAKE_TONE_AMPLITUDE = 0.1
PREFS: dict[str, object] = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,  # every camera and microphone prompt: allowed
    "media.navigator.audio.fake_frequency": FAKE_TONE_HZ,
    # Sound out through the test's own PulseAudio null sink (below): with no sound output at
    # all, Firefox never starts an AudioContext. (Its mock output, media.cubeb.force_mock_context,
    # runs slower than real time on a busy machine: 7 s of audio in 16.5 s, measured.)
    "media.cubeb.backend": "pulse",
    # The monitor listens on loopback here, which Firefox's ICE leaves alone by default (a real
    # monitor is never on the client's loopback). Measured with Firefox 153: without the first,
    # its checks to the monitor's 127.0.0.1 candidate never complete; with its host candidates
    # under mDNS names (the default) it pairs none with a loopback candidate at all.
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    # Nothing of Firefox's own reaches for the network (there is none here but the registries).
    "app.update.disabledForTesting": True,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "services.settings.server": "data:,",
    "extensions.update.enabled": False,
}
LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")


class BidiError(AssertionError):
    """A BiDi command Firefox answered with an error, or a script that threw."""


@dataclass
class Firefox:
    """One BiDi session on Firefox's first tab. ``events``: every event subscribed to, in order."""

    ws: aiohttp.ClientWebSocketResponse
    version: str = ""
    context: str = ""
    events: list[dict] = field(default_factory=list)
    _next_id: int = 0
    _waiting: dict[int, asyncio.Future] = field(default_factory=dict)

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if data.get("type") == "event":
                self.events.append(data)
            elif (future := self._waiting.pop(data.get("id"), None)) is not None and not future.done():
                future.set_result(data)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(BidiError("Firefox closed the BiDi connection"))

    async def call(self, method: str, timeout_s: float = 30, **params: object) -> dict:
        self._next_id += 1
        future = asyncio.get_running_loop().create_future()
        self._waiting[self._next_id] = future
        await self.ws.send_str(json.dumps({"id": self._next_id, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, timeout_s)
        if answer.get("type") == "error":
            raise BidiError(f"{method}: {answer.get('error')}: {answer.get('message')}")
        return answer["result"]

    async def evaluate(self, expression: str, timeout_s: float = 30) -> object:
        """The JSON value of ``expression`` (awaited when it is a promise) in the tab's page."""
        result = await self.call(
            "script.evaluate",
            timeout_s=timeout_s,
            expression=f"(async () => JSON.stringify(await ({expression})))()",
            target={"context": self.context},
            awaitPromise=True,
            resultOwnership="none",
        )
        if result["type"] == "exception":
            raise BidiError(f"{expression}: {result['exceptionDetails'].get('text')}")
        value = result["result"]
        return json.loads(value["value"]) if value.get("type") == "string" else None

    async def wait(self, expression: str, timeout_s: float, what: str) -> object:
        """Poll ``expression`` until it is truthy, and return it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if value := await self.evaluate(expression):
                return value
            await asyncio.sleep(0.2)
        page = await self.evaluate("document.querySelector('main').innerText")
        raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; the page says: {page}")

    async def click(self, element: str) -> None:
        """A real mouse click on the centre of the element that the expression ``element`` gives
        (a user activation, as a script's click() is not). Not a key press: headless Firefox's
        window never has the focus, and a button there fires no click on Enter or Space
        (measured: the keydown arrives, the click does not)."""
        found = await self.call(
            "script.evaluate",
            expression=element,
            target={"context": self.context},
            awaitPromise=False,
            resultOwnership="root",
        )
        if found["type"] != "success" or found["result"].get("type") != "node":
            raise BidiError(f"{element} is no element")
        mouse = [
            {"type": "pointerMove", "x": 0, "y": 0, "origin": {"type": "element", "element": {"sharedId": found["result"]["sharedId"]}}},
            {"type": "pointerDown", "button": 0},
            {"type": "pointerUp", "button": 0},
        ]
        await self.call(
            "input.performActions",
            context=self.context,
            actions=[{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": mouse}],
        )

    def requested_urls(self) -> list[str]:
        """Every URL the tab asked for (network.beforeRequestSent), whatever answered it."""
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "network.beforeRequestSent"]

    def console_errors(self) -> list[str]:
        """Errors logged in the page: console.error and uncaught exceptions (log.entryAdded)."""
        return [e["params"].get("text") or "" for e in self.events if e["method"] == "log.entryAdded" and e["params"].get("level") == "error"]


def write_profile(profile: Path, prefs: dict[str, object]) -> None:
    profile.mkdir(parents=True, exist_ok=True)
    lines = [f"user_pref({json.dumps(name)}, {json.dumps(value)});" for name, value in prefs.items()]
    (profile / "user.js").write_text("\n".join(lines) + "\n")


def major_version() -> int:
    """Firefox's own word on its major version (`firefox-esr --version`: "Mozilla Firefox 153.8.0esr")."""
    out = subprocess.run([FIREFOX, "--version"], capture_output=True, text=True, check=True, timeout=30).stdout
    match = re.search(r"Firefox (\d+)\.", out)
    if match is None:
        raise AssertionError(f"firefox-esr --version said {out!r}")
    return int(match.group(1))


def end(process: subprocess.Popen, group: bool = False) -> None:
    """SIGTERM, then SIGKILL after 10 s; ``group``: the whole process group it leads."""
    kill = (lambda sig: os.killpg(process.pid, sig)) if group else process.send_signal
    with contextlib.suppress(ProcessLookupError):
        kill(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    # Whatever of it outlived the SIGTERM (a content process that hung) goes now.
    with contextlib.suppress(ProcessLookupError):
        kill(signal.SIGKILL)
    process.wait(timeout=10)


def start_pulse(runtime: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """A PulseAudio server of the test's own (its socket in ``runtime``), whose default sink is a
    null sink: a sound output that plays in real time to nowhere."""
    command = [
        "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--log-target=stderr",
        "--load=module-native-protocol-unix auth-anonymous=1", "--load=module-null-sink sink_name=speaker",
    ]  # fmt: skip
    if os.geteuid() == 0:
        command.insert(1, "--system=false")  # root gets a warning, not a system-wide server
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 10
    while not (runtime / "pulse" / "native").exists():
        if server.poll() is not None or time.monotonic() > deadline:
            end(server)
            raise AssertionError(f"PulseAudio did not start: {log.read_text(errors='replace')[-1000:]}")
        time.sleep(0.05)
    return server


@contextlib.contextmanager
def firefox(folder: Path, start_timeout_s: float = 60) -> Iterator[str]:
    """Firefox ESR headless with fake media devices and a PulseAudio null sink for its sound;
    yields the URL of its WebDriver BiDi endpoint (``session``). Firefox, its children and the
    sound server are ended on the way out."""
    for tool in (FIREFOX, "pulseaudio"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(tool)
    profile, home, runtime = folder / "profile", folder / "home", folder / "run"
    write_profile(profile, PREFS)
    home.mkdir(parents=True, exist_ok=True)
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "MOZ_HEADLESS": "1"}
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "PULSE_SERVER", "PULSE_COOKIE", "PULSE_SINK", "PULSE_SOURCE"):
        env.pop(name, None)
    sound = start_pulse(runtime, env, folder / "pulseaudio.log")
    log = folder / "firefox.log"
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [FIREFOX, "--headless", "--no-remote", "--profile", str(profile), "--remote-debugging-port", "0", "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: its content processes end with it
            )
    except BaseException:
        end(sound)
        raise
    try:
        deadline = time.monotonic() + start_timeout_s
        while (match := LISTENING.search(log.read_text(errors="replace"))) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Firefox did not offer BiDi (exit {process.poll()}): {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield f"{match.group(1)}/session"
    finally:
        try:
            end(process, group=True)
        finally:
            end(sound)


@contextlib.asynccontextmanager
async def bidi(url: str) -> AsyncIterator[Firefox]:
    """A BiDi session on Firefox's first tab, subscribed to network requests and log entries."""
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        browser = Firefox(ws)
        reader = asyncio.create_task(browser._read())
        try:
            session = await browser.call("session.new", capabilities={})
            browser.version = session["capabilities"]["browserVersion"]
            tree = await browser.call("browsingContext.getTree")
            browser.context = tree["contexts"][0]["context"]
            await browser.call("session.subscribe", events=["network.beforeRequestSent", "log.entryAdded"])
            yield browser
        finally:
            reader.cancel()
