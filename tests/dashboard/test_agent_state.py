"""One agent, one state on every page: a check is contact (issue 19). Through a real monitor and
the dashboard's own client and view functions, as the Agents and Today pages draw them."""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from dashboard.agents_view import NEVER_SEEN, ONLINE, agent_rows
from dashboard.api import MonitorApi
from dashboard.present import today_rows, zone_of
from tests.conftest import CHECK
from tests.dashboard.conftest import MINUTE, Practice, start_practice


@pytest.fixture
def practice(tmp_path: Path) -> Iterator[Practice]:
    running = start_practice(tmp_path, "it-state")
    try:
        yield running
    finally:
        running.monitor.stop()


def agent_row(api: MonitorApi, practice: Practice, participant: str):  # noqa: ANN201
    rows = agent_rows(api.agents(practice.staff), zone_of(practice.zone), time.time())
    return next(row for row in rows if row.participant_id == participant)


def causes(detail: dict) -> list[tuple[str, str]]:
    return [(r["end"], r["cause"]) for r in (detail.get("risk") or {}).get("reasons", [])]


def test_a_check_posted_on_its_own_is_contact_on_the_agents_page_and_in_the_sessions_risk(practice: Practice) -> None:
    """`sessionready check` posts to POST /api/v1/checks without any batch of reports: the
    Agents page said "Never seen" while Today said "checked 26 s ago", and the session's end
    was "offline". Now both pages and the risk engine read one last contact."""
    api = MonitorApi(practice.monitor.url, timeout_s=5)
    client = practice.agent("client", "c-state")
    practice.agent("therapist", "t-state")
    start = time.time() + 20 * MINUTE  # within the 30 minutes in which an offline agent is a warning
    practice.session("s-state", "t-state", "c-state", start)

    assert agent_row(api, practice, "c-state").flag == NEVER_SEEN  # nothing yet: "Never seen" is right

    def client_end() -> dict | None:
        status, body = practice.detail("s-state")
        assert status == 200, body
        return (body.get("risk") or {}).get("client")

    practice.wait_for(client_end, what="the first assessment")
    assert client_end()["online"] is False  # type: ignore[index]
    assert ("client", "agent_offline") in causes(practice.detail("s-state")[1])

    report = copy.deepcopy(CHECK)
    report["check_id"] = secrets.token_hex(16)
    posted_at = time.time()
    status, body = practice.monitor.json("POST", "/api/v1/checks", client, report)
    assert status == 201, body

    row = agent_row(api, practice, "c-state")
    assert row.flag == ONLINE, row
    assert row.last_seen.endswith("(just now)"), row.last_seen
    [listed] = [a for a in api.agents(practice.staff) if a["participant_id"] == "c-state"]
    assert posted_at - 1 <= listed["last_seen"] <= time.time() and listed["online"] is True
    assert listed["spool"] is None  # no batch yet: the spool's numbers are unknown, not zero

    end = practice.wait_for(lambda: (e := client_end()) and e["check_id"] == report["check_id"] and e, what="the assessment with the check")
    assert end["online"] is True
    status, detail = practice.detail("s-state")
    assert ("client", "agent_offline") not in causes(detail), detail["risk"]["reasons"]
    # Today, from the same monitor at the same moment: the end's check, seconds old.
    zone = zone_of(practice.zone)
    day = datetime.fromtimestamp(start, zone).date().isoformat()
    [today] = [r for r in today_rows(api.sessions_of_day(practice.staff, day, practice.zone), zone, time.time()) if r.session_id == "s-state"]
    [client_view] = [e for e in today.ends if e.role == "client"]
    assert client_view.check_age.startswith("checked ") and client_view.check_age.endswith(" s ago"), client_view.check_age
    assert agent_row(api, practice, "c-state").flag == ONLINE  # and the Agents page still agrees


def test_an_agent_whose_last_contact_was_a_check_goes_offline_after_the_same_five_minutes_as_a_session_end() -> None:
    """The Agents listing and the risk engine share one window (no more 10 minutes on one page
    and 5 on another): at 300 s still online, a second later offline."""
    from monitor.risk.engine import ONLINE_TIMEOUT_S, RiskConfig, agent_online

    assert RiskConfig().online_timeout_s == ONLINE_TIMEOUT_S == 300.0
    now = 1_800_000_000.0
    assert agent_online(now - 300.0, now) and not agent_online(now - 300.5, now) and not agent_online(None, now)
