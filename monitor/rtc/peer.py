"""One aiortc peer per browser probe stream: answers the page's offer, echoes every probe.

The page offers a single data channel (label ``probe``, unordered, no retransmissions) and no
media. The monitor answers with host candidates only (no STUN, no TURN: the page reaches the
monitor directly, as the CLI reaches the reflector), bound within the configured UDP port range
so that a firewall needs to open only that range.

aioice 0.13 always binds host candidates to port 0 (any port): restricting the range is an open
request upstream (aiortc/aioice#47, pull request #112). Until it ships, ``_restrict_gathering``
replaces the gathering step of the peer's own ICE connection (one instance, not the class):
it does what aioice's does for host candidates, on our addresses, with the port taken from the
range. ``check_aioice`` fails at start-up, with the reason, if a future aioice moves what this
relies on (the version is pinned below 0.14 in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)

from monitor.rtc.records import RtcRefused, StreamRecords

log = logging.getLogger("sessionready.monitor.rtc")

MAX_OFFER_BYTES = 16 * 1024  # a data-channel-only offer is about 1 KB, plus a line per candidate
PROBE_LABEL = "probe"
# Receive buffer of each ICE socket: a stream is 50 packets/s, but the event loop is shared.
SOCKET_BUFFER_BYTES = 1 << 20


@dataclass(frozen=True)
class IceSettings:
    """Where the monitor's ICE sockets bind and what it tells the page."""

    host: str  # the monitor's listening address: a specific one is the only one gathered
    port_min: int  # inclusive range; 0 and 0 = any port the OS picks
    port_max: int
    advertise_ip: str = ""  # also offered as a candidate (the public side of a 1:1 NAT), same port


def gather_addresses(host: str, reached: str | None) -> list[str]:
    """Addresses to gather host candidates on: the monitor's own listening address when it is a
    specific IP (loopback included, which aioice's own gathering leaves out); for a wildcard
    ``host``, the address the page's HTTP request reached, which the page can evidently reach.
    Never every interface's: that needs a netlink socket, which the systemd unit does not allow,
    and would offer addresses (container bridges, VPNs) the page has no route to."""
    for candidate in (host, reached):
        try:
            address = ipaddress.ip_address((candidate or "").strip("[]"))
        except ValueError:
            continue
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
        if not address.is_unspecified:
            return [str(address)]
    return []


async def _bind(connection: Connection, address: str, ports: range) -> StunProtocol | None:
    loop = asyncio.get_running_loop()
    if ports.start == 0:
        candidates = [0]
    else:
        # Start at a random place in the range: concurrent peers do not all probe from the bottom.
        offset = random.randrange(len(ports))
        candidates = [ports[(offset + i) % len(ports)] for i in range(len(ports))]
    for port in candidates:
        try:
            transport, protocol = await loop.create_datagram_endpoint(lambda: StunProtocol(connection), local_addr=(address, port))
        except OSError:
            continue  # in use (another peer, another program): try the next port
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        return protocol
    return None


def _restrict_gathering(connection: Connection, settings: IceSettings, reached: str | None) -> None:
    """Make ``connection`` gather host candidates on our addresses, within our port range."""
    ports = range(settings.port_min, settings.port_max + 1) if settings.port_min else range(1)

    async def host_candidates(component: int) -> list[Candidate]:
        found: list[Candidate] = []
        for address in gather_addresses(settings.host, reached):
            protocol = await _bind(connection, address, ports)
            if protocol is None:
                log.warning("no free UDP port for WebRTC on %s in %d-%d", address, settings.port_min, settings.port_max)
                continue
            bound = protocol.transport.get_extra_info("sockname")
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", bound[0]),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=bound[0],
                port=bound[1],
                type="host",
            )
            connection._protocols.append(protocol)
            found.append(protocol.local_candidate)
            if settings.advertise_ip:
                # Signalling only: the page's checks to this address reach the socket above
                # through the NAT, which keeps the port (the range is forwarded one to one).
                found.append(
                    Candidate(
                        foundation=candidate_foundation("host", "udp", settings.advertise_ip),
                        component=component,
                        transport="udp",
                        priority=candidate_priority(component, "host", local_pref=65534),
                        host=settings.advertise_ip,
                        port=bound[1],
                        type="host",
                    )
                )
        return found

    async def gather_candidates() -> None:
        # aioice's own gather_candidates lists every interface first (ifaddr, a netlink socket
        # the systemd unit does not allow), even for addresses it is then not asked to use.
        if connection._local_candidates_start:
            return
        connection._local_candidates_start = True
        for component in sorted(connection._components):
            connection._local_candidates += await host_candidates(component)
        connection._local_candidates_end = True

    connection.gather_candidates = gather_candidates  # type: ignore[method-assign]


