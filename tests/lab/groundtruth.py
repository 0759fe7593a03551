"""Ground truth from the lab itself: the relay's log and the nftables counters.

Written independently of the product's statistics code on purpose: the test is agreement
with what physically happened on the path, not with the product's own arithmetic.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .netlab import ROUTER_CLIENT_ADDR, ROUTER_MONITOR_ADDR, Lab, LabError


def rfc3550_jitter(transits_ns: Iterable[int]) -> float | None:
    """RFC 3550 6.4.1 interarrival jitter (ns) of transit times given in *arrival* order.

    J(i) = J(i-1) + (|D(i-1,i)| - J(i-1)) / 16, D = difference of consecutive transit times.
    Returns the final J, or None with fewer than two packets.
    """
    jitter = 0.0
    previous = None
    count = 0
    for transit in transits_ns:
        if previous is not None:
            jitter += (abs(transit - previous) - jitter) / 16
        previous = transit
        count += 1
    return jitter if count >= 2 else None


def mean_abs_difference(values: Sequence[float]) -> float | None:
    """Mean |D| of consecutive values: what RFC 3550 jitter averages to in a steady state."""
    if len(values) < 2:
        return None
    return statistics.fmean(abs(b - a) for a, b in zip(values, values[1:]))


@dataclass(frozen=True)
class RelayPacket:
    direction: str
    index: int  # arrival index at the relay in this direction
    rx_ns: int
    due_ns: int
    tx_ns: int | None  # None: still held when the relay stopped (never delivered)
    target_hold_ns: int
    length: int
    head: bytes

    @property
    def hold_ns(self) -> int:
        assert self.tx_ns is not None
        return self.tx_ns - self.rx_ns


@dataclass(frozen=True)
class DirectionTruth:
    """What the relay did to one direction of a stream."""

    packets: int
    jitter_ms: float | None  # RFC 3550, final value, packets in the order they left the relay
    mean_abs_d_ms: float | None  # steady-state expectation of the same jitter
    # Standard error of a *final* RFC 3550 value around mean |D|: the 1/16 running average has
    # the variance of |D| / 31. Two streams under the same conditions differ by about this much.
    jitter_final_se_ms: float | None
    hold_median_ms: float | None
    hold_mean_ms: float | None
    reordered: int  # packets that left the relay after a packet that had arrived later
    sched_error_p50_us: float | None
    sched_error_p99_us: float | None
    sched_error_max_us: float | None


@dataclass(frozen=True)
class RelayLog:
    config: dict
    summary: dict | None
    packets: list[RelayPacket]

    @classmethod
    def read(cls, path: str) -> RelayLog:
        config: dict = {}
        summary = None
        packets = []
        with open(path) as f:
            for line in f:
                item = json.loads(line)
                if "config" in item:
                    config = item
                elif "summary" in item:
                    summary = item["summary"]
                else:
                    packets.append(
                        RelayPacket(
                            direction=item["dir"],
                            index=item["n"],
                            rx_ns=item["rx_ns"],
                            due_ns=item["due_ns"],
                            tx_ns=item.get("tx_ns"),
                            target_hold_ns=item["target_hold_ns"],
                            length=item["len"],
                            head=bytes.fromhex(item["head"]),
                        )
                    )
        return cls(config, summary, packets)

    def sent(self, direction: str, keep: Callable[[RelayPacket], bool] = lambda p: True) -> list[RelayPacket]:
        """Packets of ``direction`` that the relay delivered, in the order it sent them."""
        chosen = [p for p in self.packets if p.direction == direction and p.tx_ns is not None and keep(p)]
        return sorted(chosen, key=lambda p: p.tx_ns)

    def truth(self, direction: str, keep: Callable[[RelayPacket], bool] = lambda p: True) -> DirectionTruth:
        sent = self.sent(direction, keep)
        holds = [p.hold_ns for p in sent]
        jitter = rfc3550_jitter(holds)
        mad = mean_abs_difference(holds)
        diffs = [abs(b - a) for a, b in zip(holds, holds[1:])]
        se = math.sqrt(statistics.pvariance(diffs) / 31) if len(diffs) >= 2 else None
        reordered = 0
        highest = -1
        for p in sent:
            if p.index < highest:
                reordered += 1
            highest = max(highest, p.index)
        errors = sorted(p.tx_ns - p.due_ns for p in sent)
        return DirectionTruth(
            packets=len(sent),
            jitter_ms=None if jitter is None else jitter / 1e6,
            mean_abs_d_ms=None if mad is None else mad / 1e6,
            jitter_final_se_ms=None if se is None else se / 1e6,
            hold_median_ms=statistics.median(holds) / 1e6 if holds else None,
            hold_mean_ms=statistics.fmean(holds) / 1e6 if holds else None,
            reordered=reordered,
            sched_error_p50_us=errors[len(errors) // 2] / 1e3 if errors else None,
            sched_error_p99_us=errors[int(0.99 * (len(errors) - 1))] / 1e3 if errors else None,
            sched_error_max_us=errors[-1] / 1e3 if errors else None,
        )


    def added_rtts_ns(self, identify: Callable[[RelayPacket], object | None]) -> list[int]:
        """Up hold + down hold per round trip; ``identify`` names a packet and its echo alike."""
        ups = {}
        for p in self.sent("up"):
            key = identify(p)
            if key is not None:
                ups.setdefault(key, p)
        added = []
        seen = set()
        for p in self.sent("down"):
            key = identify(p)
            if key is not None and key in ups and key not in seen:
                seen.add(key)
                added.append(ups[key].hold_ns + p.hold_ns)
        return added


def irtt_packet_id(packet: RelayPacket) -> object | None:
    """irtt test packets (request and reply): magic 14a75b, flags, 8-byte token, seqno (LE u32)."""
    if packet.length < 16 or packet.head[:3] != b"\x14\xa7\x5b" or packet.head[3] & 0x01:
        return None  # not irtt, or a connection-open packet
    return int.from_bytes(packet.head[12:16], "little")


@dataclass(frozen=True)
class DelayProfile:
    """Added one-way delay of one direction: ``delay_ms`` plus per-packet jitter (see relay.py)."""

    delay_ms: float
    jitter_ms: float = 0.0
    dist: str = "none"  # none | uniform (+-jitter) | normal (sd = jitter)

    def args(self, direction: str) -> list[str]:
        return [
            f"--{direction}-delay-ms", str(self.delay_ms),
            f"--{direction}-jitter-ms", str(self.jitter_ms),
            f"--{direction}-dist", self.dist,
        ]  # fmt: skip


class Relay:
    """relay.py running in the lab's router namespace, between the client and a UDP server."""

    def __init__(self, lab: Lab, listen_port: int, target: str, up: DelayProfile, down: DelayProfile,
                 log_path: str, *, seed: int = 1, preserve_order: bool = False):  # fmt: skip
        self.lab = lab
        self.log_path = log_path
        self.address = f"{ROUTER_CLIENT_ADDR}:{listen_port}"
        args = [
            sys.executable, str(Path(__file__).with_name("relay.py")),
            "--listen", self.address, "--target", target, "--upstream-bind", ROUTER_MONITOR_ADDR,
            "--log", log_path, "--seed", str(seed), *up.args("up"), *down.args("down"),
        ]  # fmt: skip
        if preserve_order:
            args.append("--preserve-order")
        self.proc = lab.start(lab.router, args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if b"READY" not in line:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
            raise LabError(f"relay did not start: {line!r} {err}")

    def stop(self) -> RelayLog:
        self.lab.stop(self.proc)
        return RelayLog.read(self.log_path)
