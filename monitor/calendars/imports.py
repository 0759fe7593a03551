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
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.store.sessions import RowError, SessionRow
from sessionready.terms import ID_PATTERN
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
# Work bounds of one ICS import (CPU seconds of the process that expands it). A weekly series
# costs about a millisecond; an 8 MiB calendar of 55,000 of them about 25 s on a slow core.
IMPORT_CPU_S = 60.0
SERIES_CPU_S = 0.5
MAX_SERIES_INSTANCES = 2_000  # one UID in the window: three sessions a day for 400 days is 1,200
MAX_LISTED_SKIPS = 100  # hashed ids of UIDs skipped whole, in an answer
SUB_DAILY = frozenset({"SECONDLY", "MINUTELY", "HOURLY"})
LONGEST_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Why a whole UID (a series with its moved instances) is skipped; each is counted once.
UID_REASONS = ("no_start", "unreadable_event", "bad_recurrence_rule", "unsupported_recurrence", "recurrence_too_costly", "too_many_instances")


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
    # ICS: (reason, ics_event_id) of the UIDs skipped whole, the first MAX_LISTED_SKIPS
    skipped_events: tuple[tuple[str, str], ...] = ()


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


class SeriesTooCostly(Exception):
    """One UID's series used up its CPU time (raised by WorkBudget's SIGPROF handler)."""


class WorkBudget:
    """The CPU time one ICS import may use: in all, and on one UID's series.

    Times are this process's CPU seconds (``time.process_time``, ``ITIMER_PROF``): a busy
    machine slows an import down but does not make it fail. The per-series bound has to
    interrupt the expander (dateutil searches a rule that never matches, 30 February, up to
    the year 9999 without returning), so it uses SIGPROF and works only in a process's main
    thread: the monitor runs imports in a process of their own (monitor/calendars/worker.py).
    """

    def __init__(self, import_cpu_s: float = IMPORT_CPU_S, series_cpu_s: float = SERIES_CPU_S, clock: Callable[[], float] = time.process_time) -> None:
        self.import_cpu_s = import_cpu_s
        self.series_cpu_s = series_cpu_s
        self._clock = clock
        self._started_s = clock()
        self._armed = False

    def check(self) -> None:
        """CalendarError once the whole import has used more than ``import_cpu_s``."""
        if self._clock() - self._started_s > self.import_cpu_s:
            raise CalendarError(f"the calendar needs more than {self.import_cpu_s:g} s of work to read and expand; split it, or narrow the import window")

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Install the SIGPROF handler for the import's duration, and restore the previous one."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("an ICS import bounds its work with SIGPROF and must run in a process's main thread")
        previous = signal.signal(signal.SIGPROF, self._interrupt)
        try:
            yield
        finally:
            self._armed = False
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)

    @contextmanager
    def series(self) -> Iterator[None]:
        """SeriesTooCostly inside the block once it has used ``series_cpu_s`` (inside ``interruptible``)."""
        self._armed = True
        signal.setitimer(signal.ITIMER_PROF, self.series_cpu_s)
        try:
            yield
        finally:
            # Disarm first: a signal handled after this line is ignored; one handled before it
            # raises here, still inside the caller's ``try``.
            self._armed = False
            signal.setitimer(signal.ITIMER_PROF, 0)

    def _interrupt(self, signum: int, frame: object) -> None:
        if self._armed:
            self._armed = False
            raise SeriesTooCostly


