"""After the session: what happened, in a therapist's words (issue 17, docs/summary.md).

``summarise`` is pure, like the rest of the risk engine: given a session's ids and times, the
last rating before it went live and both ends' live samples, it returns a ``SessionSummary``:
how long it was live, each stretch of trouble (start, length, the end at fault, the cause and
our own words), what was true most of the session at each end (weak Wi-Fi, a busy computer,
a noisy room), both ends' sound quality (MOS) over the session, and whether the pre-session
rating foresaw it. No clock is read here and nothing is stored.

Which stretches count is decided by the live tracker itself (``monitor.risk.live``): the
samples are replayed through a fresh ``LiveTracker`` on the 2 s schedule the risk service
steps it on, so a stretch is reported exactly when the live alerts fired. The tracker
raises a cause late on purpose (two bursts, ten seconds of low sound) and clears it late
(twenty good seconds); the stretch's start and end are therefore taken from the samples
themselves: from the start of the first bad sample's window to the end of the last bad one.

Times: each end's sample times (``taken_at``, the agent's clock) are moved onto the monitor's
clock by that end's smallest offset between receiving and taking: a skewed agent clock does
not shift its stretches, and samples delivered late (a batch after a network gap) keep the
times they were taken at (a sample is never received before it was taken, so the smallest
offset is the skew plus the quickest delivery).

Privacy: ids, closed codes, numbers and the sentences written here; nothing a person typed.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from monitor.risk.live import LIVE_ENDS, LiveConfig, LiveSample, LiveTracker, _unix
from sessionready.quality import Thresholds
from sessionready.schema import judged_sample_jitter_ms

SUMMARY_VERSION = 1
TICK_S = 2.0  # the risk service steps live sessions every 2 s (RiskTimes.live_interval_s)
MAX_POINTS = 120  # the MOS figure: at most this many points per end
# Causes of a stretch, most telling first: when two overlap at one end, the first names it.
STRETCH_CAUSES = (
    "agent_dropped",
    "loss_burst",
    "delay",
    "jitter",
    "high_cpu",
    "low_audio_quality",
)
FACTORS = ("weak_wifi", "high_cpu", "noisy_room")
NOTES = ("weak_wifi", "high_cpu", "noisy_room")
FORESIGHTS = ("foreseen", "other_end", "false_alarm", "missed", "quiet", "no_rating")
FLAGGED = ("at_risk", "not_ready")
# A round trip this long makes people talk over each other (twice G.114's preferred 150 ms one way).
DELAY_RTT_MS = 300.0
NOTE_SHARE = 0.25  # a condition in at least a quarter of an end's samples is worth a note
MOST_SHARE = 0.5  # ... "most of the session"
ALL_SHARE = 0.9  # ... "all session"
DEFAULT_LIVE = LiveConfig()  # the risk service's (RiskConfig().live)
DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class EndSample:
    """One live sample of one end, as the summary reads it; ``at_unix`` is the end of its
    window on the monitor's clock (see the module's note), ``received_at_unix`` when it arrived."""

    end: Literal["client", "therapist"]
    at_unix: float
    interval_s: float
    received_at_unix: float
    taken_at_unix: float
    mos: float | None
    loss_ratio: float | None  # the worse direction
    loss_up_ratio: float | None
    loss_down_ratio: float | None
    rtt_ms: float | None
    jitter_ms: float | None  # the worse direction's judged jitter: mean |D| when sent, else J
    cpu_pct: float | None
    wifi_dbm: float | None  # only on a Wi-Fi link
    noise_dbfs: float | None  # uncalibrated noise floor (L90)
    noise_dba: float | None  # calibrated noise floor
    # The window's mean |D| per direction (None: an older agent's sample, judged on J) and the
    # echoes it had, which weigh it when a stretch's windows are pooled (``_stretch_jitter_ms``).
    jitter_mean_up_ms: float | None = None
    jitter_mean_down_ms: float | None = None
    echoes: int = 0

    @property
    def window_start_unix(self) -> float:
        return self.at_unix - self.interval_s


def read_sample(
    end: Literal["client", "therapist"],
    sample: Mapping[str, Any],
    received_at_unix: float,
) -> EndSample:
    """From a stored live sample's JSON (validated on ingest). Times are still the agent's:
    ``summarise`` moves them onto the monitor's clock."""
    taken = _unix(str(sample["taken_at"]))
    network = sample.get("network") or {}
    machine = sample.get("machine") or {}
    room = sample.get("room") or {}

    def worse(a: object, b: object) -> float | None:
        values = [float(v) for v in (a, b) if isinstance(v, (int, float))]
        return max(values) if values else None

    calibrated = bool(room.get("calibrated"))
    noise = room.get("noise_floor_dbfs")
    return EndSample(
        end=end,
        at_unix=taken,
        interval_s=float(sample.get("interval_s") or 0.0),
        received_at_unix=float(received_at_unix),
        taken_at_unix=taken,
        mos=network.get("mos"),
        loss_ratio=worse(network.get("loss_up"), network.get("loss_down")),
        loss_up_ratio=network.get("loss_up"),
        loss_down_ratio=network.get("loss_down"),
        rtt_ms=network.get("rtt_p50_ms"),
        jitter_ms=worse(*judged_sample_jitter_ms(network)),
        cpu_pct=machine.get("cpu_pct"),
        wifi_dbm=machine.get("wifi_signal_dbm") if machine.get("link_type") == "wifi" else None,
        noise_dbfs=None if calibrated else noise,
        noise_dba=noise if calibrated else None,
        jitter_mean_up_ms=network.get("jitter_mean_up_ms"),
        jitter_mean_down_ms=network.get("jitter_mean_down_ms"),
        echoes=int(network.get("packets_received") or 0),
    )


