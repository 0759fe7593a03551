"""Session summaries in the monitor: read a session's inputs from the store, summarise it
(``monitor.risk.summary``), keep the summary once the session has ended, and hand it to the
webhooks that asked for ``session_summary`` (docs/summary.md).

``SummaryJob.run`` looks every few seconds for sessions that went live and have ended
without a summary; whoever ended them (the risk service when both agents stopped, staff
through the API or the CLI). The API asks ``summary_for`` for one session: the stored
summary, or one made now (and kept, when the session has ended).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from monitor.alerts.config import AlertsConfig
from monitor.logs import log_failed_pass
from monitor.alerts.delivery import AlertEvent, AlertReason
from monitor.risk.live import LiveConfig
from monitor.risk.summary import (
    DEFAULT_LIVE,
    DEFAULT_THRESHOLDS,
    EndSample,
    Rating,
    SessionSummary,
    SummaryInputs,
    rating_from_history,
    read_sample,
    summarise,
)
from monitor.store.core import StoreUnavailable
from monitor.store.protocols import RiskStore, SessionStore, SummaryStore
from monitor.store.summaries import SummaryRow
from sessionready.quality import Thresholds
from sessionready.typed import SchemaError, decode, encode

log = logging.getLogger("sessionready.monitor.summaries")

POLL_S = 5.0  # how often the job looks for sessions that ended
LOOK_BACK_S = 90 * 86400.0  # sessions ended this recently are summarised (the samples' default retention)
BATCH = 20  # sessions summarised per pass, so a backlog never holds the store for long
WEBHOOK_WITHIN_S = 3600.0  # an older session's summary (a backlog after an upgrade) is kept, not sent
SAMPLES_BEFORE_LIVE_S = 60.0  # the samples that made the session live arrived just before
NO_WEBHOOKS = AlertsConfig()


@dataclass(frozen=True)
class NotSummarised:
    """Why a session has no summary: it never went live."""

    state: str


class SummaryJobStore(SummaryStore, SessionStore, RiskStore, Protocol):
    """What the summary job touches: summaries, the sessions that ended and their state changes,
    and the live samples they had (the risk area keeps those per session)."""


class SummaryJob:
    def __init__(
        self,
        store: SummaryJobStore,
        alerts: AlertsConfig = NO_WEBHOOKS,
        submit: Callable[[AlertEvent], bool] | None = None,
        clock: Callable[[], float] = time.time,
        live: LiveConfig = DEFAULT_LIVE,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        poll_s: float = POLL_S,
    ) -> None:
        """``submit`` is the alerter's; it is called only when a webhook asked for summaries."""
        self._store = store
        self._alerts = alerts
        self._submit = submit
        self._clock = clock
        self._live = live
        self._thresholds = thresholds
        self._poll_s = poll_s
        self.written = 0  # summaries this job kept

    def summary_for(self, session_id: str) -> SessionSummary | NotSummarised | None:
        """The session's summary (stored, or made now and kept if the session has ended);
        ``NotSummarised`` for a session that never went live; None for an unknown session."""
        stored = self._store.stored_summary(session_id)
        if stored is not None:
            try:
                return decode(SessionSummary, stored)
            except (SchemaError, ValueError):
                log.warning(
                    "stored summary does not decode; making it again",
                    extra={"fields": {"session_id": session_id}},
                )
        info = self._store.get_session(session_id)
        if info is None:
            return None
        summary = self._make(session_id)
        if summary is None:
            return NotSummarised(info.state)
        if summary.final:
            self._keep(summary)
        return summary

    def run_once(self) -> int:
        """Summarise the sessions that have ended since the last pass; the number kept."""
        kept = 0
        for session_id in self._store.sessions_to_summarise(self._clock() - LOOK_BACK_S, BATCH):
            try:
                summary = self._make(session_id)
            except StoreUnavailable:
                raise  # the whole pass waits for the store, not one session
            except Exception:
                # One session whose rows do not add up must not stop the others' summaries.
                log.exception(
                    "session summary failed",
                    extra={"fields": {"session_id": session_id}},
                )
                continue
            if summary is not None and summary.final and self._keep(summary):
                kept += 1
        return kept

    async def run(self) -> None:
        while True:
            try:
                while await asyncio.to_thread(self.run_once) >= BATCH:
                    pass  # a backlog: carry on at once
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log_failed_pass(log, "session summaries failed; trying again at the next interval", error)
            await asyncio.sleep(self._poll_s)

    # --- inside ---------------------------------------------------------------------------------

    def _make(self, session_id: str) -> SessionSummary | None:
        info = self._store.get_session(session_id)
        if info is None:
            return None
        history = self._store.session_history(session_id)
        live_at = next((change.at_s for change in history if change.state == "live"), None)
        if live_at is None:
            return None
        ended = (
            next(
                (change.at_s for change in reversed(history) if change.state == "ended"),
                None,
            )
            if info.state == "ended"
            else None
        )
        found = self._store.rating_before(session_id, live_at)
        rating: Rating | None = None if found is None else rating_from_history(found[2], found[1], found[0])  # type: ignore[arg-type]
        ends = {info.client_id: "client", info.therapist_id: "therapist"}
        samples: list[EndSample] = []
        for participant, received_at, sample in self._store.live_samples(session_id, live_at - SAMPLES_BEFORE_LIVE_S):
            end = ends.get(participant)
            if end is not None:
                samples.append(read_sample(end, sample, received_at))  # type: ignore[arg-type]
        inputs = SummaryInputs(
            session_id=info.session_id,
            therapist_id=info.therapist_id,
            client_id=info.client_id,
            start_unix=float(info.start_at_s),
            planned_duration_s=float(info.planned_duration_s),
            live_from_unix=live_at,
            ended_unix=ended,
            rating=rating,
            samples=tuple(samples),
        )
        return summarise(inputs, self._clock(), self._live, self._thresholds)

    def _keep(self, summary: SessionSummary) -> bool:
        rating = summary.rating
        row = SummaryRow(
            session_id=summary.session_id,
            start_at=int(summary.start_unix),
            live_at=summary.live_from_unix,
            measured=summary.measured,
            rating_state=None if rating is None else rating.state,
            rating_causes=() if rating is None else tuple(f"{r.end}:{r.cause}" for r in rating.reasons),
            live_causes=summary.live_causes,
            summary=encode(summary),  # type: ignore[arg-type]
        )
        if not self._store.save_summary(row, self._clock()):
            return False
        self.written += 1
        log.info(
            "session summary written",
            extra={
                "fields": {
                    "session_id": summary.session_id,
                    "verdict": summary.verdict,
                    "stretches": len(summary.stretches),
                    "foresight": summary.foresight,
                }
            },
        )
        self._send(summary)
        return True

    def _send(self, summary: SessionSummary) -> None:
        if self._submit is None or self._clock() - summary.live_until_unix > WEBHOOK_WITHIN_S:
            return
        if not any(w.wants("session_summary", summary.therapist_id) for w in self._alerts.webhook):
            return  # off by default: nothing is recorded as an alert unless someone asked for it
        reasons = [AlertReason(summary.verdict, "session", summary.headline, summary.foresight_words)]
        for stretch in summary.stretches:
            # Minutes counted as people do: the first minute of the session is minute 1.
            first = int((stretch.start_unix - summary.live_from_unix) // 60) + 1
            last = max(first, int((stretch.end_unix - summary.live_from_unix - 1e-6) // 60) + 1)
            when = f"In minute {first} of the session" if first == last else f"Minutes {first} to {last} of the session"
            reasons.append(
                AlertReason(
                    stretch.cause,
                    stretch.end,
                    f"{when}: {stretch.words}",
                    NEXT_TIME[stretch.cause](stretch.end),
                )
            )
        for note in summary.notes:
            reasons.append(AlertReason(note.note, note.end, note.words, NEXT_TIME[note.note](note.end)))
        self._submit(
            AlertEvent(
                session_id=summary.session_id,
                therapist_id=summary.therapist_id,
                client_id=summary.client_id,
                kind="session_summary",
                cause="session_summary",
                end="session" if summary.at_fault in (None, "both") else summary.at_fault,  # type: ignore[arg-type]
                state=summary.verdict,
                reasons=tuple(reasons),
                at=summary.live_until_unix,
                starts_at=summary.start_unix,
            )
        )


def _ask(end: str, step: str) -> str:
    return f"Before the next session, ask the client to {step}." if end == "client" else f"Before the next session, {step}."


# What to do before the next session, per cause of a stretch or note (for the webhook's reasons).
NEXT_TIME: dict[str, Callable[[str], str]] = {
    "agent_dropped": lambda end: _ask(
        end,
        "keep the computer plugged in and sessionready running, and agree on the phone fallback",
    ),
    "loss_burst": lambda end: _ask(end, "move closer to the router or use a network cable"),
    "delay": lambda end: _ask(end, "turn off any VPN and use a network cable"),
    "jitter": lambda end: _ask(end, "use a network cable and pause streaming at home"),
    "high_cpu": lambda end: _ask(end, "close other programs, especially other video apps"),
    "low_audio_quality": lambda end: _ask(end, "run the check again to find out what weakens the sound"),
    "weak_wifi": lambda end: _ask(end, "move closer to the router or use a network cable"),
    "noisy_room": lambda end: _ask(end, "find a quieter room and use a headset"),
}
