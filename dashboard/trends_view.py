"""The Trends page's numbers, figures, tables and CSV, from one ``GET /api/v1/trends`` answer
(docs/trends.md). Pure: the answer (and the clock, where a default needs today) in, values out.

Every section is a list of *records* (one dict per row, values already rounded as shown) and
a tuple of ``Column``s. The graphs, the tables and the CSV files are all read off the same
records, so a download holds exactly the numbers the page shows, with the same rounding.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from dashboard.figures import END_STYLE
from dashboard.present import day_in, number
from sessionready.schema import LINK_TYPES, OS_NAMES
from sessionready.terms import ID_PATTERN

MAX_DAYS = 90  # the monitor refuses longer periods
DEFAULT_DAYS = 28
ALL = "all"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ID = re.compile(ID_PATTERN)
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

# Okabe-Ito, as the Live page's graphs: p50 blue and solid, p95 vermilion and dashed, so the
# two lines differ without colour too. Weeks: orange for "flagged", reddish purple and hatched
# for "degraded live".
P50_STYLE = END_STYLE["client"]
P95_STYLE = END_STYLE["therapist"]
FLAGGED_COLOUR = "#E69F00"
DEGRADED_COLOUR = "#CC79A7"
# Heat map: light to vermilion; cells without sessions are left empty (the grey background).
HEAT_SCALE = [[0.0, "#FFF7EC"], [0.5, "#F4A259"], [1.0, "#D55E00"]]
NO_SESSIONS_GREY = "#D9D9D9"
GRID = "#EBF0F8"
DAILY_HEIGHT_PX, WEEKS_HEIGHT_PX, HEAT_HEIGHT_PX = 230, 250, 310

Answer = dict[str, Any]
Record = dict[str, Any]
Figure = dict[str, Any]  # a Plotly figure as dcc.Graph takes it: {"data": [...], "layout": {...}}


def shown(value: float | None, digits: int, scale: float = 1.0) -> float | None:
    """A value as the page shows it: scaled to its unit and rounded to ``digits`` decimals
    (decimal rounding of the binary value, the same as ``f"{x:.{digits}f}"``)."""
    return None if value is None else float(f"{value * scale:.{digits}f}")


def share_pct(part: int, whole: int) -> float | None:
    """``part`` of ``whole`` in %, one decimal; None when there is nothing to share (no
    sessions is not 0 %)."""
    return None if whole == 0 else shown(part / whole, 1, 100.0)


def _layout(title: str, height_px: int, x_axis: dict[str, Any], y_axis: dict[str, Any]) -> dict[str, Any]:
    """A plain layout in the look of the Live page's graphs (Plotly's "plotly_white"), as a
    dict: the six graphs as ``plotly.graph_objects`` figures, validated, took about 1 s on the
    project's 2-core machine under load; as dicts 10-25 ms (a test validates them instead)."""
    axis = {"gridcolor": GRID, "linecolor": GRID, "zerolinecolor": GRID}  # no automargin: it redraws until margins settle
    return {
        "title": {"text": title, "font": {"size": 13}, "x": 0.01, "xanchor": "left"},
        "height": height_px,
        "margin": {"l": 52, "r": 10, "t": 34, "b": 28},
        "legend": {"orientation": "h", "y": -0.22, "font": {"size": 11}},
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        "font": {"color": "#2a3f5f"},
        "xaxis": {**axis, **x_axis},
        "yaxis": {**axis, **y_axis},
    }


# --- columns, tables and CSV ----------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of a section: its title on the page, its CSV header (unit in the name) and
    how a value reads (``unit`` and ``digits`` for measurements; counts and ids as they are)."""

    title: str
    key: str  # the record's key and the CSV header
    unit: str = ""
    digits: int = 0


def cell_text(column: Column, record: Record) -> str:
    """A value as the page's tables show it, with its unit; ``—`` when there is none."""
    value = record[column.key]
    if value is None:
        return "—"
    if column.unit:
        return number(value, column.unit, column.digits)
    return str(value)


def csv_value(column: Column, record: Record) -> str:
    """A value as the CSV holds it: the shown number without its unit; empty when none."""
    value = record[column.key]
    if value is None:
        return ""
    if column.unit:
        return f"{value:.{column.digits}f}"
    return str(value)


def csv_text(columns: Iterable[Column], records: Iterable[Record]) -> str:
    columns = tuple(columns)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.key for c in columns])
    for record in records:
        writer.writerow([csv_value(c, record) for c in columns])
    return out.getvalue()


