"""The sessions API and CLI against a real monitor process: who sees what, state changes,
imports end to end, and the privacy promise (no calendar text reaches the disk or the log)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from monitor.openapi import openapi_document
from tests.conftest import Monitor, fuzz_auth, run_cli, start_monitor
from tests.dashboard.conftest import Practice, start_practice

DATA = Path(__file__).parent / "data" / "calendar"
SESSIONS = "/api/v1/sessions"
# The list's answers as the OpenAPI document promises them (the same classes build both).
LIST_SCHEMA = jsonschema_rs.validator_for({"$ref": "#/components/schemas/SessionList", "components": openapi_document()["components"]})


def stamp(unix_s: float) -> str:
    return datetime.fromtimestamp(int(unix_s), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def tokens(shared_monitor: Monitor) -> dict[str, str]:
    return {
        "it": shared_monitor.token("it", "staff-it"),
        "admin": shared_monitor.token("admin", "staff-admin"),
        "t-a": shared_monitor.token("therapist", "t-a"),
        "t-b": shared_monitor.token("therapist", "t-b"),
        "c-1": shared_monitor.token("client", "c-1"),
        "metrics": shared_monitor.token("metrics", "prom"),
    }


def create(m: Monitor, token: str, **fields: object) -> tuple[int, dict]:
    body = {"therapist_id": "t-a", "client_id": "c-1", "start": "2026-03-16T09:00:00+01:00", "planned_duration_s": 3000, **fields}
    return m.json("POST", SESSIONS, token, body)


def test_create_is_idempotent_and_conflicts_on_other_content(shared_monitor: Monitor, tokens: dict[str, str]) -> None:
    status, body = create(shared_monitor, tokens["it"], session_id="idem-1")
    assert status == 201
    assert body["session"] == {
        "session_id": "idem-1",
        "therapist_id": "t-a",
        "client_id": "c-1",
        "start": "2026-03-16T08:00:00Z",
        "planned_duration_s": 3000,
        "state": "scheduled",
        "source": "api",
        "created_at": body["session"]["created_at"],
        "updated_at": body["session"]["updated_at"],
        "risk": None,  # a session weeks ago is never assessed
    }
    assert [h["state"] for h in body["history"]] == ["scheduled"]
    assert create(shared_monitor, tokens["it"], session_id="idem-1")[0] == 200
    status, body = create(shared_monitor, tokens["it"], session_id="idem-1", planned_duration_s=3600)
    assert status == 409 and body["error"]["field"] == "session_id"
    status, body = create(shared_monitor, tokens["admin"])  # no id: one is generated
    assert status == 201 and body["session"]["session_id"].startswith("s-")


def test_therapist_creates_only_own_sessions(shared_monitor: Monitor, tokens: dict[str, str]) -> None:
    assert shared_monitor.json("POST", "/api/v1/caseload", tokens["it"], {"therapist_id": "t-a", "client_id": "c-1"})[0] in (200, 201)
    status, body = create(shared_monitor, tokens["t-a"])
    assert status == 201 and body["session"]["session_id"].startswith("s-"), body  # the monitor chose the id
    status, body = create(shared_monitor, tokens["t-b"])
    assert status == 403 and body["error"]["field"] == "therapist_id"
    status, body = create(shared_monitor, tokens["t-a"], session_id="own-2")
    assert status == 400 and body["error"]["field"] == "session_id"
    assert create(shared_monitor, tokens["c-1"], session_id="own-3")[0] == 403
    assert shared_monitor.json("GET", f"{SESSIONS}/own-2", tokens["it"])[0] == 404  # nothing was stored


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"therapist_id": "Dr. Anna Meier"}, "therapist_id"),
        ({"start": "2026-03-16 09:00"}, "start"),
        ({"start": "2026-03-16T09:00:00.5Z"}, "start"),
        ({"planned_duration_s": 10}, "planned_duration_s"),
        ({"title": "first session"}, "title"),
        ({"client_id": "t-a"}, "client_id"),
    ],
)
def test_bad_input_is_400_naming_the_field(shared_monitor: Monitor, tokens: dict[str, str], fields: dict, field: str) -> None:
    status, body = create(shared_monitor, tokens["it"], session_id="bad-input", **fields)
    assert status == 400 and body["error"]["field"] == field, body


def test_a_participant_keeps_its_role(shared_monitor: Monitor, tokens: dict[str, str]) -> None:
    status, body = create(shared_monitor, tokens["it"], session_id="role-1", therapist_id="c-1", client_id="c-9")
    assert status == 409 and body["error"]["field"] == "therapist_id" and "registered as a client" in body["error"]["message"]
    status, body = shared_monitor.json("POST", "/api/v1/participants", tokens["it"], {"participant_id": "t-new", "role": "therapist"})
    assert status == 201 and body["role"] == "therapist"
    assert shared_monitor.json("POST", "/api/v1/participants", tokens["it"], {"participant_id": "t-new", "role": "therapist"})[0] == 200
    assert shared_monitor.json("POST", "/api/v1/participants", tokens["it"], {"participant_id": "t-new", "role": "client"})[0] == 409
    assert shared_monitor.json("POST", "/api/v1/participants", tokens["t-a"], {"participant_id": "t-x", "role": "therapist"})[0] == 403
    status, body = shared_monitor.json("GET", "/api/v1/participants", tokens["admin"])
    assert {"participant_id": "t-new", "role": "therapist"}.items() <= next(p for p in body["participants"] if p["participant_id"] == "t-new").items()


@pytest.fixture(scope="module")
def listing(shared_monitor: Monitor, tokens: dict[str, str]) -> None:
    for session_id, therapist, start in (
        ("list-a1", "t-a", "2026-06-01T07:30:00Z"),
        ("list-a2", "t-a", "2026-06-01T22:30:00Z"),  # 2 June in Berlin (+02:00)
        ("list-b1", "t-b", "2026-06-01T09:00:00Z"),
    ):
        status, _ = create(shared_monitor, tokens["it"], session_id=session_id, therapist_id=therapist, client_id="c-list", start=start)
        assert status == 201


def ids(m: Monitor, token: str, query: str) -> list[str]:
    status, body = m.json("GET", f"{SESSIONS}?{query}", token)
    assert status == 200, body
    return [s["session_id"] for s in body["sessions"] if s["session_id"].startswith("list-")]


def test_therapist_sees_only_own_sessions_whatever_the_query(shared_monitor: Monitor, tokens: dict[str, str], listing: None) -> None:
    assert ids(shared_monitor, tokens["t-a"], "day=2026-06-01") == ["list-a1", "list-a2"]
    assert ids(shared_monitor, tokens["t-a"], "day=2026-06-01&therapist=t-b") == []
    assert ids(shared_monitor, tokens["t-b"], "day=2026-06-01") == ["list-b1"]
    assert ids(shared_monitor, tokens["it"], "day=2026-06-01") == ["list-a1", "list-b1", "list-a2"]
    assert ids(shared_monitor, tokens["admin"], "day=2026-06-01&therapist=t-b") == ["list-b1"]
    assert shared_monitor.json("GET", SESSIONS, tokens["c-1"])[0] == 403
    assert shared_monitor.json("GET", SESSIONS, tokens["metrics"])[0] == 403
    assert shared_monitor.json("GET", SESSIONS, None)[0] == 401


def test_list_filters_by_day_in_a_zone_state_and_range(shared_monitor: Monitor, tokens: dict[str, str], listing: None) -> None:
    assert ids(shared_monitor, tokens["it"], "day=2026-06-01&tz=Europe/Berlin") == ["list-a1", "list-b1"]
    assert ids(shared_monitor, tokens["it"], "day=2026-06-02&tz=%2B02:00") == ["list-a2"]
    assert ids(shared_monitor, tokens["it"], "from=2026-06-01T08:00:00Z&to=2026-06-01T23:00:00Z") == ["list-b1", "list-a2"]
    assert ids(shared_monitor, tokens["it"], "day=2026-06-01&state=cancelled") == []
    assert ids(shared_monitor, tokens["it"], "day=2026-06-01&limit=1") in (["list-a1"], [])
    for query, field in (("day=2026-02-30", "day"), ("day=June", "day"), ("tz=Mars/Olympus", "tz"), ("state=done", "state"), ("from=yesterday", "from"), ("limit=0", "limit"), ("therapist=a%20b", "therapist")):
        status, body = shared_monitor.json("GET", f"{SESSIONS}?{query}", tokens["it"])
        assert status == 400 and body["error"]["field"] == field, query


def test_an_over_long_zone_is_400_not_a_crash(shared_monitor: Monitor, tokens: dict[str, str]) -> None:
    """Issue 12, low: ?tz= with 5,000 letters reached the file system as a zone file's path and
    answered 500 (OSError: file name too long) with a traceback in the log."""
    for path in (f"{SESSIONS}?day=2026-06-01&tz={'A' * 5000}", f"{SESSIONS}/import?tz={'A' * 5000}", f"/api/v1/trends?tz={'A' * 5000}"):
        body = b"session_id,therapist_id,client_id,start,planned_duration_minutes\n" if "import" in path else None
        status, raw = shared_monitor.request("POST" if body else "GET", path, tokens["it"], body, {"Content-Type": "text/csv"} if body else None)
        assert status == 400 and json.loads(raw)["error"]["field"] == "tz", (path[:40], status, raw[:200])
    assert "Traceback" not in shared_monitor.logs() and "too long" not in shared_monitor.logs()


def test_get_by_id_shows_both_ends_and_hides_others_sessions(shared_monitor: Monitor, tokens: dict[str, str], listing: None) -> None:
    status, body = shared_monitor.json("GET", f"{SESSIONS}/list-a1", tokens["t-a"])
    assert status == 200 and (body["session"]["therapist_id"], body["session"]["client_id"]) == ("t-a", "c-list")
    other = shared_monitor.json("GET", f"{SESSIONS}/list-b1", tokens["t-a"])
    absent = shared_monitor.json("GET", f"{SESSIONS}/no-such-session", tokens["t-a"])
    assert other == absent and other[0] == 404
    assert shared_monitor.json("GET", f"{SESSIONS}/list-b1", tokens["it"])[0] == 200
    assert shared_monitor.json("GET", f"{SESSIONS}/list-a1", tokens["c-1"])[0] == 403


def test_state_changes_are_stored_with_reasons(shared_monitor: Monitor, tokens: dict[str, str]) -> None:
    assert create(shared_monitor, tokens["it"], session_id="state-1")[0] == 201
    path = f"{SESSIONS}/state-1/state"
    assert shared_monitor.json("POST", path, tokens["t-b"], {"state": "live"})[0] == 404  # not t-b's
    status, body = shared_monitor.json("POST", path, tokens["t-a"], {"state": "live"})
    assert status == 200 and body["session"]["state"] == "live"
    assert shared_monitor.json("POST", path, tokens["t-a"], {"state": "live"})[0] == 200  # unchanged: no new entry
    status, body = shared_monitor.json("POST", path, tokens["it"], {"state": "ended", "reason": "both_agents_left"})
    assert status == 200
    status, body = shared_monitor.json("POST", path, tokens["it"], {"state": "live"})
    assert status == 409 and body["error"]["code"] == "invalid_transition"
    status, body = shared_monitor.json("POST", path, tokens["it"], {"state": "live", "reason": "The client cried"})
    assert status == 400 and body["error"]["field"] == "reason"
    status, body = shared_monitor.json("GET", f"{SESSIONS}/state-1", tokens["t-a"])
    assert [(h["state"], h["reason"]) for h in body["history"]] == [("scheduled", "created"), ("live", "api"), ("ended", "both_agents_left")]


def test_agent_sessions_window_and_role(shared_monitor: Monitor, tokens: dict[str, str]) -> None:
    now = time.time()
    for session_id, offset_s, duration_s in (
        ("agent-past", -3 * 3600, 3000),  # ended 2 h ago: gone
        ("agent-recent", -3600, 3000),  # ended 10 min ago: still shown
        ("agent-soon", 1800, 3000),
        ("agent-later", 30 * 3600, 3000),  # beyond 24 h
    ):
        status, _ = create(shared_monitor, tokens["it"], session_id=session_id, therapist_id="t-agent", client_id="c-agent", start=stamp(now + offset_s), planned_duration_s=duration_s)
        assert status == 201
    client = shared_monitor.token("client", "c-agent")
    therapist = shared_monitor.token("therapist", "t-agent")
    status, body = shared_monitor.json("GET", "/api/v1/agent/sessions", client)
    assert status == 200
    assert [(s["session_id"], s["role"]) for s in body["sessions"]] == [("agent-recent", "client"), ("agent-soon", "client")]
    assert body["sessions"][1] == {"session_id": "agent-soon", "start": stamp(now + 1800), "planned_duration_s": 3000, "state": "scheduled", "role": "client"}
    status, body = shared_monitor.json("GET", "/api/v1/agent/sessions?hours=48", therapist)
    assert [(s["session_id"], s["role"]) for s in body["sessions"]] == [("agent-recent", "therapist"), ("agent-soon", "therapist"), ("agent-later", "therapist")]
    for hours in ("0", "169", "x"):
        status, body = shared_monitor.json("GET", f"/api/v1/agent/sessions?hours={hours}", client)
        assert status == 400 and body["error"]["field"] == "hours"
    assert shared_monitor.json("GET", "/api/v1/agent/sessions", tokens["it"])[0] == 403


def test_csv_import_through_the_api_is_all_or_nothing(shared_monitor: Monitor, tokens: dict[str, str]) -> None:
    good = (DATA / "sessions.csv").read_bytes().replace(b"t-berlin-01", b"t-csv").replace(b"t-ny-02", b"t-csv2")
    good = good.replace(b"csv-00", b"apicsv-")
    status, raw = shared_monitor.request("POST", f"{SESSIONS}/import?tz=Europe/Berlin", tokens["it"], good, {"Content-Type": "text/csv"})
    body = json.loads(raw)
    assert status == 200 and (body["created"], body["updated"], body["unchanged"]) == (3, 0, 0), body
    status, raw = shared_monitor.request("POST", f"{SESSIONS}/import?tz=Europe/Berlin", tokens["it"], good, {"Content-Type": "text/csv"})
    assert json.loads(raw)["unchanged"] == 3
    bad = good + b"apicsv-9,t-csv,c-new,2026-03-29 02:30,50\n"
    status, raw = shared_monitor.request("POST", f"{SESSIONS}/import?tz=Europe/Berlin", tokens["it"], bad.replace(b"apicsv-", b"apicsv2-"), {"Content-Type": "text/csv"})
    body = json.loads(raw)
    assert status == 400 and body["error"]["code"] == "invalid_rows"
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(5, "start")]
    assert shared_monitor.json("GET", f"{SESSIONS}/apicsv2-1", tokens["it"])[0] == 404  # nothing stored
    status, raw = shared_monitor.request("POST", f"{SESSIONS}/import", tokens["it"], b"BEGIN:VCALENDAR", {"Content-Type": "text/calendar"})
    assert status == 415
    status, raw = shared_monitor.request("POST", f"{SESSIONS}/import", tokens["t-a"], good, {"Content-Type": "text/csv"})
    assert status == 403


def test_ics_import_through_the_api_needs_a_mapping(shared_monitor: Monitor, tokens: dict[str, str]) -> None:
    calendar = (DATA / "outlook-newyork.ics").read_text()
    status, body = shared_monitor.json("POST", f"{SESSIONS}/import", tokens["it"], {"format": "ics", "data": calendar})
    assert status == 400 and body["error"]["field"] == "mapping"
    mapping = json.loads((DATA / "mapping.json").read_text())
    payload = {"format": "ics", "data": calendar, "mapping": mapping, "window_start": "2026-03-01T00:00:00Z", "window_end": "2026-04-01T00:00:00Z"}
    status, body = shared_monitor.json("POST", f"{SESSIONS}/import", tokens["admin"], payload)
    assert status == 200 and body["created"] == 2, body
    status, body = shared_monitor.json("GET", f"{SESSIONS}?therapist=t-ny-02", tokens["it"])
    assert [s["start"] for s in body["sessions"]] == ["2026-03-02T15:00:00Z", "2026-03-09T14:00:00Z"]
    status, body = shared_monitor.json("POST", f"{SESSIONS}/import", tokens["it"], {**payload, "data": "garbage"})
    assert status == 400 and body["error"]["code"] == "invalid_calendar"


# --- privacy: nothing from the calendar but ids and times is kept ----------------------------

SECRETS = (
    # titles, descriptions, locations
    "Zebrafink-Quokka",
    "Xylophon-Marmelade",
    "Kuckucksweg",
    "Pfefferminzbonbon",
    "Gurkenhobel",
    "Marzipanschwein",
    "Flamingo-Kompass",
    "Wochengespraech",
    # attendee and organizer names and addresses, UIDs
    "Quastenflosser",
    "quastenflosser",
    "Schnabeltier",
    "schnabeltier",
    "Wackelpudding",
    "Haselnuss",
    "haselnuss",
    "Kartoffelpuffer",
    "jebediah",
    "Stachelbeere",
    "stachelbeere",
    "praxis.example.org",
    "C0FFEE1234567890ABCDEF",
    "7kukuk2l3q9bq1u6e2n0rq0abc",
)


def test_ics_titles_names_and_addresses_are_never_stored_or_logged(tmp_path: Path) -> None:
    monitor = start_monitor(tmp_path / "private")
    try:
        token = monitor.token("it", "staff")
        mapping = json.loads((DATA / "mapping.json").read_text())
        imported = 0
        for name in ("practice-berlin.ics", "outlook-newyork.ics", "google-xwr.ics"):
            payload = {"format": "ics", "data": (DATA / name).read_text(), "mapping": mapping, "window_start": "2026-03-01T00:00:00Z", "window_end": "2026-05-01T00:00:00Z"}
            status, body = monitor.json("POST", f"{SESSIONS}/import", token, payload)
            assert status == 200, body
            imported += body["created"] + body["cancelled"]
        # The same calendars through the CLI, which reads the mapping from a file.
        result = run_cli("monitor", "sessions", "import-ics", str(DATA / "practice-berlin.ics"), "--mapping", str(DATA / "mapping.json"), "--from", "2026-03-01", "--to", "2026-05-01", "--data-dir", str(monitor.data_dir))
        assert result.returncode == 0 and "8 unchanged" in result.stdout, result.stderr
        status, body = monitor.json("GET", f"{SESSIONS}?limit=1000", token)
        assert imported == len(body["sessions"]) == 14
        for session in body["sessions"]:
            for value in session.values():
                assert not any(secret.lower() in str(value).lower() for secret in SECRETS)
        files = sorted(p for p in monitor.data_dir.iterdir() if p.is_file())
        assert any(p.name.endswith("-wal") for p in files), files  # the WAL is scanned while it holds the writes
        contents = [p.read_bytes() for p in files]
    finally:
        monitor.stop()
    contents += [p.read_bytes() for p in monitor.data_dir.iterdir() if p.is_file()]
    # A positive control: the scan does see what is stored.
    assert any(b"c-berlin-17" in blob for blob in contents)
    log = monitor.logs()
    assert "/api/v1/sessions/import" in log  # the log is real and covers the imports
    for secret in SECRETS:
        assert not any(secret.encode() in blob for blob in contents), secret
        assert secret not in log, secret


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def calendar_server() -> Iterator[str]:
    """A real local HTTP server that serves tests/data/calendar/."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            super().__init__(*args, directory=str(DATA), **kwargs)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def cli(data_dir: Path, *args: str):  # noqa: ANN201
    return run_cli("monitor", "sessions", *args, "--data-dir", str(data_dir))


