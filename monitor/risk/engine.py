"""The risk engine: is a session about to go wrong, at which end, why, and what to do.

Pure and deterministic: no I/O, no store, no clock. The caller (the monitor's evaluation loop)
reads the store, builds the summaries below and passes ``now`` (unix seconds); the same
inputs always give the same ``SessionRisk``, with reasons in a stable order. Inputs are
summaries (the latest check, a few statistics over recent background samples, the outcomes
of past sessions), so one assessment costs microseconds, not a scan of raw rows.

docs/risk.md explains every rule, threshold and cause code. The live session's state
machine (degradation with hysteresis) is in ``monitor.risk.live``.

Units are in the names: ``_unix`` seconds since the epoch, ``_s`` seconds, ``_ms``
milliseconds, ``_ratio`` a fraction within 0..1, ``_mbps`` Mbit/s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

from monitor.risk import words as say
from monitor.risk.live import LiveConfig
from sessionready import quality, schema, settle
from sessionready.facts import device_facts, machine_facts, network_facts, room_facts
from sessionready.quality import check_finite, check_non_negative, check_ratio
from sessionready.stats import percentile
from sessionready.terms import ENDS, PARTICIPANT_ROLES
from sessionready.typed import decode, limits, validate

# --------------------------------------------------------------------------------------------
# Public constants
# --------------------------------------------------------------------------------------------

# Least to most severe. A session takes the worst state of its parts. "unknown" (no evidence
# either way) ranks above "ready" and below any measured problem.
STATES = ("ready", "unknown", "at_risk", "not_ready")
ROLES = PARTICIPANT_ROLES

# Causes of the engine's own (the check's findings keep the quality model's codes).
SESSION_CAUSES: frozenset[str] = frozenset(
    {
        "no_check",
        "stale_check",
        "agent_offline",
        "recent_loss",
        "recent_jitter",
        "recent_delay",
        "recent_probe_failed",
        "history_degraded",
        "e2e_delay",
        "e2e_loss",
        "e2e_audio_quality",
        "e2e_video",
    }
)
CAUSES: frozenset[str] = quality.REASON_CODES | SESSION_CAUSES

# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One finding of the quality model for a check: a code of ``quality.REASON_CODES`` and a severity."""

    code: str
    severity: str


