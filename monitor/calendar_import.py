"""Practice calendars (CSV and iCalendar) into session rows: pure functions, no store, no I/O.

Only ids and times come out. Event titles, descriptions, locations and attendee names or
addresses are read to find the participants and then dropped; the mapping from calendar
addresses to participant ids is used here and never stored. Error messages name a row and a
field but never repeat what a cell or an event contained.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.store_sessions import RowError, SessionRow
from sessionready.schema import ID_PATTERN
from sessionready.typed import LEAP_SECOND, RFC3339, SchemaError, decode, limits

MAX_ROWS = 20_000  # CSV rows and expanded ICS occurrences per import
MAX_WINDOW_DAYS = 400
DEFAULT_WINDOW_PAST = timedelta(days=1)
DEFAULT_WINDOW_AHEAD = timedelta(days=60)
EARLIEST_START_S = 946_684_800  # 2000-01-01T00:00:00Z
LATEST_START_S = 4_102_444_800  # 2100-01-01T00:00:00Z
MIN_DURATION_S = 60
MAX_DURATION_S = 86_400
CSV_REQUIRED = ("therapist_id", "client_id", "start", "planned_duration_minutes")
CSV_COLUMNS = ("session_id", *CSV_REQUIRED)
LOCAL_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?")
ID_RULE = "must be 1-64 letters, digits, '.', '_' or '-' (a pseudonymous id)"


class CalendarError(ValueError):
    """The whole input is unusable (not CSV/ICS, a missing column, a bad mapping or window)."""


@dataclass(frozen=True)
class MappingEntry:
    """One calendar address (``mailto:someone@example.org``; the ``mailto:`` is optional) and the participant it stands for."""

    address: str = field(metadata=limits(max_len=320))
    participant_id: str = field(metadata=limits(pattern=ID_PATTERN))
    role: Literal["therapist", "client"]


@dataclass(frozen=True)
class CalendarMapping:
    """Calendar addresses (organizer and attendees) to pseudonymous participants. Read by the importer, never stored."""

    attendees: tuple[MappingEntry, ...] = field(metadata=limits(max_len=10_000))


@dataclass(frozen=True)
class ParsedImport:
    """Rows ready for the store, events skipped by reason, and rows refused (then nothing is stored)."""

    rows: tuple[SessionRow, ...]
    skipped: tuple[tuple[str, int], ...]  # (reason, count), e.g. ("all_day", 2)
    errors: tuple[RowError, ...]


# --- shared helpers ---------------------------------------------------------------------------


def parse_zone(name: str) -> ZoneInfo:
    """An IANA time zone (``Europe/Berlin``) or CalendarError."""
    try:
        # The longest IANA name has 32 characters; a longer one would reach the file system
        # as a path (OSError: file name too long) before zoneinfo could say it is unknown.
        if len(name) > 64:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CalendarError(f"unknown time zone '{name[:64]}': use an IANA name such as Europe/Berlin") from None


def load_mapping(text: str) -> CalendarMapping:
    """A mapping file (JSON: ``{"attendees": [{"address", "participant_id", "role"}, ...]}``)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as error:
        raise CalendarError(f"the mapping is not valid JSON ({error.__class__.__name__})") from None
    return check_mapping_data(data)


def check_mapping_data(data: object) -> CalendarMapping:
    try:
        mapping = decode(CalendarMapping, data)
    except SchemaError as error:
        raise CalendarError(f"mapping: {error}") from None
    seen: dict[str, MappingEntry] = {}
    for index, entry in enumerate(mapping.attendees):
        address = normalise_address(entry.address)
        if not address:
            raise CalendarError(f"mapping: attendees[{index}].address is empty")
        if address in seen and seen[address] != entry:
            raise CalendarError(f"mapping: attendees[{index}].address is mapped twice, to different participants")
        seen[address] = entry
    return mapping


def normalise_address(address: str) -> str:
    """``MAILTO:Dr.A@Example.org`` and ``dr.a@example.org`` are the same address."""
    text = address.strip().lower()
    return text[len("mailto:") :] if text.startswith("mailto:") else text


def default_window(now_s: float) -> tuple[float, float]:
    """Import events from a day ago to 60 days ahead (unix seconds)."""
    return now_s - DEFAULT_WINDOW_PAST.total_seconds(), now_s + DEFAULT_WINDOW_AHEAD.total_seconds()


