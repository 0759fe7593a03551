"""The monitor application, served for the lab's WebRTC tests, with test-only routes.

Standalone script (like relay.py), started inside the lab's monitor namespace::

    python rtc_monitor.py CONFIG HOST PORT

It serves the real ``create_app(config)`` and adds, for tests only: ``GET /c/test/rtc.html``, a
page that runs rtc.js once, for Chromium (under /c/ because a browser sends no token for a page);
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
TEST_SCRIPT = """import { startProbeStream } from "/c/static/rtc.js";
const params = new URLSearchParams(location.hash.slice(1));
const state = document.getElementById("state");
try {
  const stream = await startProbeStream({ secret: params.get("secret") });
  state.textContent = "running";
  await new Promise((resolve) => setTimeout(resolve, Number(params.get("seconds")) * 1000));
  window.rtcOutcome = { rtc: await stream.stop() };
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
