"""Real-world calendars through the real import (issue 18): every ``.ics`` file that ships with
the installed ``icalendar`` and ``recurring_ical_events`` packages (their own test suites, many
odd on purpose), posted to ``POST /api/v1/sessions/import`` of a real monitor process.

Ground truth nobody here wrote: whether ``icalendar`` itself reads a file as a calendar. Every
file it reads must be imported (200), its unreadable events skipped and counted; every other
file is refused with a 400, never a 5xx; none takes longer than 2 s.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections import Counter
from pathlib import Path

import icalendar
import pytest
import recurring_ical_events

from monitor.calendars.imports import UID_REASONS
from tests.conftest import start_monitor

DATA = Path(__file__).parent / "data" / "calendar"
PER_FILE_S = 2.0
# Files whose odd events were read by hand: what each is skipped for.
READ_BY_HAND = {
    "america_new_york_forward_reference.ics": {"unreadable_event": 1},  # DTSTART given twice
    "pacific_fiji.ics": {"unreadable_event": 1},  # DTSTART given twice
    "multiple_timezones.ics": {"bad_recurrence_rule": 3},  # RDATE;VALUE=TIME: a time is no recurrence date
    "rfc_7529.ics": {"bad_recurrence_rule": 4},  # RSCALE (non-Gregorian) rules: dateutil has none
    "broken_dtstart.ics": {"unreadable_event": 1},  # DTSTART:INVALID-DATE
}


def corpus() -> list[Path]:
    """The calendars of both packages, found where they are installed."""
    roots = [Path(package.__file__).parent for package in (icalendar, recurring_ical_events)]
    return sorted(path for root in roots for path in root.rglob("*.ics"))


def icalendar_reads(data: bytes) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return isinstance(icalendar.Calendar.from_ical(data), icalendar.Calendar)
        except Exception:  # noqa: BLE001 - any failure means: icalendar does not read it
            return False


@pytest.mark.slow
def test_every_calendar_of_both_libraries_test_suites_through_the_import_api(tmp_path: Path) -> None:
    files = corpus()
    assert len(files) >= 200, f"only {len(files)} calendars found in the installed packages"
    mapping = json.loads((DATA / "mapping.json").read_text())
    monitor = start_monitor(tmp_path / "monitor")
    try:
        token = monitor.token("it", "staff-it")
        slow: list[tuple[str, float]] = []
        by_reason: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        skipped_by_file: dict[str, dict[str, int]] = {}
        for path in files:
            data = path.read_bytes()
            body = json.dumps({"format": "ics", "data": data.decode("utf-8"), "mapping": mapping}).encode()
            name = str(path.relative_to(path.parents[2]))
            # A file over the bound is timed once more (the import is idempotent): the suite
            # runs on several workers of a 2-core machine, and one busy moment is not a slow
            # import; an import that is slow twice is.
            times: list[float] = []
            for _ in range(2):
                started = time.monotonic()
                status, raw = monitor.request("POST", "/api/v1/sessions/import", token, body, {"Content-Type": "application/json"})
                times.append(time.monotonic() - started)
                assert status < 500, (name, raw[:300])
                if times[-1] <= PER_FILE_S:
                    break
            if min(times) > PER_FILE_S:
                slow.append((name, min(times)))
            answer = json.loads(raw)
            if icalendar_reads(data):
                assert status == 200, (name, answer)
                outcomes["imported"] += 1
                for skip in answer["skipped"]:
                    by_reason[skip["reason"]] += skip["count"]
                    if skip["reason"] in UID_REASONS:
                        assert len(skip["event_ids"]) == min(skip["count"], 100), (name, skip)
                        assert all(re.fullmatch(r"uid-[0-9a-f]{16}", event_id) for event_id in skip["event_ids"])
                skipped_by_file[path.name] = {s["reason"]: s["count"] for s in answer["skipped"] if s["reason"] in UID_REASONS}
            else:
                assert status == 400 and answer["error"]["code"] == "invalid_calendar", (name, answer)
                outcomes["refused"] += 1
        assert slow == [], slow
        for name, expected in READ_BY_HAND.items():
            assert skipped_by_file[name] == expected, name
        assert by_reason["unreadable_event"] and by_reason["bad_recurrence_rule"] and by_reason["no_start"]
        print(f"\ncorpus: {len(files)} files, {dict(outcomes)}, skipped by reason {dict(sorted(by_reason.items()))}")
    finally:
        monitor.stop()
    assert "Traceback" not in monitor.stderr_path.read_text()
