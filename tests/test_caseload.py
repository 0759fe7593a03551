"""Caseloads against a real monitor process: the attack of issue 12 replayed (a therapist reading
another therapist's client's checks by booking a fake session), the window around a therapist's
own sessions, the 409s that no longer tell a therapist about others, enrollment codes that keep
the participant registry, imports that assign, and the CLI."""

from __future__ import annotations

import copy
import secrets
import sqlite3
import time
from pathlib import Path

from monitor.store.caseloads import CHECK_WINDOW_AFTER_S, CHECK_WINDOW_BEFORE_S
from monitor.store.core import open_store
from sessionready.typed import rfc3339
from tests.conftest import CHECK, run_cli
from tests.dashboard.conftest import Practice, practice  # noqa: F401 - the module-scoped practice fixture

HOUR = 3600


def book(practice: Practice, token: str, therapist: str, client: str, start_s: float, **extra: object) -> tuple[int, dict]:
    body = {"therapist_id": therapist, "client_id": client, "start": rfc3339(float(int(start_s))), "planned_duration_s": 3000, **extra}
    return practice.monitor.json("POST", "/api/v1/sessions", token, body)


def post_check(practice: Practice, token: str, session_id: str | None = None) -> str:
    """A client's check as its agent sends it (through the reports API); the check id."""
    report = copy.deepcopy(CHECK)
    report["check_id"] = secrets.token_hex(16)
    report["session_id"] = session_id
    report["started_at"] = rfc3339(time.time() - 20)
    practice.post(token, practice.envelope(token, "check", report))
    return report["check_id"]


def read_check(practice: Practice, token: str, check_id: str) -> tuple[int, dict]:
    return practice.monitor.json("GET", f"/api/v1/checks/{check_id}", token)


def assign(practice: Practice, therapist: str, client: str) -> int:
    return practice.monitor.json("POST", "/api/v1/caseload", practice.staff, {"therapist_id": therapist, "client_id": client})[0]


def test_a_therapist_cannot_book_another_therapists_client_to_read_their_checks(practice: Practice) -> None:
    """Issue 12, high: therapist A booked a session with B's client, waited one risk pass and
    read the client's full check through the session's check_id; the check named B's session."""
    a, b = practice.agent("therapist", "cl-ta"), practice.agent("therapist", "cl-tb")
    client = practice.agent("client", "cl-c-of-b")
    start = time.time() + 2 * HOUR
    status, body = book(practice, practice.staff, "cl-tb", "cl-c-of-b", start)
    assert status == 201, body
    b_session = body["session"]["session_id"]
    check_id = post_check(practice, client, session_id=b_session)
    assert read_check(practice, b, check_id)[0] == 200, "B sees their own client's check"

    # The attack: A books the same client. Refused, with one answer for every kind of id...
    refused = [book(practice, a, "cl-ta", who, start + HOUR) for who in ("cl-c-of-b", "cl-never-seen", "cl-tb")]
    assert [status for status, _ in refused] == [403, 403, 403], refused
    assert len({body["error"]["message"].split("'")[2] for _, body in refused}) == 1, "the answer tells nothing about the id"
    assert all(body["error"]["code"] == "not_on_caseload" for _, body in refused)
    # ... nothing was registered for the ids a therapist named ...
    participants = practice.monitor.json("GET", "/api/v1/participants", practice.staff)[1]["participants"]
    assert "cl-never-seen" not in {p["participant_id"] for p in participants}
    # ... and after a risk pass A still cannot read the check, whose id they may have learnt.
    practice.wait_for(lambda: (practice.detail(b_session)[1]["risk"] or {}).get("client", {}).get("check_id") == check_id, what="B's session assessed")
    assert read_check(practice, a, check_id)[0] == 404
    status, body = practice.monitor.json("GET", "/api/v1/sessions", a)
    assert status == 200 and all(s["therapist_id"] == "cl-ta" for s in body["sessions"])


