"""Enrollment codes over HTTP (the dashboard's Agents page), against a real monitor: create,
list, revoke, who may, and that a created code really enrolls a machine once."""

from __future__ import annotations

import pytest

from tests.conftest import Monitor, run_cli


def test_it_login_creates_lists_and_revokes_codes(monitor: Monitor) -> None:
    staff = monitor.login("it.agents", "it")
    status, created = monitor.json("POST", "/api/v1/enrollments", staff, {"role": "client", "participant_id": "c-enrol", "ttl_hours": 2})
    assert status == 201, created
    code, record = created["code"], created["enrollment"]
    assert record["state"] == "pending" and record["role"] == "client" and record["participant_id"] == "c-enrol"
    assert record["expires_at"] - record["created_at"] == pytest.approx(7200)

    status, listing = monitor.json("GET", "/api/v1/enrollments", staff)
    assert status == 200
    assert [e["code_id"] for e in listing["enrollments"]] == [record["code_id"]]
    assert code not in str(listing) and "code" not in listing["enrollments"][0], "a listing never shows a code"
    assert code not in monitor.logs(), "nor does the log"

    # The code works, once, and the listing says so.
    status, enrolled = monitor.json("POST", "/api/v1/enroll", None, {"code": code})
    assert status == 201 and enrolled["participant_id"] == "c-enrol" and enrolled["role"] == "client"
    assert monitor.json("POST", "/api/v1/enroll", None, {"code": code})[0] == 401
    used = monitor.json("GET", "/api/v1/enrollments", staff)[1]["enrollments"][0]
    assert used["state"] == "used" and used["agent_id"] == enrolled["agent_id"]
    status, body = monitor.json("DELETE", f"/api/v1/enrollments/{record['code_id']}", staff)
    assert status == 409 and body["error"]["code"] == "already_used"

    # A revoked code stops working at once; revoking again answers the same.
    second = monitor.json("POST", "/api/v1/enrollments", staff, {"role": "therapist", "participant_id": "t-enrol"})[1]
    assert second["enrollment"]["expires_at"] - second["enrollment"]["created_at"] == pytest.approx(72 * 3600), "default 72 hours"
    path = f"/api/v1/enrollments/{second['enrollment']['code_id']}"
    status, revoked = monitor.json("DELETE", path, staff)
    assert status == 200 and revoked["state"] == "revoked" and revoked["revoked_at"] is not None
    assert monitor.json("DELETE", path, staff) == (200, revoked)
    assert monitor.json("POST", "/api/v1/enroll", None, {"code": second["code"]})[0] == 401
    listed = run_cli("monitor", "enroll", "list", "--data-dir", str(monitor.data_dir))
    assert second["enrollment"]["code_id"] in listed.stdout and "revoked" in listed.stdout, "the CLI sees the same codes"


def test_only_staff_may_manage_codes(monitor: Monitor) -> None:
    admin = monitor.token("admin", "adm")
    code_id = monitor.json("POST", "/api/v1/enrollments", admin, {"role": "client", "participant_id": "c-x"})[1]["enrollment"]["code_id"]
    outsiders = [
        monitor.token("therapist", "t-x"),
        monitor.token("client", "c-x"),
        monitor.token("metrics", "prom"),
        monitor.login("th.x", "therapist", "t-x"),
    ]
    for token in outsiders:
        assert monitor.json("POST", "/api/v1/enrollments", token, {"role": "client", "participant_id": "c-y"})[0] == 403
        assert monitor.json("GET", "/api/v1/enrollments", token)[0] == 403
        assert monitor.json("DELETE", f"/api/v1/enrollments/{code_id}", token)[0] == 403
    assert monitor.json("GET", "/api/v1/enrollments")[0] == 401
    listing = monitor.json("GET", "/api/v1/enrollments", admin)[1]["enrollments"]
    assert [(e["participant_id"], e["state"]) for e in listing] == [("c-x", "pending")], "nothing changed"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"role": "it", "participant_id": "c-1"}, "role"),
        ({"role": "client", "participant_id": "Jane Doe"}, "participant_id"),
        ({"role": "client"}, "participant_id"),
        ({"role": "client", "participant_id": "c-1", "ttl_hours": 0}, "ttl_hours"),
        ({"role": "client", "participant_id": "c-1", "ttl_hours": 721}, "ttl_hours"),
        ({"role": "client", "participant_id": "c-1", "ttl_hours": 1.5}, "ttl_hours"),
        ({"role": "client", "participant_id": "c-1", "name": "x"}, "name"),
    ],
)
def test_bad_requests_are_refused_and_create_nothing(shared_monitor: Monitor, payload: dict, field: str) -> None:
    token = shared_monitor.kept_token("it", "it-enrol")
    status, body = shared_monitor.json("POST", "/api/v1/enrollments", token, payload)
    assert status == 400 and body["error"]["field"] == field, body
    assert shared_monitor.json("GET", "/api/v1/enrollments", token)[1]["enrollments"] == []


def test_revoking_unknown_or_malformed_ids(shared_monitor: Monitor) -> None:
    token = shared_monitor.kept_token("it", "it-enrol")
    assert shared_monitor.json("DELETE", "/api/v1/enrollments/0123456789ab", token)[0] == 404
    status, body = shared_monitor.json("DELETE", "/api/v1/enrollments/not-an-id", token)
    assert status == 400 and body["error"]["field"] == "code_id"
    assert shared_monitor.json("GET", "/api/v1/enrollments?state=pending", token)[0] == 400