@dataclass(frozen=True)
class RatingReason:
    end: str  # client | therapist | session
    cause: str
    severity: str  # warning | critical


@dataclass(frozen=True)
class Rating:
    """The risk engine's last rating before the session went live (session_risk_history)."""

    state: str  # ready | unknown | at_risk | not_ready
    at_unix: float
    reasons: tuple[RatingReason, ...] = ()  # its warning and critical reasons only

    @property
    def flagged(self) -> bool:
        return self.state in FLAGGED

    def ends(self) -> tuple[str, ...]:
        return tuple(sorted({r.end for r in self.reasons}))


def rating_from_history(reasons: Sequence[Mapping[str, Any]], state: str, at_unix: float) -> Rating:
    """A rating from a ``session_risk_history`` row (reasons as stored: end, cause, severity, ...)."""
    kept = tuple(RatingReason(str(r["end"]), str(r["cause"]), str(r["severity"])) for r in reasons if r.get("severity") in ("warning", "critical"))
    return Rating(state, float(at_unix), kept)


@dataclass(frozen=True)
class Stretch:
    """A stretch of trouble at one end. Times on the monitor's clock (unix s); ``words`` is
    what happened, for a therapist, without the time (the reader adds it in their own zone)."""

    end: Literal["client", "therapist"]
    cause: str  # one of STRETCH_CAUSES
    start_unix: float
    end_unix: float
    length_s: float
    worst_loss_ratio: float | None
    lowest_mos: float | None
    worst_rtt_ms: float | None
    worst_jitter_ms: float | None
    factors: tuple[str, ...]  # of FACTORS, seen during the stretch
    until_end: bool  # still going when the session ended
    words: str


@dataclass(frozen=True)
class EndNote:
    """Something true for a good part of the session at one end."""

    end: Literal["client", "therapist"]
    note: str  # one of NOTES
    share: float  # of the end's samples that said so (0..1)
    value: float  # the median of those samples (dBm, %, dBFS or dBA)
    words: str


@dataclass(frozen=True)
class MosPoint:
    """Mean MOS per end over ``[offset_s, offset_s + bucket_s)`` from the live start; None: no sample."""

    offset_s: float
    client: float | None
    therapist: float | None


@dataclass(frozen=True)
class EndFigures:
    samples: int
    mos_median: float | None
    mos_lowest: float | None
    trouble_s: float  # seconds in stretches of trouble


@dataclass(frozen=True)
class SessionSummary:
    """What happened in one session that went live (docs/summary.md)."""

    version: int
    session_id: str
    therapist_id: str
    client_id: str
    start_unix: float  # the planned start
    planned_duration_s: float
    final: bool  # the session has ended: this will not change
    live_from_unix: float
    live_until_unix: float
    live_s: float
    measured: bool  # live samples of both ends were there to read
    verdict: Literal["no_trouble", "trouble", "not_measured"]
    at_fault: Literal["client", "therapist", "both"] | None
    client: EndFigures
    therapist: EndFigures
    stretches: tuple[Stretch, ...]
    notes: tuple[EndNote, ...]
    bucket_s: float
    mos_series: tuple[MosPoint, ...]
    rating: Rating | None
    foresight: str  # one of FORESIGHTS
    headline: str
    foresight_words: str
    live_causes: tuple[str, ...] = field(default=())  # "end:cause" of the stretches, for Trends


