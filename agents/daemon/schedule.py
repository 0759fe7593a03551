"""What the agent should do next, and when: a pure function of the time, the sessions it
knows, what it has done, and its settings. No I/O and no clock of its own, so every rule
(the check at start - lead, once; live mode; the background cadence) is tested by passing
times in.

Rules (docs/agent.md):
- Live mode while a session is in progress: from its start to start + planned duration, or
  for as long as the monitor says it is ``live``; never for an ended or cancelled session.
  Live reports replace the background samples (they carry the network and the machine).
- A full check at start - lead for each scheduled session, once. A session learned after
  that moment but before its start is checked at once; after its start, never. No check runs
  while another session is live: a throughput test would disturb that call.
- Otherwise a background network sample every ``background_interval_s`` (it carries the
  machine too) and a machine sample every ``machine_interval_s``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from sessionready.schema import AgentSession

if TYPE_CHECKING:
    from agents.config import AgentSection

ActionKind = Literal["check", "network", "machine"]
FINISHED = ("ended", "cancelled")
# How long past its planned end a session the monitor still calls live is followed. The
# monitor ends a live session once both agents fall quiet after its planned end, so without a
# limit each would keep the other going; 15 minutes covers a session that runs over.
LIVE_OVERRUN_S = 900.0


@dataclass(frozen=True)
class Settings:
    """The cadences, in seconds (``[agent]`` of the config, see ``from_config``)."""

    background_interval_s: float = 300.0
    machine_interval_s: float = 60.0
    pre_session_lead_s: float = 900.0

    @classmethod
    def from_config(cls, agent: AgentSection) -> Settings:
        return cls(agent.background_interval_s, agent.machine_interval_s, agent.pre_session_lead_minutes * 60.0)


@dataclass(frozen=True)
class KnownSession:
    """A session as the planner needs it: unix times, the monitor's state."""

    session_id: str
    start_unix: float
    end_unix: float
    state: str  # scheduled | live | ended | cancelled

    @classmethod
    def from_agent_session(cls, session: AgentSession) -> KnownSession:
        start = parse_timestamp(session.start)
        return cls(session.session_id, start, start + session.planned_duration_s, session.state)


def parse_timestamp(text: str) -> float:
    """An RFC 3339 timestamp (already validated by the schema) as unix seconds."""
    return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class History:
    """What the agent has done: when each sample last ran, which sessions were checked."""

    last_network_unix: float | None = None
    last_machine_unix: float | None = None
    checked: frozenset[str] = field(default_factory=frozenset)

    def after(self, action: Action, at_unix: float) -> History:
        """The history once ``action`` has run (started) at ``at_unix``."""
        if action.kind == "check":
            return replace(self, checked=self.checked | {action.session_id or ""})
        if action.kind == "network":
            # A network sample carries the machine's health too.
            return replace(self, last_network_unix=at_unix, last_machine_unix=at_unix)
        return replace(self, last_machine_unix=at_unix)


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    session_id: str | None = None  # the session a check is for


@dataclass(frozen=True)
class Plan:
    """``due``: run now, in this order. ``live``: the session to stream for, if any.
    ``next_unix``: when to plan again at the latest (None: nothing is scheduled; wait for
    news such as a new session list)."""

    due: tuple[Action, ...]
    live: KnownSession | None
    next_unix: float | None


def live_session(now: float, sessions: Iterable[KnownSession]) -> KnownSession | None:
    """The session in progress. A session in its planned window beats one that runs over: the
    person cannot be in both, so the next session's start means the earlier one is over. Among
    equals the one the monitor says is live wins, then the one that started last. A session the
    monitor calls live is followed from whenever that is (the therapist opened early) until
    ``LIVE_OVERRUN_S`` past its planned end."""
    candidates = []
    for s in sessions:
        if s.state in FINISHED:
            continue
        in_window = s.start_unix <= now < s.end_unix
        if in_window or (s.state == "live" and now < s.end_unix + LIVE_OVERRUN_S):
            candidates.append((in_window, s.state == "live", s.start_unix, s.session_id, s))
    return max(candidates, key=lambda c: c[:4])[4] if candidates else None


def plan(now: float, sessions: Iterable[KnownSession], history: History, settings: Settings) -> Plan:
    known = list(sessions)
    live = live_session(now, known)
    due: list[Action] = []
    upcoming: list[float] = []

    for session in sorted(known, key=lambda s: (s.start_unix, s.session_id)):
        if session.state in FINISHED or now >= session.start_unix:
            continue
        upcoming.append(session.start_unix)  # live mode begins then
        if session.state != "scheduled" or session.session_id in history.checked:
            continue
        check_at = session.start_unix - settings.pre_session_lead_s
        if now < check_at:
            upcoming.append(check_at)
        elif live is None:
            due.append(Action("check", session.session_id))
    if live is not None:
        # Re-plan when the live window closes (or, for a session the monitor keeps live,
        # at the next news about it: the daemon re-plans on every poll).
        if now < live.end_unix:
            upcoming.append(live.end_unix)
        elif live.state == "live":
            upcoming.append(live.end_unix + LIVE_OVERRUN_S)
        # A check deferred by live mode becomes due as the live session ends, if its own
        # session has not started by then: re-planning at live.end_unix covers it.
        return Plan((), live, min(upcoming) if upcoming else None)

    network_at = _next(history.last_network_unix, settings.background_interval_s)
    machine_at = _next(history.last_machine_unix, settings.machine_interval_s)
    if now >= network_at:
        due.append(Action("network"))
        machine_at = now + settings.machine_interval_s  # the network sample carries it
        network_at = now + settings.background_interval_s
    elif now >= machine_at:
        due.append(Action("machine"))
        machine_at = now + settings.machine_interval_s
    upcoming += [network_at, machine_at]
    return Plan(tuple(due), None, min(upcoming))


def _next(last: float | None, interval_s: float) -> float:
    return float("-inf") if last is None else last + interval_s
