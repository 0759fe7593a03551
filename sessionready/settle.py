"""When a phase of a check has measured enough: the one stopping rule every check uses.

A phase (the idle UDP stream, the download, the upload) may stop as soon as every figure that
can change the verdict is *settled*: its 95 % interval, taken together with the figure the
verdict is drawn from, lies wholly on one side of each threshold that matters. It must run at
least ``PhaseLimits.min_s`` and stops at ``max_s`` whatever it knows; a figure still unsettled
then is *borderline*, and the check says so (``borderline_reasons``) instead of letting the
point estimate toss the coin.

A threshold *matters* when crossing it could change the verdict: its severity must be above
the *floor*, the severity that figures already settled (in this phase or an earlier one) make
certain. Once a settled jitter of 60 ms makes the check "not ready", no loss figure can change
that, and the phase need not wait for one.

The intervals (the arithmetic and its justification are in docs/quality-model.md, "Adaptive
length"):

- loss per direction: the Wilson score interval of the lost count, as in the report, its low
  end at Z_LOSS_ABOVE: the rule looks every 0.1 s, and each look at a 95 % interval is one more
  chance to settle above a line the path is below;
- round trip: the distribution-free order-statistic interval of the median (RTTs are skewed
  and the model reads the median);
- jitter per direction: a t interval for the mean absolute transit difference |D|, the
  quantity RFC 3550's running estimate tracks and the figure the verdict judges (the report
  carries it, over the same probes, as ``jitter_mean_ms``), widened for the positive
  correlation of neighbouring |D|;
- delay under load: the loaded median's interval minus the idle median's, end to end;
- throughput: the spread of the rate over the last windows after the ramp, with the rate the
  report gives; it also settles when every recent window is far above the best tier's need.
  A load phase also runs until its rate's window spans RATE_WINDOW_RTTS round trips of the
  loaded path (``load_limits``): the rate is only as true as its window is long against TCP's
  own round trip.

Pure functions over the samples so far, with no clock of their own: the caller says how long
the phase has run. Standard library only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sessionready import quality
from sessionready.stats import (
    Z95,
    abs_transit_differences,
    percentile,
    rfc3550_jitter,
    steady_rate,
    wilson_interval,
)
from sessionready.typed import limits, validate

StopReason = Literal["settled", "max_length", "fixed_length", "failed"]
STOP_REASONS: tuple[StopReason, ...] = ("settled", "max_length", "fixed_length", "failed")
Figure = Literal[
    "delay", "jitter_up", "jitter_down", "loss_up", "loss_down", "audio_quality",
    "loaded_latency_down", "loaded_latency_up", "throughput_down", "throughput_up",
]  # fmt: skip
FIGURES: tuple[Figure, ...] = (
    "delay", "jitter_up", "jitter_down", "loss_up", "loss_down", "audio_quality",
    "loaded_latency_down", "loaded_latency_up", "throughput_down", "throughput_up",
)  # fmt: skip
# How each figure is written: loss as a ratio, delays in ms, throughput in Mbit/s, MOS bare.
UNITS: dict[str, str] = {
    "delay": "ms", "jitter_up": "ms", "jitter_down": "ms", "loss_up": "ratio", "loss_down": "ratio",
    "audio_quality": "mos", "loaded_latency_down": "ms", "loaded_latency_up": "ms",
    "throughput_down": "mbps", "throughput_up": "mbps",
}  # fmt: skip

# The low end of a loss interval, the one that settles a loss *above* a line, is taken at this z
# (a two-sided 99.5 % Wilson interval) rather than 1.96. The rule looks up to ~80 times a phase
# and stops at the first look that settles; at 95 % a path losing 2.27 % each way settled "not
# ready" (above 3 %) in 5.1 % of simulated checks, at 2.5 % in 11.0 %; at this z 1.1 % and 1.9 %
# (python -m benchmarks.stop_rule_loss, 3,000 checks a rate, independent losses;
# docs/quality-model.md, "Known limits"). The high end, which settles "below", stays at 1.96:
# with no loss its bound only falls, so the clean-link stop (0 lost in 381 probes) is one
# look's 95 %, however often it looks.
Z_LOSS_ABOVE = 2.807
# Fewer samples than this and no interval is claimed at all. Six is the least for which the
# order-statistic interval of a median reaches 95 % (1 - 2 * 0.5**6 = 96.9 %); thirty keeps the
# t interval for jitter within reach of its normal approximation.
MIN_RTT_SAMPLES = 6
MIN_JITTER_SAMPLES = 30
# Throughput: the rate over each window of this length after the ramp; the last
# THROUGHPUT_WINDOWS of them must agree within THROUGHPUT_STABLE_RATIO of the phase's rate.
THROUGHPUT_WINDOW_S = 0.25
THROUGHPUT_WINDOWS = 4
THROUGHPUT_STABLE_RATIO = 0.2
# "Far above": every recent window at least this many times the best tier's need (with the
# headroom factor): neither the verdict nor the tier can change, stable or not. "Far below",
# the mirror: every recent window at most 1 / this of the smallest tier's need, where the
# verdict is already the worst a throughput can give (a tbf-shaped slow link's windows never
# agree within 20 %: without it such a phase ran to its maximum and said "borderline").
FAR_ABOVE_FACTOR = 2.0
# A rate's window after the ramp spans at least this many loaded round trips (the median RTT
# during the load), at most RATE_WINDOW_CAP_S. An application sees a TCP flow's bytes only in
# order: after a loss, what arrives behind the hole waits a round trip for the retransmission,
# then comes at once. Behind a deep queue that round trip is hundreds of ms, and a window edge
# inside such a wait moves up to a round trip of the link's bytes across it (in the lab, 8
# Mbit/s up behind a 300 ms queue, ~220 ms loaded: a 1.4-2 s window read 7-9 % low). Over ten
# round trips one such wait is at most a tenth of the window. The cap keeps the default load
# phase (1 s ramp, 6 s longest) able to meet it; a clean path's round trip of a few ms asks
# nothing more than the minimum.
RATE_WINDOW_RTTS = 10
RATE_WINDOW_CAP_S = 3.0

_SEVERITY_RANK = {None: 0, "info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class PhaseLimits:
    """How long a phase may run, in seconds: at least ``min_s``, at most ``max_s``."""

    min_s: float = field(metadata=limits(ge=0.1, le=600))
    max_s: float = field(metadata=limits(ge=0.1, le=600))

    def __post_init__(self) -> None:
        validate(self, "phase limits")
        if self.min_s > self.max_s:
            raise ValueError(f"a phase's min_s ({self.min_s:g}) must not exceed its max_s ({self.max_s:g})")


@dataclass(frozen=True)
class Judged:
    """One figure as far as the samples go: its interval (``low``..``high``, the verdict's own
    point estimate included) and whether that interval settles it. ``severity`` is the least
    severe grade the interval allows: what the figure makes certain."""

    figure: str
    low: float
    high: float
    settled: bool
    severity: str | None


@dataclass(frozen=True)
class Decision:
    """Whether the phase stops now (``stop``), why (``reason``; None while it runs), and the
    figures still unsettled (at ``max_length`` these are the borderline ones)."""

    stop: bool
    reason: StopReason | None
    unsettled: tuple[Judged, ...]
    floor: str | None  # the severity the settled figures make certain


# --------------------------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------------------------


def median_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float] | None:
    """Distribution-free ~95 % interval for the median: the order statistics at ranks
    n/2 -/+ z*sqrt(n)/2 (normal approximation to the binomial, rounded outwards). None below
    MIN_RTT_SAMPLES values."""
    n = len(values)
    if n < MIN_RTT_SAMPLES:
        return None
    ordered = sorted(values)
    half_width = z * math.sqrt(n) / 2
    low_rank = max(1, math.floor(n / 2 - half_width))  # 1-based
    high_rank = min(n, math.ceil(n / 2 + 1 + half_width))
    return (ordered[low_rank - 1], ordered[high_rank - 1])


def loss_interval(lost: int, count: int) -> tuple[float, float]:
    """The loss interval the rule settles on: Wilson's, its low end at Z_LOSS_ABOVE (wider, for
    the repeated looks), its high end at 95 %."""
    return (wilson_interval(lost, count, Z_LOSS_ABOVE)[0], wilson_interval(lost, count)[1])


def t_quantile_975(dof: int) -> float:
    """Two-sided 95 % Student t quantile, by the Cornish-Fisher expansion around the normal
    (within 0.1 % of the exact value from 10 degrees of freedom up)."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {dof}")
    z = Z95
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / dof + g2 / dof**2 + g3 / dof**3


def mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """t interval (95 %) for the mean of ``values`` in sequence order, allowing for correlation
    between neighbours; None below MIN_JITTER_SAMPLES.

    Consecutive |D| share a transit time (|t_k - t_k-1| and |t_k+1 - t_k|): a transit far
    from the others makes both large, so they are positively correlated (simulated over 200,000
    independent transits: lag-1 correlation 0.10 when uniform, 0.23 when normal, 0.16 for the
    lab relay's uniform hold in arrival order; none beyond lag 1). The variance of their mean
    is then (1 + 2 rho1) s^2 / n, up to 1.46 times the independent s^2 / n, and an interval
    without it covers 89-93 % instead of 95 %. rho1 is the sample's own lag-1
    autocorrelation; a negative one counts as none (it would only narrow the interval).
    """
    n = len(values)
    if n < MIN_JITTER_SAMPLES:
        return None
    mean = sum(values) / n
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    lag1 = sum((a - mean) * (b - mean) for a, b in itertools.pairwise(values)) / (n - 1)
    inflation = 1 + 2 * max(0.0, lag1 / variance) if variance > 0 else 1.0
    half = t_quantile_975(n - 1) * math.sqrt(variance * inflation / n)
    return (max(0.0, mean - half), mean + half)


# --------------------------------------------------------------------------------------------
# The samples so far
# --------------------------------------------------------------------------------------------


