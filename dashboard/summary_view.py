"""The session page's "How the session went" (issue 17, docs/summary.md): the monitor's summary
in plain words for a therapist, with its stretches of trouble at the viewer's own clock times,
and one small figure of both ends' sound quality (MOS) over the session.

It is shown once the session has ended, at the top of the page (while live, the page's own
banner and graphs say how it is going). The builders are pure (answer in, components and
figures out); ``register`` adds the one thin callback that fetches the summary, on its own
slow interval: a session's end shows within half a minute, and a finished summary never changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboard.api import ApiFailure
from dashboard.figures import END_STYLE, ENDS
from dashboard.present import clock_time, span

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from dashboard.app import Context

REFRESH_MS = 30_000
FIGURE_HEIGHT_PX = 200
NOTE_TITLE = {"weak_wifi": "Wi-Fi", "high_cpu": "Computer", "noisy_room": "Room"}


def section() -> html.Div:
    """The page's place for the summary (filled by the callback)."""
    return html.Div([dcc.Interval(id="session-summary-interval", interval=REFRESH_MS), html.Div(id="session-summary")])


def stretch_line(stretch: dict[str, Any], zone: ZoneInfo) -> str:
    """``10:14–10:16 (2 min): The client's connection lost up to 12 % of packets: ...``
    (``10:14 (40 s): ...`` within one minute)."""
    start, end = float(stretch["start_unix"]), float(stretch["end_unix"])
    first, last = clock_time(start, zone), clock_time(end, zone)
    when = first if first == last else f"{first}–{last}"  # a stretch within one minute has one time
    return f"{when} ({span(end - start)}): {stretch['words']}"


def mos_figure(summary: dict[str, Any], zone: ZoneInfo) -> go.Figure:
    """Both ends' mean MOS per bucket over the session, at the viewer's clock times; the
    stretches of trouble shaded."""
    fig = go.Figure()
    start = float(summary["live_from_unix"])
    bucket = float(summary["bucket_s"])
    points = summary.get("mos_series", [])
    times = [datetime.fromtimestamp(start + float(p["offset_s"]) + bucket / 2, zone) for p in points]
    for end in ENDS:
        style = END_STYLE[end]
        fig.add_trace(
            go.Scatter(
                x=times,
                y=[p.get(end) for p in points],
                name=end.capitalize(),
                mode="lines",
                line={"color": style["color"], "dash": style["dash"], "width": 2},
                connectgaps=False,
                hovertemplate="%{y:.2f} MOS<extra>" + end + "</extra>",
            )
        )
    for stretch in summary.get("stretches", []):
        fig.add_vrect(
            x0=datetime.fromtimestamp(float(stretch["start_unix"]), zone),
            x1=datetime.fromtimestamp(max(float(stretch["end_unix"]), float(stretch["start_unix"]) + 1), zone),
            fillcolor=END_STYLE[stretch["end"]]["color"],
            opacity=0.12,
            line_width=0,
        )
    fig.update_layout(
        title={"text": "Sound quality over the session (MOS, 4 or more is good)", "font": {"size": 13}},
        margin={"l": 40, "r": 10, "t": 34, "b": 28},
        height=FIGURE_HEIGHT_PX,
        showlegend=True,
        legend={"orientation": "h", "y": -0.3, "font": {"size": 11}},
        template="plotly_white",
    )
    fig.update_yaxes(range=[1, 5])
    return fig


def summary_block(summary: dict[str, Any], zone: ZoneInfo) -> html.Section:
    final = bool(summary.get("final"))
    stretches = summary.get("stretches", [])
    notes = summary.get("notes", [])
    parts: list[Any] = [
        html.H2("How the session went" if final else "How the session is going so far"),
        html.P(summary["headline"], id="session-summary-headline", className="summary-headline"),
    ]
    if stretches:
        parts.append(html.Ul([html.Li(stretch_line(s, zone), **{"data-end": s["end"], "data-cause": s["cause"]}) for s in stretches], id="session-summary-stretches"))
    if notes:
        parts.append(html.Ul([html.Li(n["words"], **{"data-end": n["end"], "data-note": n["note"]}) for n in notes], id="session-summary-notes"))
    parts.append(html.P(summary["foresight_words"], id="session-summary-foresight", className="muted"))
    if summary.get("measured"):
        parts.append(
            dcc.Graph(
                id="session-summary-mos",
                figure=mos_figure(summary, zone),
                config={"displaylogo": False, "responsive": True},
                className="graph",
                style={"height": f"{FIGURE_HEIGHT_PX}px"},
            )
        )
    return html.Section(parts, id="session-summary-block", className="summary")


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("session-summary", "children"),
        Input("session-summary-interval", "n_intervals"),
        Input("shell-tz", "data"),
        State("session-id", "data"),
    )
    def refresh(_: int | None, browser_zone: str | None, session_id: str):  # noqa: ANN202
        if browser_zone is None and not context.fixed_zone:
            return no_update
        try:
            summary = context.call(context.api.session_summary, session_id)
        except ApiFailure as failure:
            if failure.status not in (404, 405, 409):
                raise
            return None  # not live yet, not yours, or a monitor without summaries: nothing to say
        if not summary.get("final"):
            return None  # still live: the page's banner and graphs tell that
        return summary_block(summary, context.zone(browser_zone))
