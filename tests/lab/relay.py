"""A UDP relay that adds delay and jitter and logs what it did: the lab's ground truth.

The kernel of the lab machines has no netem, so delay and jitter come from here. The relay
listens on ``--listen HOST:PORT``; every client that sends to it gets its own upstream socket
(bound to ``--upstream-bind``) towards ``--target HOST:PORT``, like a NAT, and replies on that
socket go back to that client from the listening socket.

Each datagram is held for ``delay + jitter`` in its direction, jitter drawn per packet:

* ``uniform``: ``delay + U(-j, +j)``
* ``normal``: ``delay + N(0, j)``
* ``none``: exactly ``delay``

clipped at 0. Packets are released strictly at their due time, so with jitter wider than
the packet spacing they can leave out of order, as on a real multi-path network (netem does
the same). ``--preserve-order`` instead makes each direction a FIFO (a packet never leaves
before the one received before it). Ground truth for jitter therefore uses the order in which
the relay *sent* packets, which is the order they arrive in at the receiver: the rest of the
path is a FIFO.

Timing: the receive time is the kernel's receive timestamp (SO_TIMESTAMPNS, converted to the
monotonic clock), so the relay's own wake-up latency is part of the hold it measured and not
added on top. Releases are scheduled on a heap and sent from a single thread that sleeps in
``select`` (1 ns timer slack, SCHED_FIFO priority when allowed) until 0.3 ms before the next
release and spins for the rest. The difference between the due time and the actual send time
(scheduling error) is logged per packet: typically under 10 µs; a shared VM that stalls adds
a few ms now and then, which is why the ground truth is the hold actually applied.

The relay does not know the packet format. Per packet it logs a JSON line::

    {"dir": "up"|"down", "n": arrival index in that direction, "rx_ns": kernel receive time,
     "read_ns": when the relay read it, "wall_offset_ns": CLOCK_REALTIME - CLOCK_MONOTONIC,
     "due_ns": release time, "tx_ns": time sendto was called, "send_call_ns": how long
     sendto took (the kernel's forwarding work, which the base path has too),
     "target_hold_ns": drawn hold, "len": bytes, "head": hex of the first 64 bytes}

(all times monotonic ns). Hold actually applied = tx_ns - rx_ns. The first line is a
``{"config": ...}`` record, the last a ``{"summary": ...}`` record written on SIGTERM.
The relay prints ``READY`` on stdout once its socket is bound.

Standard library only; run as ``python relay.py ...`` (inside a network namespace).
"""

from __future__ import annotations

import argparse
import ctypes
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
PR_SET_TIMERSLACK = 29
HEAD_BYTES = 64
SPIN_NS = 300_000
MAX_DATAGRAM = 65535


def parse_addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def _try_realtime_scheduling() -> str:
    notes = []
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0:
            notes.append("timerslack=1ns")
    except OSError:
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(20))
        notes.append("SCHED_FIFO")
    except (OSError, AttributeError) as exc:
        notes.append(f"no SCHED_FIFO ({exc})")
    return ", ".join(notes)


