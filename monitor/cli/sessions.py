"""``sessionready monitor sessions ...``: import, list, create and cancel sessions, register
participants. Works on the store directly, like ``monitor token``; the monitor may be running."""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from sessionready.terms import EXIT_CANNOT_RUN, EXIT_OK, ID_PATTERN

if TYPE_CHECKING:
    from monitor.calendars.imports import ParsedImport
    from monitor.store.protocols import SessionStore, Store

ID = re.compile(ID_PATTERN)
ID_RULE = "must be 1-64 letters, digits, '.', '_' or '-' (a pseudonymous id, never a name)"
FETCH_TIMEOUT_S = 30.0
FETCH_MAX_BYTES = 8 << 20  # as the API's import limit


def _id(text: str) -> str:
    if not ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"'{text[:64]}' {ID_RULE}")
    return text


def _minutes(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1440:
        raise argparse.ArgumentTypeError(f"must be a whole number of minutes from 1 to 1440, got '{text[:20]}'")
    return int(text)


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 10000, got '{text[:20]}'")
    return int(text)


def _moment(text: str) -> float:
    """RFC 3339 with an offset, or a date (midnight UTC)."""
    from monitor.calendars.imports import parse_rfc3339

    try:
        return parse_rfc3339(text).timestamp()
    except ValueError:
        pass
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"must be a date (2026-03-16) or an RFC 3339 time with an offset, got '{text[:40]}'")


def add_sessions_parser(actions: argparse._SubParsersAction, parser_class: type, add_location: Callable[[argparse.ArgumentParser], None]) -> None:
    sessions = actions.add_parser(
        "sessions",
        help="import, list, create or cancel sessions; register participants",
        description="Manage sessions and participants in the monitor's store. Only pseudonymous ids and times "
        "are stored: calendar titles, descriptions and attendee names are dropped on import.",
    )
    commands = sessions.add_subparsers(dest="sessions_action", metavar="ACTION", parser_class=parser_class, required=True)

    csv_import = commands.add_parser(
        "import-csv",
        help="import sessions from a CSV file (all rows or none)",
        description="Columns: session_id (optional), therapist_id, client_id, start, planned_duration_minutes. "
        "start is RFC 3339 with an offset, or a local time with --tz. A bad row stops the whole import.",
    )
    csv_import.add_argument("file", metavar="FILE", type=Path)
    csv_import.add_argument("--tz", metavar="ZONE", help="IANA time zone of local start times, e.g. Europe/Berlin")
    add_location(csv_import)
    csv_import.set_defaults(run=run_import_csv)

    ics_import = commands.add_parser(
        "import-ics",
        help="import sessions from an iCalendar file or https URL",
        description="Expand the calendar's events in a window (default: a day ago to 60 days ahead) and store "
        "the ones whose organizer/attendees map to one therapist and one client. The mapping file (JSON) "
        "is read, never stored. Re-importing updates sessions instead of duplicating them.",
    )
    ics_import.add_argument("source", metavar="FILE|URL", help="an .ics file, or an https:// (or webcal://) URL")
    ics_import.add_argument("--mapping", required=True, metavar="FILE", type=Path, help="JSON: calendar addresses to participant ids and roles")
    ics_import.add_argument("--from", dest="window_from", metavar="TIME", type=_moment, help="window start: a date or an RFC 3339 time")
    ics_import.add_argument("--to", dest="window_to", metavar="TIME", type=_moment, help="window end: a date or an RFC 3339 time")
    ics_import.add_argument("--tz", metavar="ZONE", help="IANA time zone for floating times (events with no zone)")
    add_location(ics_import)
    ics_import.set_defaults(run=run_import_ics)

    listing = commands.add_parser("list", help="list sessions, by start time")
    listing.add_argument("--day", metavar="YYYY-MM-DD", help="only sessions starting on this day")
    listing.add_argument("--tz", metavar="ZONE", default="UTC", help="time zone of --day and of the times shown (default UTC)")
    listing.add_argument("--therapist", metavar="ID", type=_id, help="only this therapist's sessions")
    listing.add_argument("--state", choices=("scheduled", "live", "ended", "cancelled"))
    listing.add_argument("--limit", type=_limit, default=1000, metavar="N", help="at most N sessions (default 1000)")
    add_location(listing)
    listing.set_defaults(run=run_list)

    create = commands.add_parser("create", help="create one session", description="Create a session; participants are registered with their role on first use.")
    create.add_argument("--therapist", required=True, metavar="ID", type=_id)
    create.add_argument("--client", required=True, metavar="ID", type=_id)
    create.add_argument("--start", required=True, metavar="TIME", help="RFC 3339 with an offset, e.g. 2026-03-16T09:00:00+01:00")
    create.add_argument("--duration-minutes", required=True, metavar="N", type=_minutes)
    create.add_argument("--id", dest="session_id", metavar="ID", type=_id, help="session id (default: generated)")
    add_location(create)
    create.set_defaults(run=run_create)

    cancel = commands.add_parser("cancel", help="cancel a scheduled session")
    cancel.add_argument("session_id", metavar="ID", type=_id)
    add_location(cancel)
    cancel.set_defaults(run=run_cancel)

    participant = commands.add_parser("add-participant", help="register a participant id with its role")
    participant.add_argument("participant_id", metavar="ID", type=_id)
    participant.add_argument("--role", required=True, choices=("therapist", "client"))
    add_location(participant)
    participant.set_defaults(run=run_add_participant)

    participants = commands.add_parser("participants", help="list participants (ids and roles)")
    add_location(participants)
    participants.set_defaults(run=run_participants)


