"""The planner with an injected clock: when checks, live mode and background samples are due."""

from __future__ import annotations

import calendar

from agents.config import AgentSection
from agents.daemon.schedule import LIVE_OVERRUN_S, Action, History, KnownSession, Plan, Settings, live_session, plan
from sessionready.schema import AgentSession

T0 = 1_800_000_000.0  # an arbitrary "now"
MIN = 60.0
DEFAULT = Settings.from_config(AgentSection())


def session(session_id: str, start: float, minutes: float = 50, state: str = "scheduled") -> KnownSession:
    return KnownSession(session_id, start, start + minutes * MIN, state)


def checks(result: Plan) -> list[str | None]:
    return [a.session_id for a in result.due if a.kind == "check"]


class Simulation:
    """Runs the planner the way the daemon does: plan, run what is due, wait until the next
    time (at most ``step_s``), over a span of time; records when each action ran."""

    def __init__(self, settings: Settings = DEFAULT) -> None:
        self.settings = settings
        self.history = History()
        self.ran: list[tuple[float, Action]] = []
        self.live_at: list[tuple[float, str | None]] = []

    def run(self, start: float, end: float, sessions: list[KnownSession], step_s: float = 3600.0) -> None:
        now = start
        while now <= end:
            result = plan(now, sessions, self.history, self.settings)
            self.live_at.append((now, result.live.session_id if result.live else None))
            for action in result.due:
                self.ran.append((now, action))
                self.history = self.history.after(action, now)
            if result.due:
                continue  # plan again at once, as the daemon does
            if result.live is not None:
                now += 2.0  # one live report
                continue
            now = min(result.next_unix if result.next_unix is not None else end + 1, now + step_s)

    def times(self, kind: str, session_id: str | None = None) -> list[float]:
        return [t for t, a in self.ran if a.kind == kind and (session_id is None or a.session_id == session_id)]


def test_defaults_come_from_the_config() -> None:
    assert DEFAULT == Settings(background_interval_s=300.0, machine_interval_s=60.0, pre_session_lead_s=900.0)


def test_check_fires_at_exactly_start_minus_15_minutes_and_only_once() -> None:
    start = T0 + 3600
    sessions = [session("s-1", start)]
    assert checks(plan(start - 15 * MIN - 0.001, sessions, History(), DEFAULT)) == []
    assert plan(start - 15 * MIN - 30, sessions, History(last_network_unix=start - 16 * MIN, last_machine_unix=start - 15 * MIN - 31), DEFAULT).next_unix == start - 15 * MIN
    assert checks(plan(start - 15 * MIN, sessions, History(), DEFAULT)) == ["s-1"]

    simulation = Simulation()
    simulation.run(T0, start + 2 * 3600, sessions)
    assert simulation.times("check") == [start - 15 * MIN]


def test_the_check_comes_first_and_the_lead_is_configurable() -> None:
    start = T0 + 600
    settings = Settings.from_config(AgentSection(pre_session_lead_minutes=0.1))
    assert settings.pre_session_lead_s == 6.0
    due = plan(start - 6, [session("s-1", start)], History(), settings).due
    assert due[0] == Action("check", "s-1") and due[1] == Action("network")


def test_a_session_learned_late_is_checked_at_once_but_never_after_its_start() -> None:
    start = T0 + 5 * MIN  # learned 5 minutes before: inside the 15-minute lead
    sessions = [session("late", start)]
    assert checks(plan(T0, sessions, History(), DEFAULT)) == ["late"]
    assert checks(plan(start, sessions, History(), DEFAULT)) == []
    assert checks(plan(start + 1, sessions, History(), DEFAULT)) == []


def test_cancelled_ended_and_live_sessions_get_no_check() -> None:
    start = T0 + 10 * MIN
    for state in ("cancelled", "ended", "live"):
        assert checks(plan(T0, [session("s", start, state=state)], History(), DEFAULT)) == []
    simulation = Simulation()
    simulation.run(T0 - 3600, start + 3600, [session("s", start, state="cancelled")])
    assert simulation.times("check") == []
    assert all(live is None for _, live in simulation.live_at)


def test_live_window_entry_and_exit() -> None:
    start = T0 + 3600
    sessions = [session("s-1", start, minutes=50)]
    assert plan(start - 0.001, sessions, History(checked=frozenset({"s-1"})), DEFAULT).live is None
    assert plan(start - 10, sessions, History(checked=frozenset({"s-1"}), last_network_unix=start - 20, last_machine_unix=start - 20), DEFAULT).next_unix == start
    during = plan(start, sessions, History(), DEFAULT)
    assert during.live == sessions[0] and during.due == () and during.next_unix == start + 50 * MIN
    assert plan(start + 50 * MIN - 0.001, sessions, History(), DEFAULT).live == sessions[0]
    assert plan(start + 50 * MIN, sessions, History(), DEFAULT).live is None
    # Ended early by the monitor: live mode stops at once.
    assert plan(start + 10 * MIN, [session("s-1", start, state="ended")], History(), DEFAULT).live is None


