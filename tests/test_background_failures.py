"""A background pass that meets a store it cannot use (PostgreSQL restarting, a full disk) logs
one warning with the reason and tries again; only a real bug is logged with its traceback. CI
once failed on a traceback the summary job logged while PostgreSQL restarted
(tests/test_store_faults.py asserts none reaches the log; this pins why, without a server)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from monitor.logs import log_failed_pass
from monitor.risk.summaries import SummaryJob
from monitor.store.core import SQLiteStore, StoreFull, StoreUnavailable


def test_an_unusable_store_is_one_warning_and_a_bug_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("sessionready.test.background")
    with caplog.at_level(logging.INFO, logger=log.name):
        log_failed_pass(log, "pass failed", StoreUnavailable("the store at /x failed: connection refused"))
        log_failed_pass(log, "pass failed", StoreFull("the disk under the store is full"))
        try:
            raise KeyError("a bug")
        except KeyError as error:
            log_failed_pass(log, "pass failed", error)
    outage, full, bug = caplog.records
    assert (outage.levelname, outage.exc_info, outage.getMessage()) == ("WARNING", None, "pass failed: the store is unavailable")
    assert outage.fields["error"] == "the store at /x failed: connection refused"
    assert full.levelname == "WARNING" and full.exc_info is None
    assert bug.levelname == "ERROR" and bug.exc_info is not None and bug.exc_info[0] is KeyError


class _Restarting(SQLiteStore):
    """A real store with one ended session to summarise, whose reads of it fail as PostgreSQL's
    do while it restarts."""

    def sessions_to_summarise(self, ended_since: float, limit: int) -> list[str]:
        return ["s-bg-1"]

    def get_session(self, session_id: str):  # the store's own type
        raise StoreUnavailable("the store failed: the database system is starting up")


def test_the_summary_job_waits_for_the_store_without_a_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    job = SummaryJob(_Restarting(tmp_path / "s.sqlite3"), poll_s=0.01)

    def logged() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name.startswith("sessionready.monitor")]

    async def a_few_passes() -> None:
        # Two failed passes at least, however long this machine takes to run them (10 s at most).
        task = asyncio.create_task(job.run())
        deadline = asyncio.get_running_loop().time() + 10
        while len(logged()) < 2 and asyncio.get_running_loop().time() < deadline and not task.done():
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.INFO, logger="sessionready.monitor"):
        asyncio.run(a_few_passes())
    messages = [(r.levelname, r.getMessage(), r.exc_info) for r in logged()]
    # Before: "session summary failed" with the traceback, once per session and pass.
    assert messages and all(level == "WARNING" and exc is None and "store is unavailable" in text for level, text, exc in messages), messages