def _fail(message: str) -> int:
    print(f"sessionready monitor sessions: {message}", file=sys.stderr)
    return EXIT_CANNOT_RUN


def _with_store(args: argparse.Namespace, action: Callable[[Store], int]) -> int:
    from monitor.cli.main import _with_store as with_store

    return with_store(args, action)


def _utc(unix_s: float, zone=timezone.utc) -> str:  # noqa: ANN001 - a tzinfo
    return datetime.fromtimestamp(unix_s, zone).strftime("%Y-%m-%d %H:%M %z")


def _zone(name: str | None):  # noqa: ANN202 - tzinfo or None
    from monitor.calendars.imports import parse_zone

    return None if name is None else parse_zone(name)


def _report(parsed: ParsedImport, store: SessionStore) -> int:
    if parsed.errors:
        outcome_errors, count = parsed.errors, len(parsed.errors)
    else:
        outcome = store.import_sessions(parsed.rows)
        outcome_errors, count = outcome.errors, outcome.error_count
        if not count:
            skipped = ", ".join(f"{reason} {n}" for reason, n in parsed.skipped) or "none"
            print(
                f"imported {len(parsed.rows)} session(s): {outcome.created} created, {outcome.updated} updated, "
                f"{outcome.cancelled} cancelled, {outcome.unchanged} unchanged; skipped: {skipped}"
            )
            _report_skipped_events(parsed)
            return EXIT_OK
    for error in outcome_errors:
        where = f"row {error.row}" if error.row is not None else f"session {error.session_id}"
        print(f"  {where}, {error.field}: {error.message}", file=sys.stderr)
    return _fail(f"{count} row(s) cannot be imported (listed above); nothing was stored")


def _report_skipped_events(parsed: ParsedImport) -> None:
    """One line per reason naming the calendar events skipped whole by the keyed hash of their
    UID (``uid-...``), never by anything the event says."""
    counts = dict(parsed.skipped)
    for reason in dict.fromkeys(reason for reason, _ in parsed.skipped_events):
        ids = [event_id for r, event_id in parsed.skipped_events if r == reason]
        more = counts.get(reason, len(ids)) - len(ids)
        print(f"  events skipped whole, {reason}: {', '.join(ids)}{f' and {more} more' if more > 0 else ''}")


def run_import_csv(args: argparse.Namespace) -> int:
    from monitor.calendars.imports import CalendarError, parse_csv

    try:
        text = args.file.read_bytes().decode("utf-8-sig")
        parsed = parse_csv(text, _zone(args.tz))
    except OSError as error:
        return _fail(f"cannot read {args.file}: {error.strerror or error}")
    except UnicodeDecodeError:
        return _fail(f"{args.file} is not UTF-8 text")
    except CalendarError as error:
        return _fail(str(error))
    return _with_store(args, lambda store: _report(parsed, store))