@dataclass(frozen=True)
class SummaryInputs:
    session_id: str
    therapist_id: str
    client_id: str
    start_unix: float
    planned_duration_s: float
    live_from_unix: float
    ended_unix: float | None  # None: still live
    rating: Rating | None
    samples: tuple[EndSample, ...]


def summarise(
    inputs: SummaryInputs,
    now: float,
    live: LiveConfig = DEFAULT_LIVE,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> SessionSummary:
    """The summary of a session that went live at ``inputs.live_from_unix``; ``now`` bounds a
    session still live (the summary is then provisional: ``final`` false)."""
    final = inputs.ended_unix is not None
    official_end = inputs.ended_unix if final else now
    samples = _on_monitor_clock([s for s in inputs.samples if s.received_at_unix <= official_end + 1e-9])
    by_end = {end: sorted((s for s in samples if s.end == end), key=lambda s: s.at_unix) for end in LIVE_ENDS}
    # A session ends a minute after both agents stopped: that quiet tail is not part of it.
    last = [s.at_unix for s in samples]
    live_until = min(official_end, max(last)) if last else official_end
    live_until = max(live_until, inputs.live_from_unix)
    measured = all(by_end[end] for end in LIVE_ENDS)

    stretches: list[Stretch] = []
    if measured:
        intervals = _tracker_intervals(inputs, samples, live_until, live)
        planned_end = inputs.start_unix + inputs.planned_duration_s
        for end in LIVE_ENDS:
            stretches += _stretches(
                end,
                by_end[end],
                intervals.get(end, []),
                inputs.live_from_unix,
                live_until,
                planned_end,
                live,
                thresholds,
            )
    stretches.sort(key=lambda s: (s.start_unix, LIVE_ENDS.index(s.end)))
    notes = [n for end in LIVE_ENDS for n in _notes(end, by_end[end], thresholds)]

    ends_at_fault = sorted({s.end for s in stretches}, key=LIVE_ENDS.index)
    at_fault = None if not ends_at_fault else ends_at_fault[0] if len(ends_at_fault) == 1 else "both"
    verdict = "not_measured" if not measured else "trouble" if stretches else "no_trouble"
    foresight = _foresight(inputs.rating, stretches, measured)
    bucket_s, series = _mos_series(by_end, inputs.live_from_unix, live_until)
    figures = {
        end: EndFigures(
            samples=len(by_end[end]),
            mos_median=_round(statistics.median(m), 2) if (m := [s.mos for s in by_end[end] if s.mos is not None]) else None,
            mos_lowest=_round(min(m), 2) if m else None,
            trouble_s=round(sum(s.length_s for s in stretches if s.end == end), 1),
        )
        for end in LIVE_ENDS
    }
    live_s = round(live_until - inputs.live_from_unix, 1)
    return SessionSummary(
        version=SUMMARY_VERSION,
        session_id=inputs.session_id,
        therapist_id=inputs.therapist_id,
        client_id=inputs.client_id,
        start_unix=inputs.start_unix,
        planned_duration_s=inputs.planned_duration_s,
        final=final,
        live_from_unix=inputs.live_from_unix,
        live_until_unix=round(live_until, 3),
        live_s=live_s,
        measured=measured,
        verdict=verdict,  # type: ignore[arg-type]
        at_fault=at_fault,  # type: ignore[arg-type]
        client=figures["client"],
        therapist=figures["therapist"],
        stretches=tuple(stretches),
        notes=tuple(notes),
        bucket_s=bucket_s,
        mos_series=series,
        rating=inputs.rating,
        foresight=foresight,
        headline=_headline(verdict, live_s, stretches, final),
        foresight_words=_foresight_words(foresight, inputs.rating, stretches),
        live_causes=tuple(sorted({f"{s.end}:{s.cause}" for s in stretches})),
    )


# --- replaying the live tracker --------------------------------------------------------------


def _on_monitor_clock(samples: Sequence[EndSample]) -> list[EndSample]:
    out = []
    for end in LIVE_ENDS:
        mine = [s for s in samples if s.end == end]
        if not mine:
            continue
        offset = min(s.received_at_unix - s.taken_at_unix for s in mine)
        out += [_moved(s, s.taken_at_unix + offset) for s in mine]
    return out


def _moved(s: EndSample, at: float) -> EndSample:
    return EndSample(**{**s.__dict__, "at_unix": at})


def _tracker_intervals(
    inputs: SummaryInputs,
    samples: Sequence[EndSample],
    live_until: float,
    live: LiveConfig,
) -> dict[str, list[tuple[str, float, float | None]]]:
    """(cause, raised at, cleared at or None) per end, as the risk service's tracker saw them:
    the same samples fed on the same 2 s ticks, from the moment the session went live."""
    tracker = LiveTracker(live)
    state = tracker.start(inputs.session_id, inputs.live_from_unix)
    pending = sorted(samples, key=lambda s: s.received_at_unix)
    open_: dict[tuple[str, str], float] = {}
    intervals: dict[str, list[tuple[str, float, float | None]]] = {}
    index = 0
    tick = inputs.live_from_unix
    while True:
        tick = min(tick + TICK_S, live_until)
        batch = []
        while index < len(pending) and pending[index].received_at_unix <= tick + 1e-9:
            s = pending[index]
            batch.append(
                LiveSample(
                    s.end,
                    s.taken_at_unix,
                    s.interval_s,
                    s.received_at_unix,
                    s.mos,
                    s.loss_up_ratio,
                    s.loss_down_ratio,
                )
            )
            index += 1
        step = tracker.step(state, batch, tick)
        state = step.state
        for t in step.transitions:
            key = (t.end, t.cause)
            if t.kind == "degraded":
                open_[key] = t.at_unix
            elif key in open_:
                intervals.setdefault(t.end, []).append((t.cause, open_.pop(key), t.at_unix))
        if tick >= live_until:
            break
    for (end, cause), raised in open_.items():
        intervals.setdefault(end, []).append((cause, raised, None))
    return intervals


# --- stretches ---------------------------------------------------------------------------------


@dataclass
class _Span:
    cause: str
    start: float
    end: float
    samples: list[EndSample]
    until_end: bool = False


def _runs(samples: Sequence[EndSample], bad: Any, join_s: float) -> list[_Span]:
    """Runs of bad samples; two bad samples at most ``join_s`` apart belong to one run."""
    runs: list[_Span] = []
    for s in samples:
        if not bad(s):
            continue
        if runs and s.at_unix - runs[-1].end <= join_s + 1e-6:
            runs[-1].end = s.at_unix
            runs[-1].samples.append(s)
        else:
            runs.append(_Span("", s.window_start_unix, s.at_unix, [s]))
    return runs


def _stretches(
    end: Literal["client", "therapist"],
    samples: Sequence[EndSample],
    intervals: Sequence[tuple[str, float, float | None]],
    live_from: float,
    live_until: float,
    planned_end: float,
    live: LiveConfig,
    thresholds: Thresholds,
) -> list[Stretch]:
    if not intervals:
        return []
    interval_s = statistics.median(s.interval_s for s in samples) or TICK_S
    spans: list[_Span] = []
    loss_runs = _runs(
        samples,
        lambda s: s.loss_ratio is not None and s.loss_ratio > live.loss_good_ratio,
        live.loss_burst_window_s,
    )
    mos_runs = _runs(
        samples,
        lambda s: s.mos is not None and s.mos < live.mos_below,
        1.5 * interval_s,
    )
    lookback = max(live.loss_burst_window_s, live.mos_duration_s) + 2 * interval_s
    for cause, raised, cleared in intervals:
        until = live_until if cleared is None else cleared
        if cause == "live_agent_dropped":
            before = [s for s in samples if s.received_at_unix <= raised]
            start = before[-1].at_unix if before else raised - live.dropped_after_s
            after = [s for s in samples if s.at_unix > start + 1e-6]
            if after:
                spans.append(
                    _Span(
                        "agent_dropped",
                        start,
                        max(start, after[0].window_start_unix),
                        [],
                    )
                )
            elif start < planned_end:  # gone before the planned end, and not back
                spans.append(_Span("agent_dropped", start, live_until, [], until_end=True))
            continue  # an end that left after the planned end simply left
        runs = loss_runs if cause == "live_loss_burst" else mos_runs
        for run in runs:
            if run.end >= raised - lookback and run.start <= until:
                spans.append(
                    _Span(
                        "loss_burst" if cause == "live_loss_burst" else "low_audio_quality",
                        run.start,
                        run.end,
                        run.samples,
                    )
                )
    # One stretch per stretch of time: overlapping or touching spans at this end are merged.
    spans.sort(key=lambda s: s.start)
    merged: list[list[_Span]] = []
    for span in spans:
        if merged and span.start <= max(s.end for s in merged[-1]) + interval_s + 1e-6:
            merged[-1].append(span)
        else:
            merged.append([span])
    stretches = []
    for group in merged:
        # Within the live session: the samples that made it live came just before it.
        if max(s.end for s in group) <= live_from:
            continue
        start = max(min(s.start for s in group), live_from)
        stop = max(min(max(s.end for s in group), live_until), start)
        inside = sorted(
            {id(x): x for s in group for x in s.samples}.values(),
            key=lambda x: x.at_unix,
        )
        inside = inside or [s for s in samples if start - 1e-6 <= s.window_start_unix and s.at_unix <= stop + 1e-6]
        causes = {s.cause for s in group}
        cause = _cause(causes, inside, thresholds)
        factors = _factors(inside, cause, thresholds)
        stretch_samples = [s for s in samples if s.at_unix > start + 1e-6 and s.window_start_unix < stop - 1e-6] or inside
        worst_loss = _max(s.loss_ratio for s in stretch_samples)
        lowest_mos = _min(s.mos for s in stretch_samples)
        worst_rtt = _max(s.rtt_ms for s in stretch_samples)
        worst_jitter = _max(s.jitter_ms for s in stretch_samples)
        until_end = any(s.until_end for s in group)
        stretches.append(
            Stretch(
                end=end,
                cause=cause,
                start_unix=round(start, 3),
                end_unix=round(stop, 3),
                length_s=round(stop - start, 1),
                worst_loss_ratio=_round(worst_loss, 4),
                lowest_mos=_round(lowest_mos, 2),
                worst_rtt_ms=_round(worst_rtt, 1),
                worst_jitter_ms=_round(worst_jitter, 1),
                factors=factors,
                until_end=until_end,
                words=_stretch_words(
                    end,
                    cause,
                    stop - start,
                    worst_loss,
                    lowest_mos,
                    worst_rtt,
                    worst_jitter,
                    inside,
                    factors,
                    until_end,
                ),
            )
        )
    return stretches


def _cause(causes: set[str], inside: Sequence[EndSample], t: Thresholds) -> str:
    if "agent_dropped" in causes:
        return "agent_dropped"
    if "loss_burst" in causes:
        return "loss_burst"
    # Low sound quality alone: what in the samples explains it?
    if (_max(s.loss_ratio for s in inside) or 0.0) > t.loss_critical_ratio:
        return "loss_burst"
    if (_max(s.rtt_ms for s in inside) or 0.0) > DELAY_RTT_MS:
        return "delay"
    if (_stretch_jitter_ms(inside) or 0.0) > t.jitter_warning_ms:
        return "jitter"
    if (_max(s.cpu_pct for s in inside) or 0.0) > t.cpu_warning_pct:
        return "high_cpu"
    return "low_audio_quality"


def _stretch_jitter_ms(inside: Sequence[EndSample]) -> float | None:
    """The jitter a stretch is judged on, the worse direction: as a check judges its idle phase,
    the mean |D| over the stretch's packets, pooled from its windows' means weighted by their
    echoes. One 2 s window holds only 20 |D| at the live rate, and its mean spreads about 20 %
    around the path's (more than J, docs/quality-model.md), so the worst window would name jitter
    on a path whose mean lies under the line. Samples from an older agent, without the mean:
    the worst J among them, as before."""
    pooled = []
    for direction in ("up", "down"):
        weighted = [(getattr(s, f"jitter_mean_{direction}_ms"), max(s.echoes, 1)) for s in inside]
        weighted = [(mean, n) for mean, n in weighted if mean is not None]
        if weighted:
            pooled.append(sum(mean * n for mean, n in weighted) / sum(n for _, n in weighted))
    if pooled:
        return max(pooled)
    return _max(s.jitter_ms for s in inside)


def _factors(inside: Sequence[EndSample], cause: str, t: Thresholds) -> tuple[str, ...]:
    found = []
    if (w := _min(s.wifi_dbm for s in inside)) is not None and w < t.wifi_signal_warning_dbm:
        found.append("weak_wifi")
    if cause != "high_cpu" and (_max(s.cpu_pct for s in inside) or 0.0) > t.cpu_warning_pct:
        found.append("high_cpu")
    if any(_noisy(s, t) for s in inside):
        found.append("noisy_room")
    return tuple(found)


def _noisy(s: EndSample, t: Thresholds) -> bool:
    return (s.noise_dbfs is not None and s.noise_dbfs > t.noise_floor_warning_dbfs) or (
        s.noise_dba is not None and s.noise_dba > t.noise_floor_warning_dba
    )


def _notes(end: Literal["client", "therapist"], samples: Sequence[EndSample], t: Thresholds) -> list[EndNote]:
    notes = []
    whose = _whose(end)
    wifi = [s.wifi_dbm for s in samples if s.wifi_dbm is not None]
    weak = [w for w in wifi if w < t.wifi_signal_warning_dbm]
    if wifi and len(weak) / len(wifi) >= NOTE_SHARE:
        share = len(weak) / len(wifi)
        value = statistics.median(weak)
        notes.append(
            EndNote(
                end,
                "weak_wifi",
                round(share, 2),
                round(value, 1),
                f"{whose} Wi-Fi signal was weak {_how_long(share)} (around {value:.0f} dBm).",
            )
        )
    cpu = [s.cpu_pct for s in samples if s.cpu_pct is not None]
    busy = [c for c in cpu if c > t.cpu_warning_pct]
    if cpu and len(busy) / len(cpu) >= NOTE_SHARE:
        share = len(busy) / len(cpu)
        value = statistics.median(busy)
        notes.append(
            EndNote(
                end,
                "high_cpu",
                round(share, 2),
                round(value, 1),
                f"{whose} computer was very busy {_how_long(share)} (around {value:.0f} % of its processor).",
            )
        )
    room = [s for s in samples if s.noise_dbfs is not None or s.noise_dba is not None]
    noisy = [s for s in room if _noisy(s, t)]
    if room and len(noisy) / len(room) >= NOTE_SHARE:
        share = len(noisy) / len(room)
        levels = [s.noise_dba if s.noise_dba is not None else s.noise_dbfs for s in noisy]
        value = statistics.median(x for x in levels if x is not None)
        unit = "dB(A)" if noisy[0].noise_dba is not None else "dB on the microphone's scale"
        notes.append(
            EndNote(
                end,
                "noisy_room",
                round(share, 2),
                round(value, 1),
                f"{whose} room was noisy {_how_long(share)} (noise floor around {value:.0f} {unit}).",
            )
        )
    return notes


def _how_long(share: float) -> str:
    if share >= ALL_SHARE:
        return "all session"
    if share >= MOST_SHARE:
        return "for most of the session"
    return f"for about {round(share * 100 / 5) * 5:.0f} % of the session"


# --- the rating ----------------------------------------------------------------------------------


def _foresight(rating: Rating | None, stretches: Sequence[Stretch], measured: bool) -> str:
    if rating is None or not measured:
        return "no_rating"
    degraded = {s.end for s in stretches}
    if rating.flagged:
        if not degraded:
            return "false_alarm"
        flagged = set(rating.ends())
        return "foreseen" if "session" in flagged or flagged & degraded else "other_end"
    return "missed" if degraded else "quiet"


# --- the MOS figure ------------------------------------------------------------------------------


def _mos_series(by_end: Mapping[str, Sequence[EndSample]], start: float, until: float) -> tuple[float, tuple[MosPoint, ...]]:
    length = max(until - start, TICK_S)
    bucket = TICK_S
    for step in (2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        bucket = float(step)
        if length / step <= MAX_POINTS:
            break
    count = max(1, int(-(-length // bucket)))
    sums = {end: [[0.0, 0] for _ in range(count)] for end in LIVE_ENDS}
    for end in LIVE_ENDS:
        for s in by_end[end]:
            if s.mos is None:
                continue
            k = min(
                count - 1,
                max(0, int((s.window_start_unix + s.interval_s / 2 - start) // bucket)),
            )
            sums[end][k][0] += s.mos
            sums[end][k][1] += 1
    points = []
    for k in range(count):
        values = {end: (round(sums[end][k][0] / sums[end][k][1], 2) if sums[end][k][1] else None) for end in LIVE_ENDS}
        points.append(MosPoint(k * bucket, values["client"], values["therapist"]))
    return bucket, tuple(points)


# --- words ---------------------------------------------------------------------------------------


def _whose(end: str) -> str:
    return "The client's" if end == "client" else "The therapist's"


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 0):.0f} seconds"
    return f"{seconds / 60:.0f} minutes"


def _stretch_words(
    end: str,
    cause: str,
    length_s: float,
    loss: float | None,
    mos: float | None,
    rtt: float | None,
    jitter: float | None,
    inside: Sequence[EndSample],
    factors: Sequence[str],
    until_end: bool,
) -> str:
    whose = _whose(end)
    if cause == "agent_dropped":
        text = f"No measurements came from the {end}'s computer for {_span(length_s)}: the call may have dropped"
        text += " and did not come back" if until_end else ""
    elif cause == "loss_burst":
        text = f"{whose} connection lost up to {(loss or 0.0) * 100:.0f} % of packets: the picture will have frozen and the sound broken up"
    elif cause == "delay":
        text = f"{whose} connection was slow (round trip up to {rtt or 0:.0f} ms): you may have talked over each other"
    elif cause == "jitter":
        text = f"{whose} connection was uneven (jitter up to {jitter or 0:.0f} ms): the sound will have stuttered"
    elif cause == "high_cpu":
        cpu = _max(s.cpu_pct for s in inside) or 0.0
        text = f"{whose} computer was overloaded ({cpu:.0f} % busy): the picture and sound may have stuttered"
    else:
        text = f"The sound from the {end}'s side was poor (quality down to {mos or 0:.1f} out of 5)"
    extra = []
    if "weak_wifi" in factors:
        extra.append(f"the Wi-Fi signal was weak ({_min(s.wifi_dbm for s in inside) or 0:.0f} dBm)")
    if "high_cpu" in factors:
        extra.append(f"the computer was {_max(s.cpu_pct for s in inside) or 0:.0f} % busy")
    if "noisy_room" in factors:
        extra.append("the room was noisy")
    if extra:
        text += "; meanwhile " + " and ".join(extra)
    return text + "."


def _headline(verdict: str, live_s: float, stretches: Sequence[Stretch], final: bool) -> str:
    was = "was" if final else "has been"
    if verdict == "not_measured":
        return f"The session {was} live for {_span(live_s)}, but the live measurements of both ends are not there to tell how it went."
    if verdict == "no_trouble":
        return f"No trouble: the session {was} live for {_span(live_s)} and the connection held at both ends."
    total = sum(s.length_s for s in stretches)
    ends = sorted({s.end for s in stretches}, key=LIVE_ENDS.index)
    where = f"at the {ends[0]}'s end" if len(ends) == 1 else "at both ends"
    count = "1 stretch" if len(stretches) == 1 else f"{len(stretches)} stretches"
    return f"{count} of trouble in {_span(live_s)} live ({_span(total)} in all), {where}."


def _foresight_words(foresight: str, rating: Rating | None, stretches: Sequence[Stretch]) -> str:
    if rating is None or foresight == "no_rating":
        return "There was no rating from the checks before the session to compare with."
    state = {"unknown": "as unknown (a check was missing)"}.get(rating.state, rating.state.replace("_", " "))
    flagged = ", ".join("both connections together" if e == "session" else f"the {e}'s end" for e in rating.ends())
    degraded = " and ".join(f"the {e}'s" for e in sorted({s.end for s in stretches}, key=LIVE_ENDS.index))
    return {
        "foreseen": f"The checks before the session saw this coming: they rated it {state} ({flagged}).",
        "other_end": f"The checks before the session rated it {state} for {flagged}, but the trouble came from {degraded} end.",
        "false_alarm": f"The checks before the session rated it {state} ({flagged}), but it went without trouble.",
        "missed": f"The checks before the session did not see this coming: they rated it {state}.",
        "quiet": f"The checks before the session rated it {state}, and so it went.",
    }[foresight]


def _max(values: Any) -> float | None:
    found = [v for v in values if v is not None]
    return max(found) if found else None


def _min(values: Any) -> float | None:
    found = [v for v in values if v is not None]
    return min(found) if found else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
