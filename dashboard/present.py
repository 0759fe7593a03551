"""How things read on the dashboard: risk flags, times in the viewer's zone, units. Pure
functions of their arguments (the clock is a parameter), unit-tested in tests/dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sessionready.terms import PARTICIPANT_ROLES


@dataclass(frozen=True)
class Flag:
    """A risk state as a person sees it: an icon and a word as well as a colour (the CSS class),
    so it reads the same without colour vision and in black and white."""

    icon: str
    label: str
    css_class: str


FLAGS = {
    "ready": Flag("✔", "Ready", "flag flag-ready"),
    "at_risk": Flag("⚠", "At risk", "flag flag-at-risk"),
    "not_ready": Flag("✖", "Not ready", "flag flag-not-ready"),
    "unknown": Flag("?", "Unknown", "flag flag-unknown"),
}
NOT_ASSESSED = Flag("–", "Not assessed", "flag flag-unknown")
LIVE_FLAGS = {
    "ready": Flag("✔", "Live: good", "flag flag-ready"),
    "at_risk": Flag("⚠", "Live: degraded", "flag flag-at-risk"),
}
SEVERITY_ICON = {"critical": "✖", "warning": "⚠", "info": "ℹ"}
END_LABEL = {"client": "Client", "therapist": "Therapist", "session": "Both ends"}
STATE_LABEL = {"scheduled": "Scheduled", "live": "Live now", "ended": "Ended", "cancelled": "Cancelled"}


def flag(state: str | None) -> Flag:
    return FLAGS.get(state or "", NOT_ASSESSED)


def live_flag(live_state: str | None) -> Flag | None:
    return LIVE_FLAGS.get(live_state or "")


def stands_out(risk: dict[str, Any] | None) -> bool:
    """At-risk and not-ready sessions, and live sessions that degraded, are shown prominently."""
    if not risk:
        return False
    return risk.get("state") in ("at_risk", "not_ready") or risk.get("live_state") == "at_risk"


# --- time -----------------------------------------------------------------------------------


def zone_of(name: str | None) -> ZoneInfo:
    """The viewer's zone by IANA name; UTC for a missing or unknown name (a browser may say nothing)."""
    try:
        # An over-long name would reach the file system as a path (OSError) before zoneinfo
        # could call it unknown; the longest IANA name has 32 characters.
        return ZoneInfo(name) if name and len(name) <= 64 else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")


def unix_of(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def day_in(zone: ZoneInfo, now_s: float) -> str:
    """Today's date (YYYY-MM-DD) for a viewer in ``zone``."""
    return datetime.fromtimestamp(now_s, zone).date().isoformat()


def clock_time(unix_s: float, zone: ZoneInfo) -> str:
    """24-hour local time, e.g. ``14:05``."""
    return datetime.fromtimestamp(unix_s, zone).strftime("%H:%M")


def date_time(unix_s: float, zone: ZoneInfo) -> str:
    """Local date and time with the zone's abbreviation, e.g. ``2026-03-16 14:05 CET``."""
    moment = datetime.fromtimestamp(unix_s, zone)
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname() or ''}".rstrip()


def span(seconds: float) -> str:
    """A duration for people: ``45 s``, ``25 min``, ``2 h 5 min``, ``3 days``."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{hours // 24} days"


def relative_start(start_s: float, duration_s: float, state: str, now_s: float) -> str:
    """``in 25 min``, ``started 5 min ago``, ``ended 10 min ago``, ``cancelled``."""
    if state == "cancelled":
        return "cancelled"
    end_s = start_s + duration_s
    if state == "ended":
        return "ended"
    if state == "live" or start_s <= now_s < end_s:
        return f"started {span(now_s - start_s)} ago" if now_s >= start_s else f"live, due in {span(start_s - now_s)}"
    if now_s < start_s:
        return f"in {span(start_s - now_s)}"
    return f"was due {span(now_s - start_s)} ago"


def check_age(seconds: float | None) -> str:
    """When an end last ran a check, from the risk engine's ``check_age_s``."""
    if seconds is None:
        return "no check yet"
    return f"checked {span(seconds)} ago"


# --- units ----------------------------------------------------------------------------------


def number(value: float | None, unit: str, digits: int = 0) -> str:
    """A measurement with its unit, ``—`` when there is none; one convention everywhere:
    ms, %, Mbit/s, dBFS, dB, MOS out of 5."""
    if value is None:
        return "—"
    if unit == "MOS":
        digits = 2
    value = round(value, digits) + 0.0  # -0.3 ms shows as "0 ms", never "-0 ms"
    if unit == "%":
        return f"{value:.{digits}f} %"
    if unit == "MOS":
        return f"{value:.2f} / 5"
    return f"{value:.{digits}f} {unit}"