@dataclass(frozen=True)
class CheckSummary:
    """What the engine needs of one end's latest full check.

    ``findings`` and ``verdict`` are the monitor's own reading of the report's numbers
    (``quality.assess`` with the monitor's thresholds), so every agent is judged by the same
    rules whatever version computed the report's own verdict. The numbers are kept for the
    end-to-end estimate and for the plain-word messages. None = not measured. Jitter is the
    figure the model judged: the mean |D| a report carries (``jitter_mean_ms``), or RFC 3550's
    J in a report from before it.
    """

    check_id: str
    received_at_unix: float
    verdict: str
    findings: tuple[Finding, ...]
    mos: float | None
    video_tier: str
    rtt_p50_ms: float | None
    jitter_up_ms: float | None
    jitter_down_ms: float | None
    loss_up_ratio: float | None
    loss_down_ratio: float | None
    throughput_up_mbps: float | None
    throughput_down_mbps: float | None
    loaded_latency_up_ms: float | None = None
    loaded_latency_down_ms: float | None = None
    cpu_pct: float | None = None
    memory_available_pct: float | None = None
    battery_pct: float | None = None
    wifi_signal_dbm: float | None = None
    background_up_mbps: float | None = None
    background_down_mbps: float | None = None
    noise_floor_db: float | None = None  # L90, dBFS(A) or dBA when the microphone is calibrated
    noise_calibrated: bool = False
    snr_db: float | None = None
    voice_ratio: float | None = None

    @classmethod
    def from_report(
        cls, report: Mapping[str, object] | schema.CheckReport, received_at_unix: float,
        thresholds: quality.Thresholds = quality.Thresholds(),
    ) -> CheckSummary:  # fmt: skip
        """From a stored check report (its JSON wire form, or the decoded ``schema.CheckReport``).

        Raises ``sessionready.typed.SchemaError`` (a ValueError naming the field) when the
        report does not match the schema. Costs one strict decode and one ``quality.assess``:
        the caller can keep the summary per check id.
        """
        checked = report if isinstance(report, schema.CheckReport) else decode(schema.CheckReport, report)
        network = network_facts(checked.network)
        machine = machine_facts(checked.machine) if checked.machine is not None else None
        room = room_facts(checked.room) if checked.room is not None else None
        devices = device_facts(checked.devices) if checked.devices is not None else None  # a browser check's
        assessment = quality.assess(network, thresholds, machine=machine, room=room, devices=devices)
        # The model judges numbers, not phases: a figure the check could not settle by its
        # longest is read from the report's phases, as the check itself added it.
        reasons = [*assessment.reasons, *settle.borderline_of_phases(checked.phases)]
        net = checked.network
        return cls(
            check_id=checked.check_id,
            received_at_unix=check_finite("received_at_unix", received_at_unix),
            verdict=quality.verdict_from_reasons(reasons),
            findings=tuple(Finding(r.code, r.severity) for r in reasons),
            mos=assessment.mos,
            video_tier=assessment.video_tier,
            rtt_p50_ms=network.rtt_p50_ms,
            jitter_up_ms=network.judged_jitter_up_ms,
            jitter_down_ms=network.judged_jitter_down_ms,
            loss_up_ratio=network.loss_up_ratio,
            loss_down_ratio=network.loss_down_ratio,
            throughput_up_mbps=net.throughput_mbps.up,
            throughput_down_mbps=net.throughput_mbps.down,
            loaded_latency_up_ms=net.loaded_latency_ms.up,
            loaded_latency_down_ms=net.loaded_latency_ms.down,
            cpu_pct=None if machine is None else machine.cpu_pct,
            memory_available_pct=None if machine is None else machine.memory_available_pct,
            battery_pct=None if machine is None else machine.battery_pct,
            wifi_signal_dbm=None if machine is None else machine.wifi_signal_dbm,
            background_up_mbps=None if machine is None else machine.background_up_mbps,
            background_down_mbps=None if machine is None else machine.background_down_mbps,
            noise_floor_db=None if room is None else room.l90_dbfs,
            noise_calibrated=False if room is None else room.calibrated,
            snr_db=None if room is None else room.snr_db,
            voice_ratio=None if room is None else room.voice_ratio,
        )




