"""The participant's sessions, as the agent last learned them from the monitor.

``GET /api/v1/agent/sessions`` is asked every ``sessions_poll_s``. When the monitor cannot be
reached the last known list is kept (a pre-session check still fires for a session learned
earlier) and the trouble is logged once, not at every poll; its end is logged too.
"""

from __future__ import annotations

import logging
import math

from agents.client import MonitorClient, MonitorError
from agents.daemon.schedule import KnownSession

MAX_HOURS = 168  # the monitor's limit


def horizon_hours(pre_session_lead_s: float, poll_s: float) -> int:
    """How far ahead to ask: a day, or more when the lead is longer than that."""
    needed = math.ceil((pre_session_lead_s + poll_s) / 3600) + 1
    return min(MAX_HOURS, max(24, needed))


class SessionBook:
    """The last known session list; ``refresh`` replaces it only with a good answer."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self.sessions: tuple[KnownSession, ...] = ()
        self.failing: str | None = None  # the sentence logged when fetching started to fail

    async def refresh(self, client: MonitorClient, hours: int) -> bool:
        """Fetch the list; True when it differs from the one known before."""
        try:
            fetched = await client.agent_sessions(hours)
        except MonitorError as error:
            if self.failing is None:
                self._log.warning(
                    "cannot fetch sessions, keeping the %d known: %s", len(self.sessions), error.message, extra={"fields": {"status": error.status}}
                )
            self.failing = error.message
            return False
        if self.failing is not None:
            self._log.info("fetching sessions works again")
            self.failing = None
        sessions = tuple(KnownSession.from_agent_session(s) for s in fetched)
        if sessions == self.sessions:
            return False
        self._log.info(
            "sessions: %d known",
            len(sessions),
            extra={"fields": {"sessions": [{"session_id": s.session_id, "state": s.state} for s in sessions]}},
        )
        self.sessions = sessions
        return True
