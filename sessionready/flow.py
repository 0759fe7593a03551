"""Analysis of one probe flow: RTT, RFC 3550 jitter (and the mean |D| it estimates) and loss per
direction, delay under load.

One home for the arithmetic behind every probe stream the product runs: the CLI's UDP stream
against the reflector (``agents.probes.udp_stream``) and the browser's WebRTC data channel
terminated in the monitor (``monitor.rtc``). Both hand in per-packet records; the numbers come
out of the same code, so a browser check and a CLI check mean the same thing.

Times are integers in nanoseconds, each on its own side's clock (the sender's for send and
arrival of echoes, the reflector's for its receive and send): only differences taken on one
clock are used, so the two clocks never need to agree. Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sessionready import schema
from sessionready.stats import (
    mean_abs_transit_difference,
    percentile,
    rfc3550_jitter,
    wilson_interval,
)


@dataclass(frozen=True)
class Echo:
    """The first echo of one probe: when it came back (sender's clock) and when the reflector
    received and answered the probe (reflector's clock), all in ns."""

    client_recv_ns: int
    reflector_recv_ns: int
    reflector_send_ns: int


@dataclass(frozen=True)
class ReflectorTotals:
    """What the reflector counted for the flow: distinct probes received, duplicates, probes that
    arrived after a higher sequence number, the highest sequence number seen."""

    distinct: int
    duplicates: int
    reordered: int
    highest: int


@dataclass(frozen=True)
class FlowResult:
    """What one flow (phase) measured. Times in ms, loss as ratios."""

    name: str
    sent: int
    received: int  # distinct echoes back at the client
    reflected: int | None  # distinct probes the reflector got (None: its totals never arrived)
    # (seconds after the flow's origin, RTT ms) per echoed packet, in seq order, reflector hold
    # time removed. Time, not sequence number, places a sample in its phase: a busy event loop
    # sends fewer probes than the nominal rate.
    rtt_samples: tuple[tuple[float, float], ...]
    jitter_up_ms: float | None
    jitter_down_ms: float | None
    loss_up: float | None
    loss_down: float | None
    loss_up_ci95: tuple[float, float] | None
    loss_down_ci95: tuple[float, float] | None
    reordered_up: int
    reordered_down: int
    duplicates_up: int
    duplicates_down: int
    # The mean of |D| per direction, over the same packets as the jitter: the figure the
    # verdict judges (RFC 3550's J above is its running estimate, which never converges).
    # None: fewer than two packets. The agent's live windows (agents/daemon/samplers.py) take it
    # with the same function over each window's packets.
    jitter_mean_up_ms: float | None = None
    jitter_mean_down_ms: float | None = None

    def rtts_ms(self, after_s: float = 0.0, before_s: float = math.inf) -> list[float]:
        """RTTs of the probes sent from ``after_s`` up to (not including) ``before_s`` seconds
        after the flow's origin."""
        return [rtt for sent_s, rtt in self.rtt_samples if after_s <= sent_s < before_s]

    def rtt_summary(self) -> tuple[float, float, float] | None:
        """(min, p50, p95) in ms, or None when nothing came back."""
        return rtt_summary(self.rtts_ms())


def rtt_summary(rtts: Sequence[float]) -> tuple[float, float, float] | None:
    """(min, p50, p95) of RTTs in ms, or None for none."""
    if not rtts:
        return None
    return (min(rtts), percentile(rtts, 50), percentile(rtts, 95))


def analyse(
    name: str,
    sent: int,
    sent_ns: Mapping[int, int] | Sequence[int],
    echoes: Mapping[int, Echo],
    arrival_order: Sequence[int],
    *,
    duplicate_echoes: int = 0,
    reordered_echoes: int = 0,
    totals: ReflectorTotals | None = None,
    origin_ns: int | None = None,
) -> FlowResult:
    """Analyse one flow of ``sent`` probes (sequence numbers 0..sent-1).

    ``sent_ns[seq]`` is a probe's send time; it must be known for every echoed probe (the
    browser's stream knows it only for probes that reached the monitor, which is enough).
    ``echoes`` holds the first echo per seq; ``arrival_order`` the echoed seqs in the order they
    arrived at the sender; the duplicate and reordered counts are the sender's, the totals the
    reflector's (None: they never arrived, and all unexplained loss is then put upstream).
    ``origin_ns`` (sender's clock) is time zero of ``rtt_samples``; default probe 0's send time.
    """
    echoed = sorted(seq for seq in echoes if 0 <= seq < sent)
    received = len(echoed)
    if origin_ns is None:
        origin_ns = sent_ns[0] if sent and (not isinstance(sent_ns, Mapping) or 0 in sent_ns) else 0
    rtts: list[tuple[float, float]] = []
    for seq in echoed:
        echo = echoes[seq]
        rtt_ns = (echo.client_recv_ns - sent_ns[seq]) - (echo.reflector_send_ns - echo.reflector_recv_ns)
        if rtt_ns >= 0:  # a negative RTT means the wall clock stepped mid-packet: drop that sample
            rtts.append(((sent_ns[seq] - origin_ns) / 1e9, rtt_ns / 1e6))

    # Upstream: sender = this machine, receiver = reflector, in the reflector's arrival order.
    up_order = sorted(echoed, key=lambda seq: echoes[seq].reflector_recv_ns)
    up_pairs = [(sent_ns[s], echoes[s].reflector_recv_ns) for s in up_order]
    # Downstream: sender = reflector, receiver = this machine, in our arrival order.
    down_pairs = [(echoes[s].reflector_send_ns, echoes[s].client_recv_ns) for s in arrival_order if 0 <= s < sent and s in echoes]
    jitter_up, jitter_down = rfc3550_jitter(up_pairs), rfc3550_jitter(down_pairs)
    mean_up, mean_down = mean_abs_transit_difference(up_pairs), mean_abs_transit_difference(down_pairs)

    reflected: int | None = None
    duplicates_up = reordered_up = 0
    if totals is not None:
        reflected = min(totals.distinct, sent)
        duplicates_up, reordered_up = totals.duplicates, totals.reordered
    elif received:
        # Without the reflector's totals, echoes prove at least this many arrived; the split is
        # then an estimate that puts all unexplained loss upstream.
        reflected = received
    loss_up = loss_down = None
    ci_up = ci_down = None
    if reflected is not None and sent:
        lost_up = sent - reflected
        lost_down = max(0, reflected - received)
        loss_up = lost_up / sent
        ci_up = wilson_interval(lost_up, sent)
        if reflected:
            loss_down = lost_down / reflected
            ci_down = wilson_interval(lost_down, reflected)
    return FlowResult(
        name=name,
        sent=sent,
        received=received,
        reflected=reflected if totals is not None else None,
        rtt_samples=tuple(rtts),
        jitter_up_ms=None if jitter_up is None else jitter_up / 1e6,
        jitter_down_ms=None if jitter_down is None else jitter_down / 1e6,
        loss_up=loss_up,
        loss_down=loss_down,
        loss_up_ci95=ci_up,
        loss_down_ci95=ci_down,
        reordered_up=reordered_up,
        reordered_down=max(0, reordered_echoes - reordered_up),
        duplicates_up=duplicates_up,
        duplicates_down=max(0, duplicate_echoes - duplicates_up),
        jitter_mean_up_ms=None if mean_up is None else mean_up / 1e6,
        jitter_mean_down_ms=None if mean_down is None else mean_down / 1e6,
    )


def loaded_increase_ms(idle_rtts_ms: Sequence[float], loaded_rtts_ms: Sequence[float]) -> float | None:
    """Delay under load: median RTT while loaded minus the idle median (ms); None without both.

    Negative values happen by chance and are kept: they mean "no increase".
    """
    if not idle_rtts_ms or not loaded_rtts_ms:
        return None
    return percentile(loaded_rtts_ms, 50) - percentile(idle_rtts_ms, 50)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def network(
    idle: FlowResult,
    *,
    loaded_down_ms: float | None,
    loaded_up_ms: float | None,
    throughput: schema.Throughput | None = None,
    udp_error: str | None = None,
    throughput_error: str | None = None,
    jitter_mean_ms: tuple[float | None, float | None] | None = None,
) -> schema.Network:
    """The report's network part from the idle flow's result and the delays under load.

    ``jitter_mean_ms``: the mean |D| (up, down) over the probes the idle phase's stopping rule
    judged when it ended the phase, so that the report carries the very figure that was settled
    (echoes still in flight then are in ``idle`` but not in it). None: the idle flow's own.
    """
    summary = idle.rtt_summary()
    mean_up, mean_down = jitter_mean_ms if jitter_mean_ms is not None else (idle.jitter_mean_up_ms, idle.jitter_mean_down_ms)
    loss = None
    if idle.loss_up is not None and idle.loss_down is not None and idle.loss_up_ci95 and idle.loss_down_ci95:
        loss = schema.Loss(
            up=round(idle.loss_up, 6),
            down=round(idle.loss_down, 6),
            up_ci95=(round(idle.loss_up_ci95[0], 6), round(idle.loss_up_ci95[1], 6)),
            down_ci95=(round(idle.loss_down_ci95[0], 6), round(idle.loss_down_ci95[1], 6)),
        )
    return schema.Network(
        path="monitor",
        rtt_ms=schema.RttMs(*(round(v, 3) for v in summary)) if summary else None,
        jitter_ms=schema.DirectionMs(up=_ms(idle.jitter_up_ms), down=_ms(idle.jitter_down_ms)) if idle.received >= 2 else None,
        loss=loss,
        packets=schema.Packets(sent=idle.sent, received=idle.received, reflected=idle.reflected),
        reordered=schema.Counts(up=idle.reordered_up, down=idle.reordered_down),
        duplicates=schema.Counts(up=idle.duplicates_up, down=idle.duplicates_down),
        throughput_mbps=throughput if throughput is not None else schema.Throughput(down=None, up=None),
        loaded_latency_ms=schema.LoadedLatency(down=_ms(loaded_down_ms), up=_ms(loaded_up_ms)),
        udp_error=udp_error,
        throughput_error=throughput_error,
        jitter_mean_ms=schema.DirectionMs(up=_ms(mean_up), down=_ms(mean_down)) if idle.received >= 2 and (mean_up, mean_down) != (None, None) else None,
    )
