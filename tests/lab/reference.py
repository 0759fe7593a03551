"""The reference tools on the lab's path: irtt (isochronous UDP) and iperf3 (TCP throughput).

Both run their server in the monitor namespace and their client in the client namespace.
Their numbers are the yardstick the product is compared with.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass

from .groundtruth import rfc3550_jitter
from .netlab import MONITOR_ADDR, Lab, LabError

IRTT_PORT = 2112
IPERF_PORT = 5201


@dataclass(frozen=True)
class IrttResult:
    """irtt's view of a stream; delays in ms, loss as ratios 0..1."""

    rtt_median_ms: float
    rtt_min_ms: float
    rtt_p95_ms: float
    loss_up: float
    loss_down: float
    packets_sent: int
    server_received: int
    packets_received: int
    # RFC 3550 jitter per direction, from irtt's per-packet one-way delays (both ends share
    # one clock in the lab, so irtt's wall-clock one-way delays are exact), in arrival order.
    jitter_up_ms: float | None
    jitter_down_ms: float | None
    # irtt's own IPDV statistics: mean |IPDV| per direction, the steady-state value of RFC 3550 J.
    ipdv_up_mean_ms: float | None
    ipdv_down_mean_ms: float | None
    # (client send time, wall-clock ns; rtt ns) per received packet, to slice by time.
    rtts: tuple[tuple[int, int], ...]
    first_send_wall_ns: int
    # (arrival wall ns, seqno, one-way delay ns) per packet and direction, in arrival order.
    one_way_up: tuple[tuple[int, int, int], ...] = ()
    one_way_down: tuple[tuple[int, int, int], ...] = ()


def parse_irtt(data: dict) -> IrttResult:
    stats = data["stats"]
    round_trips = data.get("round_trips") or []
    ups, downs, rtts = [], [], []
    first_send = min((rt["timestamps"]["client"]["send"]["wall"] for rt in round_trips), default=0)
    for rt in round_trips:
        ts = rt["timestamps"]
        c_send = ts["client"]["send"].get("wall")
        s_recv = ts["server"]["receive"].get("wall")
        s_send = ts["server"]["send"].get("wall")
        c_recv = ts["client"]["receive"].get("wall")
        seqno = rt.get("seqno", -1)
        if c_send is not None and s_recv is not None:
            ups.append((s_recv, seqno, s_recv - c_send))
        if s_send is not None and c_recv is not None:
            downs.append((c_recv, seqno, c_recv - s_send))
        if rt["delay"].get("rtt") is not None:
            rtts.append((c_send, rt["delay"]["rtt"]))
    ups.sort()
    downs.sort()
    rtt_values = sorted(r for _, r in rtts)

    def ipdv_mean(key: str) -> float | None:
        s = stats.get(key)
        return s["mean"] / 1e6 if s and s.get("n") else None

    def j(pairs) -> float | None:
        value = rfc3550_jitter([t for _, _, t in pairs])
        return None if value is None else value / 1e6

    return IrttResult(
        rtt_median_ms=stats["rtt"]["median"] / 1e6,
        rtt_min_ms=stats["rtt"]["min"] / 1e6,
        rtt_p95_ms=rtt_values[int(0.95 * (len(rtt_values) - 1))] / 1e6 if rtt_values else float("nan"),
        loss_up=stats["upstream_loss_percent"] / 100,
        loss_down=stats["downstream_loss_percent"] / 100,
        packets_sent=stats["packets_sent"],
        server_received=stats["server_packets_received"],
        packets_received=stats["packets_received"],
        jitter_up_ms=j(ups),
        jitter_down_ms=j(downs),
        ipdv_up_mean_ms=ipdv_mean("ipdv_send"),
        ipdv_down_mean_ms=ipdv_mean("ipdv_receive"),
        rtts=tuple(rtts),
        first_send_wall_ns=first_send,
        one_way_up=tuple(ups),
        one_way_down=tuple(downs),
    )


