"""The shared terms: roles, verdicts, severities, id patterns, exit codes and the enrollment
code's lifetime. Defined once here, imported by the agent, the monitor, the dashboard and the
command line. Standard library only, nothing at import time: every part may import it."""

from __future__ import annotations

# --- roles ------------------------------------------------------------------------------------
# The two ends of a session. Agents enrol as one of them; sessions and caseloads pair them.
PARTICIPANT_ROLES = ("client", "therapist")
ENROLL_ROLES = PARTICIPANT_ROLES
STAFF_ROLES = ("it", "admin")  # see every participant, the Trends, Agents and Caseloads pages
USER_ROLES = ("therapist", *STAFF_ROLES)  # dashboard users (a client never signs in)
AGENT_ROLES = (*PARTICIPANT_ROLES, "metrics", *STAFF_ROLES)  # what an agent token can be
LINK_PAGE_PREFIX = "/c/"  # a check link's page is /c/<secret>, its assets /c/static/...
ENDS = (*PARTICIPANT_ROLES, "session")  # what a risk finding or an alert is about

# --- a check's outcome ------------------------------------------------------------------------
VERDICTS = ("ready", "at_risk", "not_ready")
SEVERITIES = ("critical", "warning", "info")  # most severe first

# --- ids --------------------------------------------------------------------------------------
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"  # pseudonymous ids: sessions, participants
CHECK_ID_PATTERN = r"[0-9a-f]{32}"

# --- enrollment codes -------------------------------------------------------------------------
MIN_TTL_HOURS = 1
DEFAULT_TTL_HOURS = 72
MAX_TTL_HOURS = 720  # 30 days

# --- exit codes of every command --------------------------------------------------------------
EXIT_OK = 0
EXIT_READY = 0
EXIT_AT_RISK = 1
EXIT_NOT_READY = 2
EXIT_CANNOT_RUN = 3  # also bad arguments: the command could not do what was asked
EXIT_FAILED = 1  # the agent daemon stopped on an unexpected error (its service manager restarts it)