def fetch_calendar(url: str, timeout_s: float = FETCH_TIMEOUT_S, max_bytes: int = FETCH_MAX_BYTES) -> bytes:
    """GET a calendar over https (plain http only to this machine: a calendar URL often carries
    a secret). Raises ValueError with one sentence that never repeats the URL's path or query."""
    parts = urllib.parse.urlsplit(url)
    scheme = "https" if parts.scheme == "webcal" else parts.scheme
    host = parts.hostname or ""
    if scheme not in ("https", "http") or not host:
        raise ValueError("a calendar URL must start with https:// (or webcal://)")
    if scheme == "http" and not _loopback(host):
        raise ValueError(f"refusing plain http to {host}: the calendar and its URL would travel unencrypted; use https")
    target = urllib.parse.urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
    request = urllib.request.Request(target, headers={"Accept": "text/calendar", "User-Agent": "sessionready"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read(max_bytes + 1)
    except urllib.error.HTTPError as error:
        raise ValueError(f"{host} answered HTTP {error.code} for the calendar URL") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ValueError(f"cannot fetch the calendar from {host}: {reason}") from None
    if len(body) > max_bytes:
        raise ValueError(f"the calendar from {host} is larger than {max_bytes} bytes")
    return body


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_import_ics(args: argparse.Namespace) -> int:
    from monitor.calendars.imports import CalendarError, default_window, load_mapping, parse_ics

    try:
        mapping = load_mapping(args.mapping.read_text(encoding="utf-8"))
    except OSError as error:
        return _fail(f"cannot read the mapping {args.mapping}: {error.strerror or error}")
    except UnicodeDecodeError:
        return _fail(f"the mapping {args.mapping} is not UTF-8 text")
    except CalendarError as error:
        return _fail(str(error))
    try:
        zone = _zone(args.tz)
    except CalendarError as error:
        return _fail(str(error))
    source: str = args.source
    try:
        if re.match(r"(?i)(https?|webcal)://", source):
            data = fetch_calendar(source)
        else:
            data = Path(source).read_bytes()
    except OSError as error:
        return _fail(f"cannot read {source}: {error.strerror or error}")
    except ValueError as error:
        return _fail(str(error))
    start, end = default_window(time.time())
    window = (args.window_from if args.window_from is not None else start, args.window_to if args.window_to is not None else end)

    def run(store: SessionStore) -> int:
        try:
            parsed = parse_ics(data, mapping, *window, store.calendar_key(), zone)
        except CalendarError as error:
            return _fail(str(error))
        return _report(parsed, store)

    return _with_store(args, run)


def run_list(args: argparse.Namespace) -> int:
    from monitor.calendars.imports import CalendarError, day_bounds

    try:
        zone = _zone(args.tz)
    except CalendarError as error:
        return _fail(str(error))
    bounds: tuple[float | None, float | None] = (None, None)
    if args.day is not None:
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", args.day):
                raise ValueError
            bounds = day_bounds(args.day, zone)
        except (ValueError, OverflowError):
            return _fail(f"--day must be a date, YYYY-MM-DD, got '{args.day[:20]}'")

    def listing(store: SessionStore) -> int:
        rows = store.list_sessions(therapist_id=args.therapist, state=args.state, start_from_s=bounds[0], start_to_s=bounds[1], limit=args.limit)
        print(f"{'SESSION_ID':24} {'START':22} {'MIN':>4} {'THERAPIST':16} {'CLIENT':16} {'STATE':10} SOURCE")
        for s in rows:
            print(
                f"{s.session_id:24} {_utc(s.start_at_s, zone):22} {s.planned_duration_s // 60:>4} "
                f"{s.therapist_id:16} {s.client_id:16} {s.state:10} {s.source}"
            )
        return EXIT_OK

    return _with_store(args, listing)


def run_create(args: argparse.Namespace) -> int:
    from monitor.calendars.imports import parse_rfc3339, session_start
    from monitor.store.sessions import SessionStoreError

    try:
        start_at_s = session_start(parse_rfc3339(args.start))
    except ValueError:
        return _fail(
            "--start must be an RFC 3339 time with an offset, on a whole second, from 2000 to 2099, "
            f"e.g. 2026-03-16T09:00:00+01:00, got '{args.start[:40]}'"
        )

    def create(store: SessionStore) -> int:
        try:
            info, created = store.create_session(args.session_id, args.therapist, args.client, start_at_s, args.duration_minutes * 60)
        except SessionStoreError as error:
            return _fail(error.message)
        print(f"{'created' if created else 'already there:'} session {info.session_id} at {_utc(info.start_at_s)} ({info.state})")
        return EXIT_OK

    return _with_store(args, create)


def run_cancel(args: argparse.Namespace) -> int:
    from monitor.store.sessions import SessionStoreError

    def cancel(store: SessionStore) -> int:
        try:
            info = store.set_session_state(args.session_id, "cancelled", time.time(), "cli")
        except SessionStoreError as error:
            return _fail(error.message)
        if info is None:
            return _fail(f"no session with id '{args.session_id}'")
        print(f"session {info.session_id} is cancelled")
        return EXIT_OK

    return _with_store(args, cancel)


def run_add_participant(args: argparse.Namespace) -> int:
    from monitor.store.sessions import SessionStoreError

    def add(store: SessionStore) -> int:
        try:
            info, created = store.add_participant(args.participant_id, args.role)
        except SessionStoreError as error:
            return _fail(error.message)
        print(f"{'registered' if created else 'already registered:'} {info.role} {info.participant_id}")
        return EXIT_OK

    return _with_store(args, add)


def run_participants(args: argparse.Namespace) -> int:
    def listing(store: SessionStore) -> int:
        print(f"{'PARTICIPANT':24} {'ROLE':10} REGISTERED (UTC)")
        for p in store.list_participants():
            print(f"{p.participant_id:24} {p.role:10} {_utc(p.created_at)}")
        return EXIT_OK

    return _with_store(args, listing)