class Clock:
    """Converts kernel receive timestamps (CLOCK_REALTIME) to CLOCK_MONOTONIC."""

    def __init__(self) -> None:
        self.offset_ns = self._measure()

    @staticmethod
    def _measure() -> int:
        best = None
        for _ in range(5):
            m0 = time.monotonic_ns()
            r = time.time_ns()
            m1 = time.monotonic_ns()
            if best is None or m1 - m0 < best[0]:
                best = (m1 - m0, r - (m0 + m1) // 2)
        return best[1]

    def refresh(self) -> None:
        self.offset_ns = self._measure()

    def to_monotonic(self, realtime_ns: int) -> int:
        return realtime_ns - self.offset_ns


class Direction:
    def __init__(self, name: str, delay_ms: float, jitter_ms: float, dist: str, rng: random.Random, fifo: bool):
        self.name = name
        self.delay_ns = int(delay_ms * 1e6)
        self.jitter_ns = int(jitter_ms * 1e6)
        self.dist = dist
        self.rng = rng
        self.fifo = fifo
        self.count = 0
        self.last_due = 0

    def draw_hold(self) -> int:
        if self.dist == "uniform":
            hold = self.delay_ns + self.rng.uniform(-self.jitter_ns, self.jitter_ns)
        elif self.dist == "normal":
            hold = self.rng.gauss(self.delay_ns, self.jitter_ns)
        else:
            hold = self.delay_ns
        return max(0, int(hold))


def _recv(sock: socket.socket, clock: Clock) -> tuple[bytes, tuple[str, int], int, int]:
    data, ancdata, _flags, addr = sock.recvmsg(MAX_DATAGRAM, 64)
    user_ns = time.monotonic_ns()
    rx_ns = user_ns
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            sec, nsec = struct.unpack("qq", payload[:16])
            kernel_ns = clock.to_monotonic(sec * 1_000_000_000 + nsec)
            # Guard against a wall-clock step: never trust a kernel stamp from the future
            # or from long ago.
            if 0 <= user_ns - kernel_ns < 50_000_000:
                rx_ns = kernel_ns
    return data, addr, rx_ns, user_ns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT the clients send to")
    parser.add_argument("--target", required=True, help="HOST:PORT of the real server (reflector)")
    parser.add_argument("--upstream-bind", default="0.0.0.0", help="source address towards the target")
    parser.add_argument("--log", required=True, help="JSON-lines log file")
    for d in ("up", "down"):
        parser.add_argument(f"--{d}-delay-ms", type=float, default=0.0)
        parser.add_argument(f"--{d}-jitter-ms", type=float, default=0.0)
        parser.add_argument(f"--{d}-dist", choices=("none", "uniform", "normal"), default="none")
    parser.add_argument("--preserve-order", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    sched_note = _try_realtime_scheduling()
    rng = random.Random(args.seed)
    up = Direction("up", args.up_delay_ms, args.up_jitter_ms, args.up_dist, rng, args.preserve_order)
    down = Direction("down", args.down_delay_ms, args.down_jitter_ms, args.down_dist, rng, args.preserve_order)
    target = parse_addr(args.target)
    clock = Clock()

    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    listener.bind(parse_addr(args.listen))
    listener.setblocking(False)

    upstream_by_client: dict[tuple[str, int], socket.socket] = {}
    client_by_upstream: dict[socket.socket, tuple[str, int]] = {}
    heap: list[tuple[int, int, bytes, socket.socket, tuple[str, int], Direction, dict]] = []
    tiebreak = 0
    done: list[dict] = []  # serialised at exit: no JSON work between a due time and its send
    config = {k: v for k, v in vars(args).items() if k != "log"}

    stopping = False

    def on_term(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    print("READY", flush=True)

    def enqueue(data: bytes, rx_ns: int, user_ns: int, out_sock: socket.socket, dest: tuple[str, int], direction: Direction) -> None:
        nonlocal tiebreak
        hold = direction.draw_hold()
        due = rx_ns + hold
        if direction.fifo and due < direction.last_due:
            due = direction.last_due
        direction.last_due = max(direction.last_due, due)
        record = {
            "dir": direction.name,
            "n": direction.count,
            "rx_ns": rx_ns,
            "read_ns": user_ns,
            "wall_offset_ns": clock.offset_ns,
            "due_ns": due,
            "target_hold_ns": hold,
            "len": len(data),
            "head": data[:HEAD_BYTES].hex(),
        }
        direction.count += 1
        tiebreak += 1
        heapq.heappush(heap, (due, tiebreak, data, out_sock, dest, direction, record))

    last_refresh = time.monotonic()
    try:
        while not stopping:
            now = time.monotonic_ns()
            # Timer wake-ups in a VM are late by ~0.1 ms and sometimes by more: wake up a
            # little early and spin for the rest when a release is that close.
            if heap and heap[0][0] - now <= SPIN_NS:
                while time.monotonic_ns() < heap[0][0]:
                    pass
                now = time.monotonic_ns()
            # Release everything that is due.
            while heap and heap[0][0] <= now:
                due, _, data, out_sock, dest, _direction, record = heapq.heappop(heap)
                tx = time.monotonic_ns()
                try:
                    out_sock.sendto(data, dest)
                except OSError as exc:
                    record["error"] = str(exc)
                now = time.monotonic_ns()
                record["tx_ns"] = tx
                record["send_call_ns"] = now - tx
                done.append(record)
            if heap:
                timeout = max(0.0, (heap[0][0] - time.monotonic_ns() - SPIN_NS) / 1e9)
            else:
                timeout = 0.2  # wake up now and then to notice SIGTERM
            sockets = [listener, *client_by_upstream]
            try:
                readable, _, _ = select.select(sockets, [], [], timeout)
            except InterruptedError:
                continue
            for sock in readable:
                # Drain the socket: several datagrams may be waiting.
                while True:
                    try:
                        data, addr, rx_ns, user_ns = _recv(sock, clock)
                    except BlockingIOError:
                        break
                    if sock is listener:
                        upstream = upstream_by_client.get(addr)
                        if upstream is None:
                            upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                            upstream.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                            upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                            upstream.bind((args.upstream_bind, 0))
                            upstream.setblocking(False)
                            upstream_by_client[addr] = upstream
                            client_by_upstream[upstream] = addr
                        enqueue(data, rx_ns, user_ns, upstream, target, up)
                    else:
                        enqueue(data, rx_ns, user_ns, listener, client_by_upstream[sock], down)
            if time.monotonic() - last_refresh > 1.0:
                clock.refresh()
                last_refresh = time.monotonic()
    finally:
        # Whatever is still held is lost, as on a link that goes down; log it as such.
        for _due, _, _data, _sock, _dest, _direction, record in heap:
            record["tx_ns"] = None
            done.append(record)
        errors = sorted(r["tx_ns"] - r["due_ns"] for r in done if r["tx_ns"] is not None)
        summary = {
            "packets": {"up": up.count, "down": down.count},
            "sched_error_ns": {
                "n": len(errors),
                "p50": errors[len(errors) // 2] if errors else None,
                "p99": errors[int(len(errors) * 0.99)] if errors else None,
                "max": errors[-1] if errors else None,
            },
        }
        with open(args.log, "w") as log:
            log.write(json.dumps({"config": config, "scheduling": sched_note}) + "\n")
            for record in done:
                log.write(json.dumps(record, separators=(",", ":")) + "\n")
            log.write(json.dumps({"summary": summary}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