class ProbeRecord(Protocol):
    """One probe of a running flow (``agents.probes.udp_stream.Probe`` is one): times in ns on
    each side's own clock; the echo fields None while no echo has come back."""

    @property
    def seq(self) -> int: ...
    @property
    def sent_ns(self) -> int: ...
    @property
    def echo_ns(self) -> int | None: ...
    @property
    def reflector_recv_ns(self) -> int | None: ...
    @property
    def reflector_send_ns(self) -> int | None: ...
    @property
    def reflected_so_far(self) -> int | None: ...


@dataclass(frozen=True)
class StreamSoFar:
    """A flow's figures from the probes answered so far.

    Only probes up to the highest echoed sequence number count: a later probe may still be on
    its way. ``reflected`` is what the reflector had received of those when it echoed that
    last one, so ``sent - reflected`` were lost upstream and ``reflected - received`` on the way
    back. ``rtt_samples`` are (seconds after the first probe, RTT ms); the |D| lists are the
    absolute transit differences behind RFC 3550 jitter, per direction, in ms, whose means are
    the jitter judged; ``jitter_*_ms`` is RFC 3550's running J over the same probes (not judged).
    """

    sent: int
    reflected: int
    received: int
    rtt_samples: tuple[tuple[float, float], ...]
    abs_d_up_ms: tuple[float, ...]
    abs_d_down_ms: tuple[float, ...]
    jitter_up_ms: float | None
    jitter_down_ms: float | None

    def rtts_ms(self, after_s: float = 0.0) -> list[float]:
        return [rtt for sent_s, rtt in self.rtt_samples if sent_s >= after_s]

    @property
    def jitter_mean_up_ms(self) -> float | None:
        """The mean of the upstream |D| so far (ms): the jitter the verdict judges. None: none."""
        return _mean(self.abs_d_up_ms)

    @property
    def jitter_mean_down_ms(self) -> float | None:
        """The mean of the downstream |D| so far (ms). None: none."""
        return _mean(self.abs_d_down_ms)


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def stream_so_far(probes: Sequence[ProbeRecord]) -> StreamSoFar:
    """The figures of a running flow from its probes (in sequence order, from seq 0)."""
    echoed = [p for p in probes if p.echo_ns is not None and p.reflector_recv_ns is not None and p.reflector_send_ns is not None]
    if not echoed:
        return StreamSoFar(0, 0, 0, (), (), (), None, None)
    last = max(echoed, key=lambda p: p.seq)
    sent = last.seq + 1
    received = sum(1 for p in echoed if p.seq <= last.seq)
    reflected = min(sent, max(received, last.reflected_so_far or received))
    origin = probes[0].sent_ns
    rtts = []
    for p in echoed:
        rtt_ns = (p.echo_ns - p.sent_ns) - (p.reflector_send_ns - p.reflector_recv_ns)  # type: ignore[operator]
        if rtt_ns >= 0:
            rtts.append(((p.sent_ns - origin) / 1e9, rtt_ns / 1e6))
    up = [(p.sent_ns, p.reflector_recv_ns) for p in sorted(echoed, key=lambda p: p.reflector_recv_ns)]  # type: ignore[arg-type, return-value]
    down = [(p.reflector_send_ns, p.echo_ns) for p in sorted(echoed, key=lambda p: p.echo_ns)]  # type: ignore[arg-type, return-value]
    jitter_up, jitter_down = rfc3550_jitter(up), rfc3550_jitter(down)  # type: ignore[arg-type]
    return StreamSoFar(
        sent=sent,
        reflected=reflected,
        received=received,
        rtt_samples=tuple(rtts),
        abs_d_up_ms=_abs_differences(up),  # type: ignore[arg-type]
        abs_d_down_ms=_abs_differences(down),  # type: ignore[arg-type]
        jitter_up_ms=None if jitter_up is None else jitter_up / 1e6,
        jitter_down_ms=None if jitter_down is None else jitter_down / 1e6,
    )


