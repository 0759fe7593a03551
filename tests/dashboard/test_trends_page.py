"""The Trends page: its pure parts (dashboard/trends_view.py) against a handmade answer, and the
page in a real Chromium against a real monitor fed a known data set through its ingest API.
Ground truth for the page is the monitor's own ``GET /api/v1/trends`` for the same query, and
the values posted (within the histogram's documented bucket error, docs/trends.md)."""

from __future__ import annotations

import csv
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from dashboard.trends_view import (
    AGENT_COLUMNS,
    MEASURES,
    Filter,
    agent_choices,
    agent_records,
    cell_text,
    daily_figure,
    day_records,
    default_period,
    has_data,
    heat_figure,
    heat_records,
    initial_filter,
    participant_choices,
    period_problem,
    section_csv,
    status_text,
    week_records,
    weeks_figure,
)
from sessionready.typed import encode, rfc3339
from tests.conftest import make_sample, wait_for
from tests.dashboard.conftest import MINUTE, Practice, log_in, no_console_errors, open_dashboard, risk_state

BERLIN = ZoneInfo("Europe/Berlin")


def day(on: str, samples: int, rtt: float | None = None, jitter: float | None = None, loss: float | None = None, mos: float | None = None) -> dict:
    """One day of an answer; p95 a fixed step above p50 so both lines are checkable."""
    return {
        "day": on, "samples": samples,
        "rtt_p50_ms": rtt, "rtt_p95_ms": None if rtt is None else rtt * 2,
        "jitter_p50_ms": jitter, "jitter_p95_ms": None if jitter is None else jitter + 1,
        "loss_p50": loss, "loss_p95": None if loss is None else loss + 0.01,
        "mos_p50": mos, "mos_p95": None if mos is None else mos - 0.5,
    }  # fmt: skip


def handmade() -> dict:
    cells = [{"weekday": d, "hour": h, "sessions": 0, "degraded": 0} for d in range(7) for h in range(24)]
    cells[2 * 24 + 14] = {"weekday": 2, "hour": 14, "sessions": 3, "degraded": 1}  # Wed 14h
    cells[4 * 24 + 9] = {"weekday": 4, "hour": 9, "sessions": 2, "degraded": 0}  # Fri 09h
    return {
        "tz": "Europe/Berlin",
        "days": [
            day("2026-03-02", 40, 23.456789, 1.23456, 0.0123456, 4.31234),
            day("2026-03-03", 0),
            day("2026-03-04", 12, 150.04, 0.004, 0.0, 3.25),
        ],
        "weeks": [
            {"week_start": "2026-02-23", "sessions": 0, "flagged": 0, "degraded_live": 0},
            {"week_start": "2026-03-02", "sessions": 3, "flagged": 1, "degraded_live": 2},
        ],
        "heatmap": cells,
        "worst_agents": [
            {"agent_id": "a1b2c3d4e5f6", "participant_id": "c-1", "link_type": "cellular", "samples": 12, "poor_ratio": 0.333333, "loss_mean": 0.0456789, "mos_p50": 3.24567, "degraded_sessions": 1},
        ],
        "worst_networks": [
            {"link_type": "cellular", "agents": 1, "samples": 12, "poor_ratio": 0.333333, "loss_mean": 0.0456789, "mos_p50": 3.24567},
            {"link_type": "wired", "agents": 2, "samples": 40, "poor_ratio": 0.0, "loss_mean": None, "mos_p50": 4.31},
        ],
    }


# --- the pure parts --------------------------------------------------------------------------


def test_daily_series_are_rounded_as_shown_with_gaps_for_days_without_samples() -> None:
    records = day_records(handmade())
    assert [r["day"] for r in records] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert [r["rtt_p50_ms"] for r in records] == [23.5, None, 150.0]
    assert [r["jitter_p50_ms"] for r in records] == [1.23, None, 0.0]
    assert [r["loss_p50_pct"] for r in records] == [1.23, None, 0.0]  # a ratio in the answer, % here
    assert [r["loss_p95_pct"] for r in records] == [2.23, None, 1.0]
    assert [r["mos_p50"] for r in records] == [4.31, None, 3.25]

    rtt = daily_figure(records, MEASURES[0])
    p50, p95 = rtt["data"]
    assert (p50["name"], p95["name"]) == ("p50", "p95") and p50["x"] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert p50["y"] == [23.5, None, 150.0] and p95["y"] == [46.9, None, 300.1]
    assert p50["line"]["dash"] == "solid" and p95["line"]["dash"] == "dash" and p50["line"]["color"] != p95["line"]["color"]
    assert p50["connectgaps"] is False and "lines" in p50["mode"] and "markers" in p50["mode"]  # a lone day still shows
    assert "(ms)" in rtt["layout"]["title"]["text"]
    assert daily_figure(records, MEASURES[3])["layout"]["yaxis"]["range"] == [1, 5]