def test_cli_imports_lists_creates_and_cancels(tmp_path: Path, calendar_server: str) -> None:
    data_dir = tmp_path / "store"
    result = cli(data_dir, "import-csv", str(DATA / "sessions.csv"), "--tz", "Europe/Berlin")
    assert result.returncode == 0 and "3 created" in result.stdout, result.stderr
    result = cli(data_dir, "import-ics", f"{calendar_server}/google-xwr.ics", "--mapping", str(DATA / "mapping.json"), "--from", "2026-03-01", "--to", "2026-05-01")
    assert result.returncode == 0 and "4 created" in result.stdout, result.stderr
    result = cli(data_dir, "list", "--day", "2026-03-30", "--tz", "Europe/Berlin")
    assert result.returncode == 0
    lines = result.stdout.splitlines()[1:]
    assert [line.split()[2] for line in lines] == ["09:00", "09:00"]  # CSV and Google, both 09:00 CEST
    result = cli(data_dir, "create", "--therapist", "t-berlin-01", "--client", "c-berlin-17", "--start", "2026-03-20T10:00:00+01:00", "--duration-minutes", "50", "--id", "cli-1")
    assert result.returncode == 0 and "created session cli-1 at 2026-03-20 09:00" in result.stdout, result.stderr
    result = cli(data_dir, "cancel", "cli-1")
    assert result.returncode == 0 and "cancelled" in result.stdout
    result = cli(data_dir, "list", "--state", "cancelled", "--therapist", "t-berlin-01")
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == ["cli-1"]
    result = cli(data_dir, "participants")
    assert "c-berlin-40" in result.stdout and "client" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("import-csv", "/nonexistent/sessions.csv"), "cannot read /nonexistent/sessions.csv"),
        (("import-csv", str(DATA / "sessions.csv")), "2 row(s) cannot be imported"),  # local times, no --tz
        (("import-csv", str(DATA / "sessions.csv"), "--tz", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (("import-ics", str(DATA / "google-xwr.ics"), "--mapping", str(DATA / "sessions.csv")), "the mapping is not valid JSON"),
        (("import-ics", "http://calendar.example.org/secret/basic.ics", "--mapping", str(DATA / "mapping.json")), "refusing plain http"),
        (("import-ics", str(DATA / "mapping.json"), "--mapping", str(DATA / "mapping.json")), "not an iCalendar"),
        (("import-ics", str(DATA / "google-xwr.ics"), "--mapping", str(DATA / "mapping.json"), "--from", "soon"), "must be a date"),
        (("cancel", "no-such"), "no session with id 'no-such'"),
        (("create", "--therapist", "t1", "--client", "c1", "--start", "tomorrow", "--duration-minutes", "50"), "--start must be an RFC 3339"),
        (("create", "--therapist", "Dr Meier", "--client", "c1", "--start", "2026-03-20T10:00:00Z", "--duration-minutes", "50"), "pseudonymous id"),
        (("list", "--day", "2026-13-01"), "--day must be a date"),
    ],
)
def test_cli_errors_are_one_sentence_and_exit_3(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = cli(tmp_path / "store", *args)
    assert result.returncode == 3 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_import_path_is_not_a_session(shared_monitor: Monitor, tokens: dict[str, str]) -> None:
    status, body = create(shared_monitor, tokens["it"], session_id="import")
    assert status == 400 and body["error"]["field"] == "session_id"
    status, raw = shared_monitor.request("GET", f"{SESSIONS}/import", tokens["it"])
    assert status == 405 and json.loads(raw)["error"]["message"] == "use POST"


# tests/test_api_fuzz.py fuzzes every path with a client token, which these paths mostly
# refuse with 403; here a staff token lets the inputs reach the handlers.
staff_schema = schemathesis.openapi.from_dict(openapi_document()).include(path_regex=r"^/api/v1/(sessions|participants)")


@pytest.fixture(scope="module")
def fuzz_monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Monitor, str]]:
    running = start_monitor(tmp_path_factory.mktemp("fuzz") / "monitor")
    yield running, running.token("it", "staff-fuzz")
    running.stop()


