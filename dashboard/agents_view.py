"""How the Agents page reads: each machine's state as a flag, "last seen 3 min ago" in the
viewer's zone, spool numbers, enrollment codes and the command that redeems one; and the
check of the enrollment form before anything is sent. Pure functions of their arguments (the
clock is a parameter), unit-tested in tests/dashboard/test_agents_page.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from dashboard.present import Flag, clock_time, date_time, day_in, span
from sessionready.terms import ENROLL_ROLES, ID_PATTERN, MAX_TTL_HOURS, MIN_TTL_HOURS  # as the monitor's POST /api/v1/enrollments

# An agent's state. Offline needs a look (a machine that stopped reporting); a revoked one is
# history, so it is grey like a machine never heard from.
ONLINE = Flag("✔", "Online", "flag flag-ready")
OFFLINE = Flag("⚠", "Offline", "flag flag-at-risk")
NEVER_SEEN = Flag("?", "Never seen", "flag flag-unknown")
REVOKED = Flag("–", "Revoked", "flag flag-unknown")
# Offline first: those are the machines someone should ask about.
AGENT_ORDER = {OFFLINE: 0, NEVER_SEEN: 1, ONLINE: 2, REVOKED: 3}

CODE_FLAGS = {
    "pending": Flag("…", "Pending", "flag flag-at-risk"),  # waits for a person to type it in
    "used": Flag("✔", "Used", "flag flag-ready"),
    "revoked": Flag("✖", "Revoked", "flag flag-unknown"),
    "expired": Flag("–", "Expired", "flag flag-unknown"),
}

ROLE_LABEL = {"client": "Client", "therapist": "Therapist"}
OS_LABEL = {"linux": "Linux", "macos": "macOS", "windows": "Windows", "other": "Other"}
LINK_LABEL = {"wired": "Wired", "wifi": "Wi-Fi", "cellular": "Mobile data", "other": "Other", "unknown": "Unknown"}

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class AgentRow:
    agent_id: str
    participant_id: str
    role: str  # "Client" / "Therapist"
    version: str
    os: str
    link: str
    last_seen: str  # "14:05 (3 min ago)", or "never"
    flag: Flag
    spool: str
    revoked: bool


def seen(unix_s: float | None, zone: ZoneInfo, now_s: float) -> str:
    """When the monitor last heard from an agent: the clock time if today in the viewer's
    zone, else the date too; and how long ago, which is what a person compares."""
    if unix_s is None:
        return "never"
    when = clock_time(unix_s, zone) if day_in(zone, unix_s) == day_in(zone, now_s) else date_time(unix_s, zone)
    ago = "just now" if now_s - unix_s < 60 else f"{span(now_s - unix_s)} ago"
    return f"{when} ({ago})"


def agent_flag(agent: dict[str, Any]) -> Flag:
    if agent.get("revoked"):
        return REVOKED
    if agent.get("online"):
        return ONLINE
    return OFFLINE if agent.get("last_seen") is not None else NEVER_SEEN


def spool_text(spool: dict[str, Any] | None) -> str:
    """What the agent's own queue said in its latest batch: reports still waiting to be sent,
    and the totals it had to drop (full disk quota) or that the monitor refused."""
    if not spool:
        return "—"
    parts = [f"{spool.get('pending', 0)} waiting"]
    dropped = spool.get("dropped_background", 0) + spool.get("dropped_live", 0)
    if dropped:
        parts.append(f"{dropped} dropped")
    if spool.get("rejected"):
        parts.append(f"{spool['rejected']} refused")
    return " · ".join(parts)


def agent_rows(agents: list[dict[str, Any]], zone: ZoneInfo, now_s: float) -> list[AgentRow]:
    """Every agent as ``GET /api/v1/agents`` lists it; offline ones first, then never seen,
    online, and revoked last; within each, by participant."""
    rows = [
        AgentRow(
            agent_id=agent["agent_id"],
            participant_id=agent["participant_id"],
            role=ROLE_LABEL.get(agent["role"], agent["role"]),
            version=agent.get("version") or "—",
            os=OS_LABEL.get(agent.get("os") or "", agent.get("os") or "—"),
            link=LINK_LABEL.get(agent.get("link_type") or "", agent.get("link_type") or "—"),
            last_seen=seen(agent.get("last_seen"), zone, now_s),
            flag=agent_flag(agent),
            spool=spool_text(agent.get("spool")),
            revoked=bool(agent.get("revoked")),
        )
        for agent in agents
    ]
    return sorted(rows, key=lambda r: (AGENT_ORDER[r.flag], r.participant_id, r.agent_id))


def online_summary(rows: list[AgentRow]) -> str:
    active = [r for r in rows if not r.revoked]
    online = sum(r.flag == ONLINE for r in active)
    return f"{online} of {len(active)} online" if active else "no agents yet"


# --- enrollment codes -----------------------------------------------------------------------


@dataclass(frozen=True)
class CodeRow:
    code_id: str
    participant_id: str
    role: str
    flag: Flag
    created: str
    expires: str  # local date and time ("… (in 5 h)" within a day, "… (2 h ago)" once expired); "—" once used or revoked
    outcome: str  # the agent it enrolled, or when it was revoked
    revocable: bool


def expiry(state: str, expires_s: float, zone: ZoneInfo, now_s: float) -> str:
    """When a code stops working; how soon, too, once that is less than a day away (further
    out, a rounded-down "in 2 days" for a fresh 72-hour code would only confuse)."""
    if state == "pending":
        soon = f" (in {span(expires_s - now_s)})" if expires_s - now_s < 86_400 else ""
        return date_time(expires_s, zone) + soon
    if state == "expired":
        return f"{date_time(expires_s, zone)} ({span(now_s - expires_s)} ago)"
    return "—"


def outcome(enrollment: dict[str, Any], zone: ZoneInfo) -> str:
    """What became of a code: the agent it enrolled, or when it was revoked."""
    if enrollment["state"] == "used":
        at = f" on {date_time(enrollment['used_at'], zone)}" if enrollment.get("used_at") else ""
        return f"enrolled agent {enrollment.get('agent_id') or '?'}{at}"
    if enrollment["state"] == "revoked" and enrollment.get("revoked_at"):
        return f"revoked on {date_time(enrollment['revoked_at'], zone)}"
    return ""


def code_rows(enrollments: list[dict[str, Any]], zone: ZoneInfo, now_s: float) -> list[CodeRow]:
    """The codes as ``GET /api/v1/enrollments`` lists them (never the codes themselves), newest
    first: the one just made is on top. Only a pending code can be revoked from the page (an
    expired one is dead already; a used one is an agent now, revoked by its token)."""
    return [
        CodeRow(
            code_id=e["code_id"],
            participant_id=e["participant_id"],
            role=ROLE_LABEL.get(e["role"], e["role"]),
            flag=CODE_FLAGS.get(e["state"], Flag("?", e["state"], "flag flag-unknown")),
            created=date_time(e["created_at"], zone),
            expires=expiry(e["state"], e["expires_at"], zone, now_s),
            outcome=outcome(e, zone),
            revocable=e["state"] == "pending",
        )
        for e in sorted(enrollments, key=lambda e: (e["created_at"], e["code_id"]), reverse=True)
    ]


def enroll_command(monitor_url: str, code: str) -> str:
    """What the person types on their own machine (docs/enrollment.md)."""
    return f"sessionready enroll --monitor {monitor_url} {code}"


def loopback(monitor_url: str) -> bool:
    """The dashboard reaches the monitor on its own machine: another machine needs the
    monitor's public address in the command instead."""
    return (urlsplit(monitor_url).hostname or "") in LOOPBACK_HOSTS


