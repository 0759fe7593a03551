"""The Agents page (IT): its pure parts with the clock injected, and the page in a real
Chromium against a real monitor: agents with their state, a code made in the page that
really enrolls a machine through the ``sessionready enroll`` command, revoking a code,
bad input, CSRF on the callback that makes codes, and the wall for therapists."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from dashboard.agents_view import (
    NEVER_SEEN,
    OFFLINE,
    ONLINE,
    REVOKED,
    EnrollmentRequest,
    agent_rows,
    check_enrollment,
    code_rows,
    enroll_command,
    loopback,
    online_summary,
    seen,
    spool_text,
)
from monitor.store.core import open_store
from tests.conftest import agent_env, run_cli
from tests.dashboard.conftest import PASSWORD, Practice, log_in, no_console_errors, open_dashboard

BERLIN = ZoneInfo("Europe/Berlin")
T0 = 1_774_000_000.0  # 2026-03-20T09:46:40Z, 10:46 in Berlin
HOUR = 3600.0


def agent(agent_id: str, participant: str, *, last_seen: float | None = None, online: bool = False, revoked: bool = False, spool: dict | None = None) -> dict:
    return {
        "agent_id": agent_id, "role": "client", "participant_id": participant, "created_at": T0 - 30 * 86400, "revoked": revoked,
        "last_seen": last_seen, "online": online, "last_seq": 7 if last_seen else None, "version": "0.1.0" if last_seen else None,
        "os": "linux" if last_seen else None, "link_type": "wifi" if last_seen else None, "spool": spool,
    }  # fmt: skip


def enrollment(code_id: str, state: str, created_at: float, **extra: object) -> dict:
    return {"code_id": code_id, "role": "therapist", "participant_id": "t-1", "state": state, "created_at": created_at, "expires_at": created_at + 72 * HOUR, "used_at": None, "revoked_at": None, "agent_id": None, **extra}


# --- the pure parts -------------------------------------------------------------------------


def test_last_seen_reads_in_the_viewers_zone_with_how_long_ago() -> None:
    assert seen(None, BERLIN, T0) == "never"
    assert seen(T0 - 20, BERLIN, T0) == "10:46 (just now)"
    assert seen(T0 - 180, BERLIN, T0) == "10:43 (3 min ago)"
    assert seen(T0 - 20 * HOUR, BERLIN, T0) == "2026-03-19 14:46 CET (20 h ago)"  # another day: the date too
    assert seen(T0 - 180, ZoneInfo("America/New_York"), T0) == "05:43 (3 min ago)"


def test_agents_read_as_flags_with_offline_ones_first() -> None:
    agents = [
        agent("a-online", "c-2", last_seen=T0 - 30, online=True, spool={"pending": 0, "dropped_background": 0, "rejected": 0, "dropped_live": 0}),
        agent("a-revoked", "c-0", last_seen=T0 - 30, online=True, revoked=True),
        agent("a-never", "c-1"),
        agent("a-offline", "c-3", last_seen=T0 - 2 * HOUR),
    ]
    rows = agent_rows(agents, BERLIN, T0)
    assert [r.agent_id for r in rows] == ["a-offline", "a-never", "a-online", "a-revoked"]
    assert [r.flag for r in rows] == [OFFLINE, NEVER_SEEN, ONLINE, REVOKED]  # revoked wins over a recent batch
    online = rows[2]
    assert (online.role, online.version, online.os, online.link, online.spool) == ("Client", "0.1.0", "Linux", "Wi-Fi", "0 waiting")
    assert rows[0].last_seen == "08:46 (2 h ago)"
    never = rows[1]
    assert (never.version, never.os, never.link, never.last_seen, never.spool) == ("—", "—", "—", "never", "—")
    assert rows[3].revoked and not online.revoked
    assert online_summary(rows) == "1 of 3 online"  # revoked agents are not counted
    assert online_summary([]) == "no agents yet"
    flags = [OFFLINE, NEVER_SEEN, ONLINE, REVOKED]
    assert all(f.icon and f.label for f in flags) and len({(f.icon, f.label) for f in flags}) == 4  # not colour alone


def test_spool_text_says_what_waits_and_what_was_lost() -> None:
    assert spool_text(None) == "—"
    assert spool_text({"pending": 12, "dropped_background": 3, "dropped_live": 1, "rejected": 2}) == "12 waiting · 4 dropped · 2 refused"
    assert spool_text({"pending": 0, "dropped_background": 0, "dropped_live": 0, "rejected": 0}) == "0 waiting"


def test_codes_newest_first_and_only_pending_ones_revocable() -> None:
    codes = [
        enrollment("aaaaaaaaaaaa", "used", T0 - 5 * HOUR, used_at=T0 - 4 * HOUR, agent_id="agent-9"),
        enrollment("bbbbbbbbbbbb", "expired", T0 - 80 * HOUR),
        enrollment("cccccccccccc", "pending", T0 - HOUR),
        enrollment("dddddddddddd", "revoked", T0 - 2 * HOUR, revoked_at=T0 - HOUR),
    ]
    rows = code_rows(codes, BERLIN, T0)
    assert [r.code_id for r in rows] == ["cccccccccccc", "dddddddddddd", "aaaaaaaaaaaa", "bbbbbbbbbbbb"]
    assert [r.flag.label for r in rows] == ["Pending", "Revoked", "Used", "Expired"]
    assert [r.revocable for r in rows] == [True, False, False, False]
    pending, revoked, used, expired = rows
    assert pending.expires == "2026-03-23 09:46 CET"
    assert code_rows([enrollment("eeeeeeeeeeee", "pending", T0 - 70 * HOUR)], BERLIN, T0)[0].expires == "2026-03-20 12:46 CET (in 2 h)"
    assert pending.created == "2026-03-20 09:46 CET" and pending.role == "Therapist"
    assert expired.expires.endswith("(8 h ago)")
    assert used.outcome == "enrolled agent agent-9 on 2026-03-20 06:46 CET" and used.expires == "—"
    assert revoked.outcome == "revoked on 2026-03-20 09:46 CET"


def test_the_form_is_checked_as_the_monitor_would_before_anything_is_sent() -> None:
    assert check_enrollment("client", " c-0042 ", 72) == EnrollmentRequest("client", "c-0042", 72)
    assert check_enrollment("therapist", "t.1_x", 24.0) == EnrollmentRequest("therapist", "t.1_x", 24)
    assert check_enrollment("client", "c-1", "720") == EnrollmentRequest("client", "c-1", 720)
    assert "Never use a name" in check_enrollment("client", "Jane Doe", 72)  # type: ignore[operator]
    assert "Never use a name" in check_enrollment("client", "-leading-dash", 72)  # type: ignore[operator]
    assert "Never use a name" in check_enrollment("client", "x" * 65, 72)  # type: ignore[operator]
    assert "pseudonymous" in check_enrollment("client", "  ", 72)  # type: ignore[operator]
    assert "Choose whose machine" in check_enrollment("admin", "c-1", 72)  # type: ignore[operator]
    for ttl in (0, 721, 2.5, None, "", "ten", True):
        assert "1 to 720" in check_enrollment("client", "c-1", ttl), ttl  # type: ignore[operator]


def test_the_command_is_the_one_the_enroll_cli_takes() -> None:
    assert enroll_command("https://monitor.example.org:8470", "K7Q2-9XMD-4TRB-WN3F") == "sessionready enroll --monitor https://monitor.example.org:8470 K7Q2-9XMD-4TRB-WN3F"
    assert loopback("http://127.0.0.1:8470") and loopback("http://localhost:8470") and loopback("http://[::1]:8470")
    assert not loopback("https://monitor.example.org:8470")


# --- in the browser -------------------------------------------------------------------------


def agent_id_of(practice: Practice, token: str) -> str:
    status, me = practice.monitor.json("GET", "/api/v1/whoami", token)
    assert status == 200, me
    return me["agent_id"]


def codes(practice: Practice) -> list[dict]:
    status, body = practice.monitor.json("GET", "/api/v1/enrollments", practice.staff)
    assert status == 200, body
    return body["enrollments"]


def create_in_page(dash_duo, role: str, participant: str) -> None:  # noqa: ANN001
    dash_duo.find_element(f"#agents-role input[value={role}]").click()
    field = dash_duo.find_element("#agents-participant")
    dash_duo.clear_input(field)
    field.send_keys(participant)
    dash_duo.find_element("#agents-create").click()


def create_request(participant: str) -> dict:
    """The body Dash's renderer posts when "Create code" is clicked."""
    outputs = [("agents-new-code", "children"), ("agents-code-panel", "className"), ("agents-form-error", "children"), ("agents-created", "data"), ("agents-participant", "value")]
    return {
        "output": ".." + "...".join(f"{i}.{p}" for i, p in outputs) + "..",
        "outputs": [{"id": i, "property": p} for i, p in outputs],
        "inputs": [{"id": "agents-create", "property": "n_clicks", "value": 1}, {"id": "agents-hide-code", "property": "n_clicks", "value": None}],
        "state": [
            {"id": "agents-role", "property": "value", "value": "client"},
            {"id": "agents-participant", "property": "value", "value": participant},
            {"id": "agents-ttl", "property": "value", "value": 72},
            {"id": "agents-created", "property": "data", "value": 0},
            {"id": "shell-tz", "property": "data", "value": "UTC"},
        ],
        "changedPropIds": ["agents-create.n_clicks"],
    }


