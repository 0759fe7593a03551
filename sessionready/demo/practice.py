"""The demo practice: one therapist, one client, their logins, agent tokens and sessions.

Logins get a new random password at every start (printed once, kept nowhere): ``user create``,
or ``user passwd`` when the user exists from an earlier run. Agent tokens are kept in the data
directory (0600) and reused while the monitor still accepts them, so a second run shows the
same two agents rather than two more. Sessions are made through the API with the IT login,
like a calendar integration would; upcoming ones left by an earlier run are cancelled first,
and live ones ended.
"""

from __future__ import annotations

import json
import secrets
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from agents.enroll import write_private
from sessionready.demo import DemoError
from sessionready.demo.files import Layout
from sessionready.demo.processes import run_product
from sessionready.typed import rfc3339

THERAPIST = "demo-therapist"
CLIENT = "demo-client"
IT_USER = "demo-it"
# (minutes from now, planned minutes): the first goes live a couple of minutes into the demo.
SESSIONS = ((2, 3), (6, 5), (15, 10))
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread


@dataclass(frozen=True)
class Login:
    username: str
    password: str


class MonitorApi:
    """The few monitor calls the demo makes (urllib: the demo needs no extra package)."""

    def __init__(self, url: str, ca_file: Path | None) -> None:
        self.url = url
        self._context = ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else None

    def healthy(self) -> bool:
        try:
            return self.call("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def call(self, method: str, path: str, token: str | None = None, payload: object = None) -> tuple[int, dict]:
        """(status, JSON body); OSError when the monitor cannot be reached."""
        request = urllib.request.Request(f"{self.url}{path}", method=method, data=None if payload is None else json.dumps(payload).encode())
        request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._context) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        return status, json.loads(raw) if raw else {}


def new_password() -> str:
    """Four groups of four (about 79 bits): easy to type from the terminal into the login form."""
    groups = ("".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(4)) for _ in range(4))
    return "-".join(groups)


def ensure_login(layout: Layout, username: str, role: str, participant: str | None) -> Login:
    """The user with a fresh password: created, or (made by an earlier run) given a new one."""
    password = new_password()
    location = ["--data-dir", str(layout.store)]
    scope = ["--participant", participant] if participant else []
    created = run_product("monitor", "user", "create", "--username", username, "--role", role, *scope, "--password-stdin", *location, input=password + "\n")
    if created.returncode != 0:
        renewed = run_product("monitor", "user", "passwd", username, "--password-stdin", *location, input=password + "\n")
        if renewed.returncode != 0:
            raise DemoError(f"could not create the login {username}: {_last_line(created.stderr)}")
    return Login(username, password)


def ensure_agent_token(layout: Layout, api: MonitorApi, role: str, participant: str) -> None:
    """A working token for ``participant``'s agent in its token file: the one from an earlier run
    if the monitor still knows it, else a new one (and then a new, empty spool)."""
    path = layout.token(role)
    if path.exists():
        status, me = api.call("GET", "/api/v1/whoami", path.read_text().strip())
        if status == 200 and me.get("participant_id") == participant and me.get("role") == role:
            return
    created = run_product("monitor", "token", "create", "--role", role, "--participant", participant, "--data-dir", str(layout.store))
    if created.returncode != 0:
        raise DemoError(f"could not create a token for the {role}'s agent: {_last_line(created.stderr)}")
    write_private(path, created.stdout.strip().splitlines()[-1] + "\n", replace=True)
    # The old spool belongs to the old token's agent: its sequence numbers would not fit.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{layout.spool(role)}{suffix}").unlink(missing_ok=True)


def schedule_sessions(api: MonitorApi, login: Login, now: float) -> list[float]:
    """Clear the demo's sessions from an earlier run, then make ``SESSIONS``; their
    start times (unix s). The first starts on a whole minute, at least two minutes from now."""
    status, body = api.call("POST", "/api/v1/login", None, {"username": login.username, "password": login.password})
    if status != 201:
        raise DemoError(f"the monitor refused the demo's IT login ({status}); see the monitor's log")
    token = body["token"]
    try:
        _clear_earlier_runs(api, token)
        first = -(-(int(now) + SESSIONS[0][0] * 60) // 60) * 60  # rounded up to a whole minute
        starts = [float(first + (minutes - SESSIONS[0][0]) * 60) for minutes, _ in SESSIONS]
        for start, (_, length) in zip(starts, SESSIONS):
            payload = {"therapist_id": THERAPIST, "client_id": CLIENT, "start": rfc3339(start), "planned_duration_s": length * 60}
            status, body = api.call("POST", "/api/v1/sessions", token, payload)
            if status != 201:
                raise DemoError(f"the monitor refused a demo session ({status} {body.get('error', {}).get('message', '')})")
        return starts
    finally:
        api.call("POST", "/api/v1/logout", token)


def check_link(api: MonitorApi, login: Login, ttl_hours: int = 24) -> str:
    """A new check link for the demo's client (docs/browser-check.md): its path, /c/<secret>.
    The links of earlier runs stay valid until they expire; the demo does not keep them."""
    status, body = api.call("POST", "/api/v1/login", None, {"username": login.username, "password": login.password})
    if status != 201:
        raise DemoError(f"the monitor refused the demo's IT login ({status}); see the monitor's log")
    token = body["token"]
    try:
        status, body = api.call("POST", "/api/v1/check-links", token, {"participant_id": CLIENT, "ttl_hours": ttl_hours})
        if status != 201:
            raise DemoError(f"the monitor refused a check link for the demo's client ({status} {body.get('error', {}).get('message', '')})")
        return str(body["url"])
    finally:
        api.call("POST", "/api/v1/logout", token)


def _clear_earlier_runs(api: MonitorApi, token: str) -> None:
    """Cancel the sessions of an earlier run that have not happened and end its live ones: the
    agents would otherwise follow those (an overrunning live session for up to 15 minutes)."""
    for state, change in (("scheduled", "cancelled"), ("live", "ended")):
        path = "/api/v1/sessions?" + urllib.parse.urlencode({"therapist": THERAPIST, "state": state})
        status, body = api.call("GET", path, token)
        if status != 200:
            raise DemoError(f"the monitor did not list the demo's sessions ({status}); see the monitor's log")
        for session in body["sessions"]:
            api.call("POST", f"/api/v1/sessions/{session['session_id']}/state", token, {"state": change, "reason": "demo_restarted"})


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1].removeprefix("sessionready monitor: ") if lines else "no reason given"


def local_clock_time(unix_s: float) -> str:
    return time.strftime("%H:%M", time.localtime(unix_s))