def test_weeks_without_sessions_have_no_bar_rather_than_zero() -> None:
    records = week_records(handmade())
    assert records[0] == {"week_start": "2026-02-23", "sessions": 0, "flagged": 0, "flagged_pct": None, "degraded_live": 0, "degraded_live_pct": None}
    assert records[1]["flagged_pct"] == 33.3 and records[1]["degraded_live_pct"] == 66.7
    flagged, degraded = weeks_figure(records)["data"]
    assert flagged["y"] == [None, 33.3] and degraded["y"] == [None, 66.7]
    assert degraded["customdata"] == [[0, 0], [2, 3]]  # counts in the hover
    assert flagged["marker"]["color"] != degraded["marker"]["color"] and degraded["marker"]["pattern"]["shape"] == "/"


def test_heat_map_tells_cells_without_sessions_from_zero_percent() -> None:
    records = heat_records(handmade())
    assert len(records) == 168 and records[0]["weekday"] == "Mon" and records[0]["hour_local"] == 0
    heat = heat_figure(records)["data"][0]
    assert heat["z"][2][14] == 33.3 and heat["text"][2][14] == "1/3"
    assert heat["z"][4][9] == 0.0 and heat["text"][4][9] == "0/2"  # sessions, none degraded: 0 %
    assert heat["z"][0][0] is None and heat["text"][0][0] == ""  # no sessions: empty, not 0
    assert sum(z is not None for row in heat["z"] for z in row) == 2
    assert heat["y"] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] and heat["x"][9] == "09"


def test_the_figures_are_valid_plotly_figures() -> None:
    """The page builds figures as plain dicts (fast); Plotly's own validation must accept them."""
    import plotly.graph_objects as go

    answer = handmade()
    for built in (*(daily_figure(day_records(answer), m) for m in MEASURES), weeks_figure(week_records(answer)), heat_figure(heat_records(answer))):
        go.Figure(built)  # raises on a property Plotly does not know


def test_csv_holds_exactly_the_values_shown_with_units_in_the_header() -> None:
    answer = handmade()
    assert section_csv(answer, "days") == (
        "day,samples,rtt_p50_ms,rtt_p95_ms,jitter_p50_ms,jitter_p95_ms,loss_p50_pct,loss_p95_pct,mos_p50,mos_p95\n"
        "2026-03-02,40,23.5,46.9,1.23,2.23,1.23,2.23,4.31,3.81\n"
        "2026-03-03,0,,,,,,,,\n"
        "2026-03-04,12,150.0,300.1,0.00,1.00,0.00,1.00,3.25,2.75\n"
    )
    assert section_csv(answer, "weeks") == (
        "week_start,sessions,flagged,flagged_pct,degraded_live,degraded_live_pct\n"
        "2026-02-23,0,0,,0,\n"
        "2026-03-02,3,1,33.3,2,66.7\n"
    )
    heat = section_csv(answer, "heatmap").splitlines()
    assert heat[0] == "weekday,hour_local,sessions,degraded_live,degraded_live_pct" and len(heat) == 169
    assert heat[1] == "Mon,0,0,0," and heat[1 + 2 * 24 + 14] == "Wed,14,3,1,33.3" and heat[1 + 4 * 24 + 9] == "Fri,9,2,0,0.0"
    assert section_csv(answer, "agents") == (
        "agent_id,participant_id,link_type,samples,poor_share_pct,loss_mean_pct,mos_p50,degraded_sessions\n"
        "a1b2c3d4e5f6,c-1,cellular,12,33.3,4.57,3.25,1\n"
    )
    assert section_csv(answer, "networks") == (
        "link_type,agents,samples,poor_share_pct,loss_mean_pct,mos_p50\n"
        "cellular,1,12,33.3,4.57,3.25\n"
        "wired,2,40,0.0,,4.31\n"
    )
    # The tables read the same records: the same numbers, with their units.
    shown = [cell_text(c, agent_records(answer)[0]) for c in AGENT_COLUMNS]
    assert shown == ["a1b2c3d4e5f6", "c-1", "cellular", "12", "33.3 %", "4.57 %", "3.25 / 5", "1"]


