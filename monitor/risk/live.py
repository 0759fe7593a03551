"""The live session's health: a pure state machine with hysteresis.

Fed the live samples of both ends (every 2 s during a session) and the monitor's ``now``, it
marks the session at risk when sound quality stays low, loss comes in bursts or an end's
agent goes quiet, and clears each cause only after a recovery period of good samples, so a
connection that flaps does not send an alert every few seconds. State goes in and comes out
explicitly (``LiveState``, JSON-storable with ``sessionready.typed.encode``/``decode``): the
monitor can restart, or run several copies, without losing it. No clock is read here.

Two clocks, never mixed: durations of one end's conditions (how long MOS has been low, the
spacing of loss bursts, recovery runs) use that end's own sample times (``taken_at_unix``,
the agent's clock: skew cancels out within one end); whether an agent has gone quiet, and
the time of each transition, use the monitor's clock (``received_at_unix``, ``now``).

docs/risk.md explains the rules and their defaults.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sessionready import schema
from sessionready.terms import PARTICIPANT_ROLES
from sessionready.typed import limits, validate

LIVE_STATES = ("ready", "at_risk")
LIVE_CAUSES = ("live_low_audio_quality", "live_loss_burst", "live_agent_dropped")
LIVE_ENDS = PARTICIPANT_ROLES


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _unix(timestamp: str) -> float:
    """An RFC 3339 timestamp (as the schema accepts it: "Z" or an offset) in unix seconds."""
    return datetime.fromisoformat(timestamp.upper().replace("Z", "+00:00")).timestamp()


_SECONDS = limits(ge=0.0, le=1e9)
_RATIO = limits(ge=0.0, le=1.0)


@dataclass(frozen=True)
class LiveConfig:
    """When a live session is at risk, and when it has recovered (docs/risk.md gives the reasons)."""

    mos_below: float = field(default=3.6, metadata=limits(ge=1.0, le=4.5))  # G.107/G.109: below 3.6 many users are dissatisfied
    mos_duration_s: float = field(default=10.0, metadata=_SECONDS)  # ... for 10 s: one bad 2 s window is a blip, five are a problem
    loss_burst_ratio: float = field(default=0.10, metadata=_RATIO)  # a sample losing >= 10 %: the Teams CQD "poor" line
    loss_burst_count: int = field(default=2, metadata=limits(ge=1, le=1000))  # ... twice
    loss_burst_window_s: float = field(default=10.0, metadata=_SECONDS)  # ... within 10 s
    loss_good_ratio: float = field(default=0.03, metadata=_RATIO)  # recovery needs loss back under G.1010's 3 % for voice
    dropped_after_s: float = field(default=10.0, metadata=_SECONDS)  # no sample for 10 s (five missed 2 s samples): agent dropped
    recovery_s: float = field(default=20.0, metadata=_SECONDS)  # a cause clears after 20 s of good samples (hysteresis)

    def __post_init__(self) -> None:
        validate(self, "live")
        if self.loss_good_ratio > self.loss_burst_ratio:
            raise ValueError("live threshold 'loss_good_ratio' must not exceed 'loss_burst_ratio'")


@dataclass(frozen=True)
class LiveSample:
    """One end's live sample, as the engine needs it. ``taken_at_unix`` is the end of the
    sample's window on the agent's clock, ``interval_s`` its length; ``received_at_unix`` when
    the monitor stored it (monitor clock). ``mos`` 1..4.5, losses 0..1; None = not measured."""

    end: Literal["client", "therapist"]
    taken_at_unix: float
    interval_s: float
    received_at_unix: float
    mos: float | None
    loss_up_ratio: float | None = None
    loss_down_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.end not in LIVE_ENDS:
            raise ValueError(f"end must be one of {LIVE_ENDS}, got {self.end!r}")
        for name in ("taken_at_unix", "interval_s", "received_at_unix"):
            if not _is_number(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)!r}")
        if self.interval_s < 0:
            raise ValueError(f"interval_s must be >= 0, got {self.interval_s!r}")
        for name in ("loss_up_ratio", "loss_down_ratio"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and 0 <= value <= 1):
                raise ValueError(f"{name} must be within 0..1, got {value!r}")
        if self.mos is not None and not (_is_number(self.mos) and 1 <= self.mos <= 5):
            raise ValueError(f"mos must be within 1..5, got {self.mos!r}")

    @classmethod
    def from_sample(
        cls, end: Literal["client", "therapist"], sample: schema.Sample | Mapping[str, Any], received_at_unix: float
    ) -> LiveSample:
        """From a stored live sample (``schema.Sample`` or its JSON form, already validated).
        A sample without network numbers has no MOS and no loss: it still shows the agent is there."""
        if isinstance(sample, Mapping):
            taken_at, interval_s, network = sample["taken_at"], sample["interval_s"], sample.get("network") or {}
            mos, loss_up, loss_down = network.get("mos"), network.get("loss_up"), network.get("loss_down")
        else:
            taken_at, interval_s, net = sample.taken_at, sample.interval_s, sample.network
            mos, loss_up, loss_down = (None, None, None) if net is None else (net.mos, net.loss_up, net.loss_down)
        return cls(end, _unix(taken_at), float(interval_s), float(received_at_unix), mos, loss_up, loss_down)


@dataclass(frozen=True)
class CauseState:
    """One cause at one end: whether it is active, since when (monitor clock), and the start of
    the current run of good samples while it is active (the clock of the cause's rule)."""

    active: bool = False
    since_unix: float | None = None
    good_since_unix: float | None = None


@dataclass(frozen=True)
class EndLiveState:
    """What the state machine remembers about one end between steps."""

    end: Literal["client", "therapist"]
    last_taken_at_unix: float | None = None  # agent clock
    last_received_at_unix: float | None = None  # monitor clock
    last_mos: float | None = None  # the latest sample's MOS (for metrics and the dashboard)
    low_mos_since_unix: float | None = None  # start of the current run of low-MOS samples (agent clock)
    burst_times_unix: tuple[float, ...] = ()  # loss-burst samples within the burst window (agent clock)
    low_mos: CauseState = CauseState()
    loss_burst: CauseState = CauseState()
    dropped: CauseState = CauseState()

    def active_causes(self) -> tuple[str, ...]:
        return tuple(cause for cause in LIVE_CAUSES if self._cause(cause).active)

    def _cause(self, cause: str) -> CauseState:
        return getattr(self, _FIELD[cause])


_FIELD: Mapping[str, str] = {
    "live_low_audio_quality": "low_mos",
    "live_loss_burst": "loss_burst",
    "live_agent_dropped": "dropped",
}


@dataclass(frozen=True)
class LiveState:
    """The live session's state between steps. ``started_at_unix``: when tracking began (monitor clock)."""

    session_id: str
    started_at_unix: float
    client: EndLiveState
    therapist: EndLiveState

    @property
    def state(self) -> str:
        """ "at_risk" while any cause is active at either end, else "ready"."""
        return "at_risk" if self.client.active_causes() or self.therapist.active_causes() else "ready"

    def active(self) -> tuple[tuple[str, str], ...]:
        """The active (end, cause) pairs, in a stable order."""
        return tuple((e.end, c) for e in (self.client, self.therapist) for c in e.active_causes())


@dataclass(frozen=True)
class LiveTransition:
    """One cause at one end became active ("degraded") or cleared ("recovered"), at ``at_unix``
    (monitor clock). ``message`` names the end; ``action`` is for the therapist."""

    at_unix: float
    end: str
    cause: str
    kind: Literal["degraded", "recovered"]
    message: str
    action: str


@dataclass(frozen=True)
class LiveStep:
    """The new state and what changed in this step (transitions in time order)."""

    state: LiveState
    transitions: tuple[LiveTransition, ...]
    state_before: str
    state_after: str


class LiveTracker:
    """The state machine. Holds only its configuration: every call gets the state and ``now``."""

    def __init__(self, config: LiveConfig = LiveConfig()) -> None:
        self._config = config

    def start(self, session_id: str, now: float) -> LiveState:
        """The state of a session that has just gone live at ``now``."""
        return LiveState(session_id, float(now), EndLiveState("client"), EndLiveState("therapist"))

    def step(self, state: LiveState, samples: Iterable[LiveSample], now: float) -> LiveStep:
        """Take in the samples that arrived since the last step and judge the session at ``now``.

        Samples may come in any order and in batches; per end they are applied in the order
        they were taken, and one taken no later than the last applied sample is ignored (a
        duplicate, or too late to change the past).
        """
        if not _is_number(now):
            raise ValueError(f"now must be a finite number, got {now!r}")
        by_end: dict[str, list[LiveSample]] = {end: [] for end in LIVE_ENDS}
        for sample in samples:
            by_end[sample.end].append(sample)
        transitions: list[LiveTransition] = []
        ends = {}
        for end_state in (state.client, state.therapist):
            current = end_state
            for sample in sorted(by_end[end_state.end], key=lambda s: (s.taken_at_unix, s.received_at_unix)):
                if current.last_taken_at_unix is not None and sample.taken_at_unix <= current.last_taken_at_unix:
                    continue
                current = self._apply(current, sample, now, transitions)
            current = self._check_dropped(current, state.started_at_unix, now, transitions)
            ends[end_state.end] = current
        new_state = replace(state, client=ends["client"], therapist=ends["therapist"])
        transitions.sort(key=lambda t: (t.at_unix, LIVE_ENDS.index(t.end), LIVE_CAUSES.index(t.cause)))
        return LiveStep(new_state, tuple(transitions), state.state, new_state.state)

    # --- one sample ---------------------------------------------------------------------

    def _apply(self, e: EndLiveState, s: LiveSample, now: float, out: list[LiveTransition]) -> EndLiveState:
        c = self._config
        at = min(s.received_at_unix, now)
        window_start = s.taken_at_unix - s.interval_s
        low_since, bursts = e.low_mos_since_unix, e.burst_times_unix
        low_mos, loss_burst, dropped = e.low_mos, e.loss_burst, e.dropped
        if e.last_taken_at_unix is not None and s.taken_at_unix - e.last_taken_at_unix > c.dropped_after_s + s.interval_s:
            # A gap in the samples breaks every run: "low for 10 s" needs 10 s of samples.
            low_since = None
            low_mos = replace(low_mos, good_since_unix=None)
            loss_burst = replace(loss_burst, good_since_unix=None)

        # The agent is back: samples must keep coming for the recovery period (monitor clock).
        if dropped.active:
            gap = None if e.last_received_at_unix is None else s.received_at_unix - e.last_received_at_unix
            good_since = dropped.good_since_unix
            if good_since is None or (gap is not None and gap > c.dropped_after_s):
                good_since = s.received_at_unix
            dropped = replace(dropped, good_since_unix=good_since)
            if s.received_at_unix - good_since >= c.recovery_s:
                dropped = CauseState()
                out.append(self._transition(at, e.end, "live_agent_dropped", "recovered", None))

        # Sound quality.
        if s.mos is None:
            low_since = None  # unknown: neither extends a bad run nor counts towards recovery
            low_mos = replace(low_mos, good_since_unix=None)
        elif s.mos < c.mos_below:
            low_since = window_start if low_since is None else low_since
            if low_mos.active:
                low_mos = replace(low_mos, good_since_unix=None)
            elif s.taken_at_unix - low_since >= c.mos_duration_s - _EPSILON_S:
                low_mos = CauseState(True, at, None)
                out.append(self._transition(at, e.end, "live_low_audio_quality", "degraded", s))
        else:
            low_since = None
            if low_mos.active:
                good_since = window_start if low_mos.good_since_unix is None else low_mos.good_since_unix
                low_mos = replace(low_mos, good_since_unix=good_since)
                if s.taken_at_unix - good_since >= c.recovery_s - _EPSILON_S:
                    low_mos = CauseState()
                    out.append(self._transition(at, e.end, "live_low_audio_quality", "recovered", s))

        # Loss bursts.
        losses = [x for x in (s.loss_up_ratio, s.loss_down_ratio) if x is not None]
        bursts = tuple(t for t in bursts if s.taken_at_unix - t <= c.loss_burst_window_s)
        if not losses:
            loss_burst = replace(loss_burst, good_since_unix=None)
        elif max(losses) >= c.loss_burst_ratio:
            bursts = bursts + (s.taken_at_unix,)
            if loss_burst.active:
                loss_burst = replace(loss_burst, good_since_unix=None)
            elif len(bursts) >= c.loss_burst_count:
                loss_burst = CauseState(True, at, None)
                out.append(self._transition(at, e.end, "live_loss_burst", "degraded", s))
        elif max(losses) <= c.loss_good_ratio:
            if loss_burst.active:
                good_since = window_start if loss_burst.good_since_unix is None else loss_burst.good_since_unix
                loss_burst = replace(loss_burst, good_since_unix=good_since)
                if s.taken_at_unix - good_since >= c.recovery_s - _EPSILON_S:
                    loss_burst = CauseState()
                    out.append(self._transition(at, e.end, "live_loss_burst", "recovered", s))
        elif loss_burst.active:
            loss_burst = replace(loss_burst, good_since_unix=None)  # better, but not good yet

        return replace(
            e,
            last_taken_at_unix=s.taken_at_unix,
            last_received_at_unix=s.received_at_unix if e.last_received_at_unix is None else max(e.last_received_at_unix, s.received_at_unix),
            last_mos=s.mos,
            low_mos_since_unix=low_since,
            burst_times_unix=bursts,
            low_mos=low_mos,
            loss_burst=loss_burst,
            dropped=dropped,
        )

    def _check_dropped(self, e: EndLiveState, started_at: float, now: float, out: list[LiveTransition]) -> EndLiveState:
        last = started_at if e.last_received_at_unix is None else e.last_received_at_unix
        quiet_s = now - last
        if quiet_s <= self._config.dropped_after_s:
            return e
        if not e.dropped.active:
            out.append(self._transition(now, e.end, "live_agent_dropped", "degraded", None, quiet_s=quiet_s))
            return replace(e, dropped=CauseState(True, now, None))
        if e.dropped.good_since_unix is not None:
            return replace(e, dropped=replace(e.dropped, good_since_unix=None))  # went quiet again
        return e

    # --- words --------------------------------------------------------------------------

    def _transition(self, at: float, end: str, cause: str, kind: str, s: LiveSample | None, quiet_s: float = 0.0) -> LiveTransition:
        c = self._config
        whose = f"The {end}'s"
        if kind == "recovered":
            message = {
                "live_low_audio_quality": f"{whose} sound quality has been good again for {c.recovery_s:.0f} seconds.",
                "live_loss_burst": f"{whose} connection has lost little again for {c.recovery_s:.0f} seconds.",
                "live_agent_dropped": f"{whose} agent has been sending live measurements again for {c.recovery_s:.0f} seconds.",
            }[cause]
            return LiveTransition(at, end, cause, "recovered", message, "No action needed.")
        if cause == "live_low_audio_quality":
            mos = "" if s is None or s.mos is None else f" (now {s.mos:.1f})"
            message = f"{whose} sound quality has been below {c.mos_below:.1f} out of 5 for {c.mos_duration_s:.0f} seconds{mos}."
            phrase = "switch to audio only until the sound is clear again"
        elif cause == "live_loss_burst":
            losses = [] if s is None else [x for x in (s.loss_up_ratio, s.loss_down_ratio) if x is not None]
            worst = f" (up to {max(losses) * 100:.0f} %)" if losses else ""
            message = f"{whose} connection is losing sound and picture in bursts{worst}."
            phrase = "switch to audio only if the sound keeps breaking up, and pause other traffic at home"
        else:
            message = f"No live measurements from {whose.lower()} agent for {quiet_s:.0f} seconds: the connection may have dropped."
            phrase = "rejoin the call; if it does not come back, use the phone fallback"
        action = f"Ask the client to {phrase}." if end == "client" else f"{phrase[:1].upper()}{phrase[1:]}."
        return LiveTransition(at, end, cause, "degraded", message, action)


# Sample times are decimal seconds: 2.0 * 5 can land a hair under 10.0.
_EPSILON_S = 1e-6

