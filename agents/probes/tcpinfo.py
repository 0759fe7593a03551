"""Bytes the peer has acknowledged on a TCP socket: what really crossed the network.

Counting bytes as the socket accepts them overstates an upload by whatever sits in the send
buffer (megabytes once the kernel has grown it), and that share changes during the
measurement. Linux reports ``tcpi_bytes_acked`` (RFC 4898's ThruOctetsAcked) in TCP_INFO since
4.1; elsewhere this returns None and the caller falls back to counting writes into a small,
fixed send buffer.
"""

from __future__ import annotations

import socket
import struct
import sys

# struct tcp_info (linux/tcp.h): 8 one-byte fields, 24 u32 fields, then u64 pacing_rate,
# u64 max_pacing_rate, u64 bytes_acked.
_BYTES_ACKED_OFFSET = 8 + 24 * 4 + 8 + 8
_U64 = struct.Struct("@Q")
_TCP_INFO_LENGTH = 256


def bytes_acked(sock: socket.socket) -> int | None:
    """Acknowledged bytes sent on ``sock`` so far, or None where the OS does not say."""
    if not sys.platform.startswith("linux") or sock.fileno() < 0:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LENGTH)
    except OSError:
        return None
    if len(info) < _BYTES_ACKED_OFFSET + _U64.size:
        return None  # a kernel older than 4.1
    return _U64.unpack_from(info, _BYTES_ACKED_OFFSET)[0]