def test_a_shared_client_shows_only_checks_around_the_therapists_own_sessions(practice: Practice) -> None:
    a = practice.agent("therapist", "cl-ta2")
    user_a = practice.monitor.login("cl-ta2-user", "therapist", participant="cl-ta2")
    client = practice.agent("client", "cl-shared")
    now = time.time()
    status, body = book(practice, practice.staff, "cl-tb2", "cl-shared", now + HOUR)  # B's session, today
    assert status == 201, body
    b_session = body["session"]["session_id"]
    check_id = post_check(practice, client, session_id=b_session)
    assert assign(practice, "cl-ta2", "cl-shared") == 201, "staff put the client on A's caseload too"
    assert read_check(practice, a, check_id)[0] == 404, "on A's caseload, but A has no session near the check"

    # A session of A's whose window holds the check: its start is at most 24 h after the check.
    status, body = book(practice, a, "cl-ta2", "cl-shared", now + CHECK_WINDOW_BEFORE_S - HOUR)
    assert status == 201, body
    a_session = body["session"]["session_id"]
    for who in (a, user_a):
        status, seen = read_check(practice, who, check_id)
        assert status == 200, seen
        assert seen["report"]["session_id"] is None, "A does not learn the id of B's session"
    assert read_check(practice, practice.staff, check_id)[1]["report"]["session_id"] == b_session, "staff see it whole"

    # A cancelled session opens no window; neither does one a day and more away.
    assert practice.monitor.json("POST", f"/api/v1/sessions/{a_session}/state", a, {"state": "cancelled"})[0] == 200
    assert read_check(practice, a, check_id)[0] == 404
    assert book(practice, a, "cl-ta2", "cl-shared", now + CHECK_WINDOW_BEFORE_S + HOUR)[0] == 201
    assert read_check(practice, a, check_id)[0] == 404
    # A session that ended within the hour after the check still shows it (the session page).
    past_start = now - 3000 - CHECK_WINDOW_AFTER_S + 600
    status, body = book(practice, practice.staff, "cl-ta2", "cl-shared", past_start)
    assert status == 201, body
    assert read_check(practice, a, check_id)[0] == 200
    # Off the caseload: nothing, at once, whatever the sessions.
    assert practice.monitor.request("DELETE", "/api/v1/caseload/cl-ta2/cl-shared", practice.staff)[0] == 204
    assert read_check(practice, a, check_id)[0] == 404
    assert book(practice, a, "cl-ta2", "cl-shared", now + 2 * HOUR)[0] == 403


def test_session_ids_and_roles_of_others_do_not_leak_to_a_therapist(practice: Practice) -> None:
    a = practice.agent("therapist", "cl-ta3")
    assert assign(practice, "cl-ta3", "cl-c3") == 201
    status, body = book(practice, practice.staff, "cl-tb3", "cl-c-of-b3", time.time() + HOUR, session_id="cl-b-session")
    assert status == 201, body
    # A chosen id is refused before it is looked up: B's existing id and a fresh one alike.
    answers = [book(practice, a, "cl-ta3", "cl-c3", time.time() + HOUR, session_id=sid) for sid in ("cl-b-session", "cl-free-id")]
    assert [status for status, _ in answers] == [400, 400]
    assert answers[0][1] == answers[1][1], "the same answer whether the id exists or not"
    # So a therapist cannot take an id that a later import needs: the import goes through.
    csv = "session_id,therapist_id,client_id,start,planned_duration_minutes\ncl-free-id,cl-ta3,cl-c3,2031-01-06T09:00:00Z,50\n"
    status, raw = practice.monitor.request("POST", "/api/v1/sessions/import", practice.staff, csv.encode(), {"Content-Type": "text/csv"})
    assert status == 200, raw


def test_staff_manage_caseloads_and_a_therapist_reads_only_their_own(practice: Practice) -> None:
    a = practice.agent("therapist", "cl-ta4")
    client = practice.agent("client", "cl-c4")
    monitor, staff = practice.monitor, practice.staff
    assert assign(practice, "cl-ta4", "cl-c4") == 201
    assert assign(practice, "cl-ta4", "cl-c4") == 200, "assigning again changes nothing"
    assert assign(practice, "cl-tb4", "cl-c5") == 201
    status, body = monitor.json("POST", "/api/v1/caseload", staff, {"therapist_id": "cl-c4", "client_id": "cl-x"})
    assert status == 409 and body["error"]["field"] == "therapist_id", "a client's id cannot become a therapist's"
    status, body = monitor.json("POST", "/api/v1/caseload", staff, {"therapist_id": "cl-ta4", "client_id": "Jane Doe"})
    assert status == 400 and body["error"]["field"] == "client_id"
    status, body = monitor.json("GET", "/api/v1/caseload", a)
    assert status == 200 and [(e["therapist_id"], e["client_id"], e["source"]) for e in body["caseload"]] == [("cl-ta4", "cl-c4", "api")]
    assert monitor.json("GET", "/api/v1/caseload?therapist=cl-tb4", a)[0] == 403
    assert monitor.json("GET", "/api/v1/caseload?therapistt=cl-ta4", staff)[0] == 400
    status, body = monitor.json("GET", "/api/v1/caseload?therapist=cl-tb4", staff)
    assert status == 200 and [e["client_id"] for e in body["caseload"]] == ["cl-c5"]
    # Only staff assign and remove: not a therapist, not a client's machine.
    for token in (a, client):
        assert monitor.json("POST", "/api/v1/caseload", token, {"therapist_id": "cl-ta4", "client_id": "cl-c5"})[0] == 403
        assert monitor.request("DELETE", "/api/v1/caseload/cl-tb4/cl-c5", token)[0] == 403
    assert monitor.request("DELETE", "/api/v1/caseload/cl-tb4/cl-nobody", staff)[0] == 404
    assert monitor.request("DELETE", "/api/v1/caseload/cl-tb4/cl-c5", staff)[0] == 204


