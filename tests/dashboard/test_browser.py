"""The dashboard in a real Chromium against a real monitor: login, Today, Session/Live, Check
result, and the walls between therapists. Screenshots go to each test's tmp dir."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import requests
from selenium.webdriver.common.by import By

from tests.dashboard.conftest import MINUTE, PASSWORD, Practice, free_port, log_in, no_console_errors, open_dashboard, risk_state


def test_a_therapist_sees_only_their_sessions_with_flags_and_reasons(dash_duo, dashboard_app, practice: Practice, shots: Path) -> None:  # noqa: ANN001
    now = time.time()
    practice.user("th.alpha", "therapist", "t-alpha")
    practice.user("th.beta", "therapist", "t-beta")
    practice.session("s-alpha-risky", "t-alpha", "c-risky", now + 25 * MINUTE)
    practice.session("s-alpha-fine", "t-alpha", "c-fine", now + 40 * MINUTE)
    practice.session("s-beta-1", "t-beta", "c-beta", now + 30 * MINUTE)
    practice.check(practice.agent("therapist", "t-alpha"))
    risky_check = practice.check(practice.agent("client", "c-risky"), loss_up=0.08)
    practice.check(practice.agent("client", "c-fine"))
    practice.wait_for(lambda: risk_state(practice, "s-alpha-risky") == "not_ready" and risk_state(practice, "s-alpha-fine") == "ready", what="the risk engine's verdicts")

    url = open_dashboard(dash_duo, dashboard_app, practice)
    log_in(dash_duo, url, "th.alpha")
    dash_duo.wait_for_element("#today-session-s-alpha-risky", timeout=15)
    dash_duo.wait_for_contains_text("#today-subtitle", practice.zone)
    cards = dash_duo.find_elements(".session-card")
    assert [c.get_attribute("data-session") for c in cards] == ["s-alpha-risky", "s-alpha-fine"]  # in time order, no s-beta-1

    risky = dash_duo.find_element("#today-session-s-alpha-risky")
    assert "stands-out" in risky.get_attribute("class")
    flag = risky.find_element(By.CSS_SELECTOR, "[data-role=session-flag]")
    assert "✖" in flag.text and "Not ready" in flag.text and "flag-not-ready" in flag.get_attribute("class")
    assert "8.0 % of packets upstream" in risky.text  # the reason in plain words
    assert "Ask the client" in risky.text  # and what to do
    client_end = risky.find_element(By.CSS_SELECTOR, "[data-end=client]")
    assert "Client: Not ready" in client_end.text and "checked" in client_end.text and "ago" in client_end.text
    assert "Therapist: Ready" in risky.find_element(By.CSS_SELECTOR, "[data-end=therapist]").text
    assert "in 2" in risky.text  # "in 24 min" / "in 25 min"

    fine = dash_duo.find_element("#today-session-s-alpha-fine")
    assert "stands-out" not in fine.get_attribute("class")
    assert "✔ Ready" in fine.find_element(By.CSS_SELECTOR, "[data-role=session-flag]").text
    assert "flag-ready" in fine.find_element(By.CSS_SELECTOR, "[data-role=session-flag]").get_attribute("class")
    dash_duo.driver.save_screenshot(str(shots / "today.png"))
    no_console_errors(dash_duo)

    # One click to the session page; it shows both ends and why.
    risky.click()
    dash_duo.wait_for_element("#session-end-client", timeout=10)
    assert "Not ready" in dash_duo.find_element("#session-flag").text
    dash_duo.wait_for_contains_text("#session-live-banner", "8.0 % of packets upstream")
    dash_duo.wait_for_element("#session-timeline")
    dash_duo.driver.save_screenshot(str(shots / "session-upcoming.png"))
    # Each end links to the check its flag comes from.
    assert dash_duo.find_element("#session-check-client").get_attribute("href").endswith(f"/check/{risky_check}")

    # Another therapist's session, by URL: not found; and the monitor says 404 to this login.
    dash_duo.driver.get(url + "/session/s-beta-1")
    dash_duo.wait_for_contains_text("#session-not-found", "Session not found", timeout=10)
    assert "c-beta" not in dash_duo.find_element("body").text
    dash_duo.driver.save_screenshot(str(shots / "session-not-found.png"))
    status, login = practice.monitor.json("POST", "/api/v1/login", None, {"username": "th.alpha", "password": PASSWORD})
    assert status == 201, login
    assert practice.monitor.json("GET", "/api/v1/sessions/s-beta-1", login["token"])[0] == 404
    assert practice.monitor.json("GET", "/api/v1/sessions/s-beta-1/samples", login["token"])[0] == 404

    # The check result page, shareable by URL.
    dash_duo.driver.get(url + f"/check/{risky_check}")
    dash_duo.wait_for_element("#check-result", timeout=10)
    dash_duo.driver.save_screenshot(str(shots / "check.png"))
    assert "8.0 % / 0.0 %" in dash_duo.find_element("#check-numbers").text  # packet loss up / down
    assert "c-risky" in dash_duo.find_element("#check-result").text
    no_console_errors(dash_duo)


def test_the_live_page_follows_reports_as_they_arrive(dash_duo, dashboard_app, practice: Practice, shots: Path) -> None:  # noqa: ANN001
    practice.user("th.live", "therapist", "t-live")
    therapist, client = practice.agent("therapist", "t-live"), practice.agent("client", "c-live")
    practice.session("s-live-1", "t-live", "c-live", time.time() - 5 * MINUTE)
    # Both agents report every 2 s, as real ones do, with the numbers the test sets.
    numbers = {"therapist": {}, "client": {"rtt_ms": 21.0}}
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            practice.live(therapist, "s-live-1", **numbers["therapist"])
            practice.live(client, "s-live-1", **numbers["client"])
            stop.wait(2.0)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        practice.wait_for(lambda: practice.detail("s-live-1")[1]["session"]["state"] == "live", what="the session to go live")
        url = open_dashboard(dash_duo, dashboard_app, practice)
        log_in(dash_duo, url, "th.live")
        dash_duo.wait_for_element("#today-session-s-live-1", timeout=15)
        dash_duo.driver.get(url + "/session/s-live-1")
        cell = "#session-numbers-table td[data-end=client][data-metric=rtt]"
        dash_duo.wait_for_text_to_equal(cell, "21 ms", timeout=10)
        assert dash_duo.find_element("#session-state").text == "Live now"
        dash_duo.wait_for_contains_text("#session-live-banner", "Live: both connections are holding up")

        # New reports show up within a few refreshes (every 2 s), numbers and graphs alike.
        numbers["therapist"] = {"rtt_ms": 30.0, "cpu_pct": 55.0}
        numbers["client"] = {"rtt_ms": 180.0}
        dash_duo.wait_for_text_to_equal(cell, "180 ms", timeout=10)
        dash_duo.wait_for_text_to_equal("#session-numbers-table td[data-end=therapist][data-metric=cpu]", "55 %", timeout=10)
        traces = dash_duo.driver.execute_script("return document.getElementById('session-graph-rtt').querySelectorAll('.scatterlayer .trace').length")
        assert traces == 2  # a line per end
        legend = dash_duo.driver.execute_script("return Array.from(document.getElementById('session-graph-rtt').querySelectorAll('.legendtext')).map(e => e.textContent)")
        assert legend == ["Client", "Therapist"]

        # The client's connection breaks up: the banner says the session is degraded, and why.
        numbers["client"] = {"loss_up": 0.15, "mos": 2.6}
        dash_duo.wait_for_contains_text("#session-live-banner", "The session is degraded", timeout=40)
        dash_duo.wait_for_contains_text("#session-live-banner", "The client's connection is losing sound and picture in bursts", timeout=10)
    finally:
        stop.set()
        feeder.join(timeout=10)
    dash_duo.wait_for_contains_text("#session-live-banner", "The session is degraded", timeout=5)
    banner = dash_duo.find_element("#session-live-banner")
    assert "banner-at-risk" in banner.get_attribute("class")
    assert "client" in banner.text.lower()
    dash_duo.wait_for_contains_text("#session-timeline", "Degraded", timeout=10)
    dash_duo.driver.save_screenshot(str(shots / "live.png"))
    dash_duo.driver.set_window_size(800, 1100)  # a tablet in portrait
    time.sleep(1)
    dash_duo.driver.save_screenshot(str(shots / "live-tablet.png"))
    no_console_errors(dash_duo)


def test_login_logout_and_forged_requests(dash_duo, dashboard_app, practice: Practice, shots: Path) -> None:  # noqa: ANN001
    practice.user("th.gamma", "therapist", "t-gamma")
    url = open_dashboard(dash_duo, dashboard_app, practice)

    # Not logged in: every page leads to the login form; a wrong password says so in words.
    dash_duo.driver.get(url + "/session/anything")
    dash_duo.wait_for_element("#login-form", timeout=10)
    log_in(dash_duo, url, "th.gamma", "not the password at all")
    dash_duo.wait_for_contains_text("#login-error", "Wrong username or password")
    dash_duo.driver.save_screenshot(str(shots / "login-error.png"))

    log_in(dash_duo, url, "th.gamma")
    dash_duo.wait_for_element("#today-empty", timeout=15)  # no sessions: says what to do next
    assert "calendar" in dash_duo.find_element("#today-empty").text
    assert dash_duo.find_element("#shell-user").text == "th.gamma · therapist"
    cookies = {c["name"]: c for c in dash_duo.driver.get_cookies()}
    session_cookie = cookies["sr_session"]
    assert session_cookie["httpOnly"] is True and session_cookie["sameSite"] == "Strict"
    assert "sru1_" not in session_cookie["value"]  # the monitor's token stays on the server
    no_console_errors(dash_duo)

    # A callback request without the page's CSRF header, or from another site, is refused.
    jar = {"sr_session": session_cookie["value"], "_csrf_token": cookies["_csrf_token"]["value"]}
    body = {"output": "today-list.children", "outputs": [], "inputs": [], "changedPropIds": []}
    forged = requests.post(url + "/_dash-update-component", json=body, cookies=jar, headers={"Origin": url}, timeout=10)
    assert forged.status_code == 403
    cross_site = requests.post(url + "/_dash-update-component", json=body, cookies=jar, headers={"Origin": "https://evil.example", "X-CSRFToken": jar["_csrf_token"]}, timeout=10)
    assert cross_site.status_code == 403
    logout_forged = requests.post(url + "/logout", data={"csrf": "guess"}, cookies=jar, headers={"Origin": url}, timeout=10, allow_redirects=False)
    assert logout_forged.status_code == 403

    # Log out: back to the login form, and the old cookie opens nothing any more.
    dash_duo.find_element("#shell-logout").click()
    dash_duo.wait_for_element("#login-form", timeout=10)
    again = requests.get(url + "/", cookies=jar, timeout=10, allow_redirects=False)
    assert "/login" in again.text and "today" not in again.text.lower()
    no_console_errors(dash_duo)


def test_dashboard_command_refuses_plain_http_to_another_machine() -> None:
    from tests.conftest import run_cli

    result = run_cli("dashboard", "--monitor", "http://192.0.2.10:8470")
    assert result.returncode == 3
    assert "clear text" in result.stderr and "Traceback" not in result.stderr


def test_dashboard_command_serves_the_login_page(practice: Practice, tmp_path: Path) -> None:
    import subprocess
    import sys

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sessionready.cli", "dashboard", "--monitor", practice.monitor.url, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**__import__("os").environ, "XDG_STATE_HOME": str(tmp_path)},
    )  # fmt: skip
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert f"listening on http://127.0.0.1:{port}" in line, line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as response:
            assert response.status == 200 and b"login-form" in response.read()
        secret = tmp_path / "sessionready" / "dashboard" / "dashboard-secret.key"
        assert secret.exists() and secret.stat().st_mode & 0o777 == 0o600
    finally:
        process.terminate()
        process.wait(timeout=10)