def test_a_session_the_monitor_keeps_live_stays_live_for_a_limited_overrun() -> None:
    start = T0 - 3600
    running = [session("over", start, minutes=50, state="live")]  # planned end: T0 - 600
    assert live_session(T0, running) == running[0]
    overrun_end = start + 50 * MIN + LIVE_OVERRUN_S
    assert live_session(overrun_end - 0.001, running) == running[0]
    assert plan(T0, running, History(), DEFAULT).next_unix == overrun_end  # re-planned as it closes
    # Then the agent stops, so the monitor sees both ends quiet and ends the session: without
    # the limit each would keep the other going forever.
    assert live_session(overrun_end, running) is None
    assert plan(overrun_end, running, History(), DEFAULT).live is None
    # Marked live before its planned start (the therapist opened early): live too.
    early = [session("early", T0 + 300, state="live")]
    assert live_session(T0, early) == early[0]


def test_no_background_samples_and_no_checks_during_live_mode() -> None:
    start = T0 + 3600
    simulation = Simulation()
    simulation.run(T0, start + 3 * 3600, [session("s-1", start, minutes=50)])
    in_session = [t for t, a in simulation.ran if start <= t < start + 50 * MIN]
    assert in_session == []
    assert [live for t, live in simulation.live_at if start <= t < start + 50 * MIN] and all(
        live == "s-1" for t, live in simulation.live_at if start <= t < start + 50 * MIN
    )
    # Background resumes as the session ends.
    after = [t for t, a in simulation.ran if a.kind == "network" and t >= start + 50 * MIN]
    assert after[0] == start + 50 * MIN


def test_background_cadence() -> None:
    settings = Settings(background_interval_s=300, machine_interval_s=60, pre_session_lead_s=900)
    simulation = Simulation(settings)
    simulation.run(T0, T0 + 3600, [])
    network = simulation.times("network")
    machine = simulation.times("machine")
    assert network[0] == T0 and len(network) == 13
    assert all(b - a == 300 for a, b in zip(network, network[1:]))
    # A machine sample every minute, except where a network sample (which carries one) ran.
    assert len(machine) == 4 * 12 and sorted(network + machine) == [T0 + 60 * i for i in range(61)]
    first = plan(T0, [], History(), settings)
    assert first.due == (Action("network"),)


def test_sub_second_intervals_for_tests() -> None:
    settings = Settings.from_config(AgentSection(background_interval_s=1.0, machine_interval_s=0.5))
    history = History(last_network_unix=T0, last_machine_unix=T0)
    result = plan(T0 + 0.2, [], history, settings)
    assert result.due == () and result.next_unix == T0 + 0.5
    assert plan(T0 + 0.5, [], history, settings).due == (Action("machine"),)
    assert plan(T0 + 1.0, [], history, settings).due == (Action("network"),)


def test_overlapping_sessions() -> None:
    # A overruns into B: A is live, B's check time (B - 15 min) falls inside A.
    a_start, b_start = T0 + 3600, T0 + 3600 + 40 * MIN
    a = session("a", a_start, minutes=50)
    b = session("b", b_start, minutes=50)
    simulation = Simulation()
    simulation.run(T0, b_start + 2 * 3600, [a, b])
    assert simulation.times("check", "a") == [a_start - 15 * MIN]
    # B's check would disturb A's call: it is deferred and, as B starts before A ends, dropped.
    assert simulation.times("check", "b") == []
    live = dict(simulation.live_at)
    assert live[a_start] == "a" and live[b_start] == "b"  # the later session wins once started
    assert live[b_start + 49 * MIN] == "b"

    # A short A, then B: B's deferred check runs the moment A ends, before B starts.
    short_a = session("a", a_start, minutes=30)
    simulation = Simulation()
    simulation.run(T0, b_start + 2 * 3600, [short_a, b])
    assert simulation.times("check", "b") == [a_start + 30 * MIN]


def test_the_next_session_in_its_window_beats_an_overrunning_live_one() -> None:
    a = session("a", T0 - 3600, minutes=50, state="live")  # 10 minutes over
    b = session("b", T0 - 60, minutes=50)
    assert live_session(T0 - 61, [a, b]) == a  # before B starts, A's overrun is followed
    assert live_session(T0, [a, b]) == b  # B started: the person has left A
    # Two in their windows: the one the monitor calls live wins, else the later start.
    c = session("c", T0 - 120, minutes=50, state="live")
    assert live_session(T0, [c, b]) == c
    assert live_session(T0, [session("c", T0 - 120, minutes=50), b]) == b


def test_sessions_from_the_monitor_parse_to_unix_times() -> None:
    known = KnownSession.from_agent_session(AgentSession("s-9", "2027-01-15T08:00:00Z", 3000, "scheduled", "client"))
    assert known.start_unix == calendar.timegm((2027, 1, 15, 8, 0, 0)) and known.end_unix == known.start_unix + 3000
    offset = KnownSession.from_agent_session(AgentSession("s-9", "2027-01-15T09:00:00+01:00", 3000, "scheduled", "client"))
    assert offset.start_unix == known.start_unix
