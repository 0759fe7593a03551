"""Probe endpoints: UDP probe keys, and the HTTP download source and upload sink for throughput."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from aiohttp import web

from monitor import keys
from monitor.auth import require_role
from monitor.errors import ApiError, json_error
from monitor.probe_limits import Refused
from sessionready import wire

CHUNK_BYTES = 256 * 1024
RANDOM_BLOCK_BYTES = 4 * 1024 * 1024  # incompressible, served round-robin: no CPU spent per byte


class RateLimited(ApiError):
    """429 with Retry-After (whole seconds): a probe limit of this token is reached."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(429, "rate_limited", refused.message)
        self.retry_after_s = refused.retry_after_s

    def response(self) -> web.Response:
        response = json_error(self.status, self.code, self.message, headers={"Retry-After": str(self.retry_after_s)})
        response.force_close()  # an upload's body is not worth reading
        return response


def _probe_agent(request: web.Request, links: bool = False) -> keys.TokenInfo:
    """The agent (or, for the throughput endpoints, ``links=True``, a check link) asking; its
    ``token_id`` keys its probe limits (a link's is its link id)."""
    agent: keys.TokenInfo = request[keys.AGENT]  # type: ignore[assignment]
    require_role(agent, "client", "therapist", links=links)
    return agent


def _requester_tag(request: web.Request) -> bytes:
    """The address the key is bound to (wire.address_tag), per ``probe_key_binding``."""
    binding = request.app[keys.CONFIG].probe_key_binding
    if binding == "off":
        return b""
    host = request.remote or ""
    if binding == "forwarded":
        forwarded = request.headers.get("X-Forwarded-For", "")
        if not forwarded:
            raise ApiError(400, "no_forwarded_for", "the monitor expects X-Forwarded-For from its proxy and got none")
        host = forwarded.split(",")[-1].strip()
    try:
        return wire.address_tag(host)
    except ValueError:
        raise ApiError(400, "bad_address", "the monitor cannot tell which IP address this request came from") from None


async def probe_session(request: web.Request) -> web.Response:
    """A short-lived key for the UDP reflector, bound to the requester's IP, and where to send the probes."""
    agent = _probe_agent(request)
    bound_to = _requester_tag(request)
    try:
        request.app[keys.PROBE_LIMITER].start_session(agent.token_id)
    except Refused as refused:
        raise RateLimited(refused) from None
    config = request.app[keys.CONFIG]
    expiry = int(time.time()) + config.probe_key_ttl_s
    key = wire.issue_key(request.app[keys.PROBE_SECRET], expiry, bound_to)
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
    agent = _probe_agent(request, links=True)
    size = _size_parameter(request, request.app[keys.CONFIG].max_download_bytes)
    try:
        with request.app[keys.PROBE_LIMITER].transfer(agent.token_id) as moved:
            return await _send(request, size, moved)
    except Refused as refused:
        raise RateLimited(refused) from None


async def _send(request: web.Request, size: int, moved: Callable[[int], None]) -> web.StreamResponse:
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
            # Counted before it is sent: the client may have the last byte, and ask again,
            # before this coroutine runs on after the write.
            moved(length)
            await response.write(block[offset : offset + length])
            remaining -= length
            offset = (offset + length) % len(block)
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass  # the client ended its phase; that is the normal way a download stops
    return response


async def upload(request: web.Request) -> web.Response:
    """A sink: reads and discards the body, answers with what it received."""
    agent = _probe_agent(request, links=True)
    limit = request.app[keys.CONFIG].max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"an upload may be at most {limit} bytes")
    try:
        with request.app[keys.PROBE_LIMITER].transfer(agent.token_id) as moved:
            return await _sink(request, limit, moved)
    except Refused as refused:
        raise RateLimited(refused) from None


# How the upload's body arrived, for a browser that cannot see its own bytes leave (the CLI
# reads the kernel's acknowledged bytes): (seconds since the handler started, bytes) at most every
# PROGRESS_STEP_S, thinned to every other point (and the step doubled) past PROGRESS_POINTS.
PROGRESS_STEP_S = 0.025
PROGRESS_POINTS = 256


async def _sink(request: web.Request, limit: int, moved: Callable[[int], None]) -> web.Response:
    received = 0
    started = time.monotonic()
    progress: list[tuple[float, int]] = [(0.0, 0)]
    step = PROGRESS_STEP_S
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        received += len(chunk)
        moved(len(chunk))
        if received > limit:
            raise ApiError(413, "too_large", f"an upload may be at most {limit} bytes")
        elapsed = time.monotonic() - started
        if elapsed - progress[-1][0] >= step:
            progress.append((elapsed, received))
            if len(progress) > PROGRESS_POINTS:
                progress = progress[::2]
                step *= 2
    duration = time.monotonic() - started
    if progress[-1][1] != received:
        progress.append((duration, received))
    return web.json_response(
        {
            "received_bytes": received,
            "duration_s": round(duration, 6),
            "progress": [[round(t, 6), count] for t, count in progress],
        }
    )
