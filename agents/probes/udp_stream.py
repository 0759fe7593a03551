"""The isochronous UDP probe stream: a voice call's packet pattern, echoed by the monitor.

One socket carries consecutive *flows*, one per phase of the check (idle, download, upload),
each with its own probe key, so the reflector's per-flow totals split loss by phase and by
direction exactly. Sending follows an absolute schedule on the monotonic clock; timestamps in
packets are wall-clock nanoseconds because kernel receive timestamps only exist on that clock
(see ``sessionready.udp``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sessionready import wire
from sessionready.flow import Echo, FlowResult, ReflectorTotals, analyse
from sessionready.udp import open_udp_socket, recv_timestamped

STATS_ATTEMPTS = 5


class UdpUnavailable(Exception):
    """The stream cannot start: the reflector's address is unusable. ``str()`` is one sentence."""
STATS_INTERVAL_S = 0.2


@dataclass(frozen=True)
class StreamSettings:
    interval_ms: float = 20.0  # 50 packets/s, like a voice call
    packet_bytes: int = wire.VOICE_PACKET_BYTES
    # How long to keep listening for echoes still in flight after the last probe.
    drain_min_s: float = 0.5
    drain_max_s: float = 3.0


@dataclass
class _Echo:
    client_recv_ns: int
    reflector_recv_ns: int
    reflector_send_ns: int
    reflected_so_far: int = 0  # distinct probes of the flow the reflector had received, this one included


@dataclass
class _Flow:
    name: str
    key: bytes
    sent_ns: list[int] = field(default_factory=list)  # index = sequence number
    echoes: dict[int, _Echo] = field(default_factory=dict)  # first echo per seq
    arrival_order: list[int] = field(default_factory=list)  # seqs in client arrival order
    duplicate_echoes: int = 0
    reordered_echoes: int = 0
    highest_echo: int = -1
    stats: tuple[int, int, int, int] | None = None  # reflector: distinct, duplicates, reordered, highest


@dataclass(frozen=True)
class Probe:
    """One probe of a flow as known so far. Times are ns on each side's own clock.

    ``echo_ns`` is when its first echo came back (None: not yet, or lost);
    ``reflected_so_far`` is how many distinct probes of the flow the reflector had received
    when it echoed this one, this one included: the difference between two echoes tells how
    many probes in between reached the reflector, which splits loss into directions.
    """

    seq: int
    sent_ns: int
    echo_ns: int | None
    reflector_recv_ns: int | None
    reflector_send_ns: int | None
    reflected_so_far: int | None