def percent(ratio: float | None, digits: int = 1) -> str:
    return number(None if ratio is None else ratio * 100, "%", digits)


# --- the Today list -------------------------------------------------------------------------


@dataclass(frozen=True)
class EndView:
    role: str
    participant_id: str
    flag: Flag
    check_age: str
    check_id: str | None = None  # the end's latest full check, for a link to its result page


@dataclass(frozen=True)
class TodayRow:
    session_id: str
    start_s: float
    time: str  # local clock time of the start
    relative: str
    state_label: str
    client_id: str
    therapist_id: str
    flag: Flag
    live: Flag | None
    reasons: tuple[tuple[str, str, str, str], ...]  # (severity icon, end label, message, action)
    stands_out: bool
    ends: tuple[EndView, ...]  # each end's own flag, while the session is still to come or live


def reasons_of(risk: dict[str, Any] | None) -> tuple[tuple[str, str, str, str], ...]:
    """The risk engine's reasons in plain words, most severe first as the monitor orders them;
    info reasons are kept (they say what to do well before the deadline)."""
    if not risk:
        return ()
    return tuple(
        (SEVERITY_ICON.get(r.get("severity", ""), "•"), END_LABEL.get(r.get("end", ""), ""), str(r.get("message", "")), str(r.get("action", "")))
        for r in risk.get("reasons", [])
    )


def today_rows(sessions: list[dict[str, Any]], zone: ZoneInfo, now_s: float) -> list[TodayRow]:
    """The day's sessions in time order, as the Today page lists them. Everything comes from
    the list (``GET /api/v1/sessions``), each end's flag too: one call whatever the count."""
    rows = []
    for session in sessions:
        start_s = unix_of(session["start"])
        risk = session.get("risk")
        rows.append(
            TodayRow(
                session_id=session["session_id"],
                start_s=start_s,
                time=clock_time(start_s, zone),
                relative=relative_start(start_s, session["planned_duration_s"], session["state"], now_s),
                state_label=STATE_LABEL.get(session["state"], session["state"]),
                client_id=session["client_id"],
                therapist_id=session["therapist_id"],
                flag=flag(risk["state"]) if risk else NOT_ASSESSED,
                live=live_flag(risk.get("live_state")) if risk else None,
                reasons=reasons_of(risk),
                stands_out=stands_out(risk),
                ends=tuple(end_views(risk, now_s)) if session["state"] in ("scheduled", "live") else (),
            )
        )
    return sorted(rows, key=lambda r: (r.start_s, r.session_id))


def end_views(risk: dict[str, Any] | None, now_s: float | None = None) -> list[EndView]:
    """Each end's own state and check age, from a session's ``risk`` (in the list or the detail)."""
    views = []
    for role in PARTICIPANT_ROLES:
        end = (risk or {}).get(role)
        if end:
            views.append(EndView(role, end["participant_id"], flag(end["state"]), check_age(end_check_age_s(end, now_s)), end.get("check_id")))
    return views


def end_check_age_s(end: dict[str, Any], now_s: float | None) -> float | None:
    """How old an end's check is at ``now_s``, counted from the check's own time; the age at the
    risk engine's evaluation (seconds earlier) without a ``now_s`` or a ``checked_at``."""
    checked_at = end.get("checked_at")
    if now_s is None or not checked_at:
        return end.get("check_age_s")
    return max(0.0, now_s - unix_of(checked_at))


# --- the session page -----------------------------------------------------------------------

LIVE_KINDS = ("live_degraded", "live_recovered")
STATE_REASON = {
    "created": "added",
    "api": "changed by staff",
    "cli": "changed by staff",
    "both_agents_live": "both ends connected",
    "agents_stopped": "both ends stopped sending",
    "import_cancelled": "cancelled in the calendar",
    "import_restored": "restored in the calendar",
}


