"""The UDP probe protocol shared by the agent's prober and the monitor's reflector.

Every datagram starts with the same 52-byte header::

    magic "SRP1" | type u8 | flags u8 | reserved u16 | probe key (32 bytes) | seq u32 | sent_ns u64

A PROBE is padded to a voice-sized packet (172 bytes of UDP payload by default: 160 bytes of
G.711 audio per 20 ms plus a 12-byte RTP header), so the path sees what a call would send.

The reflector answers a PROBE with an ECHO of exactly the same length (never larger: no
amplification) that carries, after the header, what the client needs to split the round
trip into directions: the reflector's receive and send timestamps and how many distinct
probes of this flow it has received so far. A STATS request, sent when the stream ends, is
answered with the flow's totals. All integers are big-endian. Timestamps are nanoseconds of
the sender's own clock; the two ends' clocks are never compared directly.

The probe key is issued over authenticated HTTP and checked statelessly by the reflector:
``expiry u32 (unix s) | nonce (12 bytes) | HMAC-SHA256(secret, expiry|nonce|address)[:16]``,
where ``address`` is the packed IP address the key was issued to (``address_tag``; empty for
an unbound key). The reflector checks the MAC against the datagram's source address, so a key
cannot make it echo to an address other than its requester's. Any monitor holding the same
secret accepts it, so several monitors can sit behind one address.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import struct
from dataclasses import dataclass

MAGIC = b"SRP1"
PROBE = 1
ECHO = 2
STATS_REQUEST = 3
STATS_REPLY = 4

KEY_BYTES = 32
NONCE_BYTES = 12
MAC_BYTES = 16
HEADER = struct.Struct("!4sBBH32sIQ")
ECHO_FIELDS = struct.Struct("!QQI")  # reflector recv ns, reflector send ns, distinct received so far
STATS_FIELDS = struct.Struct("!IIII")  # distinct received, duplicates, reordered, highest seq
MIN_PACKET_BYTES = HEADER.size + max(ECHO_FIELDS.size, STATS_FIELDS.size)
MAX_PACKET_BYTES = 1472  # one Ethernet frame of UDP payload; larger datagrams are malformed
VOICE_PACKET_BYTES = 172
# A flow is at most ~22 minutes at 50 packets/s (longer streams take new keys), so the
# reflector's per-flow bitmap stays at 8 KiB.
MAX_SEQ = 1 << 16


class MalformedPacket(ValueError):
    """The datagram is not a well-formed probe packet."""


@dataclass(frozen=True)
class Header:
    kind: int
    key: bytes
    seq: int
    sent_ns: int


def address_tag(host: str) -> bytes:
    """The packed IP address a key is bound to; an IPv4-mapped IPv6 address counts as its IPv4
    address (a dual-stack socket reports IPv4 peers that way). ``ValueError`` if not an IP."""
    address = ipaddress.ip_address(host.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.packed


def _mac(secret: bytes, head: bytes, bound_to: bytes) -> bytes:
    return hmac.new(secret, head + bound_to, hashlib.sha256).digest()[:MAC_BYTES]


def issue_key(secret: bytes, expiry_unix_s: int, bound_to: bytes = b"") -> bytes:
    """A probe key valid until ``expiry_unix_s`` for datagrams from ``bound_to`` (an
    ``address_tag``; empty = from anywhere); 32 bytes."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    head = struct.pack("!I", expiry_unix_s) + nonce
    return head + _mac(secret, head, bound_to)


def key_is_valid(secret: bytes, key: bytes, now_unix_s: float, source: bytes = b"") -> bool:
    """Whether ``key`` is genuine, unexpired, and was issued to ``source`` (an ``address_tag``)."""
    if len(key) != KEY_BYTES:
        return False
    head, mac = key[: 4 + NONCE_BYTES], key[4 + NONCE_BYTES :]
    if not hmac.compare_digest(mac, _mac(secret, head, source)):
        return False
    (expiry,) = struct.unpack("!I", key[:4])
    return now_unix_s <= expiry


def flow_id(key: bytes) -> bytes:
    """The nonce identifies a flow: one key, one stream."""
    return key[4 : 4 + NONCE_BYTES]


def parse_header(data: bytes) -> Header:
    if len(data) < MIN_PACKET_BYTES or len(data) > MAX_PACKET_BYTES:
        raise MalformedPacket(f"length {len(data)} outside {MIN_PACKET_BYTES}..{MAX_PACKET_BYTES}")
    magic, kind, _flags, _reserved, key, seq, sent_ns = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MalformedPacket("bad magic")
    if kind not in (PROBE, ECHO, STATS_REQUEST, STATS_REPLY):
        raise MalformedPacket(f"unknown type {kind}")
    if seq >= MAX_SEQ:
        raise MalformedPacket("sequence number out of range")
    return Header(kind=kind, key=key, seq=seq, sent_ns=sent_ns)


def build_packet(kind: int, key: bytes, seq: int, sent_ns: int, size: int) -> bytearray:
    """A zero-padded packet of ``size`` bytes with the header filled in."""
    if not MIN_PACKET_BYTES <= size <= MAX_PACKET_BYTES:
        raise ValueError(f"packet size must be {MIN_PACKET_BYTES}..{MAX_PACKET_BYTES} bytes, got {size}")
    packet = bytearray(size)
    HEADER.pack_into(packet, 0, MAGIC, kind, 0, 0, key, seq, sent_ns)
    return packet


def make_echo(request: bytes, recv_ns: int, send_ns: int, distinct_received: int) -> bytearray:
    """The reflector's answer to a PROBE: same length, type ECHO, its timestamps appended."""
    echo = bytearray(request)
    echo[4] = ECHO
    ECHO_FIELDS.pack_into(echo, HEADER.size, recv_ns, send_ns, distinct_received)
    return echo


def read_echo(data: bytes) -> tuple[int, int, int]:
    """(reflector recv ns, reflector send ns, distinct received so far) from an ECHO."""
    return ECHO_FIELDS.unpack_from(data, HEADER.size)


def make_stats_reply(request: bytes, distinct: int, duplicates: int, reordered: int, highest_seq: int) -> bytearray:
    reply = bytearray(request)
    reply[4] = STATS_REPLY
    STATS_FIELDS.pack_into(reply, HEADER.size, distinct, duplicates, reordered, highest_seq)
    return reply


def read_stats(data: bytes) -> tuple[int, int, int, int]:
    """(distinct received, duplicates, reordered, highest seq) from a STATS_REPLY."""
    return STATS_FIELDS.unpack_from(data, HEADER.size)