# --- daily percentiles -----------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """A daily measure: its p50/p95 fields in the answer, the factor to its shown unit (loss is
    a ratio in the answer, % on the page) and the decimals it is shown with."""

    key: str
    label: str
    unit: str  # ms, %, MOS
    p50_field: str
    p95_field: str
    digits: int
    scale: float = 1.0

    @property
    def csv_unit(self) -> str:
        return {"ms": "_ms", "%": "_pct", "MOS": ""}[self.unit]

    def column(self, q: str) -> Column:
        return Column(f"{self.label} p{q}", f"{self.key}_p{q}{self.csv_unit}", self.unit, self.digits)


MEASURES = (
    Measure("rtt", "Round trip", "ms", "rtt_p50_ms", "rtt_p95_ms", 1),
    Measure("jitter", "Jitter (worse direction)", "ms", "jitter_p50_ms", "jitter_p95_ms", 2),
    Measure("loss", "Packet loss (worse direction)", "%", "loss_p50", "loss_p95", 2, 100.0),
    Measure("mos", "Sound quality", "MOS", "mos_p50", "mos_p95", 2),
)
DAY_COLUMNS = (Column("Day", "day"), Column("Samples", "samples"), *(m.column(q) for m in MEASURES for q in ("50", "95")))


def day_records(answer: Answer) -> list[Record]:
    """Every day of the period with its percentiles as shown; None on a day without samples."""
    records = []
    for day in answer.get("days", []):
        record: Record = {"day": day["day"], "samples": int(day["samples"])}
        for measure in MEASURES:
            record[measure.column("50").key] = shown(day.get(measure.p50_field), measure.digits, measure.scale)
            record[measure.column("95").key] = shown(day.get(measure.p95_field), measure.digits, measure.scale)
        records.append(record)
    return records


def daily_figure(records: list[Record], measure: Measure) -> Figure:
    """p50 (solid) and p95 (dashed) per day; a day without samples is a gap, not a zero."""
    days = [r["day"] for r in records]
    traces = [
        {
            "type": "scatter",
            "x": days,
            "y": [r[measure.column(q).key] for r in records],
            "name": f"p{q}",
            "mode": "lines+markers",
            "marker": {"size": 5, "color": style["color"]},
            "line": {"color": style["color"], "dash": style["dash"], "width": 2},
            "connectgaps": False,
            "hovertemplate": f"%{{x}}: %{{y:.{measure.digits}f}} {measure.unit}<extra>p{q}</extra>",
        }
        for q, style in (("50", P50_STYLE), ("95", P95_STYLE))
    ]
    unit = "MOS, out of 5" if measure.unit == "MOS" else measure.unit
    y_axis = {"range": [1, 5]} if measure.unit == "MOS" else {"rangemode": "tozero"}
    return {"data": traces, "layout": _layout(f"{measure.label} ({unit})", DAILY_HEIGHT_PX, {"type": "date", "tickformat": "%d %b"}, y_axis)}


# --- weeks -----------------------------------------------------------------------------------

WEEK_COLUMNS = (
    Column("Week of (Monday)", "week_start"),
    Column("Sessions", "sessions"),
    Column("Flagged before start", "flagged"),
    Column("Flagged share", "flagged_pct", "%", 1),
    Column("Degraded live", "degraded_live"),
    Column("Degraded share", "degraded_live_pct", "%", 1),
)


def week_records(answer: Answer) -> list[Record]:
    """Sessions per week with the shares flagged and degraded; shares are None in a week
    without sessions."""
    return [
        {
            "week_start": week["week_start"],
            "sessions": int(week["sessions"]),
            "flagged": int(week["flagged"]),
            "flagged_pct": share_pct(int(week["flagged"]), int(week["sessions"])),
            "degraded_live": int(week["degraded_live"]),
            "degraded_live_pct": share_pct(int(week["degraded_live"]), int(week["sessions"])),
        }
        for week in answer.get("weeks", [])
    ]


def weeks_figure(records: list[Record]) -> Figure:
    """Two bars a week (flagged, degraded live) in %; the counts are in the hover and the
    table. A week without sessions has no bar."""
    weeks = [r["week_start"] for r in records]
    traces = [
        {
            "type": "bar",
            "x": weeks,
            "y": [r[share] for r in records],
            "name": name,
            "marker": {"color": colour, "pattern": {"shape": pattern}},
            "customdata": [[r[count], r["sessions"]] for r in records],
            "hovertemplate": f"Week of %{{x}}: %{{y:.1f}} % (%{{customdata[0]}} of %{{customdata[1]}} sessions)<extra>{name}</extra>",
        }
        for name, share, count, colour, pattern in (
            ("Flagged before start", "flagged_pct", "flagged", FLAGGED_COLOUR, ""),
            ("Degraded live", "degraded_live_pct", "degraded_live", DEGRADED_COLOUR, "/"),
        )
    ]
    layout = _layout("Sessions flagged before start and degraded live (% of the week's sessions)", WEEKS_HEIGHT_PX, {"type": "category"}, {"range": [0, 100], "ticksuffix": " %"})
    return {"data": traces, "layout": {**layout, "barmode": "group"}}


# --- the heat map ----------------------------------------------------------------------------

HEAT_COLUMNS = (
    Column("Weekday", "weekday"),
    Column("Hour (local)", "hour_local"),
    Column("Sessions", "sessions"),
    Column("Degraded live", "degraded_live"),
    Column("Degraded share", "degraded_live_pct", "%", 1),
)


def heat_records(answer: Answer) -> list[Record]:
    """All 7 × 24 cells, Monday 00h first: sessions that started then (viewer's zone), how
    many degraded live, and that share (None without sessions)."""
    cells = {(int(c["weekday"]), int(c["hour"])): c for c in answer.get("heatmap", [])}
    records = []
    for weekday in range(7):
        for hour in range(24):
            cell = cells.get((weekday, hour), {"sessions": 0, "degraded": 0})
            sessions, degraded = int(cell["sessions"]), int(cell["degraded"])
            records.append({"weekday": WEEKDAYS[weekday], "hour_local": hour, "sessions": sessions, "degraded_live": degraded, "degraded_live_pct": share_pct(degraded, sessions)})
    return records


def heat_figure(records: list[Record]) -> Figure:
    """Share of sessions degraded live per weekday × hour; each cell with sessions also reads
    "degraded/sessions", so an empty cell (no text, grey) differs from 0 % (``0/3``)."""
    rows = [records[w * 24 : (w + 1) * 24] for w in range(7)]
    heat = {
        "type": "heatmap",
        "z": [[r["degraded_live_pct"] for r in row] for row in rows],
        "x": [f"{h:02d}" for h in range(24)],
        "y": list(WEEKDAYS),
        "text": [[f"{r['degraded_live']}/{r['sessions']}" if r["sessions"] else "" for r in row] for row in rows],
        "customdata": [[[r["degraded_live"], r["sessions"]] for r in row] for row in rows],
        "texttemplate": "%{text}",
        "textfont": {"size": 10},
        "colorscale": HEAT_SCALE,
        "zmin": 0,
        "zmax": 100,
        "xgap": 1,
        "ygap": 1,
        "hoverongaps": False,
        "colorbar": {"title": {"text": "degraded"}, "ticksuffix": " %"},
        "hovertemplate": "%{y} %{x}:00: %{customdata[0]} of %{customdata[1]} sessions degraded (%{z:.1f} %)<extra></extra>",
    }
    x_axis = {"type": "category", "title": {"text": "hour (your time zone)", "font": {"size": 11}}}
    layout = _layout("Share of sessions degraded live, by weekday and hour the session started", HEAT_HEIGHT_PX, x_axis, {"type": "category", "autorange": "reversed"})
    return {"data": [heat], "layout": {**layout, "plot_bgcolor": NO_SESSIONS_GREY, "showlegend": False}}


# --- worst agents and networks ---------------------------------------------------------------

AGENT_COLUMNS = (
    Column("Agent", "agent_id"),
    Column("Participant", "participant_id"),
    Column("Link type", "link_type"),
    Column("Samples", "samples"),
    Column("Poor samples", "poor_share_pct", "%", 1),
    Column("Mean loss", "loss_mean_pct", "%", 2),
    Column("Median MOS", "mos_p50", "MOS", 2),
    Column("Degraded sessions", "degraded_sessions"),
)
NETWORK_COLUMNS = (
    Column("Link type", "link_type"),
    Column("Agents", "agents"),
    Column("Samples", "samples"),
    Column("Poor samples", "poor_share_pct", "%", 1),
    Column("Mean loss", "loss_mean_pct", "%", 2),
    Column("Median MOS", "mos_p50", "MOS", 2),
)


def _trouble(row: dict[str, Any]) -> Record:
    return {
        "samples": int(row["samples"]),
        "poor_share_pct": shown(row["poor_ratio"], 1, 100.0),
        "loss_mean_pct": shown(row.get("loss_mean"), 2, 100.0),
        "mos_p50": shown(row.get("mos_p50"), 2),
    }


def agent_records(answer: Answer) -> list[Record]:
    """The agents with trouble, most first (the monitor's order)."""
    return [
        {"agent_id": a["agent_id"], "participant_id": a["participant_id"], "link_type": a["link_type"], **_trouble(a), "degraded_sessions": int(a["degraded_sessions"])}
        for a in answer.get("worst_agents", [])
    ]


def network_records(answer: Answer) -> list[Record]:
    """Every link type with samples, most trouble first (the monitor's order)."""
    return [{"link_type": n["link_type"], "agents": int(n["agents"]), **_trouble(n)} for n in answer.get("worst_networks", [])]


# --- how well the warnings worked ---------------------------------------------------------------

# The CSV of "How well the warnings worked": one file, every table of the section, each row
# saying which table it belongs to. precision = flagged_degraded / flagged, recall =
# flagged_degraded / degraded; empty where there is nothing to divide by.
WARNING_COLUMNS = (
    Column("Table", "table"),
    Column("Week of (Monday)", "week_start"),
    Column("End", "end"),
    Column("Cause", "cause"),
    Column("Sessions", "sessions"),
    Column("Flagged", "flagged"),
    Column("Degraded", "degraded"),
    Column("Flagged and degraded", "flagged_degraded"),
    Column("Precision", "precision", "ratio", 3),
    Column("Recall", "recall", "ratio", 3),
)


def _ratio(part: int, whole: int | None) -> float | None:
    return None if not whole else shown(part / whole, 3)


def warning_records(answer: Answer) -> list[Record]:
    """The section's rows: the period's total, each week, each end, each cause (flag causes:
    sessions flagged for it and of those degraded; live causes: sessions degraded by it and of
    those flagged beforehand)."""
    accuracy = answer.get("warnings") or {}
    if not accuracy:
        return []
    blank = {c.key: None for c in WARNING_COLUMNS}

    def counted(table: str, row: dict[str, Any], **keys: Any) -> Record:
        flagged, degraded, both = int(row["flagged"]), int(row["degraded"]), int(row["flagged_degraded"])
        return {**blank, **keys, "table": table, "sessions": int(row["sessions"]), "flagged": flagged, "degraded": degraded,
                "flagged_degraded": both, "precision": _ratio(both, flagged), "recall": _ratio(both, degraded)}  # fmt: skip

    records = [counted("total", accuracy)]
    records += [counted("week", w, week_start=w["week_start"]) for w in accuracy.get("weeks", [])]
    records += [counted("end", e, end=e["end"]) for e in accuracy.get("by_end", [])]
    for c in accuracy.get("by_cause", []):
        n, hits = int(c["sessions"]), int(c["hits"])
        if c["side"] == "flag":
            records.append({**blank, "table": "flag_cause", "end": c["end"], "cause": c["cause"], "flagged": n, "flagged_degraded": hits, "precision": _ratio(hits, n)})
        else:
            records.append({**blank, "table": "live_cause", "end": c["end"], "cause": c["cause"], "degraded": n, "flagged_degraded": hits, "recall": _ratio(hits, n)})
    return records


@dataclass(frozen=True)
class Section:
    key: str
    columns: tuple[Column, ...]
    records: Callable[[Answer], list[Record]]


SECTIONS = {
    s.key: s
    for s in (
        Section("days", DAY_COLUMNS, day_records),
        Section("weeks", WEEK_COLUMNS, week_records),
        Section("heatmap", HEAT_COLUMNS, heat_records),
        Section("agents", AGENT_COLUMNS, agent_records),
        Section("networks", NETWORK_COLUMNS, network_records),
        Section("warnings", WARNING_COLUMNS, warning_records),
    )
}


def section_csv(answer: Answer, key: str) -> str:
    section = SECTIONS[key]
    return csv_text(section.columns, section.records(answer))


def has_data(answer: Answer) -> bool:
    """Anything to show: samples on some day or sessions in some week."""
    return has_samples(answer) or any(w["sessions"] for w in answer.get("weeks", []))


def has_samples(answer: Answer) -> bool:
    return any(d["samples"] for d in answer.get("days", []))


# --- the filter ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """What the page asks for: a period of whole days in the viewer's zone and, for each
    filter, one value or ``ALL``."""

    first: str | None  # YYYY-MM-DD
    last: str | None
    therapist: str = ALL
    client: str = ALL
    agent: str = ALL
    link_type: str = ALL
    os: str = ALL

    def chosen(self) -> dict[str, str]:
        picked = {"therapist": self.therapist, "client": self.client, "agent": self.agent, "link_type": self.link_type, "os": self.os}
        return {name: value for name, value in picked.items() if value and value != ALL}

    def query(self, zone: str) -> dict[str, str]:
        """The parameters of ``GET /api/v1/trends`` for this filter."""
        return {"from": str(self.first), "to": str(self.last), "tz": zone, **self.chosen()}

    def describe(self) -> str:
        names = {"therapist": "therapist", "client": "client", "agent": "agent", "link_type": "link type", "os": "OS"}
        chosen = self.chosen()
        return ", ".join(f"{names[k]} {v}" for k, v in chosen.items()) if chosen else "all agents and networks"


def default_period(zone: ZoneInfo, now_s: float) -> tuple[str, str]:
    """The last ``DEFAULT_DAYS`` days up to today, in the viewer's zone."""
    last = date.fromisoformat(day_in(zone, now_s))
    return (last - timedelta(days=DEFAULT_DAYS - 1)).isoformat(), last.isoformat()


def _day(text: str | None) -> date | None:
    if text is None or not DAY.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def period_days(first: str | None, last: str | None) -> int | None:
    start, end = _day(first), _day(last)
    return None if start is None or end is None else (end - start).days + 1


def period_problem(first: str | None, last: str | None) -> str | None:
    """Why a period cannot be shown, in a sentence; None if it can."""
    days = period_days(first, last)
    if days is None:
        return "Choose the first and the last day of the period."
    if days < 1:
        return "The last day is before the first: choose the first day, then the last."
    if days > MAX_DAYS:
        return f"Choose at most {MAX_DAYS} days: {first} to {last} is {days} days. Nothing was asked from the monitor."
    return None


def initial_filter(search: str | None, zone: ZoneInfo, now_s: float) -> Filter:
    """The filter a page opens with: the default period and "all", or what a link to the page
    says (``/trends?from=2026-01-01&to=2026-03-31&link_type=wifi``; parameters as the API's).
    A parameter that makes no sense is left at its default."""
    params = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
    first, last = default_period(zone, now_s)
    last = params["to"] if _day(params.get("to")) else last
    first = params["from"] if _day(params.get("from")) else (date.fromisoformat(last) - timedelta(days=DEFAULT_DAYS - 1)).isoformat()
    chosen: dict[str, str] = {}
    for name in ("therapist", "client", "agent"):
        if ID.fullmatch(params.get(name, "")):
            chosen[name] = params[name]
    for name, allowed in (("link_type", LINK_TYPES), ("os", OS_NAMES)):
        if params.get(name) in allowed:
            chosen[name] = params[name]
    return replace(Filter(first, last), **chosen)


def status_text(chosen: Filter, zone: str) -> str:
    """``#trends-status`` once the data for ``chosen`` is drawn (a signal for people and for
    the browser benchmark alike)."""
    return f"Showing {chosen.first} to {chosen.last} ({period_days(chosen.first, chosen.last)} days) · {chosen.describe()} · times in {zone}"


# --- choices for the filters -----------------------------------------------------------------


def participant_choices(participants: list[dict[str, Any]], agents: list[dict[str, Any]], role: str, selected: str = ALL) -> list[dict[str, str]]:
    """Everyone known in ``role``: from sessions (participants) and from enrolled agents, plus
    the one already selected (a link may name someone not listed yet)."""
    ids = {p["participant_id"] for p in participants if p.get("role") == role}
    ids |= {a["participant_id"] for a in agents if a.get("role") == role}
    if selected != ALL:
        ids.add(selected)
    return [{"label": f"All {role}s", "value": ALL}, *({"label": i, "value": i} for i in sorted(ids))]


def agent_choices(agents: list[dict[str, Any]], selected: str = ALL) -> list[dict[str, str]]:
    listed = sorted(agents, key=lambda a: (a["participant_id"], a["agent_id"]))
    choices = [{"label": "All agents", "value": ALL}]
    choices += [{"label": f"{a['agent_id']} · {a['participant_id']} ({a['role']}{', revoked' if a.get('revoked') else ''})", "value": a["agent_id"]} for a in listed]
    if selected != ALL and selected not in {a["agent_id"] for a in agents}:
        choices.append({"label": selected, "value": selected})
    return choices


def fixed_choices(values: tuple[str, ...], all_label: str) -> list[dict[str, str]]:
    return [{"label": all_label, "value": ALL}, *({"label": v, "value": v} for v in values)]