def parse_ics(
    data: bytes | str,
    mapping: CalendarMapping,
    window_start_s: float,
    window_end_s: float,
    key: bytes,
    zone: tzinfo | None = None,
    budget: WorkBudget | None = None,
) -> ParsedImport:
    """The calendar's events that overlap the window (unix seconds), recurring ones expanded.

    ``key`` keys the hash that turns an event's UID and recurrence id into a stable session
    id (re-importing updates, never duplicates). ``zone`` places floating times (no TZID, no
    UTC); without it such events are skipped. Instances are skipped, and counted by reason,
    when they are all-day, too short or too long, or do not map to exactly one therapist and
    one client. Cancelled events and instances (STATUS:CANCELLED) become cancelled sessions.

    Events are expanded one UID at a time (a series with its moved instances). A UID that
    cannot be read or expanded is skipped whole, counted once under its reason (UID_REASONS)
    and listed by its keyed-hash id: one odd event must not stop a practice's week. The whole
    file is refused (CalendarError) only when it is not a calendar, the window is out of
    bounds, the window holds more than MAX_ROWS instances, or the import needs more work than
    ``budget`` allows. Must run in a process's main thread (see WorkBudget).
    """
    import icalendar  # imported here: only imports need it, and it is not small

    if not window_start_s < window_end_s:
        raise CalendarError("the import window must start before it ends")
    if window_end_s - window_start_s > MAX_WINDOW_DAYS * 86_400:
        raise CalendarError(f"the import window may span at most {MAX_WINDOW_DAYS} days")
    if window_start_s < EARLIEST_START_S - 86_400 or window_end_s > LATEST_START_S + 86_400:
        raise CalendarError("the import window must lie within the years 2000 to 2099")
    budget = budget if budget is not None else WorkBudget()
    if isinstance(data, str):
        # Text sent through the API keeps the byte-order mark Outlook writes; icalendar skips
        # one only at the start of bytes.
        data = data.removeprefix("\ufeff")
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except Exception:  # noqa: BLE001 - the parser raises many kinds; none is the user's fault to debug from a trace
        raise CalendarError("the file is not an iCalendar (ICS) calendar that can be read") from None
    if not isinstance(calendar, icalendar.Calendar):
        raise CalendarError("the file is not an iCalendar (ICS) calendar")
    window = (datetime.fromtimestamp(window_start_s, timezone.utc), datetime.fromtimestamp(window_end_s, timezone.utc))
    addresses = {normalise_address(entry.address): entry for entry in mapping.attendees}
    skipped: Counter[str] = Counter()
    skipped_events: list[tuple[str, str]] = []
    rows: dict[str, SessionRow] = {}
    instances = 0
    with budget.interruptible():
        for uid, components in _events_by_uid(calendar, skipped).items():
            budget.check()
            outcome = _expand_uid(calendar, components, window, budget)
            if not isinstance(outcome, str):
                instances += len(outcome)
                if instances > MAX_ROWS:
                    raise CalendarError(f"the calendar has more than {MAX_ROWS} events in the import window; narrow it")
                outcome = _uid_rows(outcome, addresses, key, zone)
            if isinstance(outcome, str):
                skipped[outcome] += 1
                if len(skipped_events) < MAX_LISTED_SKIPS:
                    skipped_events.append((outcome, ics_event_id(key, uid)))
                continue
            skipped.update(outcome[1])
            rows.update((row.session_id, row) for row in outcome[0])
    ordered = sorted(rows.values(), key=lambda row: (row.start_at_s, row.session_id))
    return ParsedImport(tuple(ordered), tuple(sorted(skipped.items())), (), tuple(skipped_events))


def ics_event_id(key: bytes, uid: str) -> str:
    """How an import names an event it skipped whole: ``uid-`` and 16 hex of the keyed hash of
    its UID. Stable across imports (did a new export fix it?), never the UID itself."""
    return f"uid-{ics_session_id(key, uid.strip(), '')[1][:16]}"


def _events_by_uid(calendar, skipped: Counter[str]) -> dict[str, list]:  # noqa: ANN001 - an icalendar Calendar and its Events
    """The calendar's VEVENTs by UID, in file order; events without a readable UID are counted in ``skipped``."""
    by_uid: dict[str, list] = {}
    for component in calendar.walk("VEVENT"):
        uid = component.get("UID")
        if uid is None or not str(uid).strip():
            skipped["no_uid"] += 1
        elif isinstance(uid, list):  # UID given twice: which series it belongs to is unknown
            skipped["unreadable_event"] += 1
        else:
            by_uid.setdefault(str(uid), []).append(component)
    return by_uid


def _expand_uid(calendar, components: list, window: tuple[datetime, datetime], budget: WorkBudget) -> list | str:  # noqa: ANN001
    """The instances of one UID (its series and moved instances) within the window, or why the
    UID is skipped whole (one of UID_REASONS)."""
    import recurring_ical_events

    for component in components:
        reason = _unreadable(component) or _rule_problem(component)
        if reason is not None:
            return reason
    # A calendar of this UID alone, with the file's own properties: the expander reads
    # X-WR-TIMEZONE and CALSCALE there. Zones need no copy: icalendar resolved each TZID (even
    # one whose VTIMEZONE comes later, icalendar PR #792) while parsing.
    single = type(calendar)()
    for name, value in calendar.items():
        single[name] = value
    single.subcomponents = list(components)
    try:
        with budget.series():
            return _instances(recurring_ical_events.of(single), window)
    except SeriesTooCostly:
        return "recurrence_too_costly"
    except (recurring_ical_events.InvalidCalendar, ValueError, TypeError, OverflowError):
        # The dates are readable (checked above): what remains is RRULE, RDATE, EXDATE or
        # RECURRENCE-ID, e.g. RDATE;VALUE=TIME makes dateutil compare a time with a datetime.
        return "bad_recurrence_rule"
    except Exception:  # noqa: BLE001 - any other failure of the expander on this UID's text
        return "unreadable_event"