class Irtt:
    """An irtt server in the monitor namespace and a way to run clients against it."""

    def __init__(self, lab: Lab, workdir: str, port: int = IRTT_PORT):
        self.lab = lab
        self.port = port
        self.workdir = workdir
        self._runs = 0
        self.server = lab.start(
            lab.monitor,
            ["irtt", "server", "-b", f"{MONITOR_ADDR}:{port}", "-i", "0"],
            log_path=os.path.join(workdir, f"irtt-server-{port}.log"),
        )
        time.sleep(0.2)
        if self.server.poll() is not None:
            raise LabError(f"irtt server exited ({self.server.returncode})")

    def stop(self) -> None:
        """Stop the server now (the lab stops it on close otherwise), freeing its port."""
        self.lab.stop(self.server)

    def start_client(self, target: str, duration_s: float, interval_ms: int = 20, length: int = 172):
        """Start an irtt client in the client namespace; returns (process, json path)."""
        self._runs += 1
        out = os.path.join(self.workdir, f"irtt-{self._runs}.json")
        args = [
            "irtt", "client", "-Q",
            "-i", f"{interval_ms}ms", "-l", str(length), "-d", f"{duration_s}s",
            "-o", out, target,
        ]  # fmt: skip
        proc = subprocess.Popen(self.lab.client.cmd(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return proc, out

    @staticmethod
    def finish(proc: subprocess.Popen, out: str, timeout: float = 60) -> dict:
        stdout, stderr = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise LabError(f"irtt client failed ({proc.returncode}): {stderr.strip() or stdout.strip()}")
        with open(out) as f:
            return json.load(f)

    def run(self, target: str | None = None, duration_s: float = 10, **kw) -> dict:
        """Run a client to completion; returns irtt's JSON (parse it with ``parse_irtt``)."""
        proc, out = self.start_client(target or f"{MONITOR_ADDR}:{self.port}", duration_s, **kw)
        return self.finish(proc, out, timeout=duration_s + 30)


@dataclass(frozen=True)
class IperfResult:
    mbps: float  # bits received per second / 1e6, omitted ramp-up excluded
    retransmits: int | None


class Iperf:
    """An iperf3 server in the monitor namespace."""

    def __init__(self, lab: Lab, workdir: str, port: int = IPERF_PORT):
        self.lab = lab
        self.port = port
        self.server = lab.start(
            lab.monitor,
            ["iperf3", "-s", "-B", MONITOR_ADDR, "-p", str(port)],
            log_path=os.path.join(workdir, f"iperf3-server-{port}.log"),
        )
        time.sleep(0.3)
        if self.server.poll() is not None:
            raise LabError(f"iperf3 server exited ({self.server.returncode})")

    def client_args(self, direction: str, seconds: float, streams: int = 4, omit_s: int = 1) -> list[str]:
        args = ["iperf3", "-c", MONITOR_ADDR, "-p", str(self.port), "-t", str(seconds), "-O", str(omit_s)]
        args += ["-P", str(streams), "-J"]
        if direction == "down":
            args.append("-R")
        return args

    def run(self, direction: str, seconds: float = 4, streams: int = 4, omit_s: int = 1) -> IperfResult:
        """TCP throughput ``down`` (monitor -> client, iperf3 -R) or ``up``."""
        proc = self.lab.client.run(self.client_args(direction, seconds, streams, omit_s), timeout=seconds + 30)
        return parse_iperf(json.loads(proc.stdout))

    def start(self, direction: str, seconds: float, streams: int = 4) -> subprocess.Popen:
        return subprocess.Popen(
            self.lab.client.cmd(self.client_args(direction, seconds, streams)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def parse_iperf(data: dict) -> IperfResult:
    if "error" in data:
        raise LabError(f"iperf3: {data['error']}")
    end = data["end"]
    return IperfResult(
        mbps=end["sum_received"]["bits_per_second"] / 1e6,
        retransmits=end.get("sum_sent", {}).get("retransmits"),
    )


def median_rtt_between(result: IrttResult, start_s: float, end_s: float) -> float | None:
    """irtt's median RTT (ms) of packets sent between two instants (s since its first packet)."""
    t0 = result.first_send_wall_ns
    return median_rtt_wall(result, t0 + int(start_s * 1e9), t0 + int(end_s * 1e9))


def median_rtt_wall(result: IrttResult, start_ns: int, end_ns: int) -> float | None:
    """irtt's median RTT (ms) of packets sent between two wall-clock instants (ns)."""
    values = [rtt for sent, rtt in result.rtts if start_ns <= sent <= end_ns]
    return statistics.median(values) / 1e6 if values else None
