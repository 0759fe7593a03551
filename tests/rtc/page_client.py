"""A Python stand-in for the browser check's page: the WebRTC probe stream as rtc.js runs it.

Importable (``run_stream``) and runnable as a script (the network lab starts it inside the
client namespace and reads one JSON object from its stdout)::

    python page_client.py URL AUTHORIZATION --seconds 10 [--phases idle=0:5,download=5:10]

It follows docs/browser-check.md section 3 as the page does: an offer with one data channel
``probe`` (unordered, no retransmissions) and no ICE servers, one probe every 20 ms padded to
172 bytes, each echo's arrival noted on a monotonic clock (like ``performance.now()``). It also
checks what only a test cares about: every echo is exactly as long as its probe.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

PROBE = struct.Struct("!BBHId")
ECHO = struct.Struct("!BBHIdddI")


class Refused(Exception):
    """The monitor answered the offer with an error: ``status`` and the JSON body."""

    def __init__(self, status: int, body: dict) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


def _now_ms(origin_ns: int) -> float:
    return (time.monotonic_ns() - origin_ns) / 1e6


async def open_stream(session: aiohttp.ClientSession, url: str, authorization: str) -> tuple[RTCPeerConnection, object, str, dict]:
    """Offer, post, answer: (peer connection, open data channel, rtc_id, the answer body)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = pc.createDataChannel("probe", ordered=False, maxRetransmits=0)
    opened = asyncio.get_running_loop().create_future()
    channel.on("open", lambda: opened.done() or opened.set_result(True))
    await pc.setLocalDescription(await pc.createOffer())
    async with session.post(
        f"{url}/api/v1/link/rtc",
        json={"type": "offer", "sdp": pc.localDescription.sdp},
        headers={"Authorization": authorization},
    ) as response:
        body = await response.json()
        if response.status != 201:
            await pc.close()
            raise Refused(response.status, body)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
    try:
        await asyncio.wait_for(opened, 20)
    except TimeoutError:
        await pc.close()
        raise
    return pc, channel, body["rtc_id"], body


async def run_stream(
    url: str,
    authorization: str,
    *,
    seconds: float,
    interval_ms: float = 20.0,
    packet_bytes: int = 172,
    phases: dict[str, tuple[float, float]] | None = None,
    drain_s: float = 1.0,
) -> dict:
    """Run one stream; the page's records and what the test checks about the echoes.

    ``phases`` are seconds after the first probe; they come back in page ms, as the page posts them.
    """
    origin_ns = time.monotonic_ns()
    async with aiohttp.ClientSession() as session:
        pc, channel, rtc_id, answer = await open_stream(session, url, authorization)
        echoes: list[list[float]] = []
        bad_lengths = 0
        monitor_times: dict[int, tuple[float, float]] = {}

        def on_message(message: bytes) -> None:
            nonlocal bad_lengths
            arrival = _now_ms(origin_ns)
            if not isinstance(message, bytes) or len(message) != packet_bytes:
                bad_lengths += 1
                return
            kind, _f, _r, seq, _sent, recv_ms, send_ms, _distinct = ECHO.unpack_from(message)
            if kind == 2:
                echoes.append([seq, round(arrival, 3)])
                monitor_times.setdefault(seq, (recv_ms, send_ms))

        channel.on("message", on_message)
        sent = 0
        start_ms = _now_ms(origin_ns)
        next_send = time.monotonic()
        deadline = next_send + seconds
        padding = bytes(packet_bytes - PROBE.size)
        while time.monotonic() < deadline:
            channel.send(PROBE.pack(1, 0, 0, sent, _now_ms(origin_ns)) + padding)
            sent += 1
            next_send += interval_ms / 1000
            await asyncio.sleep(max(0.0, next_send - time.monotonic()))
        await asyncio.sleep(drain_s)
        await pc.close()
    page_phases = {name: None for name in ("idle", "download", "upload")}
    for name, (a, b) in (phases or {}).items():
        page_phases[name] = [round(start_ms + a * 1000, 3), round(start_ms + b * 1000, 3)]
    return {
        "rtc_id": rtc_id,
        "sent": sent,
        "echoes": echoes,
        "phases": page_phases,
        "bad_echo_lengths": bad_lengths,
        "answer_sdp": answer["sdp"],
        "monitor_hold_ms": [send - recv for recv, send in monitor_times.values()],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("authorization")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--phases", default="", help="name=start:end,... in seconds after the first probe")
    args = parser.parse_args()
    phases = {}
    for part in filter(None, args.phases.split(",")):
        name, _, span = part.partition("=")
        a, _, b = span.partition(":")
        phases[name] = (float(a), float(b))
    result = asyncio.run(run_stream(args.url, args.authorization, seconds=args.seconds, phases=phases))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
