"""The risk engine at work in the monitor: assess upcoming sessions, track live ones, move
sessions between scheduled, live and ended as their agents report, store every change of
risk with its reasons, and hand changes worth telling someone about to the alerter.

The engine itself (``monitor.risk.engine``, ``monitor.risk.live``) is pure; this module reads its
inputs from the store in one snapshot, runs it with the service's clock, and writes back.
Everything here is synchronous and runs in a worker thread; ``run`` schedules it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

from monitor.alerts.delivery import AlertEvent, AlertReason
from monitor.logs import log_failed_pass
from monitor.risk.engine import CheckSummary, EndInputs, HistorySummary, RecentSamples, RiskConfig, RiskReason, SessionInputs, SessionRisk, assess_session
from monitor.risk.live import LiveSample, LiveState, LiveStep, LiveTracker, LiveTransition
from monitor.store.protocols import AlertStore, RiskStore, SessionStore
from monitor.store.risk import LiveRow, RiskRow, RiskSession, RiskSnapshot
from sessionready.typed import SchemaError, decode, encode

log = logging.getLogger("sessionready.monitor.risk")

HISTORY_S = 90 * 86400.0  # past sessions the engine looks at (it keeps the newest few)
LIVE_ACTIVITY_S = 10.0  # a session goes live when both ends sent a live sample this recently
END_QUIET_S = 60.0  # a live session past its planned end ends after this long without samples
ABANDONED_S = 900.0  # ... and at any time after this long without samples from either end
MAX_CHECK_CACHE = 20_000
# Agents start their pre-session check at T-15 min and it takes up to a minute or so: a
# "no check yet" at the deadline is shown at once, but alerted only once this has passed too.
NO_CHECK_ALERT_GRACE_S = 120.0


@dataclass(frozen=True)
class RiskTimes:
    """How often the service works, and how far ahead it looks (MonitorConfig sets these)."""

    horizon_s: float = 7200.0  # sessions starting within this are assessed
    interval_s: float = 15.0  # upcoming sessions are re-assessed this often
    live_interval_s: float = 2.0  # live sessions are stepped this often (agents report every 2 s)
    alert_lead_s: float = 7200.0  # pre-session alerts only for sessions starting within this


# Seconds between the starts of two passes over the live sessions: 2 s when a pass fits in the
# interval, more when it does not (the upcoming sessions' assessment runs in a loop of its own).
LIVE_CYCLE_BUCKETS = (1.0, 2.05, 2.1, 2.25, 2.5, 3.0, 4.0, 6.0, 10.0, 30.0)
LIVE_PASS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


@dataclass(frozen=True)
class LiveLoopMetrics:
    """How the live loop keeps up: each session's risk should be stepped every ``live_interval_s``."""

    cycle_seconds: Histogram
    pass_seconds: Histogram
    sessions_stepped: Counter

    @classmethod
    def build(cls, registry: CollectorRegistry) -> LiveLoopMetrics:
        return cls(
            Histogram(
                "sessionready_risk_live_cycle_seconds",
                "Time from the start of one pass over the live sessions to the start of the next (2 s while the loop keeps up).",
                buckets=LIVE_CYCLE_BUCKETS,
                registry=registry,
            ),
            Histogram(
                "sessionready_risk_live_pass_seconds",
                "Wall time of one pass over the live sessions (read their samples, step, store).",
                buckets=LIVE_PASS_BUCKETS,
                registry=registry,
            ),
            Counter("sessionready_risk_live_sessions_stepped", "Live sessions stepped, one per session per pass.", registry=registry),
        )


class RiskServiceStore(RiskStore, SessionStore, AlertStore, Protocol):
    """What the risk service touches: risk inputs and results, sessions' states (it moves them
    to live and ended), and alert dedup records (it forgets a cause that cleared)."""


