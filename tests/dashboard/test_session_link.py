"""The session page's "Create check link" button in Chromium: a therapist makes a link for the
session's client, sees the full address once, and that address opens the check at the monitor
(tied to the session); hiding it drops it from the page. And the panel's words, as pure code."""

from __future__ import annotations

import json
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from dashboard.links_view import link_panel, link_url
from tests.dashboard.conftest import Practice, log_in, no_console_errors, open_dashboard

ANSWER = {"link_id": "0123456789ab", "url": "/c/" + "A" * 32, "secret": "A" * 32, "participant_id": "c-1", "session_id": "s-1", "expires_at": "2026-12-10T09:00:00Z"}


def text_of(components: list) -> str:
    return json.dumps([c.to_plotly_json() for c in components], default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o))


def test_the_panel_gives_the_whole_address_once_and_when_it_ends() -> None:
    assert link_url("https://monitor.example.org/", "/c/abc") == "https://monitor.example.org/c/abc"
    shown = text_of(link_panel(ANSWER, "https://monitor.example.org", ZoneInfo("Europe/Berlin")))
    assert "https://monitor.example.org/c/" + "A" * 32 in shown
    assert "2026-12-10 10:00 CET" in shown and "will not be shown again" in shown
    assert "own machine" not in shown
    # A monitor the dashboard reaches on loopback: the client needs the public address instead.
    assert "own machine" in text_of(link_panel(ANSWER, "http://127.0.0.1:8470", ZoneInfo("UTC")))


def test_a_therapist_creates_a_check_link_on_the_session_page(dash_duo, dashboard_app, practice: Practice, shots: Path) -> None:  # noqa: ANN001
    practice.user("th.links", "therapist", "t-lk")
    practice.session("s-lk-1", "t-lk", "c-lk", time.time() + 3600)
    url = open_dashboard(dash_duo, dashboard_app, practice)
    log_in(dash_duo, url, "th.links")
    dash_duo.wait_for_element("#today-session-s-lk-1", timeout=15)
    dash_duo.driver.get(url + "/session/s-lk-1")
    dash_duo.wait_for_element("#session-link-create", timeout=15).click()
    dash_duo.wait_for_contains_text("#session-link-url", "/c/", timeout=15)
    address = dash_duo.find_element("#session-link-url").text
    assert address.startswith(practice.monitor.url + "/c/")
    assert "will not be shown again" in dash_duo.find_element("#session-link-warning").text
    dash_duo.driver.save_screenshot(str(shots / "session-check-link.png"))

    # The address opens the check at the monitor, for this client and this session.
    secret = address.rsplit("/", 1)[1]
    status, raw = practice.monitor.request("GET", "/api/v1/link", None, headers={"Authorization": f"Link {secret}"})
    assert status == 200, raw
    status, listing = practice.monitor.json("GET", "/api/v1/check-links?participant_id=c-lk", practice.staff)
    assert [(link["session_id"], link["state"]) for link in listing["links"]] == [("s-lk-1", "active")]

    dash_duo.find_element("#session-link-hide").click()
    dash_duo.wait_for_class_to_equal("#session-link-panel", "code-panel hidden", timeout=10)
    assert secret not in dash_duo.driver.page_source, "hidden means gone from the page"
    no_console_errors(dash_duo)
