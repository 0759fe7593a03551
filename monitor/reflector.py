"""The UDP reflector: echoes probe packets that carry a valid probe key, and nothing else.

An echo is exactly as long as the packet that caused it (no amplification). It carries the
reflector's receive and send timestamps and the number of distinct probes received so far,
which lets the client split loss and jitter into directions. Everything else (bad keys,
expired keys, malformed or oversized datagrams) is dropped silently and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sessionready import wire
from sessionready.udp import open_udp_socket, recv_timestamped

log = logging.getLogger("sessionready.monitor.reflector")

# A probe stream sends 50 packets/s; twice that, with a short burst allowance, is the most a
# flow is answered, so a stolen key cannot turn the reflector into a traffic source.
FLOW_MAX_PPS = 100.0
FLOW_BURST_PACKETS = 100.0


@dataclass
class ReflectorCounters:
    """Read by the metrics collector at scrape time."""

    answered: int = 0
    dropped_bad_key: int = 0
    dropped_malformed: int = 0
    dropped_wrong_source: int = 0
    dropped_rate_limited: int = 0
    send_failed: int = 0


@dataclass
class _Flow:
    expiry: int
    source: object = None  # the first sender's address: a key cannot be aimed at others
    allowance: float = FLOW_BURST_PACKETS
    last_ns: int = 0
    seen: bytearray = field(default_factory=bytearray)  # one bit per sequence number
    distinct: int = 0
    duplicates: int = 0
    reordered: int = 0
    highest: int = -1

    def admit(self, now_ns: int) -> bool:
        """A token bucket: a probe stream is 50 packets/s; a flow gets at most FLOW_MAX_PPS."""
        if self.last_ns:
            elapsed_s = max(0, now_ns - self.last_ns) / 1e9
            self.allowance = min(FLOW_BURST_PACKETS, self.allowance + elapsed_s * FLOW_MAX_PPS)
        self.last_ns = now_ns
        if self.allowance < 1:
            return False
        self.allowance -= 1
        return True

    def record(self, seq: int) -> None:
        byte, bit = divmod(seq, 8)
        if byte >= len(self.seen):
            self.seen.extend(bytes(byte + 1 - len(self.seen)))
        if self.seen[byte] & (1 << bit):
            self.duplicates += 1
            return
        self.seen[byte] |= 1 << bit
        self.distinct += 1
        if seq < self.highest:
            self.reordered += 1
        else:
            self.highest = seq


class Reflector:
    """The protocol logic, independent of sockets: ``answer(datagram, recv_ns)`` -> reply or None."""

    def __init__(
        self,
        secret: bytes,
        *,
        max_flows: int = 4096,
        bind_keys: bool = True,
        wall_clock_s: Callable[[], float] = time.time,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._secret = secret
        self._max_flows = max_flows
        # Keys are bound to the address that asked for them over HTTP (wire.issue_key); off
        # only when the monitor cannot see that address (probe_key_binding = "off").
        self._bind_keys = bind_keys
        self._wall_clock_s = wall_clock_s
        self._clock_ns = clock_ns
        self._flows: OrderedDict[bytes, _Flow] = OrderedDict()
        self.counters = ReflectorCounters()

    def answer(self, data: bytes, recv_ns: int, sender: object = None) -> bytes | None:
        """The reply to one datagram from ``sender`` (None in tests that do not care), or None."""
        try:
            header = wire.parse_header(data)
        except wire.MalformedPacket:
            self.counters.dropped_malformed += 1
            return None
        if header.kind not in (wire.PROBE, wire.STATS_REQUEST):
            self.counters.dropped_malformed += 1
            return None
        if not wire.key_is_valid(self._secret, header.key, self._wall_clock_s(), self._source_tag(sender)):
            self.counters.dropped_bad_key += 1
            return None
        flow = self._flow(header.key)
        if flow.source is None:
            flow.source = sender
        elif sender is not None and sender != flow.source:
            self.counters.dropped_wrong_source += 1
            return None
        if not flow.admit(recv_ns):
            self.counters.dropped_rate_limited += 1
            return None
        self.counters.answered += 1
        if header.kind == wire.STATS_REQUEST:
            return bytes(wire.make_stats_reply(data, flow.distinct, flow.duplicates, flow.reordered, max(flow.highest, 0)))
        flow.record(header.seq)
        return bytes(wire.make_echo(data, recv_ns, self._clock_ns(), flow.distinct))

    def _source_tag(self, sender: object) -> bytes:
        """What a key must be bound to for a datagram from ``sender`` (a socket address)."""
        if not self._bind_keys or not isinstance(sender, tuple) or not sender:
            return b""
        try:
            return wire.address_tag(str(sender[0]))
        except ValueError:
            return b"?"  # matches no key

    def _flow(self, key: bytes) -> _Flow:
        flow_id = wire.flow_id(key)
        flow = self._flows.get(flow_id)
        if flow is not None:
            self._flows.move_to_end(flow_id)
            return flow
        now = self._wall_clock_s()
        # Forget expired flows first, then the least recently used if still too many.
        for stale in [fid for fid, f in self._flows.items() if f.expiry < now]:
            del self._flows[stale]
        while len(self._flows) >= self._max_flows:
            self._flows.popitem(last=False)
        flow = _Flow(expiry=int.from_bytes(key[:4], "big"))
        self._flows[flow_id] = flow
        return flow

    @property
    def active_flows(self) -> int:
        return len(self._flows)


class ReflectorServer:
    """Binds the reflector to a UDP socket on the running event loop."""

    def __init__(self, reflector: Reflector, host: str, port: int) -> None:
        self.reflector = reflector
        self._sock = open_udp_socket(host, port)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        # Drain everything waiting: one wake-up may carry many datagrams.
        for _ in range(256):
            try:
                data, sender, recv_ns = recv_timestamped(self._sock)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. ICMP errors surfacing on the socket
                log.debug("reflector receive error: %s", error)
                return
            reply = self.reflector.answer(data, recv_ns, sender)
            if reply is None:
                continue
            try:
                self._sock.sendto(reply, sender)
            except (BlockingIOError, InterruptedError, OSError):
                self.reflector.counters.send_failed += 1

    def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

