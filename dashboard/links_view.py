"""The session page's check link, as people read it: the full address to send the client,
shown once. Pure: the page calls it with the monitor's answer (``POST /api/v1/check-links``)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from dash import html

from dashboard.agents_view import loopback
from dashboard.present import date_time, unix_of


def link_url(monitor_url: str, path: str) -> str:
    """The address a client opens: the monitor's, as this dashboard reaches it, and the link's
    path (``/c/<secret>``)."""
    return monitor_url.rstrip("/") + path


def link_panel(answer: dict[str, Any], monitor_url: str, zone: ZoneInfo) -> list[Any]:
    """The new link, once, with when it expires and a warning that it will not come back."""
    notes = []
    if loopback(monitor_url):
        notes.append(
            html.P(
                f"This dashboard reaches the monitor at {monitor_url}, an address on its own machine: "
                "the client needs the monitor's public address in its place, with the same /c/… part.",
                className="muted",
            )
        )
    return [
        html.H3(f"Check link for client {answer['participant_id']}"),
        html.P("Send this to the client: they open it in a browser and run the check, nothing to install."),
        html.Pre(link_url(monitor_url, answer["url"]), id="session-link-url"),
        *notes,
        html.P(
            f"⚠ Copy it now: this link will not be shown again. It works until {date_time(unix_of(answer['expires_at']), zone)}, "
            "and it can only run checks for this client and show their results.",
            className="banner banner-at-risk",
            id="session-link-warning",
        ),
    ]