def active_live_causes(alerts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(message, action) of each live cause whose latest alert says degraded: why the session
    is at risk right now. ``alerts`` as ``GET /api/v1/alerts`` gives them (any order)."""
    latest: dict[str, dict[str, Any]] = {}
    for alert in sorted((a for a in alerts if a.get("kind") in LIVE_KINDS), key=lambda a: (a["at"], a.get("created_at", ""))):
        latest[alert["cause"]] = alert
    out = []
    for alert in latest.values():
        if alert["kind"] == "live_degraded":
            for reason in alert.get("reasons", []):
                out.append((str(reason.get("message", "")), str(reason.get("action", ""))))
    return out


@dataclass(frozen=True)
class Banner:
    css_class: str
    title: str
    lines: tuple[tuple[str, str], ...]  # (message, action)


def session_banner(session: dict[str, Any], risk: dict[str, Any] | None, alerts: list[dict[str, Any]]) -> Banner | None:
    """The line across the top of a session: degraded (and why) while live, or the pre-session verdict."""
    live_state = (risk or {}).get("live_state")
    if session["state"] == "live":
        if live_state == "at_risk":
            causes = tuple(active_live_causes(alerts)) or (("The monitor marked this session as degraded.", "Watch the numbers below; switch to audio only if the picture freezes."),)
            return Banner("banner banner-at-risk", "⚠ The session is degraded", causes)
        return Banner("banner banner-ready", "✔ Live: both connections are holding up", ())
    if session["state"] == "scheduled" and risk and risk.get("state") in ("at_risk", "not_ready"):
        shown = flag(risk["state"])
        lines = tuple((r["message"], r["action"]) for r in risk.get("reasons", []) if r.get("severity") in ("warning", "critical"))
        return Banner(f"banner banner-{risk['state'].replace('_', '-')}", f"{shown.icon} {shown.label}", lines)
    return None


@dataclass(frozen=True)
class Event:
    at_s: float
    kind: str  # state | risk | live
    title: str
    lines: tuple[str, ...]


def timeline(detail: dict[str, Any], alerts: list[dict[str, Any]]) -> list[Event]:
    """What happened to a session, newest first: its states, its risk changes with their
    reasons, and live degradations and recoveries."""
    events = [
        Event(unix_of(change["at"]), "state", STATE_LABEL.get(change["state"], change["state"]), (STATE_REASON.get(change["reason"], change["reason"].replace("_", " ")),))
        for change in detail.get("history", [])
    ]
    risk = detail.get("risk") or {}
    for change in risk.get("history", []):
        shown = flag(change["state"])
        events.append(Event(unix_of(change["at"]), "risk", f"{shown.icon} {shown.label}", tuple(r["message"] for r in change.get("reasons", []))))
    for alert in alerts:
        if alert.get("kind") in LIVE_KINDS:
            title = "⚠ Degraded" if alert["kind"] == "live_degraded" else "✔ Recovered"
            events.append(Event(unix_of(alert["at"]), "live", title, tuple(r.get("message", "") for r in alert.get("reasons", []))))
    return sorted(events, key=lambda e: e.at_s, reverse=True)


# --- one check ------------------------------------------------------------------------------


def check_numbers(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The figures a check measured, as (label, value with unit), in the order people ask."""

    def part(*keys: str) -> Any:
        value: Any = report
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    loss_up, loss_down = part("network", "loss", "up"), part("network", "loss", "down")
    link = part("machine", "link", "type")
    signal = part("machine", "link", "wifi_signal_dbm")
    battery = part("machine", "battery_pct")
    charging = part("machine", "battery_charging")
    noise = part("room", "l90_dbfs")
    # The figure the verdict judged: mean |D| (docs/quality-model.md), RFC 3550's J for an older check.
    jitter = "jitter_mean_ms" if part("network", "jitter_mean_ms") is not None else "jitter_ms"
    return [
        ("Sound quality (MOS)", number(part("quality", "mos"), "MOS")),
        ("Best video", str(part("quality", "video_tier") or "—")),
        ("Round trip (median)", number(part("network", "rtt_ms", "p50"), "ms", 1)),
        ("Jitter up / down", f"{number(part('network', jitter, 'up'), 'ms', 1)} / {number(part('network', jitter, 'down'), 'ms', 1)}"),
        ("Packet loss up / down", f"{percent(loss_up)} / {percent(loss_down)}"),
        ("Upload / download speed", f"{number(part('network', 'throughput_mbps', 'up'), 'Mbit/s', 1)} / {number(part('network', 'throughput_mbps', 'down'), 'Mbit/s', 1)}"),
        ("Slower when busy (up / down)", f"{number(part('network', 'loaded_latency_ms', 'up'), 'ms')} / {number(part('network', 'loaded_latency_ms', 'down'), 'ms')}"),
        ("Processor busy", number(part("machine", "cpu_pct"), "%")),
        ("Battery", "—" if battery is None else number(battery, "%") + (" (charging)" if charging else "")),
        ("Connection", "—" if not link else str(link) + (f", signal {number(signal, 'dBm')}" if signal is not None else "")),
        ("Room noise floor", number(noise, "dB(A)" if part("room", "calibrated") else "dBFS")),
    ]


def check_reasons(report: dict[str, Any]) -> tuple[tuple[str, str, str], ...]:
    """(severity icon, message, fix) of a check's findings."""
    return tuple((SEVERITY_ICON.get(r.get("severity", ""), "•"), str(r.get("message", "")), str(r.get("fix", ""))) for r in report.get("reasons", []))