@dataclass(frozen=True)
class RecentSamples:
    """Statistics over one end's recent background samples (the caller picks the window,
    ``RiskConfig.samples_window_s`` by default). None = no sample had that number.

    RTT: median (typical) and 95th percentile over the samples; jitter per direction: the median
    of the samples' judged jitter (their mean |D| when they carry it, else J:
    ``schema.judged_sample_jitter_ms``); loss: the mean of the samples' loss (equal-length
    bursts, so this is the pooled loss) and its 95th percentile.
    ``problem_count``: samples whose probe could not run (UDP blocked, monitor unreachable).
    """

    count: int
    problem_count: int = 0
    rtt_p50_ms: float | None = None
    rtt_p95_ms: float | None = None
    jitter_up_ms: float | None = None
    jitter_down_ms: float | None = None
    loss_up_ratio: float | None = None
    loss_down_ratio: float | None = None
    loss_up_p95_ratio: float | None = None
    loss_down_p95_ratio: float | None = None

    def __post_init__(self) -> None:
        for name in ("count", "problem_count"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.problem_count > self.count:
            raise ValueError("problem_count cannot exceed count")
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name.endswith("_ms") and value is not None:
                check_non_negative(spec.name, value)
            if spec.name.endswith("_ratio") and value is not None:
                check_ratio(spec.name, value)

    @classmethod
    def from_samples(cls, samples: Iterable[schema.SampleNetwork | Mapping[str, object]]) -> RecentSamples:
        """From the ``network`` part of background samples (``schema.SampleNetwork`` or its
        JSON form). O(n log n) in the number of samples."""
        count = problems = 0
        rtts: list[float] = []
        jitter_up: list[float] = []
        jitter_down: list[float] = []
        loss_up: list[float] = []
        loss_down: list[float] = []
        for sample in samples:
            get = sample.get if isinstance(sample, Mapping) else lambda name, s=sample: getattr(s, name)
            count += 1
            if get("problem") is not None:
                problems += 1
                continue
            for target, name in ((rtts, "rtt_p50_ms"), (loss_up, "loss_up"), (loss_down, "loss_down")):
                value = get(name)
                if value is not None:
                    target.append(float(value))  # type: ignore[arg-type]
            for target, judged in zip((jitter_up, jitter_down), schema.judged_sample_jitter_ms(sample)):
                if judged is not None:
                    target.append(judged)
        return cls(
            count=count,
            problem_count=problems,
            rtt_p50_ms=_median(rtts),
            rtt_p95_ms=_p95(rtts),
            jitter_up_ms=_median(jitter_up),
            jitter_down_ms=_median(jitter_down),
            loss_up_ratio=_mean(loss_up),
            loss_down_ratio=_mean(loss_down),
            loss_up_p95_ratio=_p95(loss_up),
            loss_down_p95_ratio=_p95(loss_down),
        )


@dataclass(frozen=True)
class PastSession:
    """How one earlier session of this participant went: ``degraded`` = it went at risk while live."""

    start_unix: float
    degraded: bool


@dataclass(frozen=True)
class HistorySummary:
    """This participant's past sessions (ended before the one assessed), newest first."""

    sessions: tuple[PastSession, ...]
    # The UTC hour of day of each session, computed once: the engine looks at them for every assessment.
    hours: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hours", tuple(_hour_of_day(past.start_unix) for past in self.sessions))

    @classmethod
    def from_records(cls, records: Iterable[PastSession | tuple[float, bool]], limit: int = 50) -> HistorySummary:
        """Newest first, at most ``limit`` (older sessions say little about today's network)."""
        items = [r if isinstance(r, PastSession) else PastSession(float(r[0]), bool(r[1])) for r in records]
        items.sort(key=lambda s: s.start_unix, reverse=True)
        return cls(tuple(items[:limit]))

    def degradation_rate_by_hour(self) -> tuple[float | None, ...]:
        """The share of degraded sessions per UTC hour of day (24 values; None = no session)."""
        totals = [0] * 24
        degraded = [0] * 24
        for past in self.sessions:
            hour = _hour_of_day(past.start_unix)
            totals[hour] += 1
            degraded[hour] += past.degraded
        return tuple(None if t == 0 else d / t for d, t in zip(degraded, totals))


@dataclass(frozen=True)
class EndInputs:
    """Everything known about one end. None = nothing known (no check, no samples, no history;
    ``last_seen_unix`` None: the agent has never been in touch)."""

    participant_id: str
    role: Literal["client", "therapist"]
    last_seen_unix: float | None
    check: CheckSummary | None = None
    samples: RecentSamples | None = None
    history: HistorySummary | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")


@dataclass(frozen=True)
class SessionInputs:
    """One session and both its ends. ``state`` is the session's own (scheduled/live/ended/cancelled)."""

    session_id: str
    start_unix: float
    planned_duration_s: float
    state: Literal["scheduled", "live", "ended", "cancelled"]
    client: EndInputs
    therapist: EndInputs

    def __post_init__(self) -> None:
        if self.client.role != "client" or self.therapist.role != "therapist":
            raise ValueError("client and therapist must be given in their own roles")
        if self.state not in ("scheduled", "live", "ended", "cancelled"):
            raise ValueError(f"unknown session state {self.state!r}")


ONLINE_TIMEOUT_S = 300.0  # RiskConfig.online_timeout_s's default, and GET /api/v1/agents's "online"
_SECONDS = limits(ge=0.0, le=1e9)
_COUNT = limits(ge=1, le=1_000_000)


@dataclass(frozen=True)
class RiskConfig:
    """Every rule's threshold, with defaults; docs/risk.md gives the reason for each."""

    horizon_s: float = field(default=7200.0, metadata=_SECONDS)  # sessions starting within 2 h are assessed (the caller selects)
    check_max_age_s: float = field(default=86400.0, metadata=_SECONDS)  # an older check says nothing about today's network
    check_deadline_s: float = field(default=900.0, metadata=_SECONDS)  # no usable check by T-15 min: flagged
    online_timeout_s: float = field(default=ONLINE_TIMEOUT_S, metadata=_SECONDS)  # agents poll every minute: five missed polls = offline
    offline_warning_lead_s: float = field(default=1800.0, metadata=_SECONDS)  # offline within 30 min of the start (or live): warning
    samples_window_s: float = field(default=7200.0, metadata=_SECONDS)  # for the caller: which background samples to summarise
    samples_min_count: int = field(default=3, metadata=_COUNT)  # fewer samples are not judged
    history_sessions: int = field(default=4, metadata=_COUNT)  # the last N past sessions around this time of day
    # "around this time": within +-1 h of the start's hour (UTC)
    history_window_hours: int = field(default=1, metadata=limits(ge=0, le=11))
    history_min_degraded: int = field(default=2, metadata=_COUNT)
    history_degraded_ratio: float = field(default=0.5, metadata=limits(ge=0.0, le=1.0))
    quality: quality.Thresholds = quality.Thresholds()
    live: LiveConfig = LiveConfig()

    def __post_init__(self) -> None:
        validate(self, "risk")


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskReason:
    """One reason: which end (client, therapist, or the session as a whole), the cause code
    (in ``CAUSES``), a severity (``quality.SEVERITIES``), a plain message that names the end,
    and what the therapist can do about it."""

    end: str
    cause: str
    severity: str
    message: str
    action: str

    def __post_init__(self) -> None:
        if self.end not in ENDS:
            raise ValueError(f"end must be one of {ENDS}, got {self.end!r}")
        if self.cause not in CAUSES:
            raise ValueError(f"unknown cause {self.cause!r}")
        if self.severity not in quality.SEVERITIES:
            raise ValueError(f"severity must be one of {quality.SEVERITIES}, got {self.severity!r}")
        if not self.message or not self.action:
            raise ValueError("a risk reason needs a message and an action")


@dataclass(frozen=True)
class EndRisk:
    """One end's state, the age and id of its latest check (None: none) and whether its agent is online."""

    role: str
    participant_id: str
    state: str
    check_age_s: float | None
    online: bool
    check_id: str | None = None  # the check the age is of, so a list can link to it


@dataclass(frozen=True)
class DirectionEstimate:
    """The speech path from one person's end to the other's (see ``estimate_end_to_end``)."""

    network_one_way_ms: float
    jitter_ms: float
    loss_ratio: float | None
    mouth_to_ear_ms: float
    r_factor: float | None  # G.107 R, not clamped; None without a loss figure
    mos: float | None
    video_tier: str


@dataclass(frozen=True)
class EndToEnd:
    """Both directions between client and therapist; ``mos`` and ``video_tier`` of the worse one."""

    client_to_therapist: DirectionEstimate
    therapist_to_client: DirectionEstimate
    mos: float | None
    video_tier: str


@dataclass(frozen=True)
class SessionRisk:
    session_id: str
    evaluated_at_unix: float
    state: str
    reasons: tuple[RiskReason, ...]  # most severe first; then client, therapist, session
    client: EndRisk
    therapist: EndRisk
    end_to_end: EndToEnd | None


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkNumbers:
    """One end's access link to the monitor, from its check or its recent samples."""

    rtt_ms: float
    jitter_up_ms: float | None
    jitter_down_ms: float | None
    loss_up_ratio: float | None
    loss_down_ratio: float | None
    throughput_up_mbps: float | None = None
    throughput_down_mbps: float | None = None


def assess_session(inputs: SessionInputs, config: RiskConfig, now: float) -> SessionRisk:
    """The state of one session at ``now`` (unix seconds), with reasons and the end-to-end estimate.

    Ended and cancelled sessions are not judged: state "unknown", no reasons.
    """
    now = check_finite("now", now)
    if inputs.state in ("ended", "cancelled"):
        ends = [_end_risk(end, "unknown", None, now, config) for end in (inputs.client, inputs.therapist)]
        return SessionRisk(inputs.session_id, now, "unknown", (), ends[0], ends[1], None)
    reasons: list[RiskReason] = []
    end_states: list[EndRisk] = []
    links: list[LinkNumbers | None] = []
    for end in (inputs.client, inputs.therapist):
        usable = _usable_check(end.check, now, config)
        found = _end_reasons(end, usable, inputs, config, now)
        reasons += found
        has_evidence = usable is not None
        end_states.append(_end_risk(end, _state_of(found, has_evidence), end.check, now, config))
        links.append(_link_numbers(usable, end.samples, config))
    e2e = None
    if links[0] is not None and links[1] is not None:
        e2e = estimate_end_to_end(links[0], links[1], config.quality)
        reasons += _e2e_reasons(e2e, reasons, config.quality)
    session_reasons = [r for r in reasons if r.end == "session"]
    state = worst_state(
        (end_states[0].state, end_states[1].state, _state_of(session_reasons, True) if session_reasons else "ready")
    )
    return SessionRisk(
        session_id=inputs.session_id,
        evaluated_at_unix=now,
        state=state,
        reasons=_ordered(reasons),
        client=end_states[0],
        therapist=end_states[1],
        end_to_end=e2e,
    )


def worst_state(states: Iterable[str]) -> str:
    """The most severe of ``states`` by ``STATES`` order ("ready" for none)."""
    return max(states, key=STATES.index, default="ready")


def estimate_end_to_end(client: LinkNumbers, therapist: LinkNumbers, thresholds: quality.Thresholds = quality.Thresholds()) -> EndToEnd:
    """Client and therapist each measured their own access path to the monitor. The path
    between them is estimated as the two access paths joined end to end:

    - one-way network delay = client RTT/2 + therapist RTT/2;
    - jitter of a direction = sender's upstream jitter + receiver's downstream jitter (a
      conservative upper bound: mean deviations of independent segments add at most linearly);
    - loss of a direction = 1 - (1 - sender's upstream loss)(1 - receiver's downstream loss);
    - R and MOS per direction from ``quality`` (mouth-to-ear delay, E-model), worse direction counts;
    - video tier per direction from the sender's upload and the receiver's download; the lower counts.
    """
    directions = []
    for sender, receiver in ((client, therapist), (therapist, client)):
        jitter = (sender.jitter_up_ms or 0.0) + (receiver.jitter_down_ms or 0.0)
        loss = None
        if sender.loss_up_ratio is not None and receiver.loss_down_ratio is not None:
            loss = 1 - (1 - sender.loss_up_ratio) * (1 - receiver.loss_down_ratio)
        # mouth_to_ear_delay_ms halves the round trip it is given: pass the sum of both RTTs.
        mouth_to_ear = quality.mouth_to_ear_delay_ms(sender.rtt_ms + receiver.rtt_ms, jitter)
        r = None if loss is None else quality.r_factor(mouth_to_ear, loss)
        tier = quality.video_tier(sender.throughput_up_mbps, receiver.throughput_down_mbps, headroom=thresholds.throughput_headroom_factor)
        directions.append(
            DirectionEstimate(
                network_one_way_ms=(sender.rtt_ms + receiver.rtt_ms) / 2,
                jitter_ms=jitter,
                loss_ratio=loss,
                mouth_to_ear_ms=mouth_to_ear,
                r_factor=r,
                mos=None if r is None else quality.mos_from_r(r),
                video_tier=tier,
            )
        )
    mos_values = [d.mos for d in directions if d.mos is not None]
    return EndToEnd(
        client_to_therapist=directions[0],
        therapist_to_client=directions[1],
        mos=min(mos_values) if mos_values else None,
        video_tier=lower_tier(directions[0].video_tier, directions[1].video_tier),
    )


def lower_tier(a: str, b: str) -> str:
    """The lower of two ``quality.VIDEO_TIERS``; "unknown" (not measured) does not limit."""
    if a == "unknown":
        return b
    if b == "unknown":
        return a
    return max(a, b, key=quality.VIDEO_TIERS.index)


def _usable_check(check: CheckSummary | None, now: float, config: RiskConfig) -> CheckSummary | None:
    if check is None or now - check.received_at_unix > config.check_max_age_s:
        return None
    return check


def _state_of(reasons: Sequence[RiskReason], has_evidence: bool) -> str:
    severities = {r.severity for r in reasons}
    if "critical" in severities:
        return "not_ready"
    if "warning" in severities:
        return "at_risk"
    return "ready" if has_evidence else "unknown"


def _end_risk(end: EndInputs, state: str, check: CheckSummary | None, now: float, config: RiskConfig) -> EndRisk:
    return EndRisk(
        role=end.role,
        participant_id=end.participant_id,
        state=state,
        check_age_s=None if check is None else max(0.0, now - check.received_at_unix),
        online=_online(end, now, config),
        check_id=None if check is None else check.check_id,
    )


def _online(end: EndInputs, now: float, config: RiskConfig) -> bool:
    return agent_online(end.last_seen_unix, now, config.online_timeout_s)


def agent_online(last_contact_unix: float | None, now: float, timeout_s: float = ONLINE_TIMEOUT_S) -> bool:
    """Whether an agent (or an end, through any of its agents) counts as online: its last
    contact, a batch or a check (monitor/store/reports.py ``LAST_CONTACT``), at most
    ``timeout_s`` ago. The one rule behind an end's ``online`` and the Agents listing's."""
    return last_contact_unix is not None and now - last_contact_unix <= timeout_s


def _link_numbers(check: CheckSummary | None, samples: RecentSamples | None, config: RiskConfig) -> LinkNumbers | None:
    # The usable check is the fuller measurement (it has throughput); recent samples stand in
    # for the network part when there is none.
    if check is not None and check.rtt_p50_ms is not None:
        return LinkNumbers(
            check.rtt_p50_ms, check.jitter_up_ms, check.jitter_down_ms, check.loss_up_ratio,
            check.loss_down_ratio, check.throughput_up_mbps, check.throughput_down_mbps,
        )  # fmt: skip
    if samples is not None and samples.count >= config.samples_min_count and samples.rtt_p50_ms is not None:
        return LinkNumbers(
            samples.rtt_p50_ms, samples.jitter_up_ms, samples.jitter_down_ms, samples.loss_up_ratio, samples.loss_down_ratio
        )
    return None


def _end_reasons(end: EndInputs, usable: CheckSummary | None, session: SessionInputs, config: RiskConfig, now: float) -> list[RiskReason]:
    reasons: list[RiskReason] = []
    role = end.role
    until_start_s = session.start_unix - now
    deadline_passed = session.state == "live" or until_start_s <= config.check_deadline_s
    if end.check is None:
        severity = "warning" if deadline_passed else "info"
        reasons.append(_make(role, "no_check", severity, say.no_check(role)))
    elif usable is None:
        severity = "warning" if deadline_passed else "info"
        reasons.append(_make(role, "stale_check", severity, say.stale_check(role, now - end.check.received_at_unix)))
    else:
        reasons += [_check_reason(role, f, usable) for f in usable.findings]
    if not _online(end, now, config) and (session.state == "live" or until_start_s <= config.offline_warning_lead_s):
        silent_s = None if end.last_seen_unix is None else now - end.last_seen_unix
        reasons.append(_make(role, "agent_offline", "warning", say.agent_offline(role, silent_s)))
    if end.samples is not None and end.samples.count >= config.samples_min_count:
        reasons += _sample_reasons(role, end.samples, config.quality)
    if end.history is not None:
        reasons += _history_reasons(role, end.history, session.start_unix, config)
    return reasons


def _sample_reasons(role: str, samples: RecentSamples, t: quality.Thresholds) -> list[RiskReason]:
    reasons = []
    if samples.problem_count * 2 > samples.count:
        message = say.recent_probe_failed(role, samples.problem_count, samples.count)
        reasons.append(_make(role, "recent_probe_failed", "warning", message))
    for direction, loss in (("upstream", samples.loss_up_ratio), ("downstream", samples.loss_down_ratio)):
        severity = None if loss is None else quality.grade(loss, t.loss_warning_ratio, t.loss_critical_ratio)
        if severity:
            reasons.append(_make(role, "recent_loss", severity, say.recent_loss(role, direction, loss)))
    for direction, jitter in (("upstream", samples.jitter_up_ms), ("downstream", samples.jitter_down_ms)):
        severity = None if jitter is None else quality.grade(jitter, t.jitter_warning_ms, t.jitter_critical_ms)
        if severity:
            reasons.append(_make(role, "recent_jitter", severity, say.recent_jitter(role, direction, jitter)))
    if samples.rtt_p50_ms is not None:
        jitters = [j for j in (samples.jitter_up_ms, samples.jitter_down_ms) if j is not None]
        delay = quality.mouth_to_ear_delay_ms(samples.rtt_p50_ms, max(jitters, default=0.0))
        severity = quality.grade(delay, t.mouth_to_ear_warning_ms, t.mouth_to_ear_critical_ms)
        if samples.rtt_p50_ms > t.rtt_critical_ms:
            severity = "critical"
        if severity:
            reasons.append(_make(role, "recent_delay", severity, say.recent_delay(role, samples.rtt_p50_ms)))
    return reasons


def _history_reasons(role: str, history: HistorySummary, start_unix: float, config: RiskConfig) -> list[RiskReason]:
    hour, window = _hour_of_day(start_unix), config.history_window_hours
    around = {(hour + offset) % 24 for offset in range(-window, window + 1)}
    nearby = []
    for past, past_hour in zip(history.sessions, history.hours):  # newest first
        if past_hour in around:
            nearby.append(past)
            if len(nearby) == config.history_sessions:
                break
    degraded = sum(past.degraded for past in nearby)
    if nearby and degraded >= config.history_min_degraded and degraded / len(nearby) >= config.history_degraded_ratio:
        return [_make(role, "history_degraded", "warning", say.history_degraded(role, degraded, len(nearby), this_time_of_day=True))]
    recent = history.sessions[: config.history_sessions]
    degraded = sum(past.degraded for past in recent)
    if recent and degraded >= config.history_min_degraded and degraded / len(recent) >= config.history_degraded_ratio:
        return [_make(role, "history_degraded", "info", say.history_degraded(role, degraded, len(recent), this_time_of_day=False))]
    return []


# End-to-end reasons are given only when the combination is worse than what either end's own
# reasons of the same kind already say: two 2 % losses make a 4 % path, but one end's 8 % loss
# needs no second line. (The state is the same either way: it follows the worst severity.)
_E2E_FAMILIES: Mapping[str, frozenset[str]] = {
    "e2e_delay": frozenset({"high_delay", "recent_delay"}),
    "e2e_loss": frozenset({"high_upload_loss", "high_download_loss", "recent_loss"}),
    "e2e_audio_quality": frozenset({"low_audio_quality"}),
    "e2e_video": frozenset({"low_upload_throughput", "low_download_throughput"}),
}


def _e2e_reasons(e2e: EndToEnd, end_reasons: Sequence[RiskReason], t: quality.Thresholds) -> list[RiskReason]:
    candidates: list[RiskReason] = []
    directions = (("client", "therapist", e2e.client_to_therapist), ("therapist", "client", e2e.therapist_to_client))
    worst_delay = max(directions, key=lambda d: d[2].mouth_to_ear_ms)
    severity = quality.grade(worst_delay[2].mouth_to_ear_ms, t.mouth_to_ear_warning_ms, t.mouth_to_ear_critical_ms)
    if severity:
        message = say.e2e_delay(worst_delay[2].mouth_to_ear_ms, worst_delay[0], worst_delay[1])
        candidates.append(_make("session", "e2e_delay", severity, message))
    lossy = [d for d in directions if d[2].loss_ratio is not None]
    if lossy:
        sender, receiver, worst = max(lossy, key=lambda d: d[2].loss_ratio or 0.0)
        severity = quality.grade(worst.loss_ratio or 0.0, t.loss_warning_ratio, t.loss_critical_ratio)
        if severity:
            candidates.append(_make("session", "e2e_loss", severity, say.e2e_loss(worst.loss_ratio or 0.0, sender, receiver)))
    if e2e.mos is not None:
        severity = "critical" if e2e.mos < t.mos_critical_below else "warning" if e2e.mos < t.mos_warning_below else None
        if severity:
            candidates.append(_make("session", "e2e_audio_quality", severity, say.e2e_audio_quality(e2e.mos)))
    tier_rank = quality.VIDEO_TIERS.index(e2e.video_tier) if e2e.video_tier != "unknown" else 0
    if tier_rank > quality.VIDEO_TIERS.index("720p"):
        severity = "warning" if e2e.video_tier == "360p" else "critical"
        candidates.append(_make("session", "e2e_video", severity, say.e2e_video(e2e.video_tier)))
    kept = []
    for reason in candidates:
        family = _E2E_FAMILIES[reason.cause]
        already = [quality.SEVERITIES.index(r.severity) for r in end_reasons if r.cause in family]
        if not already or quality.SEVERITIES.index(reason.severity) < min(already):
            kept.append(reason)
    return kept


def _make(end: str, cause: str, severity: str, message: str) -> RiskReason:
    return RiskReason(end, cause, severity, message, say.render_action(end, cause, severity))


def _check_reason(role: str, finding: Finding, c: CheckSummary) -> RiskReason:
    return _make(role, finding.code, finding.severity, say.check_message(role, finding.code, c))


def _ordered(reasons: Iterable[RiskReason]) -> tuple[RiskReason, ...]:
    # Stable: within a severity and an end, reasons keep the order the rules produced them.
    return tuple(sorted(reasons, key=lambda r: (quality.SEVERITIES.index(r.severity), ENDS.index(r.end))))


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _hour_of_day(unix: float) -> int:
    return int(unix // 3600) % 24


def _median(values: list[float]) -> float | None:
    return percentile(values, 50) if values else None


def _p95(values: list[float]) -> float | None:
    return percentile(values, 95) if values else None


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None




__all__ = [
    "CAUSES",
    "ENDS",
    "SESSION_CAUSES",
    "STATES",
    "CheckSummary",
    "DirectionEstimate",
    "EndInputs",
    "EndRisk",
    "EndToEnd",
    "Finding",
    "HistorySummary",
    "LinkNumbers",
    "PastSession",
    "RecentSamples",
    "RiskConfig",
    "RiskReason",
    "SessionInputs",
    "SessionRisk",
    "assess_session",
    "estimate_end_to_end",
    "lower_tier",
    "worst_state",
]
