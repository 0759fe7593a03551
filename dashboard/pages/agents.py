"""Agents (``/agents``, IT staff and admins): every agent with its participant, role, version,
OS, link, last contact and online state, refreshed every 30 s; and enrollment codes: a form
that makes one, the code shown once with the command that redeems it, and the list of codes,
where a pending one can be revoked after a confirmation.

A new code lives only in the panel that shows it (no store keeps it): "hide the code", or
leaving the page, drops it from the browser. The monitor keeps only its hash."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard.agents_view import (
    AgentRow,
    CodeRow,
    EnrollmentRequest,
    agent_rows,
    check_enrollment,
    code_rows,
    enroll_command,
    loopback,
    online_summary,
)
from dashboard.api import ApiFailure
from dashboard.components import flag_badge
from dashboard.errors import clear_error
from dashboard.present import clock_time, date_time
from sessionready.terms import DEFAULT_TTL_HOURS, MAX_TTL_HOURS

if TYPE_CHECKING:
    from dashboard.app import Context

REFRESH_MS = 30_000
REVOKE = "agents-revoke"  # the pattern id type of each pending code's Revoke button
PANEL_SHOWN, PANEL_HIDDEN = "code-panel", "code-panel hidden"


def layout() -> html.Div:
    return html.Div(
        [
            html.H1("Agents", id="agents-title"),
            html.P(id="agents-subtitle", className="muted"),
            dcc.Interval(id="agents-interval", interval=REFRESH_MS),
            dcc.Store(id="agents-created", data=0),  # counters only: a change refreshes the lists
            dcc.Store(id="agents-revoked", data=0),
            dcc.Store(id="agents-revoke-target"),
            dcc.ConfirmDialog(id="agents-revoke-confirm"),
            html.Div(id="agents-table"),
            html.H2("Enroll a machine"),
            enrollment_form(),
            html.Div([html.Div(id="agents-new-code"), html.Button("I have passed it on: hide the code", id="agents-hide-code", className="link-button")], id="agents-code-panel", className=PANEL_HIDDEN),
            html.H2("Enrollment codes"),
            html.P(id="agents-revoke-status", role="status"),
            html.Div(id="agents-codes"),
        ],
        className="page",
    )


def enrollment_form() -> html.Div:
    return html.Div(
        [
            html.Span("Whose machine", className="field-label", id="agents-role-label"),  # names the radio group (assets/a11y.js)
            dcc.RadioItems(id="agents-role", options=[{"label": " Client", "value": "client"}, {"label": " Therapist", "value": "therapist"}], value="client", inline=True, labelClassName="radio"),
            html.Label("Participant id", htmlFor="agents-participant"),
            dcc.Input(id="agents-participant", type="text", list="agents-participants", maxLength=64, autoComplete="off", placeholder="e.g. c-0042"),
            html.Datalist(id="agents-participants"),
            html.P("The pseudonymous id the practice uses for this person, never a name.", className="muted hint"),
            html.Label("Code valid for (hours)", htmlFor="agents-ttl"),
            dcc.Input(id="agents-ttl", type="number", value=DEFAULT_TTL_HOURS, min=1, max=MAX_TTL_HOURS, step=1),
            html.P(f"1 to {MAX_TTL_HOURS} hours; {DEFAULT_TTL_HOURS} is three days.", className="muted hint"),
            html.Button("Create code", id="agents-create", className="primary-button"),
            html.P(id="agents-form-error", className="form-error", role="alert"),
        ],
        className="enroll-form",
    )


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("agents-table", "children"),
        Output("agents-codes", "children"),
        Output("agents-subtitle", "children"),
        Output("agents-participants", "children"),
        Input("agents-interval", "n_intervals"),
        Input("shell-tz", "data"),
        Input("agents-created", "data"),
        Input("agents-revoked", "data"),
    )
    def refresh(_: int | None, browser_zone: str | None, _created: int, _revoked: int):  # noqa: ANN202
        if browser_zone is None and not context.fixed_zone:
            return no_update, no_update, no_update, no_update  # the browser's zone arrives a moment later
        zone = context.zone(browser_zone)
        now = context.clock()
        agents = agent_rows(context.call(context.api.agents), zone, now)
        codes = code_rows(context.call(context.api.enrollments), zone, now)
        known = sorted({p["participant_id"] for p in context.call(context.api.participants)} | {a.participant_id for a in agents})
        clear_error()
        subtitle = f"Times in {zone.key} · updated {clock_time(now, zone)} · {online_summary(agents)}"
        return agents_table(agents, context.api.base_url), codes_table(codes), subtitle, [html.Option(value=p) for p in known]

    @app.callback(
        Output("agents-new-code", "children"),
        Output("agents-code-panel", "className"),
        Output("agents-form-error", "children"),
        Output("agents-created", "data"),
        Output("agents-participant", "value"),
        Input("agents-create", "n_clicks"),
        Input("agents-hide-code", "n_clicks"),
        State("agents-role", "value"),
        State("agents-participant", "value"),
        State("agents-ttl", "value"),
        State("agents-created", "data"),
        State("shell-tz", "data"),
        prevent_initial_call=True,
    )
    def create(_create: int | None, _hide: int | None, role: Any, participant: Any, ttl: Any, created: int, browser_zone: str | None):  # noqa: ANN202
        if ctx.triggered_id == "agents-hide-code":
            return None, PANEL_HIDDEN, None, no_update, no_update
        wanted = check_enrollment(role, participant, ttl)
        if isinstance(wanted, str):
            return no_update, no_update, wanted, no_update, no_update
        try:
            answer = context.call(context.api.create_enrollment, wanted.role, wanted.participant_id, wanted.ttl_hours)
        except ApiFailure as failure:
            if failure.status not in (400, 409):
                raise
            return no_update, no_update, failure.sentence, no_update, no_update
        clear_error()
        panel = new_code(answer["code"], answer["enrollment"], wanted, context.api.base_url, context.zone(browser_zone))
        return panel, PANEL_SHOWN, None, (created or 0) + 1, ""

    @app.callback(
        Output("agents-revoke-confirm", "displayed"),
        Output("agents-revoke-confirm", "message"),
        Output("agents-revoke-target", "data"),
        Input({"type": REVOKE, "code": ALL, "participant": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def ask(_: list[int | None]):  # noqa: ANN202
        # The buttons are made anew on every refresh, which fires this with no click at all.
        if not isinstance(ctx.triggered_id, dict) or not any(t["value"] for t in ctx.triggered):
            raise PreventUpdate
        code_id, participant = ctx.triggered_id["code"], ctx.triggered_id["participant"]
        message = f"Revoke the enrollment code {code_id} for {participant}? Nobody will be able to enroll a machine with it."
        return True, message, {"code_id": code_id, "participant_id": participant}

    @app.callback(
        Output("agents-revoked", "data"),
        Output("agents-revoke-status", "children"),
        Input("agents-revoke-confirm", "submit_n_clicks"),
        State("agents-revoke-target", "data"),
        State("agents-revoked", "data"),
        prevent_initial_call=True,
    )
    def revoke(_: int | None, target: dict[str, str] | None, revoked: int):  # noqa: ANN202
        if not target:
            raise PreventUpdate
        try:
            context.call(context.api.revoke_enrollment, target["code_id"])
        except ApiFailure as failure:
            if failure.status not in (404, 409):
                raise
            return (revoked or 0) + 1, failure.sentence
        clear_error()
        return (revoked or 0) + 1, f"The code {target['code_id']} for {target['participant_id']} is revoked: it can no longer enroll a machine."


def agents_table(rows: list[AgentRow], monitor_url: str) -> html.Div | html.Table:
    if not rows:
        return html.Div(
            [
                html.H2("No machines yet"),
                html.P(["Create an enrollment code below and pass it to the person; on their computer they type ", html.Code(enroll_command(monitor_url, "CODE")), ". Their machine appears here once it has enrolled (docs/enrollment.md)."]),
            ],
            className="empty-state",
            id="agents-empty",
        )
    head = html.Thead(html.Tr([html.Th(h) for h in ("State", "Agent", "Participant", "Role", "Version", "OS", "Connection", "Last seen", "Reports queued on the machine")]))
    body = html.Tbody([agent_row(row) for row in rows])
    return html.Table([head, body], className="agents-table", id="agents-list")


def agent_row(row: AgentRow) -> html.Tr:
    cells = [row.agent_id, row.participant_id, row.role, row.version, row.os, row.link, row.last_seen, row.spool]
    return html.Tr(
        [html.Td(flag_badge(row.flag, "", **{"data-role": "agent-flag"})), *[html.Td(cell) for cell in cells]],
        id=f"agents-row-{row.agent_id}",
        className="agent-revoked" if row.revoked else None,
        **{"data-agent": row.agent_id, "data-participant": row.participant_id},
    )


def codes_table(rows: list[CodeRow]) -> html.Div | html.Table:
    if not rows:
        return html.P("No enrollment codes yet: create one above.", className="muted", id="agents-codes-empty")
    head = html.Thead(html.Tr([*(html.Th(h) for h in ("State", "Code id", "Participant", "Role", "Created", "Expires", "Outcome")), html.Th(html.Span("Action", className="visually-hidden"))]))
    return html.Table([head, html.Tbody([code_row(row) for row in rows])], className="agents-table", id="agents-codes-list")


def code_row(row: CodeRow) -> html.Tr:
    action = html.Button("Revoke", id={"type": REVOKE, "code": row.code_id, "participant": row.participant_id}, className="link-button") if row.revocable else None
    cells = [row.code_id, row.participant_id, row.role, row.created, row.expires, row.outcome]
    return html.Tr(
        [html.Td(flag_badge(row.flag, "", **{"data-role": "code-flag"})), *[html.Td(cell) for cell in cells], html.Td(action)],
        id=f"agents-code-{row.code_id}",
        **{"data-code": row.code_id},
    )


def new_code(code: str, enrollment: dict[str, Any], wanted: EnrollmentRequest, monitor_url: str, zone: ZoneInfo) -> list[Any]:
    """The code, once, with the exact command to type and a warning that it will not come back."""
    notes = []
    if loopback(monitor_url):
        notes.append(html.P(f"This dashboard reaches the monitor at {monitor_url}, an address on its own machine: on another computer, use the monitor's address as that computer reaches it.", className="muted"))
    if monitor_url.startswith("https://"):
        notes.append(html.P("If the monitor has a private certificate, add --ca-file with the practice's CA file.", className="muted"))
    return [
        html.H3(f"New code for {wanted.participant_id} ({wanted.role}'s machine)"),
        html.P(html.Code(code, id="agents-code", className="enroll-code")),
        html.P("On their computer, the person types:"),
        html.Pre(enroll_command(monitor_url, code), id="agents-command"),
        *notes,
        html.P(
            f"⚠ Write it down or pass it on now: this code will not be shown again. It works once, until {date_time(enrollment['expires_at'], zone)}.",
            className="banner banner-at-risk",
            id="agents-code-warning",
        ),
    ]