def row_of(dash_duo, selector: str):  # noqa: ANN001, ANN201
    return dash_duo.wait_for_element(selector, timeout=10)


def test_it_sees_agents_enrolls_a_machine_with_a_code_from_the_page_and_revokes_another(dash_duo, dashboard_app, practice: Practice, shots: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO)  # not DEBUG: Selenium logs what it reads off the page there
    caplog.set_level(logging.DEBUG, logger="sessionready")
    practice.user("it.agents", "it")
    online = practice.agent("client", "c-ag-online")
    practice.post(online, practice.envelope(online, "background", practice.sample()))
    quiet = agent_id_of(practice, practice.agent("therapist", "t-ag-quiet"))
    gone = agent_id_of(practice, practice.agent("client", "c-ag-gone"))
    store = open_store(practice.monitor.data_dir)
    try:
        assert store.revoke_token(gone)
    finally:
        store.close()

    url = open_dashboard(dash_duo, dashboard_app, practice)
    log_in(dash_duo, url, "it.agents")
    dash_duo.wait_for_element("#shell-nav-agents", timeout=15).click()
    dash_duo.wait_for_element("#agents-list", timeout=15)
    dash_duo.wait_for_contains_text("#agents-subtitle", practice.zone)
    dash_duo.wait_for_contains_text("#agents-subtitle", "1 of 2 online")
    rows = dash_duo.find_elements("#agents-list tbody tr")
    assert [r.get_attribute("data-participant") for r in rows] == ["t-ag-quiet", "c-ag-online", "c-ag-gone"]  # never seen, online, revoked last
    online_row = dash_duo.find_element(f"#agents-row-{agent_id_of(practice, online)}")
    badge = online_row.find_element(By.CSS_SELECTOR, "[data-role=agent-flag]")
    assert badge.text == "✔ Online" and "flag-ready" in badge.get_attribute("class")
    cells = [td.text for td in online_row.find_elements(By.TAG_NAME, "td")]
    assert cells[2:7] == ["c-ag-online", "Client", "0.1.0", "Linux", "Wi-Fi"]
    assert re.fullmatch(r"\d\d:\d\d \((just now|\d+ s ago|1 min ago)\)", cells[7]), cells[7]
    assert cells[8] == "0 waiting"
    assert dash_duo.find_element(f"#agents-row-{quiet} [data-role=agent-flag]").text == "? Never seen"
    gone_row = dash_duo.find_element(f"#agents-row-{gone}")
    assert "Revoked" in gone_row.text and "agent-revoked" in gone_row.get_attribute("class")
    assert dash_duo.find_element("#agents-codes-empty").text.startswith("No enrollment codes yet")

    # A name instead of an id: a sentence next to the form, and nothing reaches the monitor.
    create_in_page(dash_duo, "client", "Jane Doe")
    dash_duo.wait_for_contains_text("#agents-form-error", "Never use a name", timeout=10)
    assert codes(practice) == []
    assert "hidden" in dash_duo.find_element("#agents-code-panel").get_attribute("class")

    # A code made in the page, shown once with the command, really enrolls a machine.
    create_in_page(dash_duo, "client", "c-ag-new")
    code = dash_duo.wait_for_element("#agents-code", timeout=10).text
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", code), code
    command = dash_duo.find_element("#agents-command").text
    assert command == f"sessionready enroll --monitor {practice.monitor.url} {code}"
    assert "will not be shown again" in dash_duo.find_element("#agents-code-warning").text
    assert dash_duo.find_element("#agents-form-error").text == ""
    row_of(dash_duo, "#agents-codes-list")
    dash_duo.driver.execute_script("document.getElementById('agents-code-panel').scrollIntoView()")
    dash_duo.driver.save_screenshot(str(shots / "agents-new-code.png"))
    config = tmp_path / "machine" / "agent.toml"
    enrolled = run_cli(*command.split()[1:], env=agent_env(tmp_path, config))
    assert enrolled.returncode == 0, enrolled.stderr
    new_agent = re.search(r"client agent (\S+) for participant c-ag-new", enrolled.stdout).group(1)  # type: ignore[union-attr]

    # A second code: hidden once passed on, then revoked after a confirmation.
    create_in_page(dash_duo, "therapist", "t-ag-later")
    dash_duo.wait_for_contains_text("#agents-new-code", "t-ag-later", timeout=10)
    dash_duo.find_element("#agents-hide-code").click()
    dash_duo.wait_for_no_elements("#agents-code", timeout=10)
    later = next(c for c in codes(practice) if c["participant_id"] == "t-ag-later")
    revoke_button = f"#agents-code-{later['code_id']} button"
    row_of(dash_duo, revoke_button).click()
    alert = WebDriverWait(dash_duo.driver, 10).until(expected_conditions.alert_is_present())
    assert later["code_id"] in alert.text and "t-ag-later" in alert.text
    alert.dismiss()  # changed their mind: nothing happens
    time.sleep(1.0)
    assert dash_duo.find_element("#agents-revoke-status").text == ""
    assert next(c for c in codes(practice) if c["code_id"] == later["code_id"])["state"] == "pending"
    dash_duo.find_element(revoke_button).click()
    WebDriverWait(dash_duo.driver, 10).until(expected_conditions.alert_is_present()).accept()
    dash_duo.wait_for_contains_text("#agents-revoke-status", "is revoked", timeout=10)
    dash_duo.wait_for_contains_text(f"#agents-code-{later['code_id']}", "Revoked", timeout=10)
    assert dash_duo.find_elements(revoke_button) == []
    assert next(c for c in codes(practice) if c["code_id"] == later["code_id"])["state"] == "revoked"

    # After a refresh: the enrolled machine is listed, its code is used, and no code is shown.
    dash_duo.driver.get(url + "/agents")
    row_of(dash_duo, f"#agents-row-{new_agent}")
    assert "c-ag-new" in dash_duo.find_element(f"#agents-row-{new_agent}").text
    used = next(c for c in codes(practice) if c["participant_id"] == "c-ag-new")
    assert used["state"] == "used" and used["agent_id"] == new_agent
    used_row = row_of(dash_duo, f"#agents-code-{used['code_id']}")
    assert "✔ Used" in used_row.text and new_agent in used_row.text
    assert dash_duo.find_elements("#agents-code") == []
    assert code not in dash_duo.find_element("body").text
    dash_duo.driver.save_screenshot(str(shots / "agents.png"))
    no_console_errors(dash_duo)

    # CSRF: the callback that makes codes, posted with this login's cookies but without the
    # page's token, is refused and makes nothing. With the token (what the page itself sends)
    # the same request works, so the refusal came from the missing token.
    cookies = {c["name"]: c["value"] for c in dash_duo.driver.get_cookies()}
    jar = {"sr_session": cookies["sr_session"], "_csrf_token": cookies["_csrf_token"]}
    forged = requests.post(url + "/_dash-update-component", json=create_request("c-forged"), cookies=jar, headers={"Origin": url}, timeout=10)
    assert forged.status_code == 403
    assert all(c["participant_id"] != "c-forged" for c in codes(practice))
    genuine = requests.post(url + "/_dash-update-component", json=create_request("c-genuine"), cookies=jar, headers={"Origin": url, "X-CSRFToken": jar["_csrf_token"]}, timeout=10)
    assert genuine.status_code == 200, genuine.status_code
    assert any(c["participant_id"] == "c-genuine" for c in codes(practice))

    # The code is a credential: no log holds it, neither the dashboard's nor the monitor's.
    for text in (caplog.text, practice.monitor.logs()):
        assert code not in text and code.replace("-", "") not in text


