"""Trends (``/trends``, IT staff): for a period and a filter, daily p50/p95 of round trip,
jitter, loss and MOS; per week the share of sessions flagged before they started and of those
degraded live; a weekday × hour heat map of degraded sessions; the agents and networks with
the most trouble; a CSV of each section.

One ``GET /api/v1/trends`` per filter change draws everything (the monitor aggregates; no raw
rows reach the dashboard). Its answer is kept in the page (``trends-data``) so a download
gives the very numbers on screen without asking again. The numbers, graphs and CSV come from
``dashboard/trends_view.py``.

``#trends-status`` reads "Loading …" from a filter change until the data for it is drawn,
then "Showing …" with the period, filter and zone (the browser benchmark waits for it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from dashboard.api import ApiFailure, LoggedOut
from dashboard.errors import callback_error, clear_error
from dashboard.trends_view import (
    AGENT_COLUMNS,
    DAILY_HEIGHT_PX,
    HEAT_HEIGHT_PX,
    LINK_TYPES,
    MEASURES,
    NETWORK_COLUMNS,
    OS_NAMES,
    SECTIONS,
    WEEK_COLUMNS,
    WEEKS_HEIGHT_PX,
    Column,
    Filter,
    Record,
    agent_choices,
    agent_records,
    cell_text,
    daily_figure,
    day_records,
    fixed_choices,
    has_data,
    has_samples,
    heat_figure,
    heat_records,
    initial_filter,
    network_records,
    participant_choices,
    period_problem,
    section_csv,
    status_text,
    week_records,
    weeks_figure,
)
from dashboard.warnings_view import warnings_block

if TYPE_CHECKING:
    from dashboard.app import Context

HIDDEN = {"display": "none"}
GRAPH_CONFIG = {"displaylogo": False, "responsive": True}
FILTERS = ("therapist", "client", "agent", "link_type", "os")
GRAPHS = (*(f"trends-graph-{m.key}" for m in MEASURES), "trends-graph-weeks", "trends-graph-heatmap")
LOADING = "Loading …"
BUCKET_NOTE = (
    "Daily percentiles are read off histograms: within ±19 % of the value for round trip and jitter, "
    "±0.1 MOS, and for loss ±0.25 points below 1 %, ±0.5 up to 3 %, ±1–2 up to 10 %. A day without measurements is a gap."
)


def layout() -> html.Div:
    return html.Div(
        [
            html.H1("Trends"),
            html.P("How the network held up, as the agents measured it, and how sessions went. Days and hours are in your time zone.", className="muted"),
            filters(),
            html.P(LOADING, id="trends-status", className="trends-status", role="status"),
            html.Div(id="trends-notice"),
            html.Div(sections(), id="trends-content", style=HIDDEN),
            dcc.Store(id="trends-data"),
            dcc.Download(id="trends-download"),
        ],
        className="page",
        id="trends-page",
    )


def filters() -> html.Div:
    def labelled(text: str, control: Any) -> html.Div:
        return html.Div([html.Label(text, htmlFor=control.id), control], className="trends-filter")

    def dropdown(name: str, options: list[dict[str, str]]) -> dcc.Dropdown:
        return dcc.Dropdown(id=f"trends-{name}", options=options, value="all", clearable=False)

    return html.Div(
        [
            labelled(
                "Period (at most 90 days)",
                dcc.DatePickerRange(id="trends-period", display_format="YYYY-MM-DD", first_day_of_week=1, minimum_nights=0, updatemode="bothdates"),
            ),
            labelled("Therapist", dropdown("therapist", fixed_choices((), "All therapists"))),
            labelled("Client", dropdown("client", fixed_choices((), "All clients"))),
            labelled("Agent", dropdown("agent", fixed_choices((), "All agents"))),
            labelled("Link type", dropdown("link_type", fixed_choices(LINK_TYPES, "All link types"))),
            labelled("Operating system", dropdown("os", fixed_choices(OS_NAMES, "All systems"))),
        ],
        className="trends-filters",
    )


def heading(text: str, section: str) -> html.Div:
    return html.Div(
        [html.H2(text), html.Button("Download CSV", id=f"trends-csv-{section}", className="link-button", title=f"The {text.lower()} shown here, as a CSV file")],
        className="trends-heading",
    )


def sections() -> list[html.Section]:
    def graph(graph_id: str, height_px: int) -> dcc.Graph:
        # A responsive graph fills its box, so the box needs a height of its own (without
        # one, Dash gives it 100 % of a grid row that has none: the graphs would overlap).
        return dcc.Graph(id=graph_id, config=GRAPH_CONFIG, className="graph trends-graph", style={"height": f"{height_px}px"})

    return [
        html.Section(
            [
                heading("Daily network quality (p50 solid, p95 dashed)", "days"),
                html.Div(id="trends-days-note"),
                html.Div([graph(f"trends-graph-{m.key}", DAILY_HEIGHT_PX) for m in MEASURES], className="graph-grid"),
                html.P(BUCKET_NOTE, className="muted"),
            ],
            className="trends-section",
        ),
        html.Section(
            [heading("Sessions per week", "weeks"), html.Div(id="trends-weeks-note"), graph("trends-graph-weeks", WEEKS_HEIGHT_PX), html.Div(id="trends-weeks")],
            className="trends-section",
        ),
        html.Section(
            [
                heading("When sessions degrade", "heatmap"),
                html.P("Colour: the share of sessions degraded live; each cell reads degraded/started. Grey cells without a number: no session started then.", className="muted"),
                graph("trends-graph-heatmap", HEAT_HEIGHT_PX),
            ],
            className="trends-section",
        ),
        html.Section([heading("Agents with the most trouble", "agents"), html.Div(id="trends-agents")], className="trends-section"),
        html.Section([heading("Networks by trouble", "networks"), html.Div(id="trends-networks")], className="trends-section"),
        html.Section([heading("How well the warnings worked", "warnings"), html.Div(id="trends-warnings")], className="trends-section"),
    ]


def register(app: Dash, context: Context) -> None:
    filter_inputs = [Input("trends-period", "start_date"), Input("trends-period", "end_date"), *(Input(f"trends-{name}", "value") for name in FILTERS)]

    @app.callback(
        Output("trends-therapist", "options"),
        Output("trends-client", "options"),
        Output("trends-agent", "options"),
        Output("trends-period", "start_date"),
        Output("trends-period", "end_date"),
        *(Output(f"trends-{name}", "value") for name in FILTERS),
        Input("shell-tz", "data"),
        State("shell-url", "search"),
        State("trends-period", "start_date"),
    )
    def choices(browser_zone: str | None, search: str | None, already: str | None):  # noqa: ANN202
        """The filters' choices and first values, once the viewer's zone is known (it decides
        which day is today). Later zone updates change nothing: no second trends call."""
        if already is not None or (browser_zone is None and not context.fixed_zone):
            return (no_update,) * (5 + len(FILTERS))
        start = initial_filter(search, context.zone(browser_zone), context.clock())
        participants = context.call(context.api.participants)
        agents = context.call(context.api.agents)
        return (
            participant_choices(participants, agents, "therapist", start.therapist),
            participant_choices(participants, agents, "client", start.client),
            agent_choices(agents, start.agent),
            start.first,
            start.last,
            *(getattr(start, name) for name in FILTERS),
        )

    app.clientside_callback(
        f"function() {{ return {LOADING!r}; }}",
        Output("trends-status", "children", allow_duplicate=True),
        *filter_inputs,
        prevent_initial_call=True,
    )

    @app.callback(
        Output("trends-status", "children"),
        Output("trends-notice", "children"),
        Output("trends-content", "style"),
        *(Output(graph_id, "figure") for graph_id in GRAPHS),
        Output("trends-days-note", "children"),
        Output("trends-weeks-note", "children"),
        Output("trends-weeks", "children"),
        Output("trends-agents", "children"),
        Output("trends-networks", "children"),
        Output("trends-data", "data"),
        *filter_inputs,
        State("shell-tz", "data"),
    )
    def refresh(first: str | None, last: str | None, therapist: str, client: str, agent: str, link_type: str, os: str, browser_zone: str | None):  # noqa: ANN202
        if first is None and last is None:
            return (no_update,) * (9 + len(GRAPHS))  # the filters get their first values a moment later
        chosen = Filter(first, last, therapist, client, agent, link_type, os)
        zone = context.zone(browser_zone).key
        problem = period_problem(first, last)
        if problem is not None:
            return nothing_drawn("Not shown: " + problem, problem_notice(problem))
        try:
            answer = context.call(context.api.trends, chosen.query(zone))
        except LoggedOut:
            raise
        except ApiFailure as failure:
            callback_error(failure)  # the banner says why, as for every page
            return nothing_drawn("Not shown: the monitor did not answer (the reason is above).", None)
        clear_error()
        status = status_text(chosen, zone)
        if not has_data(answer):
            return nothing_drawn(status, empty_state(bool(chosen.chosen())))
        days, weeks = day_records(answer), week_records(answer)
        return (
            status,
            None,
            {},
            *(daily_figure(days, m) for m in MEASURES),
            weeks_figure(weeks),
            heat_figure(heat_records(answer)),
            None if has_samples(answer) else html.P("No measurements in this period: agents send one every few minutes once they are enrolled (see the Agents page).", className="muted"),
            sessions_note(chosen),
            table(WEEK_COLUMNS, weeks, "trends-weeks-table"),
            trouble_table(AGENT_COLUMNS, agent_records(answer), "trends-agents-table", bool(answer.get("worst_agents"))),
            trouble_table(NETWORK_COLUMNS, network_records(answer), "trends-networks-table", any(n["poor_ratio"] > 0 for n in answer.get("worst_networks", []))),
            {"answer": answer, "first": first, "last": last},
        )

    @app.callback(Output("trends-warnings", "children"), Input("trends-data", "data"))
    def warnings(shown: dict[str, Any] | None):  # noqa: ANN202
        """Drawn from the answer already on the page (dashboard/warnings_view.py)."""
        return warnings_block(shown["answer"]) if shown else None

    @app.callback(
        Output("trends-download", "data"),
        *(Input(f"trends-csv-{key}", "n_clicks") for key in SECTIONS),
        State("trends-data", "data"),
        prevent_initial_call=True,
    )
    def download(*args: Any):  # noqa: ANN202
        shown = args[-1]
        section = str(ctx.triggered_id).removeprefix("trends-csv-")
        if not shown or section not in SECTIONS:
            return no_update
        return {"content": section_csv(shown["answer"], section), "filename": f"trends-{section}-{shown['first']}-to-{shown['last']}.csv", "type": "text/csv"}


def nothing_drawn(status: str, notice: Any) -> tuple[Any, ...]:
    """``refresh``'s outputs when there is nothing to draw: the status and a notice, the
    sections hidden (graphs left as they were), nothing to download."""
    return (status, notice, HIDDEN, *[no_update] * len(GRAPHS), None, None, None, None, None, None)


def problem_notice(sentence: str) -> html.P:
    return html.P(sentence, className="banner banner-unknown", id="trends-problem")


def empty_state(filtered: bool) -> html.Div:
    lines = [
        html.P("Measurements come from the agents: each enrolled agent sends a background measurement every few minutes (see the Agents page)."),
        html.P("Sessions come from the practice calendar import (sessionready monitor sessions import, or POST /api/v1/sessions/import; see docs/sessions.md)."),
    ]
    if filtered:
        lines.append(html.P("A filter is set: choose “All” to see everyone."))
    return html.Div([html.H2("Nothing measured in this period"), *lines], className="empty-state", id="trends-empty")


def sessions_note(chosen: Filter) -> html.P | None:
    """Link type and OS filter measurements only: a session's two ends can differ."""
    if chosen.link_type == "all" and chosen.os == "all":
        return None
    return html.P("Link type and operating system filter the measurements only: sessions here are all those matching the other filters (a session's two ends may differ).", className="muted")


def table(columns: tuple[Column, ...], records: list[Record], table_id: str) -> html.Table:
    head = html.Thead(html.Tr([html.Th(c.title) for c in columns]))
    body = html.Tbody([html.Tr([html.Td(cell_text(c, r), **{"data-column": c.key}) for c in columns]) for r in records])
    return html.Table([head, body], className="numbers trends-table", id=table_id)


def trouble_table(columns: tuple[Column, ...], records: list[Record], table_id: str, trouble: bool) -> html.Div:
    """The table, or says there was no trouble; networks without trouble are still listed
    (their numbers compare link types)."""
    none = html.P("No trouble in this period.", className="muted", id=f"{table_id}-none") if not trouble else None
    return html.Div([none, table(columns, records, table_id) if records else None])
