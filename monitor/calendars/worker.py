"""Calendar imports in a process of their own.

An import is CPU work on a file nobody here controls: an 8 MiB calendar takes icalendar tens of
seconds to read, and one recurrence rule can make dateutil search for hours. The monitor runs
each import in a short-lived child (``python -m monitor.calendars.worker``), so that

- it takes no thread from the pool that token look-ups and the store use, nor the monitor's GIL;
- its work bound (``WorkBudget``) can interrupt the expander: that needs a main thread;
- whatever the child is doing, the monitor kills it after ``IMPORT_TIMEOUT_S``;
- at most ``IMPORT_WORKERS`` imports run at once (each may hold a few hundred MB while it reads).

The job goes in as JSON on stdin; the answer comes back as JSON on stdout, never pickle: the
child reads hostile input and its answer must not be able to run code in the monitor. The
child writes nothing else (stderr is discarded): a traceback could quote an event.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import warnings
from dataclasses import dataclass, fields
from typing import Literal

from monitor.calendars.imports import CalendarError, CalendarMapping, ParsedImport
from monitor.store.sessions import RowError, SessionRow
from sessionready.typed import encode

IMPORT_TIMEOUT_S = 120.0  # wall clock, a backstop: the child's own bound is WorkBudget (CPU time)
IMPORT_WORKERS = 2  # imports at once per monitor process (sessions.IMPORT_SLOTS)


class ImportWorkerFailed(RuntimeError):
    """The child died or hit a bug; the message names an exception type and line, never input."""


@dataclass(frozen=True)
class ImportJob:
    """One import for the child. ``tz`` is an IANA name the monitor has checked; ``window`` is
    unix seconds; ``mapping``, ``window`` and ``key`` are for ICS only."""

    format: Literal["csv", "ics"]
    data: str
    tz: str | None = None
    mapping: CalendarMapping | None = None
    window: tuple[float, float] | None = None
    key: bytes | None = None

    def to_json(self) -> bytes:
        mapping = encode(self.mapping) if self.mapping is not None else None
        key = self.key.hex() if self.key is not None else None
        return json.dumps({"format": self.format, "data": self.data, "tz": self.tz, "mapping": mapping, "window": self.window, "key": key}).encode()


# --- the monitor's side --------------------------------------------------------------------------


async def run_import(job: ImportJob, timeout_s: float = IMPORT_TIMEOUT_S) -> ParsedImport:
    """The parsed import, from a child process. CalendarError when the file is refused or takes
    longer than ``timeout_s`` (wall seconds); ImportWorkerFailed when the child breaks."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.calendars.worker",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(job.to_json()), timeout_s)
    except asyncio.TimeoutError:
        raise CalendarError(f"the calendar could not be read and expanded within {timeout_s:g} s; split it, or narrow the import window") from None
    finally:
        if process.returncode is None:  # timed out, or the request was cancelled
            process.kill()
            await process.wait()
    return _answer(out, process.returncode)


def _answer(out: bytes, returncode: int | None) -> ParsedImport:
    stopped = ImportWorkerFailed(f"the calendar import worker stopped without an answer (exit status {returncode})")
    try:
        answer = json.loads(out)
        refused, failed, parsed = answer.get("refused"), answer.get("failed"), answer.get("parsed")
    except (ValueError, AttributeError):
        raise stopped from None
    if refused is not None:
        raise CalendarError(str(refused))
    if failed is not None:
        raise ImportWorkerFailed(f"the calendar import worker failed: {str(failed)[:200]}")
    try:
        return parsed_from_json(parsed)
    except (ValueError, KeyError, TypeError):
        raise stopped from None


def parsed_from_json(data: dict) -> ParsedImport:
    return ParsedImport(
        tuple(SessionRow(*row) for row in data["rows"]),
        tuple((str(reason), int(count)) for reason, count in data["skipped"]),
        tuple(RowError(*error) for error in data["errors"]),
        tuple((str(reason), str(event_id)) for reason, event_id in data["skipped_events"]),
    )


# --- the child's side ------------------------------------------------------------------------------


def parsed_to_json(parsed: ParsedImport) -> dict:
    return {
        "rows": [_values(row) for row in parsed.rows],
        "skipped": [list(item) for item in parsed.skipped],
        "errors": [_values(error) for error in parsed.errors],
        "skipped_events": [list(item) for item in parsed.skipped_events],
    }


def _values(item: SessionRow | RowError) -> list:
    return [getattr(item, name.name) for name in fields(item)]


def run_job(job: dict) -> ParsedImport:
    """Parse one job (as ImportJob.to_json wrote it) in this process's main thread."""
    from monitor.calendars.imports import check_mapping_data, parse_csv, parse_ics, parse_zone

    zone = parse_zone(job["tz"]) if job["tz"] is not None else None
    if job["format"] == "csv":
        return parse_csv(job["data"], zone)
    window_start_s, window_end_s = job["window"]
    return parse_ics(job["data"], check_mapping_data(job["mapping"]), window_start_s, window_end_s, bytes.fromhex(job["key"]), zone)


def _where(error: BaseException) -> str:
    """An exception's type and innermost line: enough to find a bug, no text from the input."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    place = f" at {os.path.basename(frame.tb_frame.f_code.co_filename)}:{frame.tb_lineno}" if frame is not None else ""
    return f"{type(error).__name__}{place}"


def main() -> int:
    warnings.simplefilter("ignore")  # icalendar warns about odd zones, naming them; nobody reads stderr
    try:
        answer: dict = {"parsed": parsed_to_json(run_job(json.loads(sys.stdin.buffer.read())))}
    except CalendarError as error:
        answer = {"refused": str(error)}
    except Exception as error:  # noqa: BLE001 - a bug: reported by type and line, never with its message
        answer = {"failed": _where(error)}
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