_AIOICE_STATE = ("_local_candidates_start", "_local_candidates_end", "_local_candidates", "_components", "_protocols")


def check_aioice() -> None:
    """Fail at start-up, not at the first browser check, if aioice changed what the gathering
    above relies on."""
    connection = Connection(ice_controlling=False)
    missing = [name for name in _AIOICE_STATE if not hasattr(connection, name)]
    if missing or not hasattr(StunProtocol, "connection_made"):
        raise RuntimeError(f"this aioice version lacks {', '.join(missing) or 'StunProtocol'}: WebRTC port ranges cannot be applied")


class RtcPeer:
    """The monitor's end of one stream. ``await RtcPeer.answer(...)`` then ``await peer.close()``."""

    def __init__(self, pc: RTCPeerConnection, answer_sdp: str) -> None:
        self._pc = pc
        self.answer_sdp = answer_sdp

    @classmethod
    async def answer(
        cls,
        records: StreamRecords,
        offer_sdp: str,
        settings: IceSettings,
        *,
        reached: str | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        on_closed: Callable[[], None] | None = None,
    ) -> RtcPeer:
        """Answer ``offer_sdp``; raises RtcRefused when the offer is not one data channel.

        ``reached`` is the monitor's address the page's HTTP request arrived at (see
        ``gather_addresses``)."""
        if len(offer_sdp.encode()) > MAX_OFFER_BYTES:
            raise RtcRefused(413, "offer_too_large", f"the offer is larger than {MAX_OFFER_BYTES} bytes")
        if "\nm=audio" in offer_sdp or "\nm=video" in offer_sdp:
            raise RtcRefused(400, "invalid_offer", "the offer may hold only the probe data channel, no audio or video")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            except Exception as error:  # noqa: BLE001 - aiortc's parser raises many kinds on bad input; all are the page's fault
                raise RtcRefused(400, "invalid_offer", f"the offer is not a valid SDP offer ({error.__class__.__name__})") from None
            if pc.sctp is None:
                raise RtcRefused(400, "invalid_offer", "the offer has no data channel")
            _restrict_gathering(pc.sctp.transport.transport.iceGatherer._connection, settings, reached)
            pc.on("datachannel", lambda channel: _serve(channel, records, clock_ns))
            if on_closed is not None:

                @pc.on("connectionstatechange")
                def _state() -> None:
                    # The page closing its tab ends in "failed" (consent expiry) or "closed";
                    # the data channel's own close event is not reliable (aiortc/aiortc#253).
                    if pc.connectionState in ("failed", "closed"):
                        on_closed()

            await pc.setLocalDescription(await pc.createAnswer())
            if not pc.sctp.transport.transport.iceGatherer.getLocalCandidates():
                raise RtcRefused(503, "rtc_no_port", "the monitor has no free UDP port for WebRTC right now")
        except BaseException:
            await pc.close()
            raise
        return cls(pc, pc.localDescription.sdp)

    async def close(self) -> None:
        await self._pc.close()


def _serve(channel: RTCDataChannel, records: StreamRecords, clock_ns: Callable[[], int]) -> None:
    if channel.label != PROBE_LABEL or channel.ordered or channel.maxRetransmits != 0:
        # A reliable or ordered channel would hide loss and add retransmission delay: refuse it.
        log.info("refused data channel %r (ordered=%s, maxRetransmits=%s)", channel.label, channel.ordered, channel.maxRetransmits)
        channel.close()
        return

    @channel.on("message")
    def _message(message: bytes | str) -> None:
        recv_ns = clock_ns()
        if isinstance(message, str):
            records.ignored += 1
            return
        echo = records.answer(message, recv_ns, clock_ns)
        if echo is not None and channel.readyState == "open":
            channel.send(echo)
        # The phases' stopping rule, once the echo is on its way (docs/browser-check.md 3).
        records.settle_phases(clock_ns())
