"""The monitor application, served for the lab's WebRTC tests, with test-only routes.

Standalone script (like relay.py), started inside the lab's monitor namespace::

    python rtc_monitor.py CONFIG HOST PORT

It serves the real ``create_app(config)`` and adds, for tests only: ``GET /c/test/rtc.html``, a
page that runs rtc.js once, for Chromium (under /c/ because a browser sends no token for a page);
``GET /c/test/network.html``, a page that runs the browser check's network part with the page's
own module (network.js, which check.js runs) and submits it as a check of the link;
and ``POST /test/network-for`` (any Bearer token), which answers
``app[keys.RTC].network_for(...)`` as JSON: how the test reads what the monitor computed from its
own records, since the submission of a browser check (which calls the same function) belongs to
the check-link API. Prints ``ready`` once listening.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from aiohttp import web

from monitor import keys
from monitor.app import create_app
from monitor.config import load_config
from sessionready.typed import encode

# A test-only page: runs one probe stream with the real rtc.js, served where the page's own
# assets are (/c/static/), and leaves the outcome in window.rtcOutcome.
TEST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>rtc.js in the lab</title></head>
<body><p id="state">starting</p><script type="module" src="/c/test/rtc-page.js"></script></body></html>
"""
# The monitor's UDP port for the stream, from the answer's SDP (rtc.js calls the global fetch):
# it names the stream in per-port kernel counters (Lab.add_loss(per_port=True)).
PORT_WATCH = """let monitorPort = null;
const pageFetch = window.fetch;
window.fetch = async (resource, options) => {
  const response = await pageFetch(resource, options);
  if (String(resource).endsWith("/api/v1/link/rtc") && response.status === 201) {
    const answer = await response.clone().json();
    const candidate = /a=candidate:\\S+ \\d+ udp \\d+ \\S+ (\\d+) typ host/i.exec(answer.sdp);
    monitorPort = candidate ? Number(candidate[1]) : null;
  }
  return response;
};
"""
TEST_SCRIPT = """import { startProbeStream } from "/c/static/rtc.js";
const params = new URLSearchParams(location.hash.slice(1));
const state = document.getElementById("state");
""" + PORT_WATCH + """
try {
  const stream = await startProbeStream({ secret: params.get("secret") });
  state.textContent = "running";
  await new Promise((resolve) => setTimeout(resolve, Number(params.get("seconds")) * 1000));
  window.rtcOutcome = { rtc: await stream.stop(), monitor_port: monitorPort };
  state.textContent = "done";
} catch (error) {
  window.rtcOutcome = { error: { code: error.code || null, message: String(error.message) } };
  state.textContent = "failed";
}
"""

# The network part of the browser check, run by the page's own module (monitor/static/check/
# network.js, which check.js runs: one page logic): the idle probe stream, download and upload
# with their phases marked, each ended by the monitor's rule when the link is adaptive, then
# stop(); submitted through the link like the page's check, with the devices "not_tested" and no
# room (those steps wait on a person, and they are not what the lab measures). Also left in
# window.rtcOutcome: the phases on the wall clock (performance.timeOrigin + the page's clock), so
# that a reference tool's packets can be sliced to the same windows, and the monitor's UDP port.
NETWORK_PAGE = TEST_PAGE.replace("rtc.js in the lab", "the browser check's network part in the lab").replace("/c/test/rtc-page.js", "/c/test/network-page.js")
NETWORK_SCRIPT = """import { runNetwork } from "/c/static/network.js";
const params = new URLSearchParams(location.hash.slice(1));
const secret = params.get("secret");
const authorization = `Link ${secret}`;
const state = document.getElementById("state");
""" + PORT_WATCH + """
async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { Authorization: authorization, "Content-Type": "application/json" }, cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}
try {
  const link = await api("/api/v1/link");
  const startedWall = new Date();
  const started = performance.now();
  const net = await runNetwork({ secret, link, authorization, onStep: (step, s) => { state.textContent = `${step} ${s}`; } });
  if (!net.rtc.record) throw Object.assign(new Error(`the probe stream did not run: ${net.rtc.error}`), { code: net.rtc.error });
  const rtc = net.rtc.record;
  const { down, up } = net;
  const major = Number((/Chrom(?:e|ium)\\/(\\d+)/.exec(navigator.userAgent) || [0, 0])[1]);
  const round = (mbps) => mbps === null ? null : Math.round(mbps * 100) / 100;
  const check = await api("/api/v1/link/checks", { method: "POST", body: JSON.stringify({
    schema_version: 1,
    started_at: startedWall.toISOString().replace(/\\.\\d{3}Z$/, "Z"),
    duration_s: Math.round((performance.now() - started) / 100) / 10,
    browser: { family: "chrome", major },
    rtc: { rtc_id: rtc.rtc_id, sent: rtc.sent, echoes: rtc.echoes, phases: rtc.phases },
    rtc_error: null,
    throughput: { down_mbps: round(down.mbps), up_mbps: round(up.mbps), error: down.error || up.error || null },
    devices: { camera: { state: "not_tested" }, microphone: { state: "not_tested" }, speaker: { state: "not_tested" } },
    room: null,
    device: null,
  }) });
  const wall = Object.fromEntries(Object.entries(rtc.phases).map(([name, span]) => [name, span && span.map((ms) => performance.timeOrigin + ms)]));
  window.rtcOutcome = { check, phases_wall_ms: wall, monitor_port: monitorPort, sent: rtc.sent, echoes: rtc.echoes.length,
                        throughput: { down, up } };
  state.textContent = "done";
} catch (error) {
  window.rtcOutcome = { error: { code: error.code || null, message: String(error.message) } };
  state.textContent = "failed";
}
"""


async def test_page(request: web.Request) -> web.Response:
    return web.Response(text=TEST_PAGE, content_type="text/html")


async def test_script(request: web.Request) -> web.Response:
    return web.Response(text=TEST_SCRIPT, content_type="text/javascript")


async def network_page(request: web.Request) -> web.Response:
    return web.Response(text=NETWORK_PAGE, content_type="text/html")


async def network_script(request: web.Request) -> web.Response:
    return web.Response(text=NETWORK_SCRIPT, content_type="text/javascript")


async def network_for(request: web.Request) -> web.Response:
    """The stream's owner is the caller's token id, or ``owner`` in the body (a check link's id,
    when the page ran with a Link credential and the test reads the result with a staff token)."""
    body = await request.json()
    streams = request.app[keys.RTC]
    phases = {name: tuple(span) if span else None for name, span in body["phases"].items()}
    echoes = [(int(seq), float(ms)) for seq, ms in body["echoes"]]
    records = streams.records(body["rtc_id"])
    owner = body.get("owner") or request[keys.AGENT].token_id
    network = streams.network_for(body["rtc_id"], owner, body["sent"], echoes, phases)
    answer = {
        "network": None if network is None else encode(network),
        "monitor": None if records is None else {"distinct": records.distinct, "duplicates": records.duplicates, "ignored": records.ignored},
    }
    return web.json_response(answer)


async def main(config_path: str, host: str, port: int) -> None:
    config = load_config(Path(config_path), host=host, port=port)
    app = create_app(config)
    app.router.add_post("/test/network-for", network_for)
    app.router.add_get("/c/test/rtc.html", test_page)
    app.router.add_get("/c/test/rtc-page.js", test_script)
    app.router.add_get("/c/test/network.html", network_page)
    app.router.add_get("/c/test/network-page.js", network_script)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
