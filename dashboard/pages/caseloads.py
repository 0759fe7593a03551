"""Caseloads (``/caseloads``, IT staff and admins): which clients each therapist works with,
since when and how each came (``GET /api/v1/caseload``), filtered by therapist; a form that
assigns a client to a therapist (``POST``) and a Remove button per row that asks first
(``DELETE``). A therapist sees a client's checks only while the client is on their caseload
(docs/sessions.md "Caseloads")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import caseloads_view as view
from dashboard.api import ApiFailure
from dashboard.errors import clear_error
from dashboard.present import clock_time

if TYPE_CHECKING:
    from dashboard.app import Context

REFRESH_MS = 30_000
REMOVE = "caseloads-remove"  # the pattern id type of each row's Remove button
CONFIRM = "caseloads-remove-confirm"


def layout() -> html.Div:
    return html.Div(
        [
            html.H1("Caseloads", id="caseloads-title"),
            html.P(id="caseloads-subtitle", className="muted"),
            html.P(
                "A therapist can create sessions with the clients on their caseload, and sees a client's checks only around their own sessions with them.",
                className="muted",
            ),
            dcc.Interval(id="caseloads-interval", interval=REFRESH_MS),
            dcc.Store(id="caseloads-assigned", data=0),  # counters only: a change refreshes the list
            dcc.Store(id="caseloads-removed", data=0),
            dcc.Store(id="caseloads-remove-target"),
            dcc.ConfirmDialog(id=CONFIRM),
            html.Div(
                [
                    html.Label("Therapist", htmlFor="caseloads-filter"),
                    dcc.Dropdown(id="caseloads-filter", options=[{"label": "All therapists", "value": view.ALL}], value=view.ALL, clearable=False),
                ],
                className="caseloads-filter",
            ),
            html.P(id="caseloads-remove-status", role="status"),
            html.Div(id="caseloads-table"),
            html.H2("Assign a client to a therapist"),
            assign_form(),
        ],
        className="page",
    )


def assign_form() -> html.Div:
    return html.Div(
        [
            html.Label("Therapist id", htmlFor="caseloads-therapist"),
            dcc.Input(id="caseloads-therapist", type="text", list="caseloads-therapists", maxLength=64, autoComplete="off", placeholder="e.g. t-07"),
            html.Datalist(id="caseloads-therapists"),
            html.Label("Client id", htmlFor="caseloads-client"),
            dcc.Input(id="caseloads-client", type="text", list="caseloads-clients", maxLength=64, autoComplete="off", placeholder="e.g. c-0042"),
            html.Datalist(id="caseloads-clients"),
            html.P("The pseudonymous ids the practice uses for these people, never names. A new id is registered with its role here.", className="muted hint"),
            html.Button("Assign", id="caseloads-assign", className="primary-button"),
            html.P(id="caseloads-form-error", className="form-error", role="alert"),
            html.P(id="caseloads-assign-status", className="hint", role="status"),
        ],
        className="enroll-form",
    )


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("caseloads-table", "children"),
        Output("caseloads-subtitle", "children"),
        Output("caseloads-filter", "options"),
        Output("caseloads-therapists", "children"),
        Output("caseloads-clients", "children"),
        Input("caseloads-interval", "n_intervals"),
        Input("shell-tz", "data"),
        Input("caseloads-assigned", "data"),
        Input("caseloads-removed", "data"),
        Input("caseloads-filter", "value"),
    )
    def refresh(_: int | None, browser_zone: str | None, _assigned: int, _removed: int, filter_value: Any):  # noqa: ANN202
        if browser_zone is None and not context.fixed_zone:
            return no_update, no_update, no_update, no_update, no_update  # the browser's zone arrives a moment later
        zone = context.zone(browser_zone)
        entries = context.call(context.api.caseload)
        participants = context.call(context.api.participants)
        clear_error()
        chosen = view.chosen_therapist(filter_value)
        rows = view.caseload_rows(entries, zone, chosen)
        subtitle = f"Times in {zone.key} · updated {clock_time(context.clock(), zone)} · {view.summary(entries, rows, chosen)}"
        ids = {role: [html.Option(value=p["participant_id"]) for p in participants if p["role"] == role] for role in ("therapist", "client")}
        return caseload_table(rows, bool(entries), chosen), subtitle, view.therapist_options(entries, chosen), ids["therapist"], ids["client"]

    @app.callback(
        Output("caseloads-form-error", "children"),
        Output("caseloads-assign-status", "children"),
        Output("caseloads-assigned", "data"),
        Output("caseloads-client", "value"),
        Input("caseloads-assign", "n_clicks"),
        State("caseloads-therapist", "value"),
        State("caseloads-client", "value"),
        State("caseloads-assigned", "data"),
        prevent_initial_call=True,
    )
    def assign(_: int | None, therapist: Any, client: Any, assigned: int):  # noqa: ANN202
        wanted = view.check_assignment(therapist, client)
        if isinstance(wanted, str):
            return wanted, None, no_update, no_update
        try:
            created = context.call(context.api.assign_client, wanted.therapist_id, wanted.client_id)
        except ApiFailure as failure:
            if failure.status not in (400, 409):
                raise
            return failure.sentence, None, no_update, no_update  # the monitor's own sentence, naming the field
        clear_error()
        # The therapist stays in the field: assigning several clients to one is the usual case.
        return None, view.assigned_sentence(wanted, created), (assigned or 0) + 1, ""

    @app.callback(
        Output(CONFIRM, "displayed"),
        Output(CONFIRM, "message"),
        Output("caseloads-remove-target", "data"),
        Input({"type": REMOVE, "therapist": ALL, "client": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def ask(_: list[int | None]):  # noqa: ANN202
        # The buttons are made anew on every refresh, which fires this with no click at all.
        if not isinstance(ctx.triggered_id, dict) or not any(t["value"] for t in ctx.triggered):
            raise PreventUpdate
        therapist, client = ctx.triggered_id["therapist"], ctx.triggered_id["client"]
        return True, view.removal_question(therapist, client), {"therapist_id": therapist, "client_id": client}

    @app.callback(
        Output("caseloads-removed", "data"),
        Output("caseloads-remove-status", "children"),
        Input(CONFIRM, "submit_n_clicks"),
        Input(CONFIRM, "cancel_n_clicks"),
        State("caseloads-remove-target", "data"),
        State("caseloads-removed", "data"),
        prevent_initial_call=True,
    )
    def answer(_submit: int | None, _cancel: int | None, target: dict[str, str] | None, removed: int):  # noqa: ANN202
        if not target:
            raise PreventUpdate
        therapist, client = target["therapist_id"], target["client_id"]
        if f"{CONFIRM}.submit_n_clicks" not in ctx.triggered_prop_ids:
            return no_update, view.kept_sentence(therapist, client)
        try:
            context.call(context.api.unassign_client, therapist, client)
        except ApiFailure as failure:
            if failure.status != 404:
                raise
            return (removed or 0) + 1, failure.sentence  # someone else removed it meanwhile: the list catches up
        clear_error()
        return (removed or 0) + 1, view.removed_sentence(therapist, client)


def caseload_table(rows: list[view.CaseloadRow], any_at_all: bool, chosen: str | None) -> html.Div | html.P | html.Table:
    if not any_at_all:
        return html.Div(
            [
                html.H2("No caseloads yet"),
                html.P(
                    "Until a client is on a therapist's caseload, the therapist cannot create sessions with them or see their checks. "
                    "Assign a client below. Sessions staff create, and CSV or calendar imports, put their client on the therapist's caseload too (docs/sessions.md)."
                ),
            ],
            className="empty-state",
            id="caseloads-empty",
        )
    if not rows:
        return html.P(f"{chosen} has no clients on their caseload now: assign one below, or choose All therapists.", className="muted", id="caseloads-none")
    head = html.Thead(html.Tr([*(html.Th(h) for h in ("Therapist", "Client", "On the caseload since", "How it came")), html.Th(html.Span("Action", className="visually-hidden"))]))
    return html.Table([head, html.Tbody([caseload_row(row) for row in rows])], className="agents-table", id="caseloads-list")


def caseload_row(row: view.CaseloadRow) -> html.Tr:
    remove = html.Button(
        "Remove",
        id={"type": REMOVE, "therapist": row.therapist_id, "client": row.client_id},
        className="link-button",
        title=f"Take {row.client_id} off {row.therapist_id}'s caseload",
    )
    cells = [row.therapist_id, row.client_id, row.since, row.source]
    return html.Tr([*[html.Td(cell) for cell in cells], html.Td(remove)], **{"data-therapist": row.therapist_id, "data-client": row.client_id})
