"""Login, logout and the guard in front of every dashboard request (plain Flask, not Dash).

- The cookie ``sr_session`` holds the login sealed (encrypted and authenticated under the
  dashboards' shared key: ``dashboard/websession.py``), HttpOnly, SameSite=Strict, Secure unless
  browser and dashboard are both on this machine over plain HTTP (``Auth._secure``). No
  dashboard keeps logins in memory: a restart keeps everyone logged in, and any dashboard with
  the same secret key file serves any login. Each full page load asks the monitor whether the
  login's token still holds (a logout on another dashboard revoked it there).
- Logins are limited per browser address here, and the address goes to the monitor signed
  (``sessionready.client_address``), which limits by it too.
- CSRF: every state-changing POST must come from this site (Origin, else Referer, names this
  host) and carry the session's CSRF token: the logout form in a hidden field; Dash's own
  callback requests in the ``X-CSRFToken`` header, which Dash's renderer copies from the
  ``_csrf_token`` cookie by itself. The login form carries a signed, time-limited token that
  must match its cookie (double submit), so no one can log a browser into another account.
- A page requested without a valid login gets a tiny page that moves to /login from this site:
  a link from an e-mail is a cross-site navigation, on which a SameSite=Strict cookie is not
  sent; the move from our own page is same-site, so a logged-in person lands on the page.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from flask import Flask, Response, g, redirect, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import escape

from dashboard.api import ApiFailure, LoggedOut, MonitorApi
from dashboard.websession import SessionSealer, WebSession
from sessionready.netaddr import is_loopback_host
from sessionready.ratelimit import RateLimiter

log = logging.getLogger("sessionready.dashboard")

SESSION_COOKIE = "sr_session"
CSRF_COOKIE = "_csrf_token"  # the name Dash's renderer reads for its X-CSRFToken header
LOGIN_COOKIE = "sr_login"
LOGIN_FORM_MAX_AGE_S = 3600
DASH_UPDATE = "/_dash-update-component"
PUBLIC_PREFIXES = ("/assets/",)
PUBLIC_PATHS = ("/login",)
SAFE_NEXT = re.compile(r"/(?!/)[A-Za-z0-9/_.\-]{0,200}")
USERNAME_MAX, PASSWORD_MAX = 64, 1024


@dataclass
class Auth:
    """What the guard and the pages share: the sealer of logins, the monitor, the signing key of
    the login form, the per-address login budget."""

    sessions: SessionSealer
    api: MonitorApi
    secret: bytes
    cookie_secure: bool
    login_limiter: RateLimiter

    def __post_init__(self) -> None:
        self._login_forms = URLSafeTimedSerializer(self.secret, salt="sessionready-dashboard-login")

    def current(self) -> WebSession | None:
        """The login of the request being served, or None; opened once per request."""
        if "sr_login" not in g:
            g.sr_login = self.sessions.open(request.cookies.get(SESSION_COOKIE))
        return g.sr_login

    def end_current(self) -> None:
        """The monitor no longer takes this request's login: treat the rest of the request as
        logged out, and clear the browser's cookies in its response."""
        g.sr_login = None
        g.sr_login_ended = True

    def finish(self, response: Response) -> None:
        """Clear the cookies of a login that ended during the request, or re-seal a login in
        use with this request's time (the idle limit counts from it). A response that sets or
        clears the login cookie itself (login, logout) is left as it is."""
        if any(line.startswith(SESSION_COOKIE + "=") for line in response.headers.getlist("Set-Cookie")):
            return
        if g.get("sr_login_ended"):
            self.clear_cookies(response)
            return
        session = g.get("sr_login")
        if session is not None and self.sessions.due_for_refresh(session):
            response.set_cookie(SESSION_COOKIE, self.sessions.seal(self.sessions.touched(session)), httponly=True, samesite="Strict", secure=self._secure(), path="/")

    def _secure(self) -> bool:
        """Mark cookies Secure? Always over https (direct, or as the trusted proxy says); with
        ``cookie_secure`` also over plain HTTP, except between a browser and a dashboard that
        are both on this machine (``make demo``, tests): no network is crossed there, and a
        browser may refuse a Secure cookie set over plain http."""
        if request.is_secure:
            return True
        return self.cookie_secure and not plain_http_on_loopback()

    def set_login_cookies(self, response: Response, session: WebSession) -> None:
        common = {"samesite": "Strict", "secure": self._secure(), "path": "/"}
        response.set_cookie(SESSION_COOKIE, self.sessions.seal(session), httponly=True, **common)
        # Not HttpOnly: Dash's renderer must read it to send it back as a header. It is no
        # credential on its own: it is checked against the value kept with the login.
        response.set_cookie(CSRF_COOKIE, session.csrf_token, httponly=False, **common)
        response.delete_cookie(LOGIN_COOKIE, path="/login")

    def clear_cookies(self, response: Response) -> None:
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.delete_cookie(name, path="/", samesite="Strict", secure=self._secure())

    def new_login_form(self) -> tuple[str, str]:
        """(nonce for the form, signed value for the cookie)."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self._login_forms.dumps(nonce)

    def login_form_valid(self, form_value: str, cookie_value: str) -> bool:
        try:
            nonce = self._login_forms.loads(cookie_value, max_age=LOGIN_FORM_MAX_AGE_S)
        except BadSignature:
            return False
        return isinstance(nonce, str) and hmac.compare_digest(nonce, form_value)


def plain_http_on_loopback() -> bool:
    """The request came over plain HTTP from this machine, addressed to this machine. Behind a
    proxy that is not ``trusted_proxy``, the Host header still names the public site (the
    login's same-origin check needs it), so such a request is not taken for a local one."""
    host = urlsplit("//" + request.host).hostname or ""
    return not request.is_secure and is_loopback_host(request.remote_addr or "") and is_loopback_host(host)


def same_origin() -> bool:
    """A POST's Origin (or, without one, its Referer) names this host. Browsers send Origin on
    every cross-site POST, so a forged form from another site fails here."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return False
    return urlsplit(source).netloc == request.host


def install(server: Flask, auth: Auth, content_security_policy: str) -> None:
    """Add /login, /logout, the guard and the security headers to the Flask server under Dash."""

    @server.before_request
    def guard():  # noqa: ANN202
        path = request.path
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        session = auth.current()
        if request.method == "POST":
            if not same_origin():
                return _json_error(403, "This request did not come from the dashboard's own pages.")
            if path == DASH_UPDATE:
                if session is None:
                    return None  # the callbacks find no login and send the browser to /login
                header = request.headers.get("X-CSRFToken", "")
                if not hmac.compare_digest(header, session.csrf_token):
                    return _json_error(403, "The page's security token is missing or stale; reload the page.")
                return None
        background = path.startswith("/_dash") or path.startswith("/_favicon") or request.method != "GET"
        if session is not None and not background and not _still_held(auth, session):
            session = None
        if session is not None:
            return None
        if background:
            return _json_error(401, "Please log in.")
        return _bounce_to_login(path)

    @server.after_request
    def headers(response: Response) -> Response:
        auth.finish(response)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", content_security_policy)
        if not request.path.startswith(("/assets/", "/_dash-component-suites/")):
            response.headers["Cache-Control"] = "no-store"
        return response

    @server.route("/login", methods=["GET", "POST"])
    def login():  # noqa: ANN202
        target = _safe_next(request.values.get("next", "/"))
        if request.method == "GET":
            if auth.current() is not None:
                return redirect(target)
            return _login_page(auth, target, None, 200)
        # Counted here, by the browser's own address, before anything else: the monitor sees
        # every login come from this dashboard, and is told the address (signed) below.
        client = request.remote_addr or "unknown"
        if not auth.login_limiter.allow(client):
            page = _login_page(auth, target, "Too many login attempts from your address: wait a minute and try again.", 429)
            page.headers["Retry-After"] = "60"
            return page
        if not same_origin() or not auth.login_form_valid(request.form.get("csrf", ""), request.cookies.get(LOGIN_COOKIE, "")):
            return _login_page(auth, target, "The login form had expired; please try again.", 200)
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        if not username or not password or len(username) > USERNAME_MAX or len(password) > PASSWORD_MAX:
            return _login_page(auth, target, "Enter your username and password.", 200)
        try:
            result = auth.api.login(username, password, client)
        except ApiFailure as failure:
            # The form again, with the reason in words; status 200 because it is a page for a
            # person (a 401 without an HTTP auth scheme means nothing to a browser).
            return _login_page(auth, target, failure.sentence, 200)
        session = auth.sessions.create(token=result.token, username=result.username, role=result.role, participant_id=result.participant_id, expires_at=result.expires_at)
        log.info("dashboard login", extra={"fields": {"role": result.role}})
        response = redirect(target, code=303)
        auth.set_login_cookies(response, session)
        return response

    @server.route("/logout", methods=["POST"])
    def logout():  # noqa: ANN202
        session = auth.current()
        if session is None:
            return redirect("/login", code=303)
        if not hmac.compare_digest(request.form.get("csrf", ""), session.csrf_token):
            return _json_error(403, "The page's security token is missing or stale; reload the page.")
        try:
            auth.api.logout(session.token)
        except ApiFailure:
            # The browser's cookies go in any case; a copy of them would hold until the
            # token's idle limit or expiry, as the monitor could not be told (docs/dashboard.md).
            log.warning("logout: the monitor could not be told; the login's token ends by its own limits")
        response = redirect("/login", code=303)
        auth.clear_cookies(response)
        return response


def _still_held(auth: Auth, session: WebSession) -> bool:
    """Before a full page: does the monitor still take this login's token? A logout on another
    dashboard, a new password or a disabled account ended it there. When the monitor cannot
    be asked, the page loads and its own calls say what is wrong: an outage logs nobody out."""
    try:
        auth.api.whoami(session.token)
    except LoggedOut:
        auth.end_current()
        return False
    except ApiFailure:
        pass
    return True


def _safe_next(target: str) -> str:
    """Only a path on this dashboard: never another site (open redirect)."""
    return target if SAFE_NEXT.fullmatch(target) and target != "/login" else "/"


def _json_error(status: int, sentence: str) -> Response:
    return Response(json.dumps({"error": {"message": sentence}}), status=status, mimetype="application/json")


def _bounce_to_login(path: str) -> Response:
    target = "/login?next=" + quote(_safe_next(path), safe="/")
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0;url={escape(target)}"><title>sessionready</title></head>'
        f'<body><p>Opening… <a href="{escape(target)}">Log in</a></p></body></html>'
    )
    return Response(body, status=200, mimetype="text/html")


def _login_page(auth: Auth, target: str, error: str | None, status: int) -> Response:
    nonce, cookie = auth.new_login_form()
    message = f'<p class="banner banner-error" role="alert" id="login-error">{escape(error)}</p>' if error else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · sessionready</title><link rel="stylesheet" href="/assets/dashboard.css"></head>
<body class="login-body"><main class="login-box">
<h1>sessionready</h1><p class="muted">Session readiness for your practice</p>
{message}
<form method="post" action="/login" id="login-form">
<input type="hidden" name="csrf" value="{escape(nonce)}"><input type="hidden" name="next" value="{escape(target)}">
<label for="login-username">Username</label>
<input id="login-username" name="username" autocomplete="username" required maxlength="{USERNAME_MAX}" autofocus>
<label for="login-password">Password</label>
<input id="login-password" name="password" type="password" autocomplete="current-password" required maxlength="{PASSWORD_MAX}">
<button type="submit" id="login-submit">Log in</button>
</form></main></body></html>"""
    response = Response(body, status=status, mimetype="text/html")
    response.set_cookie(LOGIN_COOKIE, cookie, httponly=True, samesite="Strict", secure=auth._secure(), path="/login", max_age=LOGIN_FORM_MAX_AGE_S)
    return response