@staff_schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_staff_api_answers_every_input_as_documented(case: schemathesis.Case, fuzz_monitor: tuple[Monitor, str]) -> None:
    monitor, token = fuzz_monitor
    # Rules a schema cannot state (two different participants, a known participant's role,
    # a real time zone, a taken id) turn some schema-valid requests into 400/409 by design.
    case.call_and_validate(
        base_url=monitor.url,
        headers=fuzz_auth(case, token),
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )


def test_a_misspelt_filter_is_an_error_not_a_wider_listing(shared_monitor: Monitor, tokens: dict[str, str]) -> None:
    status, body = shared_monitor.json("GET", f"{SESSIONS}?therapistt=t-b", tokens["it"])
    assert status == 400 and body["error"]["field"] == "therapistt"


# --- each end's own flags in the list: what Today shows, in one call -------------------------


@pytest.fixture(scope="module")
def assessed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Practice, dict[str, str]]]:
    """A monitor that assesses every second, with four sessions in the next hour and checks
    from every end but one client's; the check ids by participant."""
    practice = start_practice(tmp_path_factory.mktemp("assessed"), "staff-ends")
    try:
        now = practice.start_s
        for session_id, therapist, client, minutes in (
            ("ends-risky", "t-e1", "c-e-risky", 25),
            ("ends-fine", "t-e1", "c-e-fine", 40),
            ("ends-nocheck", "t-e2", "c-e-none", 30),
            ("ends-fine-2", "t-e2", "c-e-fine", 50),
        ):
            practice.session(session_id, therapist, client, now + minutes * 60)
        checks = {
            participant: practice.check(practice.agent(role, participant), loss_up=loss_up)
            for participant, role, loss_up in (("t-e1", "therapist", 0.0), ("t-e2", "therapist", 0.0), ("c-e-risky", "client", 0.08), ("c-e-fine", "client", 0.0))
        }
        yield practice, checks
    finally:
        practice.monitor.stop()


