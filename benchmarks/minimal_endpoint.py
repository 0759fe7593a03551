"""The ingest benchmark's reference: the least an aiohttp server can do with a posted check.

It parses the JSON body and answers 201 with the same small document the monitor sends back;
no authentication, validation, storage, metrics or access log. The monitor's ingest rate is
reported as a ratio to this one's, measured in the same run on the same machine.

Run as its own process: ``python -m benchmarks.minimal_endpoint --port 0``; it prints
``minimal endpoint listening on http://HOST:PORT`` and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from aiohttp import web


async def post_check(request: web.Request) -> web.Response:
    report = json.loads(await request.read())
    return web.json_response({"check_id": report["check_id"], "stored": True, "duplicate": False}, status=201)


def create_app() -> web.Application:
    app = web.Application(client_max_size=256 * 1024)  # the monitor's default max_report_bytes
    app.router.add_post("/api/v1/checks", post_check)
    return app


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(create_app(), access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # noqa: SLF001 - the only way to learn an ephemeral port
        print(f"minimal endpoint listening on http://{host}:{sockets[0].getsockname()[1]}", flush=True)
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
