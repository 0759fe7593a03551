"""Session / Live (``/session/<id>``): both ends side by side, refreshed every 2 s while live
(numbers and the last 10 minutes as graphs), a banner when it degrades and why, and what
happened (states, risk changes, live degradations). Upcoming and ended sessions show their
flags, check ages and history; ended ones also their live graphs while the monitor keeps them.
"Create check link" makes a link the client opens to run the check in a browser; the link is
shown once, in a panel that "Hide" (or leaving the page) drops."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from dashboard.api import ApiFailure
from dashboard.components import flag_badge
from dashboard.errors import clear_error
from dashboard.figures import GRAPH_HEIGHT_PX, METRICS, figure, last_seen, latest
from dashboard.links_view import link_panel
from dashboard.present import STATE_LABEL, date_time, end_views, flag, relative_start, session_banner, span, timeline, unix_of
from dashboard.summary_view import register as register_summary
from dashboard.summary_view import section as summary_section

if TYPE_CHECKING:
    from dashboard.app import Context

LIVE_MS = 2_000
IDLE_MS = 30_000
WINDOW_S = 600.0  # the last 10 minutes while live
KEEP_S = 86_400.0  # the monitor serves samples up to a day back
HIDDEN = {"display": "none"}
PANEL_SHOWN, PANEL_HIDDEN = "code-panel", "code-panel hidden"


def layout(session_id: str) -> html.Div:
    return html.Div(
        [
            dcc.Store(id="session-id", data=session_id),
            dcc.Interval(id="session-interval", interval=LIVE_MS),
            html.Div(id="session-header"),
            html.Div(id="session-banner"),
            summary_section(),  # "How the session went", once it has ended (dashboard/summary_view.py)
            html.Div(
                [
                    html.Button("Create check link", id="session-link-create", className="button"),
                    html.Span(id="session-link-error", className="form-error", role="alert"),
                    html.Div([html.Div(id="session-link-new"), html.Button("Hide the link", id="session-link-hide")], id="session-link-panel", className=PANEL_HIDDEN),
                ],
                id="session-link",
            ),
            html.Div(id="session-ends", className="ends-grid"),
            html.Div(id="session-numbers"),
            html.Div(
                [
                    # A responsive graph fills its box, so the box gets the figure's height
                    # (otherwise Dash's 100 % of a grid row without a height collapses it).
                    dcc.Graph(id=f"session-graph-{m.key}", config={"displaylogo": False, "responsive": True}, className="graph", style={"height": f"{GRAPH_HEIGHT_PX}px"})
                    for m in METRICS
                ],
                id="session-graphs",
                className="graph-grid",
                style=HIDDEN,
            ),
            html.Div(id="session-history"),
        ],
        className="page",
    )


def register(app: Dash, context: Context) -> None:
    register_summary(app, context)

    @app.callback(
        Output("session-header", "children"),
        Output("session-banner", "children"),
        Output("session-ends", "children"),
        Output("session-numbers", "children"),
        Output("session-graphs", "style"),
        *[Output(f"session-graph-{m.key}", "figure") for m in METRICS],
        Output("session-history", "children"),
        Output("session-interval", "interval"),
        Input("session-interval", "n_intervals"),
        Input("shell-tz", "data"),
        State("session-id", "data"),
    )
    def refresh(_: int | None, browser_zone: str | None, session_id: str):  # noqa: ANN202
        count = 7 + len(METRICS)
        if browser_zone is None and not context.fixed_zone:
            return (no_update,) * count
        zone = context.zone(browser_zone)
        now = context.clock()
        try:
            detail = context.call(context.api.session, session_id)
        except ApiFailure as failure:
            if failure.status != 404:
                raise
            clear_error()
            missing = html.Div([html.H1("Session not found"), html.P(["It does not exist, or it is not one of your sessions. ", dcc.Link("Back to today's sessions", href="/")])], id="session-not-found")
            return (missing, None, None, None, HIDDEN, *[no_update] * len(METRICS), None, IDLE_MS)
        session, risk = detail["session"], detail.get("risk")
        alerts = context.call(context.api.session_alerts, session_id)
        start_s = unix_of(session["start"])
        samples: list[dict[str, Any]] = []
        samples_note = None
        ended_recently = session["state"] == "ended" and now - start_s < KEEP_S
        if session["state"] == "live" or ended_recently:
            since = now - WINDOW_S if session["state"] == "live" else max(start_s - 60, now - KEEP_S + 60)
            try:
                samples = context.call(context.api.session_samples, session_id, since)
            except ApiFailure as failure:
                if failure.status not in (404, 405):
                    raise
                samples_note = html.P("This monitor cannot show live measurements yet (it lacks GET /api/v1/sessions/{id}/samples).", className="banner banner-unknown")
        clear_error()
        figures = [figure(samples, m, zone) for m in METRICS] if samples else [no_update] * len(METRICS)
        return (
            header(session, risk, zone, now),
            banner(session, risk, alerts),
            ends(risk, samples, now),
            samples_note or numbers(samples, session["state"]),
            {} if samples else HIDDEN,
            *figures,
            history(detail, alerts, zone),
            LIVE_MS if session["state"] == "live" else IDLE_MS,
        )


    @app.callback(
        Output("session-link-new", "children"),
        Output("session-link-panel", "className"),
        Output("session-link-error", "children"),
        Input("session-link-create", "n_clicks"),
        Input("session-link-hide", "n_clicks"),
        State("session-id", "data"),
        State("shell-tz", "data"),
        prevent_initial_call=True,
    )
    def create_link(_create: int | None, _hide: int | None, session_id: str, browser_zone: str | None):  # noqa: ANN202
        if ctx.triggered_id == "session-link-hide":
            return None, PANEL_HIDDEN, None
        try:
            session = context.call(context.api.session, session_id)["session"]
            answer = context.call(context.api.create_check_link, session["client_id"], session_id)
        except ApiFailure as failure:
            if failure.status not in (400, 403, 404):
                raise
            return None, PANEL_HIDDEN, failure.sentence
        clear_error()
        return link_panel(answer, context.api.base_url, context.zone(browser_zone)), PANEL_SHOWN, None


def header(session: dict[str, Any], risk: dict[str, Any] | None, zone: Any, now: float) -> html.Div:
    start_s = unix_of(session["start"])
    shown = flag((risk or {}).get("state"))
    return html.Div(
        [
            html.P(dcc.Link("← Today", href="/"), className="muted"),
            html.H1([f"Session {session['session_id']} ", flag_badge(shown, "", id="session-flag")]),
            html.P(
                [
                    html.Span(date_time(start_s, zone)),
                    f" · {span(session['planned_duration_s'])} · ",
                    html.Span(STATE_LABEL.get(session["state"], session["state"]), id="session-state"),
                    f" ({relative_start(start_s, session['planned_duration_s'], session['state'], now)})",
                ],
                className="muted",
            ),
            html.P([html.Span(["Client ", html.B(session["client_id"])]), html.Span([" · Therapist ", html.B(session["therapist_id"])])]),
        ]
    )


def banner(session: dict[str, Any], risk: dict[str, Any] | None, alerts: list[dict[str, Any]]) -> html.Div | None:
    shown = session_banner(session, risk, alerts)
    if shown is None:
        return None
    return html.Div(
        [html.Strong(shown.title), html.Ul([html.Li([message, html.Br(), html.Span(action, className="action")]) for message, action in shown.lines]) if shown.lines else None],
        className=shown.css_class,
        id="session-live-banner",
        role="status",
    )


def ends(risk: dict[str, Any] | None, samples: list[dict[str, Any]], now: float) -> list[html.Div]:
    seen = last_seen(samples)
    blocks = []
    for end in end_views(risk, now):
        reasons = [r for r in (risk or {}).get("reasons", []) if r.get("end") == end.role]
        lines = [html.Li([r["message"], html.Br(), html.Span(r["action"], className="action")], className="reason") for r in reasons]
        heard = seen.get(end.role)
        blocks.append(
            html.Section(
                [
                    html.H2([f"{end.role.capitalize()} ", html.Span(end.participant_id, className="muted")]),
                    flag_badge(end.flag, ""),
                    html.P([end.check_age, " · ", dcc.Link("see the check", href=f"/check/{end.check_id}", id=f"session-check-{end.role}")] if end.check_id else end.check_age, className="muted"),
                    html.P(f"last live measurement {span(now - heard)} ago", className="muted") if heard is not None else None,
                    html.Ul(lines, className="reasons") if lines else None,
                ],
                className="end-panel",
                id=f"session-end-{end.role}",
            )
        )
    return blocks


def numbers(samples: list[dict[str, Any]], state: str) -> html.Div | None:
    if not samples:
        if state == "live":
            return html.P("Waiting for the first live measurements from the agents…", className="muted")
        return None
    values = latest(samples)
    rows = [
        html.Tr([html.Th(m.label), html.Td(values["client"][m.key], **{"data-end": "client", "data-metric": m.key}), html.Td(values["therapist"][m.key], **{"data-end": "therapist", "data-metric": m.key})])
        for m in METRICS
    ]
    return html.Table([html.Thead(html.Tr([html.Th("Latest"), html.Th("Client"), html.Th("Therapist")])), html.Tbody(rows)], className="numbers", id="session-numbers-table")


def history(detail: dict[str, Any], alerts: list[dict[str, Any]], zone: Any) -> html.Div:
    events = timeline(detail, alerts)
    items = [
        html.Li([html.Span(date_time(e.at_s, zone), className="muted"), " ", html.B(e.title), html.Ul([html.Li(line) for line in e.lines]) if e.lines else None], className=f"event event-{e.kind}")
        for e in events
    ]
    return html.Div([html.H2("What happened"), html.Ul(items, className="timeline", id="session-timeline") if items else html.P("Nothing yet.", className="muted")])