def day_bounds(day: str, zone: tzinfo) -> tuple[float, float]:
    """The unix seconds [start, end) of a calendar day (YYYY-MM-DD) in ``zone``: 23 or 25
    hours long on the days the clocks change. ValueError for a date that does not exist."""
    start = date.fromisoformat(day)
    following = start + timedelta(days=1)
    begin = datetime(start.year, start.month, start.day, tzinfo=zone)
    end = datetime(following.year, following.month, following.day, tzinfo=zone)
    return begin.timestamp(), end.timestamp()


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp with offset, or ValueError."""
    if not RFC3339.fullmatch(text):
        raise ValueError("not RFC 3339")
    # As sessionready.typed does: Python has no leap seconds, so :60 reads as :59.
    return datetime.fromisoformat(LEAP_SECOND.sub(":59", text.upper().replace("Z", "+00:00")))


def whole_seconds(moment: datetime) -> int:
    stamp = moment.timestamp()
    if stamp != int(stamp):
        raise ValueError("not a whole second")
    return int(stamp)


def session_start(moment: datetime) -> int:
    """A session's start in unix seconds: a whole second from 2000 to 2099 (a year 176 is a typo)."""
    start_s = whole_seconds(moment)
    if not EARLIEST_START_S <= start_s < LATEST_START_S:
        raise ValueError("must be a time from the year 2000 to 2099")
    return start_s