def ttl_of(value: Any) -> int | None:
    """The form's lifetime as whole hours, or None when it is not a whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


@dataclass(frozen=True)
class EnrollmentRequest:
    role: str
    participant_id: str
    ttl_hours: int


def check_enrollment(role: Any, participant_id: Any, ttl_hours: Any) -> EnrollmentRequest | str:
    """The form's values, checked as the monitor will check them, so bad input gets a sentence
    next to the form and nothing is sent; a sentence (str) when something is wrong."""
    if role not in ENROLL_ROLES:
        return "Choose whose machine it is: a client's or a therapist's."
    participant = participant_id.strip() if isinstance(participant_id, str) else ""
    if not participant:
        return "Enter the participant's id (a pseudonymous id such as c-0042, never a name)."
    if not re.fullmatch(ID_PATTERN, participant):
        return "A participant id is 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit (no spaces), e.g. c-0042. Never use a name."
    ttl = ttl_of(ttl_hours)  # the field starts at DEFAULT_TTL_HOURS; out of range the browser gives None
    if ttl is None or not MIN_TTL_HOURS <= ttl <= MAX_TTL_HOURS:
        return f"The code's lifetime is a whole number of hours from {MIN_TTL_HOURS} to {MAX_TTL_HOURS} (30 days)."
    return EnrollmentRequest(role, participant, ttl)
