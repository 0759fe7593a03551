"""The check page end to end in Firefox ESR (Debian firefox-esr), headless, with Firefox's fake
camera and microphone, opened from a real check link of the monitor the Chromium tests use
(docs/browser-check.md, "How it is tested").

Ground truth from outside the page: Firefox's own version (`firefox-esr --version`), its own
record of every request the tab made (WebDriver BiDi network events) and of errors in the page
(log events), CSP violations as the browser reports them to a listener installed before any of
the page's scripts, and the fake microphone's tone as Firefox's source defines it."""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
from pathlib import Path

import pytest

from tests.browser_check.conftest import CheckLink
from tests.browser_check.firefox import (
    FAKE_TONE_AMPLITUDE,
    FIREFOX,
    Firefox,
    bidi,
    firefox,
    major_version,
)
from tests.conftest import require_or_fail

# Installed before the page's first script (a preload script is not subject to the page's CSP).
CSP_LISTENER = (
    "() => { window.__csp = []; document.addEventListener('securitypolicyviolation',"
    " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI)); }"
)
# The fake microphone: a 1 kHz sine of amplitude 0.1. Its RMS is 0.1 / sqrt(2), -23.01 dBFS,
# and A-weighting is 0 dB at 1 kHz by definition: LAeq, L90, L10 and Lmax all -23.01 dBFS(A).
TONE_DBFS = 20 * math.log10(FAKE_TONE_AMPLITUDE / math.sqrt(2))


# Firefox 153's offer with its default settings (taken from a run): host candidates under mDNS
# names and the end of candidates, which the monitor's ICE cannot use (rtc.js offerForMonitor);
# plus a server-reflexive candidate (a documentation address), which must stay.
FIREFOX_OFFER_LINES = (
    "v=0", "o=mozilla...THIS_IS_SDPARTA-99.0 959242127704416004 0 IN IP4 0.0.0.0", "s=-", "t=0 0",
    "a=sendrecv", "a=fingerprint:sha-256 B2:94:6C:18:4C:F7:50:D1:02:D8:3B:9A:5C:D4:28:2A:48:DB:19:7E:C2:22:10:AA:6A:28:AF:DF:42:C1:63:1E",
    "a=group:BUNDLE 0", "a=ice-options:trickle", "a=msid-semantic:WMS *", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    "a=candidate:0 1 UDP 2122187007 dceef122-12f0-4e82-82a9-84d558fe8795.local 57536 typ host",
    "a=candidate:1 1 UDP 2122252543 34dc53f7-c3cf-43f1-8c2d-e7185f642678.local 34756 typ host",
    "a=candidate:2 1 TCP 2105458943 dceef122-12f0-4e82-82a9-84d558fe8795.local 9 typ host tcptype active",
    "a=candidate:3 1 UDP 1686052863 198.51.100.7 57536 typ srflx raddr 0.0.0.0 rport 0",
    "a=sendrecv", "a=end-of-candidates", "a=ice-pwd:7ec2ba1744da068322463cbb4d8ccd7c", "a=ice-ufrag:009f669a",
    "a=mid:0", "a=setup:actpass", "a=sctp-port:5000", "a=max-message-size:1073741823", "",
)  # fmt: skip
FIREFOX_OFFER = "\r\n".join(FIREFOX_OFFER_LINES)


async def run_check(browser: Firefox, link: CheckLink) -> dict:
    """Open the link, click Start, answer "Yes" to the tone; what the page showed."""
    await browser.call("script.addPreloadScript", functionDeclaration=CSP_LISTENER)
    await browser.call("browsingContext.navigate", context=browser.context, url=link.page(), wait="complete")
    await browser.wait("!document.getElementById('start').disabled", 15, "Start to be usable")
    await browser.click("document.getElementById('start')")
    await browser.wait(
        "!document.getElementById('prompt').hidden && document.getElementById('prompt-text').textContent.includes('hear the tone')",
        90,
        "the question about the tone",
    )
    focused = await browser.evaluate("document.activeElement.textContent")
    await browser.click("document.activeElement")
    verdict = await browser.wait(
        "(e => e && !e.closest('[hidden]') && e.textContent)(document.getElementById('verdict-title'))",
        60,
        "the verdict",
    )
    return {
        "focused_answer": focused,
        "verdict": verdict,
        "focused": await browser.evaluate("document.activeElement.id"),
        "text": await browser.evaluate("document.querySelector('main').innerText"),
        "numbers": await browser.evaluate(
            "[...document.querySelectorAll('#numbers-list dt')].map(dt => [dt.textContent, dt.nextElementSibling.textContent])"
        ),
        "csp": await browser.evaluate("window.__csp"),
        "offer": await browser.evaluate(f"import('/c/static/rtc.js').then(m => m.offerForMonitor({json.dumps(FIREFOX_OFFER)}))"),
    }


async def observe(link: CheckLink, url: str) -> tuple[dict, list[str], list[str], str]:
    async with bidi(url) as browser:
        shown = await run_check(browser, link)
        return shown, browser.requested_urls(), browser.console_errors(), browser.version


def figures(text: str) -> list[float]:
    """The numbers a row shows (the page writes each with its decimals: "95 %" is words)."""
    return [float(x) for x in re.findall(r"-?\d+\.\d+", text)]