def _abs_differences(pairs: Sequence[tuple[int, int]]) -> tuple[float, ...]:
    return tuple(d / 1e6 for d in abs_transit_differences(pairs))


# --------------------------------------------------------------------------------------------
# Judging one figure against its thresholds
# --------------------------------------------------------------------------------------------


def _grade_above(value: float, warning: float, critical: float) -> str | None:
    return quality.grade(value, warning, critical)


def _grade_below(value: float, warning: float, critical: float) -> str | None:
    # The model's rule for "below" figures: strictly below a line triggers it.
    if value < critical:
        return "critical"
    if value < warning:
        return "warning"
    return None


def judge_above(
    figure: str, interval: tuple[float, float] | None, point: float | None, lines: Iterable[tuple[float, str]], floor: str | None
) -> Judged:
    """A figure where more is worse (the model triggers strictly above each line).

    ``lines``: (threshold, severity) pairs. Settled when, for every line whose severity is
    above ``floor``, the interval (the point estimate included) lies wholly on one side of it:
    all <= the line, or all > it. No interval: unsettled, and nothing certain.
    """
    if interval is None or point is None:
        return Judged(figure, 0.0, math.inf, False, None)
    low, high = min(interval[0], point), max(interval[1], point)
    lines = list(lines)
    certain = None
    for threshold, severity in lines:
        if low > threshold and _SEVERITY_RANK[severity] > _SEVERITY_RANK[certain]:
            certain = severity
    settled = all(not (low <= threshold < high) for threshold, severity in lines if _matters(severity, floor))
    return Judged(figure, low, high, settled, certain)


