"""Calendar imports: CSV and iCalendar files into session rows, and how the store applies them.

The ICS files in tests/data/calendar/ are written the way real exports look (a practice
calendar with VTIMEZONE, Outlook with a Windows zone name, Google with X-WR-TIMEZONE). Every
expected start below was worked out by hand from the zone rules, not by the code under test.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.calendars.imports import (
    CalendarError,
    day_bounds,
    ics_event_id,
    ics_session_id,
    load_mapping,
    parse_csv,
    parse_ics,
)
from monitor.cli.sessions import fetch_calendar
from monitor.store.core import SQLiteStore

DATA = Path(__file__).parent / "data" / "calendar"
KEY = b"k" * 32
BERLIN = ZoneInfo("Europe/Berlin")
MARCH = datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp()
MAY = datetime(2026, 5, 1, tzinfo=timezone.utc).timestamp()
WEEKLY_UID = "quastenflosser-weekly-7731@praxis.example.org"


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


def mapping():
    return load_mapping((DATA / "mapping.json").read_text())


def ics(name: str, start: float = MARCH, end: float = MAY, key: bytes = KEY, zone=None):  # noqa: ANN001, ANN201
    return parse_ics((DATA / name).read_bytes(), mapping(), start, end, key, zone)


def starts(parsed) -> list[tuple[str, str, str, int, str]]:  # noqa: ANN001
    return [
        (datetime.fromtimestamp(r.start_at_s, timezone.utc).strftime("%Y-%m-%d %H:%M"), r.therapist_id, r.client_id, r.planned_duration_s, r.state)
        for r in parsed.rows
    ]


# --- ICS ----------------------------------------------------------------------------------------


def test_berlin_weekly_series_with_exdate_moved_and_cancelled_instances_across_dst() -> None:
    parsed = ics("practice-berlin.ics")
    assert starts(parsed) == [
        # 09:00 CET = 08:00 UTC; the 23rd is an EXDATE and absent.
        ("2026-03-16 08:00", "t-berlin-01", "c-berlin-17", 3000, "scheduled"),
        # The cancelled series: 16:00 CET = 15:00 UTC, then 16:00 CEST = 14:00 UTC after 29 March.
        ("2026-03-17 15:00", "t-berlin-01", "c-berlin-23", 3600, "cancelled"),
        ("2026-03-24 15:00", "t-berlin-01", "c-berlin-23", 3600, "cancelled"),
        # The 30th moved to Tuesday 31st 14:00 CEST = 12:00 UTC.
        ("2026-03-31 12:00", "t-berlin-01", "c-berlin-17", 3000, "scheduled"),
        ("2026-03-31 14:00", "t-berlin-01", "c-berlin-23", 3600, "cancelled"),
        # Easter Monday cancelled; 09:00 CEST = 07:00 UTC.
        ("2026-04-06 07:00", "t-berlin-01", "c-berlin-17", 3000, "cancelled"),
        ("2026-04-13 07:00", "t-berlin-01", "c-berlin-17", 3000, "scheduled"),
        ("2026-04-20 07:00", "t-berlin-01", "c-berlin-17", 3000, "scheduled"),
    ]
    assert dict(parsed.skipped) == {"all_day": 1, "unmapped_participants": 1}
    assert parsed.errors == ()


def test_a_moved_instance_keeps_the_id_of_its_original_slot() -> None:
    parsed = ics("practice-berlin.ics")
    moved = next(r for r in parsed.rows if r.start_at_s == utc("2026-03-31T12:00:00"))
    # RECURRENCE-ID 2026-03-30 09:00 Berlin = 07:00 UTC: the slot it was moved from.
    assert (moved.session_id, moved.external_key) == ics_session_id(KEY, WEEKLY_UID, "20260330T070000Z")
    assert moved.session_id.startswith("ics-") and len(moved.session_id) == 20


def test_outlook_windows_zone_name_across_the_us_dst_change() -> None:
    parsed = ics("outlook-newyork.ics")
    # 10:00 EST = 15:00 UTC on 2 March; the US moves to EDT on 8 March: 10:00 EDT = 14:00 UTC.
    assert starts(parsed) == [
        ("2026-03-02 15:00", "t-ny-02", "c-ny-31", 3000, "scheduled"),
        ("2026-03-09 14:00", "t-ny-02", "c-ny-31", 3000, "scheduled"),
    ]


def test_google_x_wr_timezone_keeps_the_local_hour_across_dst() -> None:
    parsed = ics("google-xwr.ics")
    # DTSTART is written in UTC (08:00Z = 09:00 CET), but the calendar's zone is Berlin:
    # the series stays at 09:00 local, which is 07:00 UTC from 29 March.
    assert [s[0] for s in starts(parsed)] == ["2026-03-16 08:00", "2026-03-23 08:00", "2026-03-30 07:00", "2026-04-06 07:00"]


def test_only_events_overlapping_the_window_are_imported() -> None:
    april = datetime(2026, 4, 1, tzinfo=timezone.utc).timestamp()
    parsed = ics("practice-berlin.ics", start=april, end=MAY)
    assert [s[0] for s in starts(parsed)] == ["2026-04-06 07:00", "2026-04-13 07:00", "2026-04-20 07:00"]


def test_ids_are_stable_keyed_and_never_contain_the_uid() -> None:
    first, again = ics("practice-berlin.ics"), ics("practice-berlin.ics")
    assert [r.session_id for r in first.rows] == [r.session_id for r in again.rows]
    other_key = ics("practice-berlin.ics", key=b"x" * 32)
    assert not {r.session_id for r in first.rows} & {r.session_id for r in other_key.rows}
    for row in first.rows:
        assert "quastenflosser" not in row.session_id and "quastenflosser" not in (row.external_key or "")


def floating(summary: str = "x") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:float-1\r\n"
        "DTSTART:20260316T090000\r\nDTEND:20260316T095000\r\n"
        f"SUMMARY:{summary}\r\n"
        "ORGANIZER:mailto:ottokar.schnabeltier@praxis.example.org\r\n"
        "ATTENDEE:mailto:wilhelmina.quastenflosser@example.org\r\n"
        "ATTENDEE:mailto:konstantin.gurkenhobel@example.net\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def test_two_mapped_clients_are_ambiguous_and_skipped() -> None:
    parsed = parse_ics(floating(), mapping(), MARCH, MAY, KEY, BERLIN)
    assert parsed.rows == () and dict(parsed.skipped) == {"ambiguous_participants": 1}


def test_floating_times_need_a_zone() -> None:
    text = floating().replace(b"ATTENDEE:mailto:konstantin.gurkenhobel@example.net\r\n", b"")
    assert dict(parse_ics(text, mapping(), MARCH, MAY, KEY).skipped) == {"floating_time": 1}
    placed = parse_ics(text, mapping(), MARCH, MAY, KEY, BERLIN)
    assert [r.start_at_s for r in placed.rows] == [utc("2026-03-16T08:00:00")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not a calendar at all", "not an iCalendar"),
        ("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:2026031", "not an iCalendar"),
    ],
)
def test_unreadable_calendars_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        parse_ics(text, mapping(), MARCH, MAY, KEY)


def test_window_is_checked() -> None:
    data = (DATA / "practice-berlin.ics").read_bytes()
    with pytest.raises(CalendarError, match="start before it ends"):
        parse_ics(data, mapping(), MAY, MARCH, KEY)
    with pytest.raises(CalendarError, match="at most 400 days"):
        parse_ics(data, mapping(), MARCH, MARCH + 401 * 86400, KEY)
    with pytest.raises(CalendarError, match="years 2000 to 2099"):
        parse_ics(data, mapping(), -62135683140, -62135683140 + 86400, KEY)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"attendees": [{"address": "a@b", "participant_id": "Anna Meier", "role": "client"}]}', "attendees\\[0\\].participant_id"),
        ('{"attendees": [{"address": "a@b", "participant_id": "c1", "role": "patient"}]}', "attendees\\[0\\].role"),
        ('{"attendees": [], "names": {}}', "names: unknown field"),
        ('{"attendees": [{"address": "a@b", "participant_id": "c1", "role": "client"}, {"address": "MAILTO:A@B", "participant_id": "c2", "role": "client"}]}', "mapped twice"),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_bad_mappings_name_the_field(text: str, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        load_mapping(text)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_give_rows_or_a_calendar_error(data: bytes) -> None:
    try:
        parse_ics(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + data, mapping(), MARCH, MAY, KEY)
    except CalendarError:
        pass


# --- one odd event does not stop the rest (issue 18) -------------------------------------------

THERAPIST = "ORGANIZER:mailto:ottokar.schnabeltier@praxis.example.org\r\n"
CLIENT = "ATTENDEE:mailto:wilhelmina.quastenflosser@example.org\r\n"


def vevent(uid: str, *lines: str, start: str = "DTSTART:20260316T080000Z", end: str = "DTEND:20260316T085000Z") -> str:
    body = "".join(f"{line}\r\n" for line in (start, end, *lines) if line)
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\n{body}SUMMARY:Quokka-Marmelade {uid}\r\n{THERAPIST}{CLIENT}END:VEVENT\r\n"


def vcalendar(*parts: str) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n" + "".join(parts) + "END:VCALENDAR\r\n").encode()


ODD_EVENTS = {
    # uid: (what is odd, the reason it is skipped under)
    "odd-no-start@x": (vevent("odd-no-start@x", start=""), "no_start"),
    "odd-two-starts@x": (vevent("odd-two-starts@x", "DTSTART:20260317T080000Z"), "unreadable_event"),
    "odd-broken-start@x": (vevent("odd-broken-start@x", start="DTSTART:2026-03-16 08:00"), "unreadable_event"),
    "odd-broken-duration@x": (vevent("odd-broken-duration@x", "DURATION:soon", end=""), "unreadable_event"),
    "odd-rdate-time@x": (vevent("odd-rdate-time@x", "RDATE;VALUE=TIME:083000Z"), "bad_recurrence_rule"),
    "odd-freq@x": (vevent("odd-freq@x", "RRULE:FREQ=FORTNIGHTLY"), "bad_recurrence_rule"),
    "odd-until@x": (vevent("odd-until@x", "RRULE:FREQ=WEEKLY;UNTL=20261023"), "bad_recurrence_rule"),
    "odd-february-30@x": (vevent("odd-february-30@x", "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"), "bad_recurrence_rule"),
    "odd-secondly@x": (vevent("odd-secondly@x", "RRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30"), "unsupported_recurrence"),
    "odd-hourly@x": (vevent("odd-hourly@x", "RRULE:FREQ=HOURLY;INTERVAL=168"), "unsupported_recurrence"),
    "odd-every-minute@x": (vevent("odd-every-minute@x", "RRULE:FREQ=DAILY;BYHOUR=9;BYMINUTE=" + ",".join(map(str, range(60)))), "too_many_instances"),
}


def test_each_odd_event_is_skipped_under_its_reason_and_named_by_its_hashed_id() -> None:
    good = vevent("good-weekly@x", "RRULE:FREQ=WEEKLY;COUNT=3")
    moved = vevent("good-weekly@x", "RECURRENCE-ID:20260323T080000Z", start="DTSTART:20260324T080000Z", end="DTEND:20260324T085000Z")
    parsed = parse_ics(vcalendar(*(text for text, _ in ODD_EVENTS.values()), good, moved), mapping(), MARCH, MAY, KEY)
    # The good series is whole, its moved instance included: 16, 24 (moved from 23) and 30 March.
    assert [s[0] for s in starts(parsed)] == ["2026-03-16 08:00", "2026-03-24 08:00", "2026-03-30 08:00"]
    expected = Counter(reason for _, reason in ODD_EVENTS.values())
    assert dict(parsed.skipped) == dict(expected)
    assert sorted(parsed.skipped_events) == sorted((reason, ics_event_id(KEY, uid)) for uid, (_, reason) in ODD_EVENTS.items())
    assert parsed.errors == ()
    assert "odd" not in repr(parsed) and "Quokka" not in repr(parsed)  # ids and counts only


def test_a_broken_moved_instance_skips_its_series_not_the_calendar() -> None:
    series = vevent("series@x", "RRULE:FREQ=WEEKLY;COUNT=3")
    broken = vevent("series@x", "RECURRENCE-ID:20260323T080000Z", start="DTSTART:not-a-date")
    other = vevent("other@x")
    parsed = parse_ics(vcalendar(series, broken, other), mapping(), MARCH, MAY, KEY)
    assert [r.session_id for r in parsed.rows] == [ics_session_id(KEY, "other@x", "20260316T080000Z")[0]]
    assert parsed.skipped_events == (("unreadable_event", ics_event_id(KEY, "series@x")),)


def test_events_without_a_uid_are_counted_and_a_file_that_is_no_calendar_is_still_refused() -> None:
    no_uid = vevent("x").replace("UID:x\r\n", "")
    parsed = parse_ics(vcalendar(no_uid, vevent("kept@x")), mapping(), MARCH, MAY, KEY)
    assert len(parsed.rows) == 1 and dict(parsed.skipped) == {"no_uid": 1} and parsed.skipped_events == ()
    with pytest.raises(CalendarError, match="not an iCalendar"):
        parse_ics(vevent("lonely@x").encode(), mapping(), MARCH, MAY, KEY)  # a VEVENT, no VCALENDAR


BERLIN_RULES = (
    "BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n"
    "BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"
    "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\n"
)


def test_a_zone_defined_after_its_events_and_several_zones_in_one_file() -> None:
    praxis = f"BEGIN:VTIMEZONE\r\nTZID:Praxis Zeit\r\n{BERLIN_RULES}END:VTIMEZONE\r\n"
    tokyo = "BEGIN:VTIMEZONE\r\nTZID:Praxis Tokio\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0900\r\nTZOFFSETTO:+0900\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    weekly = vevent("zone-later@x", "RRULE:FREQ=WEEKLY;COUNT=3", start="DTSTART;TZID=Praxis Zeit:20260323T090000", end="DTEND;TZID=Praxis Zeit:20260323T095000")
    far = vevent("zone-tokio@x", start="DTSTART;TZID=Praxis Tokio:20260401T090000", end="DTEND;TZID=Praxis Tokio:20260401T095000")
    parsed = parse_ics(vcalendar(weekly, far, praxis, tokyo), mapping(), MARCH, MAY, KEY)
    assert [s[0] for s in starts(parsed)] == [
        "2026-03-23 08:00",  # 09:00 at +01:00 (the rules of the zone defined at the end of the file)
        "2026-03-30 07:00",  # 09:00 at +02:00 from 29 March, the last Sunday
        "2026-04-01 00:00",  # 09:00 at +09:00 in the second zone
        "2026-04-06 07:00",
    ]
    assert parsed.skipped == ()


# --- CSV ----------------------------------------------------------------------------------------


def test_csv_file_with_local_times_and_offsets() -> None:
    parsed = parse_csv((DATA / "sessions.csv").read_text(), BERLIN)
    assert [(r.session_id, r.start_at_s, r.planned_duration_s, r.row) for r in parsed.rows] == [
        ("csv-001", utc("2026-03-27T08:00:00"), 3000, 2),  # 09:00 CET
        (parsed.rows[1].session_id, utc("2026-03-30T07:00:00"), 3000, 3),  # 09:00 CEST
        ("csv-003", utc("2026-03-09T14:00:00"), 2700, 4),  # the row's own offset wins
    ]
    derived = parsed.rows[1].session_id
    assert derived.startswith("csv-") and parse_csv((DATA / "sessions.csv").read_text(), BERLIN).rows[1].session_id == derived


def test_csv_errors_name_row_and_field_and_never_echo_the_cell() -> None:
    text = (
        "therapist_id,client_id,start,planned_duration_minutes\n"
        "t1,Wilhelmina Quastenflosser,2026-03-16 09:00,50\n"  # a name where an id belongs
        "t1,c1,2026-03-29 02:30,50\n"  # the hour Berlin skips
        "t1,c1,2026-10-25 02:30,50\n"  # the hour Berlin repeats
        "t1,c1,2026-03-16 09:00,0\n"
        "t1,t1,2026-03-16T09:00:00Z,50\n"
        "t1,c1,16.03.2026 09:00,50\n"
        "t1,c1\n"
        "t1,c2,2026-03-16 10:00,50\n"
    )
    parsed = parse_csv(text, BERLIN)
    assert [(e.row, e.field) for e in parsed.errors] == [
        (2, "client_id"),
        (3, "start"),
        (4, "start"),
        (5, "planned_duration_minutes"),
        (6, "client_id"),
        (7, "start"),
        (8, "row"),
    ]
    assert "does not exist" in parsed.errors[1].message and "twice" in parsed.errors[2].message
    assert not any("Quastenflosser" in e.message for e in parsed.errors)


def test_csv_local_time_without_zone_is_refused() -> None:
    parsed = parse_csv("therapist_id,client_id,start,planned_duration_minutes\nt1,c1,2026-03-16 09:00,50\n")
    assert [(e.row, e.field) for e in parsed.errors] == [(2, "start")] and "time zone" in parsed.errors[0].message


def test_csv_repeated_session_ids_are_refused() -> None:
    parsed = parse_csv("session_id,therapist_id,client_id,start,planned_duration_minutes\na,t1,c1,2026-03-16T09:00:00Z,50\na,t1,c1,2026-03-17T09:00:00Z,50\n")
    assert [(e.row, e.field) for e in parsed.errors] == [(3, "session_id")] and "row 2" in parsed.errors[0].message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("therapist_id,client_id,start,planned_duration_minutes,title\n", "unknown CSV column 'title'"),
        ("therapist_id,client_id,start\n", "lacks the column"),
        ("therapist_id,client_id,client_id,start,planned_duration_minutes\n", "appears twice"),
    ],
)
def test_csv_header_problems(text: str, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        parse_csv(text)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_any_csv_text_gives_rows_errors_or_a_calendar_error(text: str) -> None:
    try:
        parse_csv("therapist_id,client_id,start,planned_duration_minutes\n" + text, BERLIN)
    except CalendarError:
        pass


def test_day_bounds_follow_the_zone_on_dst_days() -> None:
    start, end = day_bounds("2026-03-29", BERLIN)
    assert start == utc("2026-03-28T23:00:00") and end - start == 23 * 3600
    start, end = day_bounds("2026-10-25", BERLIN)
    assert end - start == 25 * 3600


def test_plain_http_calendar_urls_are_refused_off_this_machine() -> None:
    with pytest.raises(ValueError, match="refusing plain http to calendar.example.org"):
        fetch_calendar("http://calendar.example.org/private/secret-token/basic.ics")
    with pytest.raises(ValueError, match="must start with https"):
        fetch_calendar("ftp://calendar.example.org/basic.ics")


# --- the store applies imports all or nothing ----------------------------------------------


@pytest.fixture
def store(stores):  # noqa: ANN001, ANN201 - the contract suite: SQLite and PostgreSQL (tests/stores.py)
    return stores.open()


def test_reimport_updates_moved_and_cancelled_instances_instead_of_duplicating(store: SQLiteStore) -> None:
    key = store.calendar_key()
    data = (DATA / "practice-berlin.ics").read_bytes()
    first = store.import_sessions(parse_ics(data, mapping(), MARCH, MAY, key).rows)
    assert (first.created, first.cancelled, first.updated, first.unchanged) == (4, 4, 0, 0)
    again = store.import_sessions(parse_ics(data, mapping(), MARCH, MAY, key).rows)
    assert (again.created, again.cancelled, again.updated, again.unchanged) == (0, 0, 0, 8)
    # The practice moves the 13 April session by an hour and cancels the 20th.
    changed = (
        data.decode()
        .replace("END:VCALENDAR", "")
        .rstrip()
        + "\r\nBEGIN:VEVENT\r\nUID:" + WEEKLY_UID + "\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260413T090000\r\n"
        "DTSTART;TZID=Europe/Berlin:20260413T100000\r\nDTEND;TZID=Europe/Berlin:20260413T105000\r\n"
        "ORGANIZER:mailto:ottokar.schnabeltier@praxis.example.org\r\nATTENDEE:mailto:wilhelmina.quastenflosser@example.org\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:" + WEEKLY_UID + "\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260420T090000\r\n"
        "DTSTART;TZID=Europe/Berlin:20260420T090000\r\nDTEND;TZID=Europe/Berlin:20260420T095000\r\nSTATUS:CANCELLED\r\n"
        "ORGANIZER:mailto:ottokar.schnabeltier@praxis.example.org\r\nATTENDEE:mailto:wilhelmina.quastenflosser@example.org\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    third = store.import_sessions(parse_ics(changed, mapping(), MARCH, MAY, key).rows)
    assert (third.created, third.cancelled, third.updated, third.unchanged) == (0, 1, 1, 6)
    sessions = store.list_sessions(therapist_id="t-berlin-01", start_from_s=utc("2026-04-13T00:00:00"))
    assert [(s.start_at_s, s.state) for s in sessions] == [(utc("2026-04-13T08:00:00"), "scheduled"), (utc("2026-04-20T07:00:00"), "cancelled")]
    assert [c.reason for c in store.session_history(sessions[1].session_id)] == ["created", "import_cancelled"]
    assert len(store.list_sessions()) == 8


def test_an_import_with_one_bad_row_stores_nothing(store: SQLiteStore) -> None:
    store.add_participant("c-berlin-17", "client")
    store.add_participant("c-berlin-23", "therapist")  # the calendar says client: a conflict
    rows = ics("practice-berlin.ics", key=store.calendar_key()).rows
    outcome = store.import_sessions(rows)
    assert outcome.created == 0 and outcome.error_count == 3  # the cancelled series: 3 instances
    assert {(e.field, e.session_id is not None) for e in outcome.errors} == {("client_id", True)}
    assert "registered as a therapist" in outcome.errors[0].message
    assert store.list_sessions() == [] and [p.participant_id for p in store.list_participants()] == ["c-berlin-17", "c-berlin-23"]


def test_an_import_leaves_live_sessions_and_other_sources_alone(store: SQLiteStore) -> None:
    rows = parse_csv((DATA / "sessions.csv").read_text(), BERLIN).rows
    store.import_sessions(rows)
    store.set_session_state("csv-001", "live", 1.0, "api")
    moved = [r if r.session_id != "csv-001" else type(r)(**{**r.__dict__, "start_at_s": r.start_at_s + 3600}) for r in rows]
    outcome = store.import_sessions(moved)
    assert (outcome.created, outcome.updated, outcome.unchanged) == (0, 0, 3)
    assert store.get_session("csv-001").start_at_s == rows[0].start_at_s  # history is not rewritten
    store.create_session("api-1", "t1", "c1", utc("2026-03-16T09:00:00"), 3000)
    clash = store.import_sessions(parse_csv("session_id,therapist_id,client_id,start,planned_duration_minutes\napi-1,t1,c1,2026-03-16T10:00:00Z,50\n").rows)
    assert [(e.row, e.field) for e in clash.errors] == [(2, "session_id")] and "created by api" in clash.errors[0].message
