"""What the dashboard does against hostile requests beyond logins: the Content-Security-Policy
its pages run under, and a 400 (not a 500 with a traceback) for a malformed Dash callback body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dash import Dash
from flask import Response, request

log = logging.getLogger("sessionready.dashboard")

DASH_UPDATE_ENDPOINT = "/_dash-update-component"
# Exceptions Dash's own request handling raises on a body it cannot read (a missing key, a
# list where a dict belongs). A callback's own errors never get here: on_error takes them.
MALFORMED_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def content_security_policy(script_hashes: Sequence[str]) -> str:
    """The policy for every response. Scripts: this site's files, plus Dash's inline scripts
    (its renderer start and the clientside callbacks) by hash, so no injected inline script
    runs. Styles allow 'unsafe-inline': plotly.js writes <style> elements and Dash components
    set style attributes; a style cannot run code."""
    directives = {
        "default-src": "'self'",
        "script-src": " ".join(["'self'", *script_hashes]),
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data:",
        "font-src": "'self' data:",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def _is_dependency(item: object) -> bool:
    """One input, state or output of a callback body: ``{id, property, ...}``, or a list of
    them for a pattern-matching (ALL/ALLSMALLER) dependency."""
    if isinstance(item, list):
        return all(isinstance(one, dict) and "id" in one and "property" in one for one in item)
    return isinstance(item, dict) and "id" in item and "property" in item


def callback_body_problem(body: object, callbacks: Mapping[str, Any]) -> str | None:
    """Why a ``/_dash-update-component`` body cannot be a callback of this app (one sentence),
    or None when its shape is right."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    output = body.get("output")
    if not isinstance(output, str) or output not in callbacks:
        return "'output' names no callback of this dashboard"
    outputs = body.get("outputs", [])
    if not (_is_dependency(outputs) or (isinstance(outputs, list) and all(_is_dependency(one) for one in outputs))):
        return "'outputs' must be a dependency or a list of them"
    for key in ("inputs", "state"):
        value = body.get(key, [])
        if not isinstance(value, list) or not all(_is_dependency(one) for one in value):
            return f"'{key}' must be a list of dependencies"
        if len(value) != len(callbacks[output].get(key, [])):
            return f"'{key}' does not match the callback's"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(one, str) for one in changed):
        return "'changedPropIds' must be a list of strings"
    return None


def _bad_request(reason: str) -> Response:
    sentence = f"The dashboard could not read this request ({reason}); reload the page."
    return Response(json.dumps({"error": {"code": "bad_request", "message": sentence}}), status=400, mimetype="application/json")


def guard_callback_requests(app: Dash) -> None:
    """Wrap Dash's callback endpoint: a body of the wrong shape gets 400 with a sentence, and
    the log one line without a traceback (it is the sender's mistake, not ours)."""
    server = app.server
    dispatch: Callable[[], Any] = server.view_functions[DASH_UPDATE_ENDPOINT]

    def checked_dispatch() -> Any:
        problem = callback_body_problem(request.get_json(silent=True), app.callback_map)
        if problem is None:
            try:
                return dispatch()
            except MALFORMED_ERRORS as error:
                problem = f"Dash could not use it: {error.__class__.__name__}"
        log.warning("malformed callback request", extra={"fields": {"problem": problem}})
        return _bad_request(problem)

    server.view_functions[DASH_UPDATE_ENDPOINT] = checked_dispatch