def todays_risks(practice: Practice, token: str) -> dict[str, dict]:
    """The risk of each session in today's list, by session id, as the dashboard asks for it."""
    day = datetime.fromtimestamp(practice.start_s, ZoneInfo(practice.zone)).date().isoformat()
    status, body = practice.monitor.json("GET", f"{SESSIONS}?{urlencode({'day': day, 'tz': practice.zone})}", token)
    assert status == 200, body
    assert LIST_SCHEMA.is_valid(body), [error.message for error in LIST_SCHEMA.iter_errors(body)]
    return {s["session_id"]: s["risk"] for s in body["sessions"]}


def one_evaluation(practice: Practice, session_id: str) -> tuple[dict, dict]:
    """A session's risk in today's list and its detail, read within one risk evaluation (the
    engine assesses every second here, and each pass ages every check)."""
    for _ in range(50):
        before = practice.detail(session_id)[1]
        listed = todays_risks(practice, practice.staff)[session_id]
        after = practice.detail(session_id)[1]
        if before["risk"]["evaluated_at"] == after["risk"]["evaluated_at"]:
            return listed, after
    raise AssertionError("no quiet moment between two risk evaluations")


def test_the_list_gives_each_ends_own_flag_and_check_as_the_detail_does(assessed: tuple[Practice, dict[str, str]]) -> None:
    practice, checks = assessed
    ids = ["ends-risky", "ends-fine", "ends-nocheck", "ends-fine-2"]

    def checked_everywhere() -> bool:
        risks = todays_risks(practice, practice.staff)
        return all(risks.get(sid) and risks[sid]["client"] and risks[sid]["therapist"]["check_id"] for sid in ids) and risks["ends-risky"]["state"] == "not_ready"

    practice.wait_for(checked_everywhere, what="the risk engine's verdicts with both ends")
    listed, details = {}, {}
    for sid in ids:
        listed[sid], details[sid] = one_evaluation(practice, sid)
        assert listed[sid] == details[sid]["session"]["risk"], sid
        assert (listed[sid]["client"], listed[sid]["therapist"]) == (details[sid]["risk"]["client"], details[sid]["risk"]["therapist"]), sid

    risky = listed["ends-risky"]
    assert (risky["client"]["state"], risky["therapist"]["state"]) == ("not_ready", "ready")
    assert risky["client"]["check_id"] == checks["c-e-risky"] and risky["therapist"]["check_id"] == checks["t-e1"]
    assert risky["client"]["online"] and risky["client"]["participant_id"] == "c-e-risky"
    # The check's own time, not the evaluation's: a viewer counts the age from their now.
    checked_at = datetime.fromisoformat(risky["client"]["checked_at"].replace("Z", "+00:00")).timestamp()
    evaluated_at = datetime.fromisoformat(details["ends-risky"]["risk"]["evaluated_at"].replace("Z", "+00:00")).timestamp()
    assert practice.start_s - 2 <= checked_at <= time.time()
    assert abs(evaluated_at - risky["client"]["check_age_s"] - checked_at) <= 1.5
    status, check = practice.monitor.json("GET", f"/api/v1/checks/{risky['client']['check_id']}", practice.staff)
    assert status == 200 and check["participant_id"] == "c-e-risky"  # the id leads to the check
    assert listed["ends-fine-2"]["client"]["check_id"] == checks["c-e-fine"]  # one client, two sessions, one check
    nocheck = listed["ends-nocheck"]["client"]
    assert (nocheck["check_id"], nocheck["checked_at"], nocheck["check_age_s"], nocheck["online"]) == (None, None, None, False)


def test_a_therapist_lists_only_their_own_sessions_and_ends(assessed: tuple[Practice, dict[str, str]]) -> None:
    practice, _ = assessed
    practice.wait_for(lambda: all(r and r["client"] for r in todays_risks(practice, practice.staff).values()), what="assessments")
    login = practice.monitor.login("th.e1", "therapist", "t-e1")
    own = todays_risks(practice, login)
    assert sorted(own) == ["ends-fine", "ends-risky"]
    assert {r["therapist"]["participant_id"] for r in own.values()} == {"t-e1"}
    assert {r["client"]["participant_id"] for r in own.values()} == {"c-e-risky", "c-e-fine"}
    assert sorted(todays_risks(practice, practice.agent("therapist", "t-e2"))) == ["ends-fine-2", "ends-nocheck"]