def localise(wall: datetime, zone: tzinfo) -> datetime:
    """A wall-clock time in ``zone``; ValueError when the clock skips it or shows it twice."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        # Either the hour the clocks go back (shown twice) or the hour they skip.
        back = first.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) == wall
        raise ValueError("this local time happens twice (clocks go back)" if back else "this local time does not exist (clocks go forward)")
    return first


# --- CSV ------------------------------------------------------------------------------------


def parse_csv(text: str, zone: tzinfo | None = None) -> ParsedImport:
    """Rows of ``session_id`` (optional), ``therapist_id``, ``client_id``, ``start``,
    ``planned_duration_minutes``. ``start`` is RFC 3339 with an offset, or a local time
    (``2026-03-16 09:00``) in ``zone``. Rows are numbered as in a spreadsheet (header = 1).
    """
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader)
    except StopIteration:
        raise CalendarError("the CSV file is empty: it needs a header row") from None
    except csv.Error:
        raise CalendarError("the CSV header cannot be read") from None
    columns = [name.strip().lower() for name in header]
    for name in columns:
        if name not in CSV_COLUMNS:
            raise CalendarError(f"unknown CSV column '{name[:40]}': the columns are {', '.join(CSV_COLUMNS)}")
    if len(set(columns)) != len(columns):
        raise CalendarError("a CSV column appears twice in the header")
    missing = [name for name in CSV_REQUIRED if name not in columns]
    if missing:
        raise CalendarError(f"the CSV header lacks the column(s) {', '.join(missing)}")
    rows: list[SessionRow] = []
    errors: list[RowError] = []
    first_row_of: dict[str, int] = {}
    number = 1
    try:
        for cells in reader:
            number += 1
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            if number > MAX_ROWS + 1:
                raise CalendarError(f"the CSV file has more than {MAX_ROWS} rows; split it")
            if len(cells) != len(columns):
                errors.append(RowError(number, None, "row", f"has {len(cells)} cells; the header has {len(columns)}"))
                continue
            row = _csv_row(number, dict(zip(columns, (cell.strip() for cell in cells))), zone, errors)
            if row is None:
                continue
            if row.session_id in first_row_of:
                errors.append(RowError(number, row.session_id, "session_id", f"repeats the session of row {first_row_of[row.session_id]}"))
                continue
            first_row_of[row.session_id] = number
            rows.append(row)
    except csv.Error:
        raise CalendarError(f"the CSV file cannot be read at row {number} (a quote is not closed?)") from None
    return ParsedImport(tuple(rows), (), tuple(errors))


def _csv_row(number: int, cells: dict[str, str], zone: tzinfo | None, errors: list[RowError]) -> SessionRow | None:
    before = len(errors)
    for name in ("therapist_id", "client_id"):
        if not re.fullmatch(ID_PATTERN, cells[name]):
            errors.append(RowError(number, None, name, ID_RULE))
    session_id = cells.get("session_id", "")
    if session_id and not re.fullmatch(ID_PATTERN, session_id):
        errors.append(RowError(number, None, "session_id", f"{ID_RULE}, or empty"))
    start_at_s: int | None = None
    try:
        start_at_s = _csv_start(cells["start"], zone)
    except ValueError as error:
        errors.append(RowError(number, None, "start", str(error)))
    minutes = cells["planned_duration_minutes"]
    if not (minutes.isascii() and minutes.isdigit() and 1 <= int(minutes) <= MAX_DURATION_S // 60):
        errors.append(RowError(number, None, "planned_duration_minutes", f"must be a whole number of minutes from 1 to {MAX_DURATION_S // 60}"))
    if cells["therapist_id"] == cells["client_id"]:
        errors.append(RowError(number, None, "client_id", "must differ from therapist_id"))
    if len(errors) > before or start_at_s is None:
        return None
    if not session_id:
        # Stable, so importing the same file twice updates rather than duplicates.
        digest = hashlib.sha256(f"{cells['therapist_id']}\n{cells['client_id']}\n{start_at_s}".encode()).hexdigest()
        session_id = f"csv-{digest[:16]}"
    return SessionRow(session_id, cells["therapist_id"], cells["client_id"], start_at_s, int(minutes) * 60, "scheduled", "csv", None, number)


def _csv_start(text: str, zone: tzinfo | None) -> int:
    try:
        moment = parse_rfc3339(text)
    except ValueError:
        moment = None
    if moment is not None:
        try:
            return session_start(moment)
        except ValueError as error:
            raise ValueError("must be on a whole second" if str(error) == "not a whole second" else str(error)) from None
    match = LOCAL_TIME.fullmatch(text)
    if match is None:
        raise ValueError("must be RFC 3339 with an offset (2026-03-16T09:00:00+01:00) or a local time (2026-03-16 09:00) with --tz")
    if zone is None:
        raise ValueError("is a local time without an offset: give the time zone (--tz, or tz in the API)")
    try:
        wall = datetime(*(int(part) for part in match.groups(default="0")))
    except ValueError:
        raise ValueError("is not a real date and time") from None
    return session_start(localise(wall, zone))


# --- iCalendar --------------------------------------------------------------------------------


def parse_ics(
    data: bytes | str,
    mapping: CalendarMapping,
    window_start_s: float,
    window_end_s: float,
    key: bytes,
    zone: tzinfo | None = None,
) -> ParsedImport:
    """The calendar's events that overlap the window (unix seconds), recurring ones expanded.

    ``key`` keys the hash that turns an event's UID and recurrence id into a stable session
    id (re-importing updates, never duplicates). ``zone`` places floating times (no TZID, no
    UTC); without it such events are skipped. Events are skipped, and counted by reason, when
    they are all-day, too short or too long, or do not map to exactly one therapist and one
    client. Cancelled events and instances (STATUS:CANCELLED) become cancelled sessions.
    """
    import icalendar  # imported here: only imports need it, and it is not small
    import recurring_ical_events

    if not window_start_s < window_end_s:
        raise CalendarError("the import window must start before it ends")
    if window_end_s - window_start_s > MAX_WINDOW_DAYS * 86_400:
        raise CalendarError(f"the import window may span at most {MAX_WINDOW_DAYS} days")
    if window_start_s < EARLIEST_START_S - 86_400 or window_end_s > LATEST_START_S + 86_400:
        raise CalendarError("the import window must lie within the years 2000 to 2099")
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except Exception:  # noqa: BLE001 - the parser raises many kinds; none is the user's fault to debug from a trace
        raise CalendarError("the file is not an iCalendar (ICS) calendar that can be read") from None
    if not isinstance(calendar, icalendar.Calendar):
        raise CalendarError("the file is not an iCalendar (ICS) calendar")
    window = (datetime.fromtimestamp(window_start_s, timezone.utc), datetime.fromtimestamp(window_end_s, timezone.utc))
    try:
        occurrences = []
        for event in recurring_ical_events.of(calendar).between(*window):
            occurrences.append(event)
            if len(occurrences) > MAX_ROWS:
                raise CalendarError(f"the calendar has more than {MAX_ROWS} events in the import window; narrow it")
    except CalendarError:
        raise
    except Exception as error:  # noqa: BLE001 - broken recurrence rules, unknown zones: one sentence, no event text
        raise CalendarError(f"the calendar's events cannot be expanded ({error.__class__.__name__})") from None
    addresses = {normalise_address(entry.address): entry for entry in mapping.attendees}
    skipped: Counter[str] = Counter()
    rows: dict[str, SessionRow] = {}
    for event in occurrences:
        outcome = _event_row(event, addresses, key, zone)
        if isinstance(outcome, str):
            skipped[outcome] += 1
        else:
            rows[outcome.session_id] = outcome
    ordered = sorted(rows.values(), key=lambda row: (row.start_at_s, row.session_id))
    return ParsedImport(tuple(ordered), tuple(sorted(skipped.items())), ())


def ics_session_id(key: bytes, uid: str, recurrence_id: str) -> tuple[str, str]:
    """(session id, external key) of one event instance: a keyed hash, never the UID itself."""
    digest = hmac.new(key, f"{uid}\x1f{recurrence_id}".encode(), hashlib.sha256).hexdigest()
    return f"ics-{digest[:16]}", digest


def _event_row(event, addresses: dict[str, MappingEntry], key: bytes, zone: tzinfo | None) -> SessionRow | str:  # noqa: ANN001 - an icalendar Event
    """A session row, or the reason the event is skipped."""
    uid = str(event.get("UID", "")).strip()
    if not uid:
        return "no_uid"
    start_prop = event.get("DTSTART")
    if start_prop is None:
        return "no_start"
    start = start_prop.dt
    if not isinstance(start, datetime):
        return "all_day"
    if start.tzinfo is None:
        if zone is None:
            return "floating_time"
        try:
            start = localise(start, zone)
        except ValueError:
            return "floating_time"
    end = _event_end(event, start, zone)
    if end is None:
        return "no_duration"
    duration_s = int((end - start).total_seconds())
    if duration_s < MIN_DURATION_S:
        return "too_short"
    if duration_s > MAX_DURATION_S:
        return "too_long"
    therapists: set[str] = set()
    clients: set[str] = set()
    for address in _event_addresses(event):
        entry = addresses.get(normalise_address(address))
        if entry is not None:
            (therapists if entry.role == "therapist" else clients).add(entry.participant_id)
    if len(therapists) > 1 or len(clients) > 1:
        return "ambiguous_participants"
    if not therapists or not clients:
        return "unmapped_participants"
    (therapist_id,) = therapists
    (client_id,) = clients
    if therapist_id == client_id:
        return "ambiguous_participants"
    session_id, external_key = ics_session_id(key, uid, _recurrence_id(event))
    state: Literal["scheduled", "cancelled"] = "cancelled" if str(event.get("STATUS", "")).upper() == "CANCELLED" else "scheduled"
    return SessionRow(session_id, therapist_id, client_id, int(start.timestamp()), duration_s, state, "ics", external_key, None)


def _event_end(event, start: datetime, zone: tzinfo | None) -> datetime | None:  # noqa: ANN001
    end_prop = event.get("DTEND")
    if end_prop is not None:
        end = end_prop.dt
        if not isinstance(end, datetime):
            return None
        if end.tzinfo is None:
            if zone is None:
                return None
            try:
                end = localise(end, zone)
            except ValueError:
                return None
        return end
    duration_prop = event.get("DURATION")
    if duration_prop is not None and isinstance(duration_prop.dt, timedelta):
        return start + duration_prop.dt
    return None


def _event_addresses(event) -> list[str]:  # noqa: ANN001
    found: list[str] = []
    for name in ("ORGANIZER", "ATTENDEE"):
        value = event.get(name)
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            found.append(str(item))
    return found


def _recurrence_id(event) -> str:  # noqa: ANN001
    """The instance's original start in UTC (stable however the file spells its zone); empty
    for a single event."""
    prop = event.get("RECURRENCE-ID")
    if prop is None:
        return ""
    value = prop.dt
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return value.strftime("%Y%m%dT%H%M%S")
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    return str(value)