def judge_below(
    figure: str, interval: tuple[float, float] | None, point: float | None, lines: Iterable[tuple[float, str]], floor: str | None
) -> Judged:
    """A figure where less is worse (the model triggers strictly below each line)."""
    if interval is None or point is None:
        return Judged(figure, 0.0, math.inf, False, None)
    low, high = min(interval[0], point), max(interval[1], point)
    lines = list(lines)
    certain = None
    for threshold, severity in lines:
        if high < threshold and _SEVERITY_RANK[severity] > _SEVERITY_RANK[certain]:
            certain = severity
    settled = all(not (low < threshold <= high) for threshold, severity in lines if _matters(severity, floor))
    return Judged(figure, low, high, settled, certain)


def _matters(severity: str, floor: str | None) -> bool:
    return _SEVERITY_RANK[severity] > _SEVERITY_RANK[floor]


def raise_floor(floor: str | None, judged: Iterable[Judged]) -> str | None:
    """The floor once the settled figures' certain severities are added."""
    for item in judged:
        if item.settled and _SEVERITY_RANK[item.severity] > _SEVERITY_RANK[floor]:
            floor = item.severity
    return floor


# --------------------------------------------------------------------------------------------
# The phases
# --------------------------------------------------------------------------------------------


def judge_idle(so_far: StreamSoFar, t: quality.Thresholds, floor: str | None = None) -> tuple[Judged, ...]:
    """Delay, jitter and loss per direction, and the expected sound quality, of an idle flow.

    Judged twice: once to find what the settled figures make certain, then every figure again
    against the thresholds still above that floor.
    """
    if so_far.received == 0:
        # Not one echo: the model calls UDP blocked, critical, and nothing measured here can
        # soften that; from the phase's minimum on there is nothing left to wait for.
        return (Judged("delay", 0.0, math.inf, True, "critical"),)
    first = _judge_idle_once(so_far, t, floor)
    return _judge_idle_once(so_far, t, raise_floor(floor, first))


def _judge_idle_once(so_far: StreamSoFar, t: quality.Thresholds, floor: str | None) -> tuple[Judged, ...]:
    rtts = so_far.rtts_ms()
    rtt_point = percentile(rtts, 50) if rtts else None
    rtt_interval = median_interval(rtts)
    # Jitter is judged on the mean of |D| (the report's jitter_mean_ms), the point of its own
    # t interval; RFC 3550's J, a running mean of the last ~16 |D|, is reported but not judged.
    jitters: dict[str, tuple[tuple[float, float] | None, float | None]] = {
        "up": (mean_interval(so_far.abs_d_up_ms), so_far.jitter_mean_up_ms),
        "down": (mean_interval(so_far.abs_d_down_ms), so_far.jitter_mean_down_ms),
    }
    judged: list[Judged] = []
    for direction, (interval, point) in jitters.items():
        lines = ((t.jitter_warning_ms, "warning"), (t.jitter_critical_ms, "critical"))
        judged.append(judge_above(f"jitter_{direction}", interval, point, lines, floor))
    jitter_low = max((j.low for j in judged), default=0.0)
    jitter_high = max((j.high for j in judged), default=math.inf)
    # Mouth-to-ear delay grows with the round trip and the worse jitter: its interval runs from
    # both lows to both highs. The model also calls a round trip over rtt_critical_ms critical.
    delay_interval = delay_point = None
    if rtt_interval is not None and rtt_point is not None and math.isfinite(jitter_high):
        point_jitter = max((p for _, p in jitters.values() if p is not None), default=0.0)
        delay_point = quality.mouth_to_ear_delay_ms(rtt_point, point_jitter)
        delay_interval = (
            quality.mouth_to_ear_delay_ms(rtt_interval[0], jitter_low),
            quality.mouth_to_ear_delay_ms(rtt_interval[1], jitter_high),
        )
    delay = judge_above("delay", delay_interval, delay_point, ((t.mouth_to_ear_warning_ms, "warning"), (t.mouth_to_ear_critical_ms, "critical")), floor)
    if rtt_interval is not None and rtt_point is not None:
        rtt = judge_above("delay", rtt_interval, rtt_point, ((t.rtt_critical_ms, "critical"),), floor)
        delay = Judged("delay", delay.low, delay.high, delay.settled and rtt.settled, max(delay.severity, rtt.severity, key=_SEVERITY_RANK.__getitem__))
    judged.insert(0, delay)
    loss_lines = ((t.loss_warning_ratio, "warning"), (t.loss_critical_ratio, "critical"))
    losses: dict[str, tuple[tuple[float, float] | None, float | None]] = {}
    if so_far.sent:
        lost_up = so_far.sent - so_far.reflected
        losses["up"] = (loss_interval(lost_up, so_far.sent), lost_up / so_far.sent)
    else:
        losses["up"] = (None, None)
    if so_far.reflected:
        lost_down = max(0, so_far.reflected - so_far.received)
        losses["down"] = (loss_interval(lost_down, so_far.reflected), lost_down / so_far.reflected)
    else:
        losses["down"] = (None, None)
    for direction, (interval, point) in losses.items():
        judged.append(judge_above(f"loss_{direction}", interval, point, loss_lines, floor))
    judged.append(_judge_audio_quality(rtt_interval, rtt_point, jitters, losses, t, floor))
    return tuple(judged)


