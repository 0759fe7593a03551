"""The monitor application, served for the lab's WebRTC test, with one test-only route.

Standalone script (like relay.py), started inside the lab's monitor namespace::

    python rtc_monitor.py CONFIG HOST PORT

It serves the real ``create_app(config)`` and adds ``POST /test/network-for`` (Bearer token of
a client, like the stream itself), which answers ``app[keys.RTC].network_for(...)`` as JSON: how
the test reads what the monitor computed from its own records, since the submission of a
browser check (which calls the same function) belongs to the check-link API. Prints
``ready`` once listening.
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


async def network_for(request: web.Request) -> web.Response:
    body = await request.json()
    streams = request.app[keys.RTC]
    phases = {name: tuple(span) if span else None for name, span in body["phases"].items()}
    echoes = [(int(seq), float(ms)) for seq, ms in body["echoes"]]
    records = streams.records(body["rtc_id"])
    network = streams.network_for(body["rtc_id"], request[keys.AGENT].token_id, body["sent"], echoes, phases)
    answer = {
        "network": None if network is None else encode(network),
        "monitor": None if records is None else {"distinct": records.distinct, "duplicates": records.duplicates, "ignored": records.ignored},
    }
    return web.json_response(answer)


async def main(config_path: str, host: str, port: int) -> None:
    config = load_config(Path(config_path), host=host, port=port)
    app = create_app(config)
    app.router.add_post("/test/network-for", network_for)
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