def test_the_filter_its_period_and_what_it_asks_the_monitor() -> None:
    now = datetime(2026, 3, 16, 23, 30, tzinfo=ZoneInfo("UTC")).timestamp()  # already the 17th in Berlin
    assert default_period(BERLIN, now) == ("2026-02-18", "2026-03-17")
    assert default_period(ZoneInfo("UTC"), now) == ("2026-02-17", "2026-03-16")

    assert period_problem("2026-01-01", "2026-03-31") is None  # 90 days
    assert "at most 90 days" in (period_problem("2026-01-01", "2026-04-01") or "")  # 91
    assert "before the first" in (period_problem("2026-03-02", "2026-03-01") or "")
    assert "Choose the first and the last day" in (period_problem(None, "2026-03-01") or "")
    assert period_problem("2026-03-01", "2026-03-01") is None  # one day

    chosen = Filter("2026-03-01", "2026-03-16", therapist="t-1", link_type="wifi")
    assert chosen.query("Europe/Berlin") == {"from": "2026-03-01", "to": "2026-03-16", "tz": "Europe/Berlin", "therapist": "t-1", "link_type": "wifi"}
    assert Filter("2026-03-01", "2026-03-16").query("UTC") == {"from": "2026-03-01", "to": "2026-03-16", "tz": "UTC"}
    assert status_text(chosen, "Europe/Berlin") == "Showing 2026-03-01 to 2026-03-16 (16 days) · therapist t-1, link type wifi · times in Europe/Berlin"

    # A link may open the page on a view; nonsense is left at the default.
    opened = initial_filter("?from=2025-12-01&to=2026-02-28&link_type=cellular&agent=a1b2&os=beos&client=no%20way", BERLIN, now)
    assert opened == Filter("2025-12-01", "2026-02-28", agent="a1b2", link_type="cellular")
    assert initial_filter("", BERLIN, now) == Filter("2026-02-18", "2026-03-17")
    assert initial_filter("?to=2026-01-31", BERLIN, now) == Filter("2026-01-04", "2026-01-31")


def test_filter_choices_list_everyone_by_role_and_keep_a_linked_choice() -> None:
    participants = [{"participant_id": "t-2", "role": "therapist"}, {"participant_id": "c-1", "role": "client"}]
    agents = [
        {"agent_id": "aa", "participant_id": "t-1", "role": "therapist", "revoked": False},
        {"agent_id": "bb", "participant_id": "c-1", "role": "client", "revoked": True},
    ]
    assert [c["value"] for c in participant_choices(participants, agents, "therapist")] == ["all", "t-1", "t-2"]
    assert [c["value"] for c in participant_choices(participants, agents, "client", "c-9")] == ["all", "c-1", "c-9"]
    labels = [c["label"] for c in agent_choices(agents)]
    assert labels == ["All agents", "bb · c-1 (client, revoked)", "aa · t-1 (therapist)"]
    assert agent_choices(agents, "zz")[-1] == {"label": "zz", "value": "zz"}
    assert has_data(handmade()) and not has_data({"days": [day("2026-03-01", 0)], "weeks": [{"week_start": "2026-02-23", "sessions": 0, "flagged": 0, "degraded_live": 0}]})


# --- in the browser ----------------------------------------------------------------------------


def sample_at(taken_at_s: float, link: str, rtt_ms: float, loss: float = 0.0, mos: float = 4.4, jitter_ms: float = 2.0) -> dict:
    """A background sample taken at a chosen time, on a chosen link, with chosen numbers."""
    base = make_sample(taken_at=rfc3339(taken_at_s))
    network = replace(base.network, packets_sent=200, packets_received=200, rtt_p50_ms=rtt_ms, rtt_p95_ms=rtt_ms + 4, jitter_up_ms=jitter_ms, jitter_down_ms=jitter_ms / 2, loss_up=loss, loss_down=0.0, mos=mos)
    machine = replace(base.machine, link_type=link, wifi_signal_dbm=-60.0 if link == "wifi" else None)
    return encode(replace(base, network=network, machine=machine))  # type: ignore[return-value]


def local_noon(zone: ZoneInfo, on: date, minute: int) -> float:
    # Noon: far from midnight, so even a zone a fraction of an hour off UTC counts the
    # sample on this day (docs/trends.md, "Days in the viewer's time zone").
    return datetime(on.year, on.month, on.day, 12, minute, tzinfo=zone).timestamp()


