"""Check result (``/check/<check_id>``): one pre-session check, as a client can show it to IT
or a therapist: the verdict, what was found and what to do, and the figures measured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboard.api import ApiFailure
from dashboard.components import flag_badge
from dashboard.errors import clear_error
from dashboard.present import check_numbers, check_reasons, date_time, flag, unix_of

if TYPE_CHECKING:
    from dashboard.app import Context


def layout(check_id: str) -> html.Div:
    return html.Div([dcc.Store(id="check-id", data=check_id), html.Div(id="check-body")], className="page")


def register(app: Dash, context: Context) -> None:
    @app.callback(Output("check-body", "children"), Input("shell-tz", "data"), State("check-id", "data"))
    def show(browser_zone: str | None, check_id: str):  # noqa: ANN202
        if browser_zone is None and not context.fixed_zone:
            return no_update
        zone = context.zone(browser_zone)
        try:
            check = context.call(context.api.check, check_id)
        except ApiFailure as failure:
            if failure.status == 404:
                clear_error()
                return html.Div([html.H1("Check not found"), html.P("It does not exist, or it is not one you may see.")], id="check-not-found")
            if failure.status == 403:
                clear_error()
                return html.Div(
                    [html.H1("Check result"), html.P("The monitor does not let dashboard logins read checks yet; ask IT (the monitor's GET /api/v1/checks/{id} admits only the machines that ran the check).")],
                    id="check-forbidden",
                )
            raise
        report = check["report"]
        clear_error()
        verdict = flag(report.get("verdict"))
        reasons = [html.Li([html.Span(icon + " ", **{"aria-hidden": "true"}), message, html.Br(), html.Span(fix, className="action")], className="reason") for icon, message, fix in check_reasons(report)]
        rows = [html.Tr([html.Th(label), html.Td(value)]) for label, value in check_numbers(report)]
        return html.Div(
            [
                html.H1(["Check result ", flag_badge(verdict, "", id="check-verdict")]),
                html.P(f"Run {date_time(unix_of(report['started_at']), zone)} by {check['participant_id']} (agent {check['agent_id']}) · took {report.get('duration_s', 0):.0f} s", className="muted"),
                html.H2("What was found"),
                html.Ul(reasons, className="reasons") if reasons else html.P("Nothing to fix.", className="muted"),
                html.H2("Measured"),
                html.Table(html.Tbody(rows), className="numbers", id="check-numbers"),
            ],
            id="check-result",
        )