class RiskService:
    def __init__(
        self,
        store: RiskServiceStore,
        config: RiskConfig = RiskConfig(),
        times: RiskTimes = RiskTimes(),
        submit: Callable[[AlertEvent], bool] | None = None,
        clock: Callable[[], float] = time.time,
        metrics: LiveLoopMetrics | None = None,
    ) -> None:
        """``submit`` receives alert events (the alerter's ``submit``); ``clock`` gives unix seconds;
        ``metrics`` (optional) times the live loop."""
        self._store = store
        self._config = config
        self._times = times
        self._submit = submit
        self._clock = clock
        self._metrics = metrics
        self._tracker = LiveTracker(config.live)
        self._summaries: dict[str, CheckSummary | None] = {}  # by check id: a check never changes
        # The live states this process stored in its last pass, with the JSON it stored: a session
        # whose stored JSON is still that string needs no decoding (decoding was a fifth of a pass).
        self._stored_live: dict[str, tuple[str, LiveState]] = {}
        # One pass of each kind at a time (the loop's, or a caller's: tests, benchmarks); a live
        # pass and an evaluation may run at once (``run``).
        self._evaluating = threading.Lock()
        self._tracking = threading.Lock()
        self.evaluations = 0  # passes over the upcoming sessions so far

    # --- upcoming sessions ------------------------------------------------------------------

    def evaluate(self) -> list[SessionRisk]:
        """Assess every session starting within the horizon or under way; store what changed."""
        with self._evaluating:
            results = self._evaluate()
            self.evaluations += 1
            return results

    def _evaluate(self) -> list[SessionRisk]:
        now = self._clock()
        snapshot = self._store.risk_snapshot(
            now, self._times.horizon_s, now - self._config.samples_window_s, now - HISTORY_S
        )
        ends: dict[tuple[str, str], EndInputs] = {}  # a therapist's end is the same in all their sessions
        results = [assess_session(self._inputs(session, snapshot, ends), self._config, now) for session in snapshot.sessions]
        rows = [
            RiskRow(risk.session_id, risk.state, [f"{r.end}:{r.cause}" for r in risk.reasons], encode(risk), [encode(r) for r in risk.reasons])
            for risk in results
        ]
        changed = self._store.save_risks(rows, now)  # one transaction for the whole pass
        for session, risk, row in zip(snapshot.sessions, results, rows):
            if session.session_id in changed:
                log.info(
                    "session risk changed",
                    extra={"fields": {"session_id": session.session_id, "state": risk.state, "causes": row.causes}},
                )
            if session.state == "scheduled" and session.start_at_s - now <= self._times.alert_lead_s:
                self._alert_upcoming(session, risk, now)
        return results

    def _inputs(self, session: RiskSession, snapshot: RiskSnapshot, ends: dict[tuple[str, str], EndInputs]) -> SessionInputs:
        def end(participant: str, role: str) -> EndInputs:
            if (participant, role) in ends:
                return ends[participant, role]
            background = snapshot.background.get(participant)
            history = snapshot.history.get(participant)
            ends[participant, role] = EndInputs(
                participant_id=participant,
                role=role,  # type: ignore[arg-type]
                last_seen_unix=snapshot.last_seen.get(participant),
                check=self._summary(snapshot, participant),
                samples=RecentSamples.from_samples(background) if background else None,
                history=HistorySummary.from_records(history, limit=self._config.history_sessions * 12) if history else None,
            )
            return ends[participant, role]

        return SessionInputs(
            session_id=session.session_id,
            start_unix=float(session.start_at_s),
            planned_duration_s=float(session.planned_duration_s),
            state=session.state,  # type: ignore[arg-type]
            client=end(session.client_id, "client"),
            therapist=end(session.therapist_id, "therapist"),
        )

    def _summary(self, snapshot: RiskSnapshot, participant: str) -> CheckSummary | None:
        latest = snapshot.latest_checks.get(participant)
        if latest is None:
            return None
        if latest.check_id not in self._summaries:
            if len(self._summaries) >= MAX_CHECK_CACHE:
                self._summaries.pop(next(iter(self._summaries)))
            try:
                summary = CheckSummary.from_report(json.loads(latest.report_json), latest.received_at, self._config.quality)
            except (SchemaError, ValueError):
                # Stored reports were validated on ingest; one that no longer decodes came from
                # an older schema and says nothing the engine can use.
                log.warning("stored check does not decode", extra={"fields": {"check_id": latest.check_id}})
                summary = None
            self._summaries[latest.check_id] = summary
        return self._summaries[latest.check_id]

    def _alert_upcoming(self, session: RiskSession, risk: SessionRisk, now: float) -> None:
        if self._submit is None:
            return
        check_due = session.start_at_s - self._config.check_deadline_s + NO_CHECK_ALERT_GRACE_S
        current: dict[str, RiskReason] = {}
        for r in risk.reasons:  # most severe first: an end's worst reason of a cause is the one kept
            if r.severity in ("warning", "critical") and not (r.cause == "no_check" and now < check_due):
                current.setdefault(f"{r.end}_{r.cause}", r)
        for previous in session.risk_causes:
            end, _, cause = previous.partition(":")
            if f"{end}_{cause}" not in current:
                # Gone: should it come back, it is news again.
                self._store.forget_alert_cause(session.session_id, f"{end}_{cause}")
        for key, reason in current.items():
            if reason.cause == "agent_offline":
                kind = "agent_offline"
            else:
                kind = "session_not_ready" if reason.severity == "critical" else "session_at_risk"
            self._submit(
                AlertEvent(
                    session_id=session.session_id,
                    therapist_id=session.therapist_id,
                    client_id=session.client_id,
                    kind=kind,  # type: ignore[arg-type]
                    cause=key,
                    end=reason.end,  # type: ignore[arg-type]
                    state="not_ready" if reason.severity == "critical" else "at_risk",
                    reasons=(_alert_reason(reason),),
                    at=now,
                    starts_at=float(session.start_at_s),
                )
            )

    # --- live sessions ------------------------------------------------------------------------

    def track_live(self) -> int:
        """Start sessions both agents report, step live ones, end those whose agents stopped.
        Returns how many live sessions were stepped."""
        with self._tracking:
            return self._track_live()

    def _track_live(self) -> int:
        # One read of every live session's new samples and one write of every session's step per
        # pass, not a read and a commit per session: a commit waits for the disk's flush, and a
        # pass of 1,000 sessions then made 1,000 of them (docs/scaling.md).
        now = self._clock()
        activity = self._store.live_activity(now - LIVE_ACTIVITY_S)
        live = self._store.live_sessions()
        known = {session.session_id for session in live}
        started = False
        for session_id, participants in activity.items():
            if session_id in known:
                continue
            info = self._store.get_session(session_id)
            if info is not None and info.state == "scheduled" and {info.therapist_id, info.client_id} <= participants:
                self._store.set_session_state(session_id, "live", now, "both_agents_live")
                log.info("session live", extra={"fields": {"session_id": session_id}})
                started = True
        if started:
            live = self._store.live_sessions()
        states = {session.session_id: self._live_state(session, now) for session in live}
        # Only what each end sent after the last sample the tracker applied (it ignores the rest).
        taken_after = {
            session.session_id: {
                session.client_id: states[session.session_id].client.last_taken_at_unix,
                session.therapist_id: states[session.session_id].therapist.last_taken_at_unix,
            }
            for session in live
        }
        found = self._store.live_samples_since({session_id: _samples_since(state) for session_id, state in states.items()}, taken_after)
        steps: list[tuple[RiskSession, LiveStep]] = []
        for session in live:
            samples = []
            for participant, received_at, sample in found.get(session.session_id, ()):
                end = "client" if participant == session.client_id else "therapist" if participant == session.therapist_id else None
                if end is not None:
                    samples.append(LiveSample.from_sample(end, sample, received_at))  # type: ignore[arg-type]
            steps.append((session, self._tracker.step(states[session.session_id], samples, now)))
        stored = {session.session_id: (json.dumps(encode(step.state)), step.state) for session, step in steps}
        self._store.save_lives(
            [LiveRow(session.session_id, stored[session.session_id][0], step.state.state, step.state.client.last_mos, step.state.therapist.last_mos) for session, step in steps],
            now,
        )
        self._stored_live = stored
        for session, step in steps:  # told and ended once its state is stored
            self._after_step(session, step, now)
        return len(steps)

    def _after_step(self, session: RiskSession, step: LiveStep, now: float) -> None:
        new = step.state
        for transition in step.transitions:
            self._alert_live(session, transition, new)
        quiet = [now - t for t in (new.client.last_received_at_unix, new.therapist.last_received_at_unix) if t is not None]
        quiet_s = min(quiet) if quiet else now - new.started_at_unix
        planned_end = session.start_at_s + session.planned_duration_s
        if (now >= planned_end and quiet_s >= END_QUIET_S) or quiet_s >= ABANDONED_S:
            self._store.set_session_state(session.session_id, "ended", now, "agents_stopped")
            log.info("session ended", extra={"fields": {"session_id": session.session_id}})

    def _live_state(self, session: RiskSession, now: float) -> LiveState:
        remembered = self._stored_live.get(session.session_id)
        if remembered is not None and remembered[0] == session.live_state:
            return remembered[1]  # what decoding that same JSON gives: the state it was encoded from
        if session.live_state:
            try:
                return decode(LiveState, json.loads(session.live_state))
            except (SchemaError, ValueError):
                log.warning("live tracker state does not decode; starting afresh", extra={"fields": {"session_id": session.session_id}})
        return self._tracker.start(session.session_id, now)

    def _alert_live(self, session: RiskSession, transition: LiveTransition, state: LiveState) -> None:
        log.info(
            "live session changed",
            extra={"fields": {"session_id": session.session_id, "end": transition.end, "cause": transition.cause, "kind": transition.kind}},
        )
        if self._submit is None:
            return
        self._submit(
            AlertEvent(
                session_id=session.session_id,
                therapist_id=session.therapist_id,
                client_id=session.client_id,
                kind="live_degraded" if transition.kind == "degraded" else "live_recovered",
                cause=f"{transition.end}_{transition.cause}",
                end=transition.end,  # type: ignore[arg-type]
                state="at_risk" if transition.kind == "degraded" else "ready",
                reasons=(AlertReason(transition.cause, transition.end, transition.message, transition.action),),  # type: ignore[arg-type]
                at=transition.at_unix,
                starts_at=float(session.start_at_s),
            )
        )

    # --- the loop ---------------------------------------------------------------------------

    async def run(self, leading: Callable[[], bool] = lambda: True) -> None:
        """Step live sessions every ``live_interval_s`` and assess upcoming ones every
        ``interval_s``, each in a loop of its own; a pass starts only while ``leading()`` (this
        monitor holds the risk lease: one that wakes from a freeze past its lease's deadline
        skips the pass).

        Two loops, not one: an assessment of every upcoming session takes seconds with hundreds
        of them (1.3-2.0 s for 550 live sessions on PostgreSQL, docs/scaling.md), and a live
        step waiting behind it came 2.5-3 s after the last instead of 2 s. The two passes write
        different columns of a session's risk row and lock rows in one order (session id), and
        alerts are deduplicated in the store."""
        live_pass_ended = asyncio.Event()
        await asyncio.gather(self._live_loop(leading, live_pass_ended), self._evaluation_loop(leading, live_pass_ended))

    async def _live_loop(self, leading: Callable[[], bool], ended: asyncio.Event) -> None:
        previous: float | None = None
        while True:
            if not leading():
                await asyncio.sleep(self._times.live_interval_s)
                continue
            started = time.monotonic()
            if self._metrics is not None and previous is not None:
                self._metrics.cycle_seconds.observe(started - previous)
            previous = started
            try:
                stepped = await asyncio.to_thread(self.track_live)
                if self._metrics is not None:
                    self._metrics.pass_seconds.observe(time.monotonic() - started)
                    self._metrics.sessions_stepped.inc(stepped)
            except Exception as error:  # not a cancellation: that is a BaseException
                # One bad pass must not stop risk tracking for every other session.
                log_failed_pass(log, "live risk pass failed; trying again at the next interval", error)
            ended.set()
            await asyncio.sleep(max(0.0, self._times.live_interval_s - (time.monotonic() - started)))

    async def _evaluation_loop(self, leading: Callable[[], bool], live_pass_ended: asyncio.Event) -> None:
        while True:
            if not leading():
                await asyncio.sleep(self._times.live_interval_s)
                continue
            # Start just after a live pass: the assessment then has the rest of the interval to
            # itself, and only a long one overlaps the next live pass (both share one interpreter:
            # side by side, the requests waited for both; SQLite's p99 at 1,500 agents went from
            # 210-218 to 311-318 ms when they were started independently).
            live_pass_ended.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live_pass_ended.wait(), 2 * self._times.live_interval_s)
            started = time.monotonic()
            try:
                await asyncio.to_thread(self.evaluate)
            except Exception as error:  # not a cancellation
                log_failed_pass(log, "risk evaluation failed; trying again at the next interval", error)
            await asyncio.sleep(max(0.0, self._times.interval_s - (time.monotonic() - started)))


def _samples_since(state: LiveState) -> float:
    """The live samples a step reads: received since both ends' last ones, less the activity
    window; from a minute before the start while an end has not reported yet."""
    last = [e.last_received_at_unix for e in (state.client, state.therapist) if e.last_received_at_unix is not None]
    return min(last) - LIVE_ACTIVITY_S if len(last) == 2 else state.started_at_unix - 60.0


def _alert_reason(reason: RiskReason) -> AlertReason:
    return AlertReason(reason.cause, reason.end, reason.message, reason.action)  # type: ignore[arg-type]
