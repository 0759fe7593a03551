"""The dashboard's shell: ``create_app(config)`` builds the Dash app (on its own Flask server)
with the login guard, the navigation, the viewer's time zone and a router to the pages.

Pages are modules under ``dashboard/pages`` with a ``layout`` function and a ``register(app,
context)`` that adds their callbacks to *this* app. Dash's ``register_page``/``dash.callback``
keep pages and callbacks in module-level registries; building the routes here instead keeps
no global state, so several apps (tests, one per monitor) can live in one process.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dash import Dash, Input, Output, State, dcc, html
from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from dashboard import auth as auth_module
from dashboard.api import LoggedOut, MonitorApi
from dashboard.config import DashboardConfig, monitor_base_url, secret_key
from dashboard.errors import callback_error
from dashboard.hardening import content_security_policy, guard_callback_requests
from dashboard.pages import agents as agents_page
from dashboard.pages import caseloads as caseloads_page
from dashboard.pages import check as check_page
from dashboard.pages import session as session_page
from dashboard.pages import today as today_page
from dashboard.pages import trends as trends_page
from dashboard.present import zone_of
from dashboard.websession import SessionSealer, WebSession
from sessionready import client_address
from sessionready.ratelimit import RateLimiter
from sessionready.terms import STAFF_ROLES  # who sees Trends, Agents and Caseloads (the monitor enforces it as well)

log = logging.getLogger("sessionready.dashboard")

ASSETS = Path(__file__).parent / "assets"
SESSION_PATH = re.compile(r"/session/([A-Za-z0-9._-]{1,64})")
CHECK_PATH = re.compile(r"/check/([0-9a-f]{32})")
STAFF_PAGES = ("/trends", "/agents", "/caseloads")


@dataclass
class Context:
    """What every page's callbacks need: who is asking, the monitor, the clock, the zone."""

    auth: auth_module.Auth
    clock: Callable[[], float]
    fixed_zone: str  # config time_zone; "" = the viewer's browser zone

    def user(self) -> WebSession:
        session = self.auth.current()
        if session is None:
            raise LoggedOut()
        return session

    def call(self, method: Callable[..., Any], *args: Any) -> Any:
        """``method(token, *args)`` for the current user; a 401 ends the login here too."""
        session = self.user()
        try:
            return method(session.token, *args)
        except LoggedOut:
            self.auth.end_current()
            raise

    @property
    def api(self) -> MonitorApi:
        return self.auth.api

    def zone(self, browser_zone: str | None):  # noqa: ANN201
        return zone_of(self.fixed_zone or browser_zone)


