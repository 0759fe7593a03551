"""Bytes that reached the peer on a TCP socket: what really crossed the network.

Counting bytes as the socket accepts them overstates an upload by whatever sits in the send
buffer (megabytes once the kernel has grown it), and that share changes during the
measurement. Linux reports ``tcpi_bytes_acked`` (RFC 4898's ThruOctetsAcked) in TCP_INFO since
4.1; elsewhere this returns None and the caller falls back to counting writes into a small,
fixed send buffer.

The cumulative acknowledgement alone lags what the receiver holds whenever a segment was lost:
everything behind the hole is selectively acknowledged (SACK) but not counted until the
retransmission fills it, often several round trips later, and then all at once. A loss-based
congestion control (CUBIC, what clients run) fills a deep bottleneck queue and loses a burst of
segments when it overflows; with a few hundred ms of queue the recovery spans a second, so a
rate taken between two readings of the cumulative count credits the later window with bytes
that crossed the link before it. ``bytes_delivered`` adds the selectively acknowledged segments
(``tcpi_sacked`` × ``tcpi_snd_mss``; a bulk upload's segments are full-sized): bytes at the
receiver at the moment of reading, as the bottleneck delivered them.
"""

from __future__ import annotations

import socket
import struct
import sys

# struct tcp_info (linux/tcp.h): 8 one-byte fields, then u32 fields (rto, ato, snd_mss,
# rcv_mss, unacked, sacked, ...; 24 in all), then u64 pacing_rate, u64 max_pacing_rate,
# u64 bytes_acked.
_SND_MSS_OFFSET = 8 + 2 * 4
_SACKED_OFFSET = 8 + 5 * 4
_BYTES_ACKED_OFFSET = 8 + 24 * 4 + 8 + 8
_U32 = struct.Struct("@I")
_U64 = struct.Struct("@Q")
_TCP_INFO_LENGTH = 256


def _tcp_info(sock: socket.socket) -> bytes | None:
    if not sys.platform.startswith("linux") or sock.fileno() < 0:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LENGTH)
    except OSError:
        return None
    if len(info) < _BYTES_ACKED_OFFSET + _U64.size:
        return None  # a kernel older than 4.1
    return info


def bytes_acked(sock: socket.socket) -> int | None:
    """Cumulatively acknowledged bytes sent on ``sock`` so far, or None where the OS does not say."""
    info = _tcp_info(sock)
    return None if info is None else _U64.unpack_from(info, _BYTES_ACKED_OFFSET)[0]


def bytes_delivered(sock: socket.socket) -> int | None:
    """Bytes sent on ``sock`` that the peer has received so far: cumulatively acknowledged
    plus selectively acknowledged beyond a hole. None where the OS does not say."""
    info = _tcp_info(sock)
    if info is None:
        return None
    sacked = _U32.unpack_from(info, _SACKED_OFFSET)[0]
    mss = _U32.unpack_from(info, _SND_MSS_OFFSET)[0]
    return _U64.unpack_from(info, _BYTES_ACKED_OFFSET)[0] + sacked * mss
