"""The scale benchmark's reference: the least an aiohttp server can do with a live report batch.

A variant of ``benchmarks.minimal_endpoint`` for the agents' route: it parses the JSON batch
and answers 200 with ``stored`` for each report, as the monitor does; no token, validation,
store, risk loop, metrics or access log. Run as its own process:
``python -m benchmarks.scale_endpoint --port 0``; it prints
``scale endpoint listening on http://HOST:PORT`` and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from aiohttp import web


async def post_reports(request: web.Request) -> web.Response:
    batch = json.loads(await request.read())
    return web.json_response({"results": [{"report_id": r["report_id"], "status": "stored"} for r in batch["reports"]]})


async def serve(host: str, port: int) -> None:
    app = web.Application(client_max_size=256 * 1024)  # the monitor's default max_report_bytes
    app.router.add_post("/api/v1/reports", post_reports)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, host, port, backlog=4096)
        await site.start()
        sockets = site._server.sockets if site._server else []
        print(f"scale endpoint listening on http://{host}:{sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