def create_app(config: DashboardConfig, *, clock: Callable[[], float] = time.time, secret: bytes | None = None, api: MonitorApi | None = None) -> Dash:
    """The dashboard for ``config``; ``api`` replaces the monitor client built from it (a
    benchmark compares clients)."""
    server = Flask("sessionready.dashboard")
    address_secret = client_address.read_shared_secret(config.client_address_secret_file) if config.client_address_secret_file else None
    if api is None:
        api = MonitorApi(monitor_base_url(config), ca_file=config.ca_file or None, timeout_s=config.request_timeout_s, address_secret=address_secret, clock=clock)
    shared_secret = secret if secret is not None else secret_key(config)
    sessions = SessionSealer(shared_secret, idle_limit_s=config.session_minutes * 60.0, clock=clock)
    login_limiter = RateLimiter(config.login_attempts_per_minute)
    auth = auth_module.Auth(sessions, api, shared_secret, config.cookie_secure, login_limiter)
    context = Context(auth, clock, config.time_zone)

    app = Dash(
        "sessionready.dashboard",
        server=server,
        assets_folder=str(ASSETS),
        title="sessionready",
        update_title=None,
        suppress_callback_exceptions=True,  # page components exist only while their page shows
        serve_locally=True,  # the dashboard needs no internet, and loads no third-party script
        on_error=callback_error,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    # Dash's own page says no language; a screen reader then guesses how to pronounce it.
    app.index_string = app.index_string.replace("<html>", '<html lang="en">', 1)
    server.register_error_handler(Exception, _server_error)
    app.layout = lambda: shell(context)

    if config.time_zone:
        pass  # the store starts with the configured zone; no browser zone is read
    else:
        # Read once the page is up; on later moves between pages the zone is unchanged, and
        # writing it again would refresh the page being left (one monitor call for nothing).
        app.clientside_callback(
            """function(_, current) {
                var zone = 'UTC';
                try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'; } catch (e) {}
                return zone === current ? window.dash_clientside.no_update : zone;
            }""",
            Output("shell-tz", "data"),
            Input("shell-url", "pathname"),
            State("shell-tz", "data"),
        )

    @app.callback(Output("shell-page", "children"), Input("shell-url", "pathname"))
    def route(pathname: str | None):  # noqa: ANN202
        return page_for(pathname or "/", context.user().role)

    today_page.register(app, context)
    session_page.register(app, context)
    check_page.register(app, context)
    trends_page.register(app, context)
    agents_page.register(app, context)
    caseloads_page.register(app, context)
    # Last: the policy names every inline script by hash, so every callback must exist by now.
    auth_module.install(server, auth, content_security_policy(app.csp_hashes()))
    guard_callback_requests(app)
    return app


def page_for(pathname: str, role: str) -> Any:
    """The layout for a path; an unknown path gets a page that says so and links home, and a
    staff page asked for by someone else says whose it is (the monitor refuses the data too)."""
    if pathname in STAFF_PAGES and role not in STAFF_ROLES:
        return html.Div([html.H1("For IT staff"), html.P(["This page is for IT staff and admins. ", dcc.Link("Back to today's sessions", href="/")])], className="page", id="staff-only")
    if pathname in ("/", ""):
        return today_page.layout()
    if match := SESSION_PATH.fullmatch(pathname):
        return session_page.layout(match.group(1))
    if match := CHECK_PATH.fullmatch(pathname):
        return check_page.layout(match.group(1))
    if pathname == "/trends":
        return trends_page.layout()
    if pathname == "/agents":
        return agents_page.layout()
    if pathname == "/caseloads":
        return caseloads_page.layout()
    return html.Div([html.H1("Page not found"), html.P(["There is no page at this address. ", dcc.Link("Back to today's sessions", href="/")])], className="page")


def shell(context: Context) -> html.Div:
    """The frame around every page; built per request, so it can name who is logged in."""
    session = context.auth.current()
    who = []
    links = [dcc.Link("Today", href="/", className="nav-link", id="shell-nav-today")]
    if session is not None and session.role in STAFF_ROLES:
        links.append(dcc.Link("Trends", href="/trends", className="nav-link", id="shell-nav-trends"))
        links.append(dcc.Link("Agents", href="/agents", className="nav-link", id="shell-nav-agents"))
        links.append(dcc.Link("Caseloads", href="/caseloads", className="nav-link", id="shell-nav-caseloads"))
    if session is not None:
        who = [
            html.Span(f"{session.username} · {session.role}", className="nav-user", id="shell-user"),
            html.Form(
                [dcc.Input(type="hidden", name="csrf", value=session.csrf_token), html.Button("Log out", type="submit", id="shell-logout", className="link-button")],
                action="/logout",
                method="POST",
                className="nav-logout",
            ),
        ]
    return html.Div(
        [
            dcc.Location(id="shell-url"),
            dcc.Location(id="shell-redirect", refresh=True),
            dcc.Store(id="shell-tz", data=context.fixed_zone or None),
            html.Header(
                [
                    dcc.Link("sessionready", href="/", className="brand"),
                    html.Nav(links, className="nav-links"),
                    html.Div(who, className="nav-right"),
                ],
                className="topbar",
            ),
            html.Div(id="shell-error", className="hidden", role="alert"),
            html.Main(id="shell-page", className="content"),
        ]
    )


def _server_error(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return Response(f"{error.code} {error.name}", status=error.code or 500, mimetype="text/plain")
    log.error("dashboard request failed", exc_info=error)
    return Response("The dashboard had an internal error; the details are in its log.", status=500, mimetype="text/plain")
