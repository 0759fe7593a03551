"""The Live page's numbers and graphs, built from a session's live samples
(``GET /api/v1/sessions/{id}/samples``). Pure: samples and a zone in, values and figures out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import plotly.graph_objects as go

from dashboard.present import number
from sessionready.terms import PARTICIPANT_ROLES

ENDS = PARTICIPANT_ROLES
# Okabe-Ito blue and vermilion: told apart with every common colour-vision deficiency; the
# therapist's line is also dashed, so the two ends differ without colour too.
GRAPH_HEIGHT_PX = 190
END_STYLE = {"client": {"color": "#0072B2", "dash": "solid"}, "therapist": {"color": "#D55E00", "dash": "dash"}}

Sample = dict[str, Any]


def _part(sample: Sample, name: str) -> dict[str, Any]:
    return sample.get(name) or {}


def _worse(a: float | None, b: float | None) -> float | None:
    values = [v for v in (a, b) if v is not None]
    return max(values) if values else None


def _pct(ratio: float | None) -> float | None:
    return None if ratio is None else ratio * 100


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str  # the unit of ``value``: ms, %, Mbit/s, dBFS, dB, MOS
    value: Callable[[Sample], float | None]
    digits: int = 0


METRICS: tuple[Metric, ...] = (
    Metric("mos", "Sound quality (MOS)", "MOS", lambda s: _part(s, "network").get("mos"), 2),
    Metric("rtt", "Round trip", "ms", lambda s: _part(s, "network").get("rtt_p50_ms")),
    Metric("jitter", "Jitter (worse direction)", "ms", lambda s: _worse(_part(s, "network").get("jitter_up_ms"), _part(s, "network").get("jitter_down_ms")), 1),
    Metric("loss", "Packet loss (worse direction)", "%", lambda s: _pct(_worse(_part(s, "network").get("loss_up"), _part(s, "network").get("loss_down"))), 1),
    Metric("traffic_up", "Upload used", "Mbit/s", lambda s: _part(s, "traffic_mbps").get("up"), 2),
    Metric("traffic_down", "Download used", "Mbit/s", lambda s: _part(s, "traffic_mbps").get("down"), 2),
    Metric("cpu", "Processor busy", "%", lambda s: _part(s, "machine").get("cpu_pct")),
    Metric("battery", "Battery", "%", lambda s: _part(s, "machine").get("battery_pct")),
    Metric("noise", "Room noise floor", "dBFS", lambda s: _part(s, "room").get("noise_floor_dbfs")),
    Metric("snr", "Voice above noise (SNR)", "dB", lambda s: _part(s, "room").get("snr_db")),
)


@dataclass(frozen=True)
class Series:
    times: tuple[datetime, ...]  # the monitor's receive time, in the viewer's zone
    values: tuple[float | None, ...]


def by_end(samples: list[dict[str, Any]]) -> dict[str, list[tuple[float, Sample]]]:
    """The samples of each end, oldest first, as (received_at unix s, sample)."""
    ends: dict[str, list[tuple[float, Sample]]] = {end: [] for end in ENDS}
    for item in samples:
        if item.get("end") in ends:
            ends[item["end"]].append((float(item["received_at"]), item["sample"]))
    for rows in ends.values():
        rows.sort(key=lambda row: row[0])
    return ends


def series(samples: list[dict[str, Any]], metric: Metric, zone: ZoneInfo) -> dict[str, Series]:
    return {
        end: Series(tuple(datetime.fromtimestamp(at, zone) for at, _ in rows), tuple(metric.value(sample) for _, sample in rows))
        for end, rows in by_end(samples).items()
    }


def latest(samples: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """The newest value of every metric per end, as text with its unit (``—`` when unknown)."""
    out: dict[str, dict[str, str]] = {}
    for end, rows in by_end(samples).items():
        newest = rows[-1][1] if rows else {}
        out[end] = {m.key: number(m.value(newest), m.unit, m.digits) if newest else "—" for m in METRICS}
        machine = _part(newest, "machine")
        if machine.get("battery_pct") is not None and machine.get("battery_charging"):
            out[end]["battery"] += " (charging)"
        if _part(newest, "room").get("calibrated") and out[end]["noise"] != "—":
            out[end]["noise"] = out[end]["noise"].replace("dBFS", "dB(A)")
    return out


def last_seen(samples: list[dict[str, Any]]) -> dict[str, float | None]:
    """When each end's newest live sample arrived (unix s), None if it sent none."""
    return {end: (rows[-1][0] if rows else None) for end, rows in by_end(samples).items()}


def figure(samples: list[dict[str, Any]], metric: Metric, zone: ZoneInfo) -> go.Figure:
    """One metric over time, a line per end; gaps where an end measured nothing."""
    fig = go.Figure()
    for end, data in series(samples, metric, zone).items():
        style = END_STYLE[end]
        fig.add_trace(
            go.Scatter(
                x=list(data.times),
                y=list(data.values),
                name=end.capitalize(),
                mode="lines+markers",
                marker={"size": 4},
                line={"color": style["color"], "dash": style["dash"], "width": 2},
                connectgaps=False,
                hovertemplate=f"%{{y:.{metric.digits}f}} {metric.unit}<extra>{end}</extra>",
            )
        )
    fig.update_layout(
        title={"text": f"{metric.label} ({metric.unit})", "font": {"size": 13}},
        margin={"l": 40, "r": 10, "t": 34, "b": 28},
        height=GRAPH_HEIGHT_PX,
        showlegend=True,
        legend={"orientation": "h", "y": -0.25, "font": {"size": 11}},
        template="plotly_white",
        uirevision=metric.key,  # keep a viewer's zoom across the 2-second refreshes
    )
    if metric.unit == "MOS":
        fig.update_yaxes(range=[1, 5])
    elif metric.unit == "%":
        fig.update_yaxes(rangemode="tozero")
    return fig