def test_imports_and_staff_sessions_assign_their_pairs(practice: Practice) -> None:
    csv = "session_id,therapist_id,client_id,start,planned_duration_minutes\ncl-imp-1,cl-ta5,cl-c6,2031-02-03T09:00:00Z,50\n"
    status, raw = practice.monitor.request("POST", "/api/v1/sessions/import", practice.staff, csv.encode(), {"Content-Type": "text/csv"})
    assert status == 200, raw
    assert book(practice, practice.staff, "cl-ta5", "cl-c7", time.time() + HOUR)[0] == 201
    status, body = practice.monitor.json("GET", "/api/v1/caseload?therapist=cl-ta5", practice.staff)
    assert [(e["client_id"], e["source"]) for e in body["caseload"]] == [("cl-c6", "csv"), ("cl-c7", "session")]
    a = practice.agent("therapist", "cl-ta5")
    assert book(practice, a, "cl-ta5", "cl-c6", time.time() + HOUR)[0] == 201, "the imported client may be booked by the therapist"


def test_enrollment_codes_keep_each_ids_role(practice: Practice) -> None:
    monitor, staff = practice.monitor, practice.staff
    assert assign(practice, "cl-ta6", "cl-c8") == 201
    status, body = monitor.json("POST", "/api/v1/enrollments", staff, {"role": "therapist", "participant_id": "cl-c8"})
    assert status == 409 and body["error"]["field"] == "participant_id", "a client's id cannot get a therapist's machine"
    assert not [e for e in monitor.json("GET", "/api/v1/enrollments", staff)[1]["enrollments"] if e["participant_id"] == "cl-c8"]
    assert monitor.json("POST", "/api/v1/enrollments", staff, {"role": "client", "participant_id": "cl-c8"})[0] == 201
    assert monitor.json("POST", "/api/v1/enrollments", staff, {"role": "client", "participant_id": "cl-c9"})[0] == 201
    status, body = monitor.json("POST", "/api/v1/caseload", staff, {"therapist_id": "cl-c9", "client_id": "cl-c8"})
    assert status == 409, "a new id was registered with its code's role"
    result = run_cli("monitor", "enroll", "create", "--role", "therapist", "--participant", "cl-c8", "--data-dir", str(monitor.data_dir))
    assert result.returncode == 3 and "registered as a client" in result.stderr and "Traceback" not in result.stderr


def test_the_caseload_command(practice: Practice) -> None:
    data = ["--data-dir", str(practice.monitor.data_dir)]
    done = run_cli("monitor", "caseload", "assign", "--therapist", "cl-ta7", "--client", "cl-c10", *data)
    assert done.returncode == 0 and "assigned client cl-c10 to therapist cl-ta7" in done.stdout, done.stderr
    assert "nothing changed" in run_cli("monitor", "caseload", "assign", "--therapist", "cl-ta7", "--client", "cl-c10", *data).stdout
    listing = run_cli("monitor", "caseload", "list", "--therapist", "cl-ta7", *data)
    assert listing.returncode == 0 and [line.split()[:2] for line in listing.stdout.splitlines()[1:]] == [["cl-ta7", "cl-c10"]]
    for args, words in (
        (["assign", "--therapist", "cl-ta7", "--client", "Jane Doe"], "--client must be"),
        (["assign", "--therapist", "cl-c10", "--client", "cl-c11"], "registered as a client"),
        (["remove", "--therapist", "cl-ta7", "--client", "cl-c11"], "is not on therapist cl-ta7's caseload"),
    ):
        done = run_cli("monitor", "caseload", *args, *data)
        assert done.returncode == 3 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert run_cli("monitor", "caseload", "remove", "--therapist", "cl-ta7", "--client", "cl-c10", *data).returncode == 0
    assert run_cli("monitor", "caseload", "list", "--therapist", "cl-ta7", *data).stdout.splitlines()[1:] == []


def test_a_store_from_before_caseloads_assigns_its_imported_pairs_once(tmp_path: Path) -> None:
    # SQLite only: only SQLite stores exist from before caseloads (a PostgreSQL store starts at
    # version 1, which has them).
    store = open_store(tmp_path)
    try:
        for therapist, client in (("up-t1", "up-c1"), ("up-t2", "up-c2")):
            store.create_session(None, therapist, client, 2_000_000_000, 3000)
        store._db.execute("UPDATE sessions SET source = 'csv' WHERE therapist_id = 'up-t1'")  # an imported one
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "sessionready.sqlite3") as db:
        db.execute("DROP TABLE caseload")  # as the store was before caseloads...
        for table in ("check_links", "session_summaries", "leases"):  # ...and so before every migration's table...
            db.execute(f"DROP TABLE {table}")
        db.execute("PRAGMA user_version = 0")  # ...and before schema versions
    store = open_store(tmp_path)
    try:
        assert [(e.therapist_id, e.client_id, e.source) for e in store.caseload()] == [("up-t1", "up-c1", "upgrade")]
        store.unassign_client("up-t1", "up-c1")
    finally:
        store.close()
    store = open_store(tmp_path)
    try:
        assert store.caseload() == [], "the upgrade ran once: a later removal stays removed"
    finally:
        store.close()