def _judge_audio_quality(
    rtt_interval: tuple[float, float] | None,
    rtt_point: float | None,
    jitters: dict[str, tuple[tuple[float, float] | None, float | None]],
    losses: dict[str, tuple[tuple[float, float] | None, float | None]],
    t: quality.Thresholds,
    floor: str | None,
) -> Judged:
    """MOS of the worse direction: it falls as delay, jitter and loss rise, so its interval
    runs from every figure's high end to every figure's low end."""
    lines = ((t.mos_warning_below, "warning"), (t.mos_critical_below, "critical"))
    if rtt_interval is None or rtt_point is None:
        return judge_below("audio_quality", None, None, lines, floor)
    worst = best = point = math.inf
    for direction in ("up", "down"):
        jitter_interval, jitter_point = jitters[direction]
        loss_interval, loss_point = losses[direction]
        if jitter_interval is None or jitter_point is None or loss_interval is None or loss_point is None:
            return judge_below("audio_quality", None, None, lines, floor)
        low_delay = quality.mouth_to_ear_delay_ms(rtt_interval[0], min(jitter_interval[0], jitter_point))
        high_delay = quality.mouth_to_ear_delay_ms(rtt_interval[1], max(jitter_interval[1], jitter_point))
        point_delay = quality.mouth_to_ear_delay_ms(rtt_point, jitter_point)
        worst = min(worst, quality.mos_from_r(quality.r_factor(high_delay, loss_interval[1])))
        best = min(best, quality.mos_from_r(quality.r_factor(low_delay, loss_interval[0])))
        point = min(point, quality.mos_from_r(quality.r_factor(point_delay, loss_point)))
    return judge_below("audio_quality", (worst, best), point, lines, floor)


def judge_load(
    direction: Literal["down", "up"],
    elapsed_s: float,
    bytes_samples: Sequence[tuple[float, int]],
    ramp_s: float,
    loaded_rtts_ms: Sequence[float],
    idle_rtts_ms: Sequence[float],
    t: quality.Thresholds,
    floor: str | None = None,
) -> tuple[Judged, ...]:
    """Delay under load and throughput of a running download or upload phase.

    ``bytes_samples``: cumulative (seconds since the phase began, bytes) as the throughput
    meter keeps them; ``loaded_rtts_ms``: the phase's RTTs after its ramp; ``idle_rtts_ms``:
    the idle phase's RTTs, the baseline.
    """
    name = "download" if direction == "down" else "upload"
    first = _judge_load_once(direction, name, elapsed_s, bytes_samples, ramp_s, loaded_rtts_ms, idle_rtts_ms, t, floor)
    return _judge_load_once(direction, name, elapsed_s, bytes_samples, ramp_s, loaded_rtts_ms, idle_rtts_ms, t, raise_floor(floor, first))


