"""Errors out of Dash callbacks become a sentence on the page (or the login page); the trace
goes to the log. Callbacks raise; this is the one place that decides what a person sees."""

from __future__ import annotations

import logging

import dash

from dashboard.api import ApiFailure, LoggedOut

log = logging.getLogger("sessionready.dashboard")


def callback_error(error: Exception) -> None:
    """Dash's handler for any exception out of a callback: the person sees a sentence (or the
    login page), never a stack trace; the trace goes to the log."""
    if isinstance(error, LoggedOut):
        dash.set_props("shell-redirect", {"href": "/login"})
        return None
    if isinstance(error, ApiFailure):
        dash.set_props("shell-error", {"children": error.sentence, "className": "banner banner-error"})
        return None
    log.error("dashboard callback failed", exc_info=error)
    dash.set_props("shell-error", {"children": "Something went wrong on the dashboard; the details are in its log.", "className": "banner banner-error"})
    return None


def clear_error() -> None:
    """A callback that got its data clears an earlier failure's banner."""
    dash.set_props("shell-error", {"children": None, "className": "hidden"})
