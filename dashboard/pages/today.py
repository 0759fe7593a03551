"""Today (``/``): the day's sessions in the viewer's zone, each with its flags and reasons.

One call (``GET /api/v1/sessions?day&tz``) gives everything shown: each session's state, flag,
live flag and reasons, and each end's own flag and check time, however many sessions there are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dash import Dash, Input, Output, dcc, html, no_update

from dashboard.components import flag_badge
from dashboard.errors import clear_error
from dashboard.present import TodayRow, clock_time, day_in, today_rows

if TYPE_CHECKING:
    from dashboard.app import Context

REFRESH_MS = 30_000


def layout() -> html.Div:
    return html.Div(
        [
            html.H1("Today's sessions", id="today-title"),
            html.P(id="today-subtitle", className="muted"),
            dcc.Interval(id="today-interval", interval=REFRESH_MS),
            dcc.Loading(html.Div(id="today-list", className="session-list"), type="dot", delay_show=500),
        ],
        className="page",
    )


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("today-list", "children"),
        Output("today-subtitle", "children"),
        Input("today-interval", "n_intervals"),
        Input("shell-tz", "data"),
    )
    def refresh(_: int | None, browser_zone: str | None):  # noqa: ANN202
        if browser_zone is None and not context.fixed_zone:
            return no_update, no_update  # the browser's zone arrives a moment later
        zone = context.zone(browser_zone)
        now = context.clock()
        sessions = context.call(context.api.sessions_of_day, day_in(zone, now), zone.key)
        rows = today_rows(sessions, zone, now)
        clear_error()
        subtitle = f"{day_in(zone, now)} · times in {zone.key} · updated {clock_time(now, zone)}"
        if not rows:
            return empty_state(context.user().role), subtitle
        return [card(row, context.user().role != "therapist") for row in rows], subtitle


def card(row: TodayRow, show_therapist: bool) -> dcc.Link:
    people = [html.Span(["Client ", html.B(row.client_id)])]
    if show_therapist:
        people.append(html.Span([" · Therapist ", html.B(row.therapist_id)]))
    end_badges = [
        html.Div([flag_badge(end.flag, f"{end.role.capitalize()}: "), html.Span(f" {end.check_age}", className="muted")], className="end-flag", **{"data-end": end.role})
        for end in row.ends
    ]
    reasons = [
        html.Li([html.Span(icon + " ", **{"aria-hidden": "true"}), html.B(f"{end}: ") if end else "", message, html.Br(), html.Span(action, className="action")], className="reason")
        for icon, end, message, action in row.reasons
    ]
    badges = [flag_badge(row.flag, "", **{"data-role": "session-flag"})]
    if row.live is not None:
        badges.append(flag_badge(row.live, "", **{"data-role": "live-flag"}))
    return dcc.Link(
        html.Article(
            [
                html.Div([html.Span(row.time, className="session-time"), html.Span(row.relative, className="muted session-relative"), html.Span(row.state_label, className="session-state")], className="session-when"),
                html.Div(people, className="session-people"),
                html.Div(badges, className="session-flags"),
                html.Div(end_badges, className="session-ends"),
                html.Ul(reasons, className="reasons") if reasons else html.P("No problems known.", className="muted"),
            ],
            className="session-card" + (" stands-out" if row.stands_out else ""),
            id=f"today-session-{row.session_id}",
            **{"data-session": row.session_id},
        ),
        href=f"/session/{row.session_id}",
        className="card-link",
    )


def empty_state(role: str) -> html.Div:
    if role == "therapist":
        hint = "Your sessions appear here once the practice calendar is imported: ask IT to import it, or to add your sessions."
    else:
        hint = "Import the practice calendar (sessionready monitor sessions import, or POST /api/v1/sessions/import; see docs/sessions.md), or add sessions through the API."
    return html.Div([html.H2("No sessions today"), html.P(hint)], className="empty-state", id="today-empty")