# Records every text #trends-status shows, in order (what the browser benchmark waits on).
WATCH_STATUS = """
window.trendsStatus = [];
const status = document.getElementById('trends-status');
new MutationObserver(() => {
    const text = status.textContent;
    if (window.trendsStatus[window.trendsStatus.length - 1] !== text) window.trendsStatus.push(text);
}).observe(status, {subtree: true, childList: true, characterData: true});
"""


def trends_requests(practice: Practice) -> int:
    """How many ``GET /api/v1/trends`` the monitor has served (its access log)."""
    count = 0
    for line in practice.monitor.logs().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        count += entry.get("path") == "/api/v1/trends"
    return count


def wait_drawn(dash_duo) -> None:  # noqa: ANN001
    """Until every graph on the page has drawn (Plotly draws after the data arrives)."""
    drawn = "return Array.from(document.querySelectorAll('#trends-page .dash-graph')).every(g => g.querySelector('.js-plotly-plot .main-svg'))"
    wait_for(lambda: dash_duo.driver.execute_script(drawn), 20, "the graphs to draw", poll_s=0.1)


def plotted(dash_duo, graph_id: str) -> list[dict]:  # noqa: ANN001
    return dash_duo.driver.execute_script(f"return document.querySelector('#{graph_id} .js-plotly-plot').data.map(t => ({{name: t.name, x: t.x, y: t.y, z: t.z}}))")


def table_cells(dash_duo, table_id: str) -> list[list[str]]:  # noqa: ANN001
    return dash_duo.driver.execute_script(f"return Array.from(document.querySelectorAll('#{table_id} tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))")


def rounded(value: float | None, digits: int, scale: float = 1.0) -> float | None:
    return None if value is None else round(value * scale, digits)


def download(dash_duo, folder: Path, button: str, name_start: str) -> list[dict[str, str]]:  # noqa: ANN001
    for old in folder.glob(f"{name_start}*"):
        old.unlink()
    element = dash_duo.find_element(button)
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done = list(folder.glob(f"{name_start}*.csv"))  # Chromium renames the file when complete
        if done and done[0].stat().st_size > 0:
            return list(csv.DictReader(io.StringIO(done[0].read_text())))
        time.sleep(0.2)
    raise AssertionError(f"no {name_start}*.csv downloaded into {folder}")


@pytest.fixture
def data_set(practice: Practice) -> dict:
    """Three agents on three links, samples on two days of the period (a gap between), two
    sessions today, one of them flagged by the risk engine; an IT and a therapist login."""
    logins = ThreadPoolExecutor(max_workers=2)  # one CLI process each: made while the rest goes on
    made = [logins.submit(practice.user, "it.trends", "it"), logins.submit(practice.user, "th.trends", "therapist", "t-wired")]
    zone = ZoneInfo(practice.zone)
    today = datetime.fromtimestamp(time.time(), zone).date()
    wifi, wired, cell = practice.agent("client", "c-wifi"), practice.agent("therapist", "t-wired"), practice.agent("client", "c-cell")
    d3, d1 = today - timedelta(days=3), today - timedelta(days=1)
    posted = {
        (wifi, d3): [sample_at(local_noon(zone, d3, m), "wifi", rtt) for m, rtt in ((0, 20.0), (5, 22.0), (10, 24.0))],
        (wired, d3): [sample_at(local_noon(zone, d3, m), "wired", 10.0, mos=4.41) for m in (0, 5, 10)],
        (cell, d3): [sample_at(local_noon(zone, d3, m), "cellular", 150.0, loss=0.05, mos=3.2) for m in (0, 5, 10)],
        (wifi, d1): [sample_at(local_noon(zone, d1, m), "wifi", 30.0) for m in (0, 5, 10, 15)],
        (wired, d1): [sample_at(local_noon(zone, d1, m), "wired", 12.0, mos=4.41) for m in (0, 5, 10)],
    }
    for (token, _), samples in posted.items():
        practice.post(token, *(practice.envelope(token, "background", s) for s in samples))
    now = time.time()
    practice.session("s-tr-risky", "t-wired", "c-cell", now + 25 * MINUTE)
    practice.session("s-tr-fine", "t-wired", "c-wifi", now + 40 * MINUTE)
    practice.check(wired)
    practice.check(cell, loss_up=0.08)
    practice.check(wifi)
    practice.wait_for(lambda: risk_state(practice, "s-tr-risky") == "not_ready", what="the risk engine's verdict")
    for login in made:
        login.result()
    logins.shutdown()
    first, last = default_period(zone, time.time())
    return {"zone": practice.zone, "today": today, "d3": d3.isoformat(), "d2": (today - timedelta(days=2)).isoformat(), "d1": d1.isoformat(), "first": first, "last": last}