def _judge_load_once(
    direction: str,
    name: str,
    elapsed_s: float,
    bytes_samples: Sequence[tuple[float, int]],
    ramp_s: float,
    loaded_rtts_ms: Sequence[float],
    idle_rtts_ms: Sequence[float],
    t: quality.Thresholds,
    floor: str | None,
) -> tuple[Judged, Judged]:
    loaded_interval = median_interval(loaded_rtts_ms)
    idle_interval = median_interval(idle_rtts_ms)
    increase_interval = increase_point = None
    if loaded_interval is not None and idle_interval is not None:
        increase_interval = (loaded_interval[0] - idle_interval[1], loaded_interval[1] - idle_interval[0])
        increase_point = percentile(loaded_rtts_ms, 50) - percentile(idle_rtts_ms, 50)
    lines = ((t.loaded_latency_warning_ms, "warning"), (t.loaded_latency_critical_ms, "critical"))
    loaded = judge_above(f"loaded_latency_{direction}", increase_interval, increase_point, lines, floor)
    return (loaded, _judge_throughput(direction, name, elapsed_s, bytes_samples, ramp_s, t, floor))


def _judge_throughput(
    direction: str, name: str, elapsed_s: float, bytes_samples: Sequence[tuple[float, int]], ramp_s: float, t: quality.Thresholds, floor: str | None
) -> Judged:
    index = 0 if direction == "up" else 1
    headroom = t.throughput_headroom_factor
    # The model warns below the 720p need and calls it critical below the 360p need.
    lines = ((quality.TIER_NEEDS_MBPS["720p"][index] * headroom, "warning"), (quality.TIER_NEEDS_MBPS["360p"][index] * headroom, "critical"))
    figure = f"throughput_{direction}"
    windows = []
    end = elapsed_s
    while len(windows) < THROUGHPUT_WINDOWS and end - THROUGHPUT_WINDOW_S >= ramp_s - 1e-9:
        rate = steady_rate(bytes_samples, end - THROUGHPUT_WINDOW_S, end)
        if rate is None:
            break
        windows.append(rate * 8 / 1e6)
        end -= THROUGHPUT_WINDOW_S
    overall = steady_rate(bytes_samples, ramp_s, elapsed_s)
    if len(windows) < THROUGHPUT_WINDOWS or overall is None:
        return judge_below(figure, None, None, lines, floor)
    point = overall * 8 / 1e6
    judged = judge_below(figure, (min(windows), max(windows)), point, lines, floor)
    best_need = quality.TIER_NEEDS_MBPS[quality.VIDEO_TIERS[0]][index] * headroom
    if judged.low >= FAR_ABOVE_FACTOR * best_need:
        return judged  # far above every line: settled (and no line can be straddled)
    smallest_need = min(need for need, _ in lines)
    if judged.high * FAR_ABOVE_FACTOR <= smallest_need:
        return judged  # far below every line: settled, critical, however uneven
    stable = point > 0 and (judged.high - judged.low) <= THROUGHPUT_STABLE_RATIO * point
    return Judged(figure, judged.low, judged.high, judged.settled and stable, judged.severity if stable else None)