def _instances(query, window: tuple[datetime, datetime]) -> list | str:  # noqa: ANN001 - a recurring_ical_events CalendarQuery
    """What ``query.between(*window)`` returns, made one instance at a time so that a series
    with more than MAX_SERIES_INSTANCES stops there (``too_many_instances``)."""
    found = []
    for series in query.series:
        for occurrence in series.between(*window):
            found.append(occurrence)
            if len(found) > MAX_SERIES_INSTANCES:
                return "too_many_instances"
    return [occurrence.as_component(False) for occurrence in found]


def _uid_rows(events: list, addresses: dict[str, MappingEntry], key: bytes, zone: tzinfo | None) -> tuple[list[SessionRow], Counter[str]] | str:
    """Session rows of one UID's instances and the instances skipped by reason, or
    ``unreadable_event`` when an instance cannot be read (then none of the UID is kept)."""
    rows: list[SessionRow] = []
    skipped: Counter[str] = Counter()
    try:
        for event in events:
            row = _event_row(event, addresses, key, zone)
            if isinstance(row, str):
                skipped[row] += 1
            else:
                rows.append(row)
    except Exception:  # noqa: BLE001 - a property that reads as something else than RFC 5545 says
        return "unreadable_event"
    return rows, skipped


def _unreadable(component) -> str | None:  # noqa: ANN001 - an icalendar Event
    """``no_start`` or ``unreadable_event`` when a date the expander needs is missing, given
    twice or broken (icalendar keeps a broken value and raises only when it is read)."""
    if component.get("DTSTART") is None:
        return "no_start"
    for name, kind in (("DTSTART", date), ("DTEND", date), ("DURATION", timedelta), ("RECURRENCE-ID", date)):
        prop = component.get(name)
        if prop is None:
            continue
        if isinstance(prop, list):
            return "unreadable_event"
        try:
            value = prop.dt
        except Exception:  # noqa: BLE001 - icalendar's BrokenCalendarProperty and kin
            return "unreadable_event"
        if not isinstance(value, kind):  # a TIME or a PERIOD where a date belongs
            return "unreadable_event"
    return None


def _rule_problem(component) -> str | None:  # noqa: ANN001 - an icalendar Event
    """Why the event's RRULE must not reach the expander: ``unsupported_recurrence`` for a
    frequency finer than daily (never a session pattern, and the cheapest way to make dateutil
    search for hours), ``bad_recurrence_rule`` for one that cannot be read or never matches."""
    from icalendar import vRecur

    rules = component.get("RRULE")
    if rules is None:
        return None
    for rule in rules if isinstance(rules, list) else [rules]:
        if not isinstance(rule, vRecur):  # icalendar keeps an unparsable rule as a broken value
            return "bad_recurrence_rule"
        try:
            if {str(freq).upper() for freq in rule.get("FREQ", [])} & SUB_DAILY:
                return "unsupported_recurrence"
            if _never_matches(rule):
                return "bad_recurrence_rule"
        except (ValueError, TypeError):
            return "bad_recurrence_rule"
    return None


def _never_matches(rule) -> bool:  # noqa: ANN001 - an icalendar vRecur
    """True when no month of the rule has any of its days of the month (30 February): dateutil
    would look for one up to the year 9999. ValueError for a month that is not 1-12."""
    days = [int(day) for day in rule.get("BYMONTHDAY", [])]
    if not days:
        return False
    months = [int(str(month)) for month in rule.get("BYMONTH", [])] or list(range(1, 13))
    if not all(1 <= month <= 12 for month in months):
        raise ValueError("BYMONTH out of range")
    return not any(1 <= abs(day) <= LONGEST_MONTH_DAYS[month - 1] for month in months for day in days)


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
