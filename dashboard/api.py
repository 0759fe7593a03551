"""The dashboard's only way to data: the monitor's HTTP API, called synchronously (Flask
serves each request in a thread) with a timeout. Every failure becomes an ``ApiFailure`` whose
``sentence`` can be shown to a person as it is; a 401 becomes ``LoggedOut``.

Connections are kept alive and reused (urllib3's pool, thread-safe): the Live page calls the
monitor three times every 2 s per viewer, and a new connection per call cost a TCP and TLS
handshake each (docs/benchmarks.md, "Dashboard connections per Live viewer")."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import SSLError as TransportSSLError

from sessionready import client_address as address_header

# Connections kept open to the monitor: one per server thread (dashboard/server.py THREADS),
# each making one call at a time. A burst beyond it opens more, closed after their call.
POOL_CONNECTIONS = 8

_SENTENCES = {
    403: "The monitor does not let your account see this.",
    404: "Not found: it does not exist, or it is not one of yours.",
    429: "Too many attempts: wait a minute and try again.",
    500: "The monitor had an internal error; try again shortly.",
    502: "The monitor is not reachable right now (bad gateway); try again shortly.",
    503: "The monitor is not available right now; try again shortly.",
}


class ApiFailure(Exception):
    """A call to the monitor did not give what was asked. ``sentence`` is for people."""

    def __init__(self, status: int, code: str, sentence: str) -> None:
        super().__init__(sentence)
        self.status = status  # 0: no HTTP answer at all
        self.code = code
        self.sentence = sentence


class LoggedOut(ApiFailure):
    """The login is over (the monitor said 401, or there is no login): go to the login page."""

    def __init__(self, sentence: str = "Your login has ended; please log in again.") -> None:
        super().__init__(401, "logged_out", sentence)


@dataclass(frozen=True)
class Login:
    token: str
    expires_at: str
    idle_timeout_s: int
    role: str
    participant_id: str
    username: str


class MonitorApi:
    """One monitor, many users: each call takes the caller's token (never stored here)."""

    def __init__(self, base_url: str, *, ca_file: str | None = None, timeout_s: float = 10.0, address_secret: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self.base_url = base_url.rstrip("/")
        self._path_prefix = urlsplit(self.base_url).path  # a monitor behind a proxy at https://host/monitor
        self.timeout_s = timeout_s
        self._address_secret = address_secret  # shared with the monitor: signs a login's browser address
        self._clock = clock  # unix seconds, for the signature's age
        tls: dict[str, Any] = {}
        if self.base_url.startswith("https://"):
            context = ssl.create_default_context(cafile=ca_file or None)  # the certificate must be valid (CERT_REQUIRED)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            # urllib3 matches the host name itself once the handshake is done (an IP address
            # too: urllib3 1.26 sends no server name for one, so the ssl module could not).
            context.check_hostname = False
            tls = {"ssl_context": context}
        # Each socket operation (connect, each read) waits at most timeout_s, as urllib did. No
        # retries: a failed call is one sentence, and a POST must not be sent twice. No
        # redirects: the API has none, and a token must not follow one.
        self._pool = urllib3.connection_from_url(
            self.base_url, maxsize=POOL_CONNECTIONS, block=False, timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s), retries=False, **tls
        )

    # --- the calls the pages make ---------------------------------------------------------

    def login(self, username: str, password: str, client_address: str | None = None) -> Login:
        """Log a person in. ``client_address`` is their browser's address: with the shared
        secret it goes to the monitor signed, and the monitor limits attempts by it."""
        headers = {}
        if client_address and self._address_secret is not None:
            try:
                headers[address_header.HEADER] = address_header.sign(self._address_secret, client_address, self._clock())
            except ValueError:
                pass  # not an IP address (a Unix socket peer): the monitor counts the dashboard's own
        body = self._call("POST", "/api/v1/login", None, {"username": username, "password": password}, login=True, headers=headers)
        return Login(str(body["token"]), str(body["expires_at"]), int(body["idle_timeout_s"]), str(body["role"]), str(body["participant_id"]), str(body["username"]))

    def logout(self, token: str) -> None:
        self._call("POST", "/api/v1/logout", token)

    def whoami(self, token: str) -> dict[str, Any]:
        """Who the token is; ``LoggedOut`` when the monitor no longer takes it."""
        return dict(self._call("GET", "/api/v1/whoami", token))

    def sessions_of_day(self, token: str, day: str, tz: str) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/sessions?" + urlencode({"day": day, "tz": tz, "limit": "1000"}), token)["sessions"])

    def session(self, token: str, session_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/sessions/{quote(session_id, safe='')}", token)

    def session_samples(self, token: str, session_id: str, since_unix_s: float) -> list[dict[str, Any]]:
        path = f"/api/v1/sessions/{quote(session_id, safe='')}/samples?" + urlencode({"since": f"{since_unix_s:.3f}"})
        return list(self._call("GET", path, token)["samples"])

    def session_summary(self, token: str, session_id: str) -> dict[str, Any]:
        """What happened in the session (409 while it has not gone live)."""
        return dict(self._call("GET", f"/api/v1/sessions/{quote(session_id, safe='')}/summary", token))

    def session_alerts(self, token: str, session_id: str) -> list[dict[str, Any]]:
        """The session's alerts, newest first: live ones say why and when it degraded or recovered."""
        return list(self._call("GET", "/api/v1/alerts?" + urlencode({"session_id": session_id, "limit": "500"}), token)["alerts"])

    def check(self, token: str, check_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/checks/{quote(check_id, safe='')}", token)

    def trends(self, token: str, query: dict[str, str]) -> dict[str, Any]:
        """``GET /api/v1/trends`` with the given parameters (from, to, tz and filters)."""
        return self._call("GET", "/api/v1/trends?" + urlencode(query), token)

    def participants(self, token: str) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/participants", token)["participants"])

    def agents(self, token: str) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/agents", token)["agents"])

    def enrollments(self, token: str) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/enrollments", token)["enrollments"])

    def create_enrollment(self, token: str, role: str, participant_id: str, ttl_hours: int) -> dict[str, Any]:
        """A new one-time code: ``{code, enrollment}``; the code is in this answer only."""
        return self._call("POST", "/api/v1/enrollments", token, {"role": role, "participant_id": participant_id, "ttl_hours": ttl_hours})

    def revoke_enrollment(self, token: str, code_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/v1/enrollments/{quote(code_id, safe='')}", token)

    def caseload(self, token: str) -> list[dict[str, Any]]:
        """Every assignment an it/admin login may see (a therapist's login: their own)."""
        return list(self._call("GET", "/api/v1/caseload", token)["caseload"])

    def assign_client(self, token: str, therapist_id: str, client_id: str) -> bool:
        """Put a client on a therapist's caseload; True when new (201), False when it was there (200)."""
        status, _ = self._exchange("POST", "/api/v1/caseload", token, {"therapist_id": therapist_id, "client_id": client_id})
        return status == 201

    def unassign_client(self, token: str, therapist_id: str, client_id: str) -> None:
        self._call("DELETE", f"/api/v1/caseload/{quote(therapist_id, safe='')}/{quote(client_id, safe='')}", token)

    def create_check_link(self, token: str, participant_id: str, session_id: str | None) -> dict[str, Any]:
        """A new check link for a client (``{link_id, url, secret, ...}``): shown once, here."""
        return self._call("POST", "/api/v1/check-links", token, {"participant_id": participant_id, "session_id": session_id})

    # --- plumbing ---------------------------------------------------------------------------

    def _call(self, method: str, path: str, token: str | None, payload: object = None, *, login: bool = False, headers: dict[str, str] | None = None) -> Any:
        return self._exchange(method, path, token, payload, login=login, headers=headers)[1]

    def _exchange(self, method: str, path: str, token: str | None, payload: object = None, *, login: bool = False, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """The HTTP status of a successful answer and its body (``{}`` when empty)."""
        data = None if payload is None else json.dumps(payload).encode()
        sent = {**(headers or {}), "Accept": "application/json"}
        if data is not None:
            sent["Content-Type"] = "application/json"
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        try:
            response = self._pool.urlopen(method, self._path_prefix + path, body=data, headers=sent, redirect=False, assert_same_host=False)
            status, raw = response.status, response.data
        except TransportSSLError:
            raise ApiFailure(0, "tls", "The monitor's certificate could not be verified; ask IT to check the dashboard's ca_file.") from None
        except (TransportError, OSError):
            raise ApiFailure(0, "unreachable", "The monitor is not reachable right now; try again shortly.") from None
        if not 200 <= status < 300:
            raise _failure(status, raw, login=login)
        if not raw:
            return status, {}
        try:
            return status, json.loads(raw)
        except ValueError:
            raise ApiFailure(0, "bad_answer", "The monitor gave an answer the dashboard cannot read.") from None


def _failure(status: int, raw: bytes, *, login: bool) -> ApiFailure:
    try:
        error = json.loads(raw).get("error", {})
        code = str(error.get("code", "")) if isinstance(error, dict) else ""
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
    except (ValueError, AttributeError):
        code = message = ""
    if status == 401:
        if login:
            return ApiFailure(401, code or "invalid_login", "Wrong username or password.")
        return LoggedOut()
    if status == 429 and login:
        return ApiFailure(429, code or "rate_limited", "Too many login attempts: wait a while and try again.")
    if status in (400, 409) and message:
        return ApiFailure(status, code or "error", f"The monitor refused this: {message}")  # its own sentence, naming the field
    return ApiFailure(status, code or "error", _SENTENCES.get(status, f"The monitor refused the request ({status})."))
