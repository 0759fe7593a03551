"""Issue 17 on the session page, in Chromium: a session that went live with a burst of loss at
the client's end and was ended shows "How the session went" to its therapist, in plain words,
with the small MOS figure of both ends; another therapist gets "Session not found" and no
summary. The builders as pure code: a stretch at the viewer's clock time."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from dashboard.summary_view import stretch_line, summary_block
from tests.dashboard.conftest import Practice, log_in, no_console_errors, open_dashboard

STRETCH = {
    "end": "client",
    "cause": "loss_burst",
    "start_unix": 1_765_000_440.0,  # 2025-12-06 05:54:00 UTC
    "end_unix": 1_765_000_560.0,
    "words": "The client's connection lost up to 12 % of packets: the picture will have frozen and the sound broken up.",
}


def test_a_stretch_reads_at_the_viewers_clock_time() -> None:
    assert stretch_line(STRETCH, ZoneInfo("Europe/Berlin")) == (
        "06:54–06:56 (2 min): The client's connection lost up to 12 % of packets: the picture will have frozen and the sound broken up."
    )
    short = {**STRETCH, "end_unix": STRETCH["start_unix"] + 40}
    assert stretch_line(short, ZoneInfo("UTC")).startswith("05:54 (40 s): The client's")
    summary = {
        "final": True,
        "measured": False,
        "headline": "H",
        "foresight_words": "F",
        "stretches": [STRETCH],
        "notes": [],
        "live_from_unix": 0,
        "bucket_s": 30,
    }
    shown = json.dumps(summary_block(summary, ZoneInfo("UTC")).to_plotly_json(), default=lambda o: o.to_plotly_json(), ensure_ascii=False)
    assert "How the session went" in shown and "05:54–05:56" in shown
    assert "session-summary-mos" not in shown  # nothing measured: no figure


def live_session_with_a_burst(practice: Practice, session_id: str, therapist: str, client: str) -> None:
    """Both agents report every half second; once the monitor has made the session live, 4 s
    more, the client's with a burst of loss; then staff end the session."""
    t_token, c_token = practice.agent("therapist", therapist), practice.agent("client", client)
    practice.session(session_id, therapist, client, time.time() - 60, minutes=30)
    step_s = 0.5
    after_live = -1
    deadline = time.monotonic() + 30
    while after_live < 8:
        assert time.monotonic() < deadline, "the session never went live"
        started = time.monotonic()
        loss = 0.2 if 1 <= after_live <= 3 else 0.0
        for token, sample in ((t_token, practice.sample(session_id)), (c_token, practice.sample(session_id, loss_up=loss, mos=3.2 if loss else 4.35))):
            sample["interval_s"] = step_s
            sample["taken_at"] = datetime.fromtimestamp(time.time(), timezone.utc).isoformat(timespec="milliseconds")  # the schema's own resolution
            practice.post(token, practice.envelope(token, "live", sample))
        if after_live >= 0 or practice.detail(session_id)[1]["session"]["state"] == "live":
            after_live += 1
        time.sleep(max(0.0, step_s - (time.monotonic() - started)))
    status, body = practice.monitor.json("POST", f"/api/v1/sessions/{session_id}/state", practice.staff, {"state": "ended"})
    assert status == 200, body


def test_the_summary_shows_for_its_therapist_and_not_for_another(dash_duo, dashboard_app, practice: Practice, shots: Path) -> None:  # noqa: ANN001
    practice.user("th.summary", "therapist", "t-sum")
    practice.user("th.other", "therapist", "t-sum-other")
    live_session_with_a_burst(practice, "s-sum-1", "t-sum", "c-sum")
    status, summary = practice.monitor.json("GET", "/api/v1/sessions/s-sum-1/summary", practice.staff)
    assert status == 200 and summary["final"], summary
    assert [(s["end"], s["cause"]) for s in summary["stretches"]] == [("client", "loss_burst")]

    url = open_dashboard(dash_duo, dashboard_app, practice)
    log_in(dash_duo, url, "th.summary")
    dash_duo.wait_for_element("#today-session-s-sum-1", timeout=15)
    dash_duo.driver.get(url + "/session/s-sum-1")
    dash_duo.wait_for_contains_text("#session-summary-headline", "1 stretch of trouble", timeout=20)
    assert "at the client's end" in dash_duo.find_element("#session-summary-headline").text
    lines = dash_duo.find_elements("#session-summary-stretches li")
    assert len(lines) == 1
    assert all("The client's connection lost up to 20 % of packets" in line.text for line in lines)
    assert all(re.match(r"[0-2][0-9]:[0-5][0-9]", line.text) for line in lines)  # each line starts at a clock time
    assert dash_duo.find_element("#session-summary-foresight").text
    graph = dash_duo.wait_for_element("#session-summary-mos .js-plotly-plot", timeout=15)
    traces = dash_duo.driver.execute_script("return arguments[0].data.map(t => t.name)", graph)
    assert traces == ["Client", "Therapist"]
    dash_duo.driver.execute_script("arguments[0].scrollIntoView()", dash_duo.find_element("#session-summary-block"))
    dash_duo.driver.save_screenshot(str(shots / "session-summary.png"))
    no_console_errors(dash_duo)

    # Another therapist: the session is not theirs, and nothing of its summary is on the page.
    dash_duo.driver.delete_all_cookies()
    log_in(dash_duo, url, "th.other")
    dash_duo.wait_for_element("#today-page, .page", timeout=15)
    dash_duo.driver.get(url + "/session/s-sum-1")
    dash_duo.wait_for_element("#session-not-found", timeout=20)
    time.sleep(1.0)  # give the summary's own callback its answer too
    assert not dash_duo.driver.find_elements("css selector", "#session-summary-headline")
    assert "lost up to 20 %" not in dash_duo.driver.page_source
    no_console_errors(dash_duo)