def test_a_therapist_gets_no_agents_page_and_the_monitor_refuses_the_login(dash_duo, dashboard_app, practice: Practice) -> None:  # noqa: ANN001
    practice.user("th.agents", "therapist", "t-ag-th")
    url = open_dashboard(dash_duo, dashboard_app, practice)
    log_in(dash_duo, url, "th.agents")
    dash_duo.wait_for_element("#shell-user", timeout=15)  # the frame, nav links included, is built with the page
    assert dash_duo.find_elements("#shell-nav-agents") == []
    dash_duo.driver.get(url + "/agents")
    dash_duo.wait_for_contains_text("#staff-only", "For IT staff", timeout=10)
    assert dash_duo.find_elements("#agents-list") == [] and dash_duo.find_elements("#agents-create") == []
    no_console_errors(dash_duo)

    status, login = practice.monitor.json("POST", "/api/v1/login", None, {"username": "th.agents", "password": PASSWORD})
    assert status == 201, login
    assert practice.monitor.json("GET", "/api/v1/agents", login["token"])[0] == 403
    assert practice.monitor.json("GET", "/api/v1/enrollments", login["token"])[0] == 403
    assert practice.monitor.json("POST", "/api/v1/enrollments", login["token"], {"role": "client", "participant_id": "c-sneaky"})[0] == 403
    assert all(c["participant_id"] != "c-sneaky" for c in codes(practice))
