"""The Caseloads page (IT): its pure parts, and the page in a real Chromium against a real
monitor: assigning a client in the page, a name instead of an id, an id registered with the
other role, the filter, removing after a confirmation (and not on dismiss), and the wall for
therapists."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from dashboard.caseloads_view import (
    ALL,
    Assignment,
    CaseloadRow,
    assigned_sentence,
    caseload_rows,
    check_assignment,
    chosen_therapist,
    kept_sentence,
    removal_question,
    removed_sentence,
    source_words,
    summary,
    therapist_options,
)
from tests.dashboard.conftest import PASSWORD, Practice, log_in, no_console_errors, open_dashboard

BERLIN = ZoneInfo("Europe/Berlin")


def entry(therapist: str, client: str, assigned_at: str = "2026-03-20T09:46:40Z", source: str = "api") -> dict:
    return {"therapist_id": therapist, "client_id": client, "assigned_at": assigned_at, "source": source}


# --- the pure parts -------------------------------------------------------------------------


def test_every_source_the_monitor_sends_reads_in_words() -> None:
    assert [source_words(s) for s in ("api", "cli", "session", "csv", "ics", "upgrade")] == [
        "assigned by staff", "assigned by staff", "a session staff created", "CSV import", "calendar import", "imported before caseloads existed",
    ]  # fmt: skip
    assert source_words("carrier-pigeon") == "carrier-pigeon"  # a newer monitor's source shows as it is, not as nothing


def test_rows_by_therapist_then_client_with_since_in_the_viewers_zone() -> None:
    entries = [
        entry("t-2", "c-9", "2026-03-20T09:46:40Z", "ics"),
        entry("t-1", "c-5", "2026-07-01T22:30:00Z", "session"),
        entry("t-1", "c-3", "2026-03-29T00:59:59Z", "upgrade"),
    ]
    rows = caseload_rows(entries, BERLIN, None)
    assert [(r.therapist_id, r.client_id) for r in rows] == [("t-1", "c-3"), ("t-1", "c-5"), ("t-2", "c-9")]
    # 09:46:40Z is 10:46 CET (UTC+1); 22:30Z in July is 00:30 CEST (UTC+2) the next day; the
    # last second before Berlin's clocks went forward (01:00Z on 2026-03-29) is 01:59 CET.
    assert rows[0] == CaseloadRow("t-1", "c-3", "2026-03-29 01:59 CET", "imported before caseloads existed")
    assert rows[1].since == "2026-07-02 00:30 CEST" and rows[1].source == "a session staff created"
    assert rows[2].since == "2026-03-20 10:46 CET" and rows[2].source == "calendar import"
    assert caseload_rows(entries, ZoneInfo("America/New_York"), None)[2].since == "2026-03-20 05:46 EDT"
    assert [r.client_id for r in caseload_rows(entries, BERLIN, "t-1")] == ["c-3", "c-5"]
    assert caseload_rows(entries, BERLIN, "t-nobody") == []


def test_the_filter_lists_each_therapist_once_and_keeps_the_chosen_one() -> None:
    entries = [entry("t-2", "c-1"), entry("t-1", "c-1"), entry("t-1", "c-2"), entry("all", "c-7")]
    options = therapist_options(entries, None)
    assert options == [
        {"label": "All therapists", "value": ALL},
        {"label": "all (1 client)", "value": "therapist:all"},  # a therapist called "all" is not everyone
        {"label": "t-1 (2 clients)", "value": "therapist:t-1"},
        {"label": "t-2 (1 client)", "value": "therapist:t-2"},
    ]
    assert therapist_options([], "t-9") == [{"label": "All therapists", "value": ALL}, {"label": "t-9 (0 clients)", "value": "therapist:t-9"}]
    assert chosen_therapist("therapist:all") == "all" and chosen_therapist(ALL) is None
    assert chosen_therapist(None) is None and chosen_therapist(["therapist:t-1"]) is None


def test_summary_counts_assignments_and_therapists() -> None:
    entries = [entry("t-1", "c-1"), entry("t-1", "c-2"), entry("t-2", "c-1")]
    assert summary(entries, caseload_rows(entries, BERLIN), None) == "3 assignments, 2 therapists"
    assert summary(entries, caseload_rows(entries, BERLIN, "t-2"), "t-2") == "t-2: 1 client"
    assert summary([entry("t-1", "c-1")], [], None) == "1 assignment, 1 therapist"
    assert summary([], [], None) == "no assignments yet"


def test_the_form_is_checked_with_the_monitors_id_pattern_before_anything_is_sent() -> None:
    assert check_assignment(" t-07 ", "c-0042\t") == Assignment("t-07", "c-0042")
    assert check_assignment("T.1_x", "9") == Assignment("T.1_x", "9")
    assert check_assignment("t", "c" * 64) == Assignment("t", "c" * 64)  # 64 characters: the longest id
    client_problem = check_assignment("t-07", "Jane Doe")
    assert isinstance(client_problem, str) and client_problem.startswith("The client id is not an id") and "Never use a name" in client_problem
    for bad in ("Jane Doe", "-t", "t/1", "t" * 65, "t:1"):
        problem = check_assignment(bad, "c-1")
        assert isinstance(problem, str) and problem.startswith("The therapist id is not an id"), bad
    assert check_assignment("", "c-1") == "Enter the therapist's id (pseudonymous ids such as t-07 and c-0042, never names)."
    assert check_assignment("t-1", "   ") == "Enter the client's id (pseudonymous ids such as t-07 and c-0042, never names)."
    assert check_assignment(None, None) == "Enter the therapist's id and the client's id (pseudonymous ids such as t-07 and c-0042, never names)."


def test_the_sentences_say_what_removing_does_and_what_it_leaves() -> None:
    question = removal_question("t-1", "c-2")
    assert question.startswith("Take c-2 off t-1's caseload?")
    assert "t-1 stops seeing c-2's checks at once" in question and "Their sessions stay as they are." in question
    assert removed_sentence("t-1", "c-2") == "c-2 is off t-1's caseload; their sessions stay as they are."
    assert kept_sentence("t-1", "c-2") == "Nothing removed: c-2 stays on t-1's caseload."
    assert assigned_sentence(Assignment("t-1", "c-2"), True).startswith("c-2 is now on t-1's caseload")
    assert assigned_sentence(Assignment("t-1", "c-2"), False) == "c-2 was already on t-1's caseload; nothing changed."


# --- in the browser -------------------------------------------------------------------------


def caseload(practice: Practice) -> list[tuple[str, str, str]]:
    status, body = practice.monitor.json("GET", "/api/v1/caseload", practice.staff)
    assert status == 200, body
    return [(e["therapist_id"], e["client_id"], e["source"]) for e in body["caseload"]]


def assign_in_page(dash_duo, therapist: str, client: str) -> None:  # noqa: ANN001
    for selector, value in (("#caseloads-therapist", therapist), ("#caseloads-client", client)):
        field = dash_duo.find_element(selector)
        dash_duo.clear_input(field)
        field.send_keys(value)
    dash_duo.find_element("#caseloads-assign").click()


def row(therapist: str, client: str) -> str:
    return f'#caseloads-list tr[data-therapist="{therapist}"][data-client="{client}"]'


def cells(dash_duo, selector: str) -> list[str]:  # noqa: ANN001
    return [td.text for td in dash_duo.find_elements(selector + " td")]


def local(assigned_at: str, zone: str) -> str:
    moment = datetime.fromisoformat(assigned_at.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname()}"


def test_it_assigns_a_client_filters_and_removes_one_after_a_confirmation(dash_duo, dashboard_app, practice: Practice, shots: Path) -> None:  # noqa: ANN001
    practice.user("it.caseloads", "it")
    url = open_dashboard(dash_duo, dashboard_app, practice)
    log_in(dash_duo, url, "it.caseloads")
    dash_duo.wait_for_element("#shell-nav-caseloads", timeout=15).click()
    dash_duo.wait_for_contains_text("#caseloads-empty", "No caseloads yet", timeout=15)
    dash_duo.wait_for_contains_text("#caseloads-subtitle", f"Times in {practice.zone}")
    assert dash_duo.find_element("#caseloads-subtitle").text.endswith("· no assignments yet")
    dash_duo.driver.save_screenshot(str(shots / "caseloads-empty.png"))

    # A name instead of an id: a sentence next to the form, and nothing reaches the monitor.
    assign_in_page(dash_duo, "t-cl-a", "Jane Doe")
    dash_duo.wait_for_contains_text("#caseloads-form-error", "Never use a name", timeout=10)
    assert dash_duo.find_element("#caseloads-form-error").text.startswith("The client id is not an id")
    assert caseload(practice) == []

    # Assigned in the page: the monitor has it, and the list shows it with how it came.
    assign_in_page(dash_duo, "t-cl-a", "c-cl-1")
    dash_duo.wait_for_contains_text("#caseloads-assign-status", "c-cl-1 is now on t-cl-a's caseload", timeout=10)
    assert dash_duo.find_element("#caseloads-form-error").text == ""
    assert caseload(practice) == [("t-cl-a", "c-cl-1", "api")]
    dash_duo.wait_for_element(row("t-cl-a", "c-cl-1"), timeout=10)
    assert dash_duo.find_element("#caseloads-client").get_attribute("value") == ""  # ready for the next client
    assert dash_duo.find_element("#caseloads-therapist").get_attribute("value") == "t-cl-a"

    # An id registered with the other role: the monitor's own sentence, and nothing is made.
    assign_in_page(dash_duo, "c-cl-1", "c-cl-2")
    dash_duo.wait_for_contains_text("#caseloads-form-error", "The monitor refused this: participant 'c-cl-1' is registered as a client, not a therapist", timeout=10)
    assert dash_duo.find_element("#caseloads-assign-status").text == ""
    assert caseload(practice) == [("t-cl-a", "c-cl-1", "api")]

    # The same pair again: the monitor answers 200, and the page says nothing changed.
    assign_in_page(dash_duo, "t-cl-a", "c-cl-1")
    dash_duo.wait_for_text_to_equal("#caseloads-assign-status", "c-cl-1 was already on t-cl-a's caseload; nothing changed.", timeout=10)
    assert dash_duo.find_element("#caseloads-form-error").text == ""
    assert caseload(practice) == [("t-cl-a", "c-cl-1", "api")]

    # A session staff create puts its client on the caseload too; the page says how each came.
    practice.session("s-cl-b", "t-cl-b", "c-cl-s", time.time() + 3 * 3600)
    assert sorted(caseload(practice)) == [("t-cl-a", "c-cl-1", "api"), ("t-cl-b", "c-cl-s", "session")]
    dash_duo.driver.get(url + "/caseloads")
    dash_duo.wait_for_element(row("t-cl-b", "c-cl-s"), timeout=15)
    dash_duo.wait_for_contains_text("#caseloads-subtitle", "2 assignments, 2 therapists", timeout=10)
    assigned_at = {(e["therapist_id"], e["client_id"]): e["assigned_at"] for e in practice.monitor.json("GET", "/api/v1/caseload", practice.staff)[1]["caseload"]}
    assert cells(dash_duo, row("t-cl-a", "c-cl-1")) == ["t-cl-a", "c-cl-1", local(assigned_at[("t-cl-a", "c-cl-1")], practice.zone), "assigned by staff", "Remove"]
    assert cells(dash_duo, row("t-cl-b", "c-cl-s"))[2:4] == [local(assigned_at[("t-cl-b", "c-cl-s")], practice.zone), "a session staff created"]
    assert [r.get_attribute("data-client") for r in dash_duo.find_elements("#caseloads-list tbody tr")] == ["c-cl-1", "c-cl-s"]

    # The filter: one therapist's clients, then everyone again.
    dash_duo.select_dcc_dropdown("#caseloads-filter", "t-cl-b (1 client)")
    dash_duo.wait_for_contains_text("#caseloads-subtitle", "t-cl-b: 1 client", timeout=10)
    dash_duo.wait_for_no_elements(row("t-cl-a", "c-cl-1"), timeout=10)
    assert [r.get_attribute("data-client") for r in dash_duo.find_elements("#caseloads-list tbody tr")] == ["c-cl-s"]
    dash_duo.select_dcc_dropdown("#caseloads-filter", "All therapists")
    dash_duo.wait_for_element(row("t-cl-a", "c-cl-1"), timeout=10)
    dash_duo.driver.save_screenshot(str(shots / "caseloads.png"))

    # Remove asks first, saying what it does; dismissing keeps the assignment.
    remove = row("t-cl-a", "c-cl-1") + " button"
    dash_duo.find_element(remove).click()
    alert = WebDriverWait(dash_duo.driver, 10).until(expected_conditions.alert_is_present())
    assert "Take c-cl-1 off t-cl-a's caseload?" in alert.text
    assert "t-cl-a stops seeing c-cl-1's checks at once" in alert.text and "Their sessions stay as they are." in alert.text
    alert.dismiss()
    dash_duo.wait_for_contains_text("#caseloads-remove-status", "Nothing removed: c-cl-1 stays on t-cl-a's caseload.", timeout=10)
    assert ("t-cl-a", "c-cl-1", "api") in caseload(practice)
    assert dash_duo.find_elements(row("t-cl-a", "c-cl-1")) != []

    # Confirmed: gone from the monitor and the page; the therapist's session with the other client stays.
    dash_duo.find_element(remove).click()
    WebDriverWait(dash_duo.driver, 10).until(expected_conditions.alert_is_present()).accept()
    dash_duo.wait_for_contains_text("#caseloads-remove-status", "c-cl-1 is off t-cl-a's caseload", timeout=10)
    dash_duo.wait_for_no_elements(row("t-cl-a", "c-cl-1"), timeout=10)
    assert caseload(practice) == [("t-cl-b", "c-cl-s", "session")]
    assert practice.detail("s-cl-b")[0] == 200
    no_console_errors(dash_duo)


def test_a_therapist_gets_no_caseloads_page_and_the_monitor_refuses_their_changes(dash_duo, dashboard_app, practice: Practice) -> None:  # noqa: ANN001
    practice.user("th.caseloads", "therapist", "t-cl-th")
    url = open_dashboard(dash_duo, dashboard_app, practice)
    log_in(dash_duo, url, "th.caseloads")
    dash_duo.wait_for_element("#shell-user", timeout=15)  # the frame, nav links included, is built with the page
    assert dash_duo.find_elements("#shell-nav-caseloads") == []
    dash_duo.driver.get(url + "/caseloads")
    dash_duo.wait_for_contains_text("#staff-only", "For IT staff", timeout=10)
    assert dash_duo.find_elements("#caseloads-assign") == [] and dash_duo.find_elements("#caseloads-list") == []
    no_console_errors(dash_duo)

    status, login = practice.monitor.json("POST", "/api/v1/login", None, {"username": "th.caseloads", "password": PASSWORD})
    assert status == 201, login
    assert practice.monitor.json("POST", "/api/v1/caseload", login["token"], {"therapist_id": "t-cl-th", "client_id": "c-cl-sneaky"})[0] == 403
    assert all(client != "c-cl-sneaky" for _, client, _ in caseload(practice))
