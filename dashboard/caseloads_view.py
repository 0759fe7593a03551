"""How the Caseloads page reads: each assignment with "since when" in the viewer's zone and how
it came in words, the filter by therapist, the check of the assign form before anything is
sent, and the sentences around removing. Pure functions of their arguments, unit-tested in
tests/dashboard/test_caseloads_page.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from dashboard.present import date_time, unix_of
from sessionready.terms import ID_PATTERN

# The filter's values: "all", or "therapist:ID" (a ":" is never in an id), so a therapist
# whose id happens to be "all" is still one therapist, not everyone.
ALL = "all"
THERAPIST_PREFIX = "therapist:"

# The monitor's caseload `source` values (monitor/http/caseloads.py CaseloadOut), in words.
SOURCE_WORDS = {
    "api": "assigned by staff",
    "cli": "assigned by staff",
    "session": "a session staff created",
    "csv": "CSV import",
    "ics": "calendar import",
    "upgrade": "imported before caseloads existed",
}


@dataclass(frozen=True)
class CaseloadRow:
    therapist_id: str
    client_id: str
    since: str  # local date and time with the zone, e.g. "2026-03-20 10:46 CET"
    source: str  # in words, e.g. "calendar import"


def source_words(source: str) -> str:
    """How an assignment came, for people; a source this dashboard does not know yet reads as
    the monitor said it rather than disappearing."""
    return SOURCE_WORDS.get(source, source)


def caseload_rows(entries: list[dict[str, Any]], zone: ZoneInfo, therapist: str | None = None) -> list[CaseloadRow]:
    """The assignments as ``GET /api/v1/caseload`` lists them, one therapist's when
    ``therapist`` is given; by therapist, then client."""
    rows = [
        CaseloadRow(e["therapist_id"], e["client_id"], date_time(unix_of(e["assigned_at"]), zone), source_words(e["source"]))
        for e in entries
        if therapist is None or e["therapist_id"] == therapist
    ]
    return sorted(rows, key=lambda r: (r.therapist_id, r.client_id))


def filter_value(therapist_id: str) -> str:
    return THERAPIST_PREFIX + therapist_id


def chosen_therapist(value: Any) -> str | None:
    """The filter's therapist id, or None for every therapist (also for anything unexpected)."""
    if isinstance(value, str) and value.startswith(THERAPIST_PREFIX):
        return value[len(THERAPIST_PREFIX) :]
    return None


def therapist_options(entries: list[dict[str, Any]], chosen: str | None) -> list[dict[str, str]]:
    """"All therapists", then each therapist with a client, with how many. The chosen one
    stays a choice after its last client is removed, so the filter does not jump."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["therapist_id"]] = counts.get(e["therapist_id"], 0) + 1
    if chosen is not None:
        counts.setdefault(chosen, 0)
    options = [{"label": "All therapists", "value": ALL}]
    for therapist_id in sorted(counts):
        n = counts[therapist_id]
        options.append({"label": f"{therapist_id} ({n} client{'' if n == 1 else 's'})", "value": filter_value(therapist_id)})
    return options


def summary(entries: list[dict[str, Any]], rows: list[CaseloadRow], chosen: str | None) -> str:
    """One line over the table: how many assignments, and for whom."""
    if chosen is not None:
        return f"{chosen}: {len(rows)} client{'' if len(rows) == 1 else 's'}"
    if not entries:
        return "no assignments yet"
    therapists = len({e["therapist_id"] for e in entries})
    return f"{len(entries)} assignment{'' if len(entries) == 1 else 's'}, {therapists} therapist{'' if therapists == 1 else 's'}"


@dataclass(frozen=True)
class Assignment:
    therapist_id: str
    client_id: str


def check_assignment(therapist_id: Any, client_id: Any) -> Assignment | str:
    """The form's ids, checked with the monitor's own pattern, so a name or a typo gets a
    sentence next to the form and nothing is sent; a sentence (str) when something is wrong.
    Whether an id is a therapist's or a client's only the monitor knows: it answers 409."""
    therapist = therapist_id.strip() if isinstance(therapist_id, str) else ""
    client = client_id.strip() if isinstance(client_id, str) else ""
    if not therapist or not client:
        missing = "the therapist's id" if not therapist else "the client's id"
        if not therapist and not client:
            missing = "the therapist's id and the client's id"
        return f"Enter {missing} (pseudonymous ids such as t-07 and c-0042, never names)."
    for what, value in (("therapist", therapist), ("client", client)):
        if not re.fullmatch(ID_PATTERN, value):
            return f"The {what} id is not an id: 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit (no spaces), e.g. {'t-07' if what == 'therapist' else 'c-0042'}. Never use a name."
    return Assignment(therapist, client)


def assigned_sentence(wanted: Assignment, created: bool) -> str:
    if created:
        return f"{wanted.client_id} is now on {wanted.therapist_id}'s caseload: {wanted.therapist_id} can create sessions with them and see their checks around those sessions."
    return f"{wanted.client_id} was already on {wanted.therapist_id}'s caseload; nothing changed."


def removal_question(therapist_id: str, client_id: str) -> str:
    """What the confirmation dialog asks: what removing does, and what it leaves alone."""
    return (
        f"Take {client_id} off {therapist_id}'s caseload?\n\n"
        f"{therapist_id} stops seeing {client_id}'s checks at once and can no longer create sessions with them. "
        "Their sessions stay as they are."
    )


def removed_sentence(therapist_id: str, client_id: str) -> str:
    return f"{client_id} is off {therapist_id}'s caseload; their sessions stay as they are."


def kept_sentence(therapist_id: str, client_id: str) -> str:
    return f"Nothing removed: {client_id} stays on {therapist_id}'s caseload."
