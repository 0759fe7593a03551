"""UDP sockets with kernel receive timestamps, shared by the prober and the reflector.

Why kernel timestamps: the agent runs its HTTP throughput phases in the same process as the
UDP stream, and the monitor serves downloads next to its reflector. Reading the time in Python
after the event loop got round to the socket would add the loop's busy time to every RTT and
show "bufferbloat" that is really our own CPU. ``SO_TIMESTAMPNS`` records when the packet
arrived at the host. It only exists on the wall clock (CLOCK_REALTIME), so probe timestamps
are wall-clock nanoseconds; a run is short and its clock-step check lives in the prober.
"""

from __future__ import annotations

import socket
import struct
import sys
import time

# Linux's SO_TIMESTAMPNS (asm-generic/socket.h); Python's socket module does not export it.
_SO_TIMESTAMPNS = 35 if sys.platform.startswith("linux") else None
_TIMESPEC = struct.Struct("@qq")
RECV_BUFFER = 2048


def open_udp_socket(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to host:port (port 0 = ephemeral), kernel timestamps on."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if _SO_TIMESTAMPNS is not None:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def kernel_timestamps_supported() -> bool:
    return _SO_TIMESTAMPNS is not None


def recv_timestamped(sock: socket.socket) -> tuple[bytes, tuple, int]:
    """One datagram, its sender, and its arrival time in wall-clock ns.

    Raises BlockingIOError when nothing is waiting. Falls back to reading the clock now where
    the kernel gives no timestamp.
    """
    data, ancillary, _flags, sender = sock.recvmsg(RECV_BUFFER, socket.CMSG_SPACE(_TIMESPEC.size))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
            return data, sender, seconds * 1_000_000_000 + nanoseconds
    return data, sender, time.time_ns()
