"""``POST /api/v1/link/rtc``: start a browser check's WebRTC probe stream (docs/browser-check.md
section 3), and the application context that holds the streams (``app[keys.RTC]``).

Only a check link's holder may start one: a stream's records serve only the check its link
submits (``POST /api/v1/link/checks``), so an agent's token, a client's included, gets 403
like on the link's other routes. The streams need aiortc (the ``monitor`` extra); without it
the monitor runs without them and the route answers 503, which the page reports as
``rtc_unavailable``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from monitor import keys
from monitor.auth import LinkPrincipal, require_role
from monitor.errors import ApiError, decode_body, only_params, read_body
from monitor.http.check_links import link_idle_limits, link_load_limits, link_settings
from monitor.rtc.records import RtcRefused, RtcStreams, StreamRecords
from sessionready.browser_check import RTC_ID_PATTERN
from sessionready.typed import encode, json_schema, limits

log = logging.getLogger("sessionready.monitor.rtc")

PATH = "/api/v1/link/rtc"
MAX_SDP_CHARS = 16 * 1024


@dataclass(frozen=True)
class RtcOffer:
    """The page's offer: one data channel labelled ``probe``, unordered, no retransmissions."""

    type: Literal["offer"]
    sdp: str = field(metadata=limits(max_len=MAX_SDP_CHARS))


@dataclass(frozen=True)
class RtcAnswer:
    """The monitor's answer, with the id the page quotes when it submits the check."""

    type: Literal["answer"]
    sdp: str
    rtc_id: str = field(metadata=limits(pattern=RTC_ID_PATTERN))


def add_routes(app: web.Application) -> None:
    app.router.add_post(PATH, start_stream)


async def start_stream(request: web.Request) -> web.Response:
    principal = request[keys.AGENT]
    require_role(principal, "client", links=True)
    if not isinstance(principal, LinkPrincipal):
        # A link's holder and an agent are different principals (docs/browser-check.md section 2):
        # an agent could never submit the check this stream exists for, and would hold a peer,
        # a UDP port and a probe reflector for nothing.
        raise ApiError(403, "forbidden", "only a check link may start a probe stream (Authorization: Link <secret>)")
    only_params(request)
    offer = decode_body(RtcOffer, await read_body(request))
    streams = request.app.get(keys.RTC)
    if not isinstance(streams, RtcStreams):
        raise ApiError(503, "rtc_unavailable", "this monitor runs no WebRTC probe streams (aiortc is not installed)")
    try:
        # A link principal's token_id is its link id: the stream belongs to that link.
        rtc_id, sdp = await streams.start(principal.token_id, offer.sdp, _reached(request))
    except RtcRefused as error:
        raise ApiError(error.status, error.code, str(error)) from None
    log.info("probe stream started", extra={"fields": {"rtc_id": rtc_id, "streams": len(streams)}})
    return web.json_response(encode(RtcAnswer("answer", sdp, rtc_id)), status=201)


def _reached(request: web.Request) -> str | None:
    """The monitor's own address this request arrived at."""
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    return sockname[0] if isinstance(sockname, tuple) and sockname else None


async def streams_context(app: web.Application) -> AsyncIterator[None]:
    """``app[keys.RTC]`` while the app runs; every peer closed on shutdown."""
    config = app[keys.CONFIG]
    try:
        from monitor.rtc import peer  # aiortc: the monitor extra
    except ImportError as error:
        log.warning("WebRTC probe streams are off: %s (install sessionready[monitor])", error)
        yield
        return
    peer.check_aioice()
    settings = peer.IceSettings(config.host, config.rtc_port_min, config.rtc_port_max, config.rtc_advertise_ip)

    async def open_peer(records: StreamRecords, offer_sdp: str, reached: str | None, ended: Callable[[], None]) -> peer.RtcPeer:
        return await peer.RtcPeer.answer(records, offer_sdp, settings, reached=reached, on_closed=ended)

    streams = RtcStreams(
        open_peer,
        max_peers=config.rtc_max_peers,
        max_seconds=config.rtc_max_seconds,
        # The page's own ramp (the CLI's, shortened as the CLI does for short phases): the
        # delay under load and the rule leave out what the page's rate leaves out.
        ramp_s=link_settings(config).ramp_seconds,
        idle_limits=link_idle_limits(config),
        load_limits=link_load_limits(config),
    )
    app[keys.RTC] = streams
    yield
    await streams.aclose()


def openapi_paths(components: dict[str, Any]) -> dict[str, Any]:
    error = {"description": "Error", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        PATH: {
            "post": {
                "summary": "Start the browser check's WebRTC probe stream (a check link's holder)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": json_schema(RtcOffer, components)}}},
                "responses": {
                    "201": {"description": "The answer", "content": {"application/json": {"schema": json_schema(RtcAnswer, components)}}},
                    **{str(status): error for status in (400, 401, 403, 413, 429, 503)},
                },
            }
        }
    }