def api_trends(practice: Practice, **query: str) -> dict:
    status, body = practice.monitor.json("GET", "/api/v1/trends?" + urlencode(query), practice.staff)
    assert status == 200, body
    return body


def test_trends_draws_the_monitors_numbers_filters_and_downloads_them(dash_duo, dashboard_app, practice: Practice, data_set: dict, shots: Path, tmp_path: Path) -> None:  # noqa: ANN001
    period = {"from": data_set["first"], "to": data_set["last"], "tz": data_set["zone"]}
    truth = api_trends(practice, **period)
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    url = open_dashboard(dash_duo, dashboard_app, practice)
    dash_duo.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    log_in(dash_duo, url, "it.trends")
    dash_duo.wait_for_element("#today-list", timeout=15)
    calls_before = trends_requests(practice)
    dash_duo.find_element("#shell-nav-trends").click()
    dash_duo.wait_for_contains_text("#trends-status", "Showing", timeout=15)
    status = dash_duo.find_element("#trends-status").text
    assert status == f"Showing {data_set['first']} to {data_set['last']} (28 days) · all agents and networks · times in {data_set['zone']}"
    wait_drawn(dash_duo)

    # Daily series: exactly the monitor's percentiles (as rounded on the page), days in order,
    # gaps where nothing was measured; and the posted values within one bucket.
    days = [d["day"] for d in truth["days"]]
    for measure in MEASURES:
        p50, p95 = plotted(dash_duo, f"trends-graph-{measure.key}")
        assert p50["x"] == days and p95["x"] == days
        assert p50["y"] == [rounded(d[measure.p50_field], measure.digits, measure.scale) for d in truth["days"]], measure.key
        assert p95["y"] == [rounded(d[measure.p95_field], measure.digits, measure.scale) for d in truth["days"]], measure.key
    rtt = dict(zip(days, plotted(dash_duo, "trends-graph-rtt")[0]["y"], strict=True))
    assert rtt[data_set["d2"]] is None  # nothing measured that day: a gap, not zero
    assert rtt[data_set["d3"]] == pytest.approx(20.0, rel=0.19)  # median of 10,10,10,20,22,24,150,150,150
    assert rtt[data_set["d1"]] == pytest.approx(30.0, rel=0.19)  # median of 12,12,12,30,30,30,30
    mos = dict(zip(days, plotted(dash_duo, "trends-graph-mos")[0]["y"], strict=True))
    assert mos[data_set["d1"]] == pytest.approx(4.4, abs=0.1)

    # Weeks: only the current one has sessions (2, one flagged before start); others no bar.
    flagged, degraded = plotted(dash_duo, "trends-graph-weeks")
    assert flagged["x"] == [w["week_start"] for w in truth["weeks"]]
    assert flagged["y"] == [None if w["sessions"] == 0 else round(100 * w["flagged"] / w["sessions"], 1) for w in truth["weeks"]]
    assert degraded["y"] == [None if w["sessions"] == 0 else round(100 * w["degraded_live"] / w["sessions"], 1) for w in truth["weeks"]]
    assert [y for y in flagged["y"] if y is not None] == [50.0]
    assert table_cells(dash_duo, "trends-weeks-table")[-1][1:4] == ["2", "1", "50.0 %"]

    # Heat map: the cells the two sessions started in, everything else empty.
    (heat,) = plotted(dash_duo, "trends-graph-heatmap")
    expected = [[None] * 24 for _ in range(7)]
    for cell in truth["heatmap"]:
        if cell["sessions"]:
            expected[cell["weekday"]][cell["hour"]] = round(100 * cell["degraded"] / cell["sessions"], 1)
    assert heat["z"] == expected and sum(z is not None for row in heat["z"] for z in row) in (1, 2)

    # The agent in trouble: the cellular one (3 of its 4 samples are poor; the 4th came with its check).
    agents = table_cells(dash_duo, "trends-agents-table")
    assert [row[0] for row in agents] == [a["agent_id"] for a in truth["worst_agents"]]
    assert agents[0][1:3] == ["c-cell", "cellular"] and agents[0][4] == "75.0 %"
    networks = table_cells(dash_duo, "trends-networks-table")
    assert [row[0] for row in networks] == [n["link_type"] for n in truth["worst_networks"]] and networks[0][0] == "cellular"
    dash_duo.driver.set_window_size(1280, 2900)  # the whole page in one picture
    dash_duo.driver.save_screenshot(str(shots / "trends.png"))
    dash_duo.driver.set_window_size(1280, 1000)
    no_console_errors(dash_duo)

    # CSV: what the graphs and tables show, value for value.
    rows = download(dash_duo, downloads, "#trends-csv-days", "trends-days-")
    assert [r["day"] for r in rows] == days and [int(r["samples"]) for r in rows] == [d["samples"] for d in truth["days"]]
    for measure in MEASURES:
        p50, p95 = plotted(dash_duo, f"trends-graph-{measure.key}")
        for trace, q in ((p50, "50"), (p95, "95")):
            column = measure.column(q).key
            assert [None if r[column] == "" else float(r[column]) for r in rows] == trace["y"], column
    rows = download(dash_duo, downloads, "#trends-csv-agents", "trends-agents-")
    assert [[r["agent_id"], r["participant_id"], r["link_type"], r["samples"], r["poor_share_pct"] + " %"] for r in rows] == [row[:5] for row in agents]
    assert trends_requests(practice) - calls_before == 1  # the page and both downloads: one call

    # A filter: cellular only. The series change to the cellular agent's own numbers.
    cellular = api_trends(practice, **period, link_type="cellular")
    expected = [rounded(d["rtt_p50_ms"], 1) for d in cellular["days"]]
    dash_duo.driver.execute_script(WATCH_STATUS)
    dash_duo.select_dcc_dropdown("#trends-link_type", "cellular")
    dash_duo.wait_for_contains_text("#trends-status", "link type cellular", timeout=15)
    said = dash_duo.driver.execute_script("return window.trendsStatus")
    assert said[0] == "Loading …" and said[-1].startswith("Showing") and "link type cellular" in said[-1], said
    wait_for(lambda: plotted(dash_duo, "trends-graph-rtt")[0]["y"] == expected, 20, "the cellular series", poll_s=0.1)
    by_day = dict(zip(days, expected, strict=True))
    assert by_day[data_set["d3"]] == pytest.approx(150.0, rel=0.19) and by_day[data_set["d1"]] is None
    loss = dict(zip(days, plotted(dash_duo, "trends-graph-loss")[0]["y"], strict=True))
    assert loss[data_set["d3"]] == pytest.approx(5.0, abs=1.0)  # 5 %, bucket 5-6 %
    assert "filter the measurements only" in dash_duo.find_element("#trends-weeks-note").text
    assert trends_requests(practice) - calls_before == 3  # ours for cellular, and one for the page
    dash_duo.driver.save_screenshot(str(shots / "trends-cellular.png"))

    # A link to more than 90 days: a sentence, and nothing asked from the monitor.
    calls_before = trends_requests(practice)
    dash_duo.driver.get(url + "/trends?from=2025-01-01&to=2025-06-30")
    dash_duo.wait_for_contains_text("#trends-problem", "at most 90 days", timeout=15)
    assert "Not shown" in dash_duo.find_element("#trends-status").text
    assert not dash_duo.find_element("#trends-content").is_displayed()
    assert trends_requests(practice) == calls_before

    # An empty period says what feeds the page.
    dash_duo.driver.get(url + "/trends?from=2025-01-01&to=2025-01-31")
    dash_duo.wait_for_element("#trends-empty", timeout=15)
    assert "agents" in dash_duo.find_element("#trends-empty").text and "calendar" in dash_duo.find_element("#trends-empty").text
    dash_duo.driver.save_screenshot(str(shots / "trends-empty.png"))
    no_console_errors(dash_duo)

    # A therapist: no Trends link, and the page says whose it is.
    dash_duo.find_element("#shell-logout").click()
    dash_duo.wait_for_element("#login-form", timeout=10)
    log_in(dash_duo, url, "th.trends")
    dash_duo.wait_for_element("#today-list", timeout=15)
    assert dash_duo.find_elements("#shell-nav-trends") == []
    dash_duo.driver.get(url + "/trends")
    dash_duo.wait_for_contains_text("#staff-only", "For IT staff", timeout=10)
    assert dash_duo.find_elements("#trends-page") == []
    no_console_errors(dash_duo)