# Firefox and the monitor keep real time through the throughput phases: demoted beside another
# worker's quiet test (idle class, one core) Firefox's upload once finished no request in its
# phase and the check said "the speed test could not finish" (CI, 2026-12-07).
@pytest.mark.quiet_machine
def test_firefox_end_to_end(link: CheckLink, tmp_path: Path) -> None:
    """A whole check in Firefox: the verdict first in the monitor's words; round trip, loss and
    jitter per direction and throughput both ways measured, stored and shown; the room's level
    that of Firefox's fake tone; the check stored as `firefox <major>`; nothing asked of another
    origin; no CSP violation; no error in the page."""
    require_or_fail(shutil.which(FIREFOX) is not None, "Debian firefox-esr is not installed")
    require_or_fail(shutil.which("pulseaudio") is not None, "Debian pulseaudio is not installed")
    major = major_version()
    before = len(link.checks())
    with firefox(tmp_path) as url:
        shown, urls, errors, version = asyncio.run(observe(link, url))
    checks = link.checks()
    assert len(checks) == before + 1
    report = checks[0]["report"]
    network, room, devices = report["network"], report["room"], report["devices"]
    print(json.dumps({k: report[k] for k in ("verdict", "reasons", "network", "room", "devices", "browser")}, indent=1))
    print(f"Firefox {version}; shown {json.dumps(shown['numbers'])}; tone {TONE_DBFS:.2f} dBFS")

    # The verdict first and in the monitor's words, the focus on it, each reason with its fix.
    words = {"ready": "✔ Ready", "at_risk": "! At risk", "not_ready": "✖ Not ready"}
    assert shown["verdict"] == words[report["verdict"]]
    assert shown["focused"] == "verdict-title"
    assert shown["focused_answer"] == "Yes", "the focus was not on the first answer to the tone"
    text = shown["text"]
    for reason in report["reasons"]:
        assert reason["message"] in text and f"What to do: {reason['fix']}" in text, reason
    first = report["reasons"][0]["message"] if report["reasons"] else "The numbers"
    assert text.index(shown["verdict"]) < text.index(first) <= text.index("The numbers")

    # The network through Firefox's data channel and fetch streams, as stored and as shown.
    assert network["udp_error"] is None and network["throughput_error"] is None, network
    assert network["rtt_ms"]["p50"] > 0 and network["packets"]["sent"] > 0
    assert network["loss"]["up"] == 0 and network["loss"]["down"] == 0  # loopback loses nothing
    assert network["jitter_ms"]["up"] is not None and network["jitter_ms"]["down"] is not None
    assert network["throughput_mbps"]["down"] > 0 and network["throughput_mbps"]["up"] > 0
    assert network["loaded_latency_ms"]["down"] is not None and network["loaded_latency_ms"]["up"] is not None
    numbers = dict(shown["numbers"])
    judged_jitter = network.get("jitter_mean_ms") or network["jitter_ms"]
    expected = {
        "Round trip": [network["rtt_ms"][k] for k in ("p50", "min", "p95")],
        "Jitter": [judged_jitter["up"], judged_jitter["down"]],  # the figure the verdict judged
        "Packet loss": [0.0, 0.0],
        "Download": [network["throughput_mbps"]["down"]],
        "Upload": [network["throughput_mbps"]["up"]],
    }
    for label, values in expected.items():
        got = figures(numbers[label])
        assert len(got) == len(values) and all(abs(g - v) <= 0.051 for g, v in zip(got, values)), (label, numbers[label], values)

    # The room: Firefox's tone, steady, in the voice band but no voice; the microphone heard.
    assert room["available"] and room["problem"] is None and not room["silent"], room
    for key in ("laeq_dbfs", "l90_dbfs", "l10_dbfs", "lmax_dbfs"):
        assert abs(room[key] - TONE_DBFS) <= 0.5, (key, room[key], TONE_DBFS)
    assert room["voice_ratio"] == 0 and room["clipping_ratio"] == 0, room
    assert devices["microphone"] == {"state": "ok", "signal": True}
    assert devices["camera"]["state"] == "ok" and devices["camera"]["black"] is False, devices
    assert devices["camera"]["width"] > 0 and devices["camera"]["fps"] > 0, devices
    assert devices["speaker"] == {"state": "heard"}

    # What the page posts of an offer with Firefox's default mDNS names: every line but those
    # candidates and the end marker (the probe stream above ran with real addresses: loopback).
    kept = [line for line in FIREFOX_OFFER_LINES if ".local " not in line and line != "a=end-of-candidates"]
    assert shown["offer"].split("\r\n") == kept and "a=candidate:3 1 UDP" in shown["offer"]

    # Stored as a browser check of Firefox, with only its major version.
    assert report["source"] == "browser"
    assert report["browser"] == f"firefox {major}" and version.startswith(f"{major}.")

    # Nothing for another origin (Firefox's own log of the tab's requests), the CSP never
    # violated, nothing wrong in the page.
    outside = [u for u in urls if not u.startswith((link.origin + "/", "data:", "blob:"))]
    assert not outside, outside
    assert any(u.startswith(link.origin + "/api/v1/link/rtc") for u in urls), "the request log missed requests"
    assert shown["csp"] == [], shown["csp"]
    assert errors == [], errors