def load_limits(limits_: PhaseLimits, ramp_s: float, loaded_rtts_ms: Sequence[float]) -> PhaseLimits:
    """A load phase's limits with its minimum raised until the rate's window (after the ramp)
    spans RATE_WINDOW_RTTS loaded round trips (at most RATE_WINDOW_CAP_S, never past ``max_s``)."""
    if not loaded_rtts_ms:
        return limits_
    window_s = min(RATE_WINDOW_RTTS * percentile(loaded_rtts_ms, 50) / 1000, RATE_WINDOW_CAP_S)
    least = min(limits_.max_s, ramp_s + window_s)
    return limits_ if least <= limits_.min_s else PhaseLimits(least, limits_.max_s)


def decide(elapsed_s: float, limits_: PhaseLimits, judged: Sequence[Judged], floor: str | None = None) -> Decision:
    """Stop at the maximum; from the minimum on, stop once every figure is settled."""
    unsettled = tuple(item for item in judged if not item.settled)
    floor = raise_floor(floor, judged)
    if elapsed_s >= limits_.max_s:
        return Decision(True, "max_length", unsettled, floor)
    if elapsed_s >= limits_.min_s and not unsettled:
        return Decision(True, "settled", (), floor)
    return Decision(False, None, unsettled, floor)


# --------------------------------------------------------------------------------------------
# What the person reads about a borderline figure
# --------------------------------------------------------------------------------------------

_WORDS = {
    "delay": "delay",
    "jitter_up": "unevenness (jitter) of your upload",
    "jitter_down": "unevenness (jitter) of your download",
    "loss_up": "loss on your upload",
    "loss_down": "loss on your download",
    "audio_quality": "expected sound quality",
    "loaded_latency_down": "delay while downloading",
    "loaded_latency_up": "delay while uploading",
    "throughput_down": "download speed",
    "throughput_up": "upload speed",
}


def format_interval(figure: str, low: float, high: float) -> str:
    """``low``–``high`` in the figure's own unit, e.g. "1.6–2.9 %" or "25–38 ms"."""
    unit = UNITS[figure]
    if unit == "ratio":
        return f"{low * 100:.1f}–{high * 100:.1f} %"
    if unit == "mbps":
        return f"{low:.1f}–{high:.1f} Mbit/s"
    if unit == "mos":
        return f"{low:.1f}–{high:.1f} out of 5"
    return f"{low:.0f}–{high:.0f} ms"


def borderline_reasons(unsettled: Iterable[tuple[str, float, float]]) -> list[quality.Reason]:
    """One "borderline" reason (a warning) for the figures a phase left unsettled at its
    longest: (figure, low, high) each. The verdict is then at least "at risk": a figure that
    may well be over a line is not called fine by the toss of a point estimate."""
    items = [(figure, low, high) for figure, low, high in unsettled if math.isfinite(high)]
    if not items:
        return []
    parts = [f"{_WORDS[figure]} {format_interval(figure, low, high)}" for figure, low, high in items]
    message = (
        f"Borderline: {'; '.join(parts)}. The check ran as long as it may and could still not tell on which side "
        "of a limit this lies."
    )
    if len(message) > 400:
        message = message[:397] + "..."
    return [quality.Reason(code="borderline", severity="warning", message=message, fix=quality.fix_text("borderline", "warning"))]


class _UnsettledFigure(Protocol):
    figure: str
    low: float
    high: float | None


class _PhaseRun(Protocol):
    stopped: str

    @property
    def unsettled(self) -> Sequence[_UnsettledFigure]: ...


def borderline_of_phases(phases: Iterable[_PhaseRun] | None) -> list[quality.Reason]:
    """The ``borderline`` reason a finished check's phases carry (``schema.PhaseRun``): the
    figures a phase left unsettled at its longest (``max_length``) with an interval. None for a
    check without phases (an older agent) or whose phases all settled. Whoever judges a stored
    or posted check again (the monitor's words, the risk engine, a browser check) adds it, as
    the check itself did."""
    return borderline_reasons(
        (figure.figure, figure.low, figure.high)
        for phase in phases or ()
        if phase.stopped == "max_length"
        for figure in phase.unsettled
        if figure.high is not None
    )