class UdpStream:
    """Send probes to the reflector at a fixed rate and collect the echoes.

    Use ``async with UdpStream(...)``; call ``start_flow(name, key)`` at each phase and
    ``finish()`` at the end to get one ``FlowResult`` per flow.
    """

    def __init__(
        self,
        host: str,
        port: int,
        settings: StreamSettings = StreamSettings(),
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._address = (host, port)
        self._settings = settings
        self._clock_ns = clock_ns
        self._monotonic = monotonic
        self._flows: list[_Flow] = []
        self._flow_by_key: dict[bytes, _Flow] = {}
        self._sock: socket.socket | None = None
        self._sender: asyncio.Task[None] | None = None
        self._stats_tasks: list[asyncio.Task[None]] = []
        self._max_rtt_ns = 0

    async def __aenter__(self) -> UdpStream:
        """Raises UdpUnavailable (one sentence) when the reflector's address cannot be used."""
        host, port = self._address
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (OSError, OverflowError, UnicodeError):
            raise UdpUnavailable(f"the monitor's UDP address {host}:{port} cannot be resolved") from None
        family, _, _, _, address = infos[0]
        sock = open_udp_socket("::" if family == socket.AF_INET6 else "0.0.0.0", 0)
        try:
            # connect() filters out datagrams from anyone but the reflector.
            sock.connect(address)
        except (OSError, OverflowError) as error:
            sock.close()
            raise UdpUnavailable(f"cannot send UDP probes to {host}:{port} ({error.__class__.__name__})") from None
        self._sock = sock
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._readable)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop_sending()
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def start_flow(self, name: str, key: bytes) -> None:
        """From now on, probes belong to a new flow with its own key and sequence numbers.

        The previous flow's totals are fetched once its last echoes had time to return,
        while its key is still fresh (keys are short-lived).
        """
        if self._flows:
            self._stats_tasks.append(asyncio.create_task(self._totals_after_drain([self._flows[-1]])))
        flow = _Flow(name, key)
        self._flows.append(flow)
        self._flow_by_key[key] = flow
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop())

    def probes(self, key: bytes, first_seq: int = 0) -> list[Probe]:
        """The probes sent so far in the flow with ``key``, from ``first_seq`` on, in seq order.

        For analyses over windows of a stream that runs for a long time (the agent's live
        mode); empty for an unknown or forgotten key.
        """
        flow = self._flow_by_key.get(key)
        if flow is None:
            return []
        found = []
        for seq in range(max(0, first_seq), len(flow.sent_ns)):
            echo = flow.echoes.get(seq)
            if echo is None:
                found.append(Probe(seq, flow.sent_ns[seq], None, None, None, None))
            else:
                found.append(Probe(seq, flow.sent_ns[seq], echo.client_recv_ns, echo.reflector_recv_ns, echo.reflector_send_ns, echo.reflected_so_far))
        return found

    def forget_flow(self, key: bytes) -> None:
        """Drop a flow that is no longer sent on, so that a stream running for hours (a new
        key every few minutes) keeps bounded memory. Its echoes are ignored from now on and
        ``finish`` no longer reports it."""
        flow = self._flow_by_key.get(key)
        if flow is None or flow is self._flows[-1]:
            return  # the current flow stays: the sender still uses it
        del self._flow_by_key[key]
        self._flows.remove(flow)

    async def finish(self) -> list[FlowResult]:
        """Stop sending, wait for late echoes, fetch the reflector's totals, and analyse."""
        await self._stop_sending()
        await self._totals_after_drain([flow for flow in self._flows if flow.stats is None])
        await asyncio.gather(*self._stats_tasks)
        return [analyse_flow(flow) for flow in self._flows]

    async def _totals_after_drain(self, flows: list[_Flow]) -> None:
        drain = min(self._settings.drain_max_s, max(self._settings.drain_min_s, 3 * self._max_rtt_ns / 1e9))
        await asyncio.sleep(drain)
        await self._request_stats(flows)

    async def _stop_sending(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            try:
                await self._sender
            except asyncio.CancelledError:
                pass
            self._sender = None

    async def _send_loop(self) -> None:
        interval = self._settings.interval_ms / 1000
        next_send = self._monotonic()
        while True:
            flow = self._flows[-1]
            seq = len(flow.sent_ns)
            sent_ns = self._clock_ns()
            packet = wire.build_packet(wire.PROBE, flow.key, seq, sent_ns, self._settings.packet_bytes)
            flow.sent_ns.append(sent_ns)
            self._send(packet)
            next_send += interval
            delay = next_send - self._monotonic()
            if delay < -interval:
                # The loop stalled for more than a packet: resume the rhythm from now instead
                # of sending a burst that no call would send.
                next_send = self._monotonic()
                delay = 0
            await asyncio.sleep(max(0.0, delay))

    def _send(self, packet: bytes | bytearray) -> None:
        assert self._sock is not None
        try:
            self._sock.send(packet)
        except (BlockingIOError, InterruptedError):
            pass  # a full socket buffer is local loss; it shows up as upstream loss
        except OSError:
            pass  # e.g. ICMP port unreachable from an earlier packet; counted as loss

    async def _request_stats(self, flows: list[_Flow]) -> None:
        pending = [flow for flow in flows if flow.sent_ns]
        for _ in range(STATS_ATTEMPTS):
            pending = [flow for flow in pending if flow.stats is None]
            if not pending or self._sock is None:
                return
            for flow in pending:
                self._send(wire.build_packet(wire.STATS_REQUEST, flow.key, 0, self._clock_ns(), wire.MIN_PACKET_BYTES))
            deadline = self._monotonic() + STATS_INTERVAL_S
            while self._monotonic() < deadline and any(flow.stats is None for flow in pending):
                await asyncio.sleep(0.01)

    def _readable(self) -> None:
        assert self._sock is not None
        for _ in range(256):
            try:
                data, _sender, recv_ns = recv_timestamped(self._sock)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ICMP errors (port unreachable) surface here; loss accounts for them
            self._handle(data, recv_ns)

    def _handle(self, data: bytes, recv_ns: int) -> None:
        try:
            header = wire.parse_header(data)
        except wire.MalformedPacket:
            return
        flow = self._flow_by_key.get(header.key)
        if flow is None:
            return
        if header.kind == wire.STATS_REPLY:
            flow.stats = wire.read_stats(data)
            return
        if header.kind != wire.ECHO or header.seq >= len(flow.sent_ns):
            return
        if header.seq in flow.echoes:
            flow.duplicate_echoes += 1
            return
        reflector_recv_ns, reflector_send_ns, distinct = wire.read_echo(data)
        flow.echoes[header.seq] = _Echo(recv_ns, reflector_recv_ns, reflector_send_ns, distinct)
        flow.arrival_order.append(header.seq)
        if header.seq < flow.highest_echo:
            flow.reordered_echoes += 1
        else:
            flow.highest_echo = header.seq
        rtt = (recv_ns - flow.sent_ns[header.seq]) - (reflector_send_ns - reflector_recv_ns)
        self._max_rtt_ns = max(self._max_rtt_ns, rtt)


def analyse_flow(flow: _Flow) -> FlowResult:
    """The flow's numbers, by the analysis every probe stream shares (``sessionready.flow``)."""
    totals = None
    if flow.stats is not None:
        totals = ReflectorTotals(*flow.stats)
    return analyse(
        flow.name,
        len(flow.sent_ns),
        flow.sent_ns,
        {seq: Echo(e.client_recv_ns, e.reflector_recv_ns, e.reflector_send_ns) for seq, e in flow.echoes.items()},
        flow.arrival_order,
        duplicate_echoes=flow.duplicate_echoes,
        reordered_echoes=flow.reordered_echoes,
        totals=totals,
    )
