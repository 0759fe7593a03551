"""Probe endpoints: UDP probe keys, and the HTTP download source and upload sink for throughput."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from aiohttp import web

from monitor import keys
from monitor.auth import require_role
from monitor.errors import ApiError
from sessionready import wire

CHUNK_BYTES = 256 * 1024
RANDOM_BLOCK_BYTES = 4 * 1024 * 1024  # incompressible, served round-robin: no CPU spent per byte


def _probe_agent(request: web.Request) -> keys.TokenInfo:
    agent: keys.TokenInfo = request[keys.AGENT]
    require_role(agent, "client", "therapist")
    if not request.app[keys.PROBE_LIMITER].allow(agent.token_id):
        raise ApiError(429, "rate_limited", "too many probe requests for this token; wait a minute and try again")
    return agent


async def probe_session(request: web.Request) -> web.Response:
    """A short-lived key for the UDP reflector, and where to send the probes."""
    _probe_agent(request)
    config = request.app[keys.CONFIG]
    expiry = int(time.time()) + config.probe_key_ttl_s
    key = wire.issue_key(request.app[keys.PROBE_SECRET], expiry)
    if config.advertise_udp:
        host, _, port = config.advertise_udp.rpartition(":")
        host = host.strip("[]")
    else:
        host = request.url.host or config.host
        port = str(request.app[keys.REFLECTOR_SERVER].address[1])
    return web.json_response(
        {
            "key": key.hex(),
            "udp": {"host": host, "port": int(port)},
            "expires_at": datetime.fromtimestamp(expiry, timezone.utc).isoformat(),
            # Relative, so that a client whose clock is off still knows how long it has.
            "expires_in_s": config.probe_key_ttl_s,
            "packet_bytes": wire.VOICE_PACKET_BYTES,
        }
    )


def _size_parameter(request: web.Request, limit: int) -> int:
    raw = request.query.get("bytes", "")
    try:
        size = int(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", "'bytes' must be a whole number of bytes", "bytes") from None
    if not 1 <= size <= limit:
        raise ApiError(400, "bad_parameter", f"'bytes' must be between 1 and {limit}", "bytes")
    return size


async def download(request: web.Request) -> web.StreamResponse:
    """``bytes`` of incompressible data; the client may hang up early when its phase ends."""
    _probe_agent(request)
    size = _size_parameter(request, request.app[keys.CONFIG].max_download_bytes)
    block = memoryview(request.app[keys.RANDOM_BLOCK])
    response = web.StreamResponse(
        headers={"Content-Type": "application/octet-stream", "Cache-Control": "no-store", "Content-Encoding": "identity"}
    )
    response.content_length = size
    await response.prepare(request)
    offset = 0
    remaining = size
    try:
        while remaining > 0:
            length = min(CHUNK_BYTES, remaining, len(block) - offset)
            await response.write(block[offset : offset + length])
            remaining -= length
            offset = (offset + length) % len(block)
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass  # the client ended its phase; that is the normal way a download stops
    return response


async def upload(request: web.Request) -> web.Response:
    """A sink: reads and discards the body, answers with what it received."""
    _probe_agent(request)
    limit = request.app[keys.CONFIG].max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"an upload may be at most {limit} bytes")
    received = 0
    started = time.monotonic()
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        received += len(chunk)
        if received > limit:
            raise ApiError(413, "too_large", f"an upload may be at most {limit} bytes")
    return web.json_response({"received_bytes": received, "duration_s": round(time.monotonic() - started, 6)})
