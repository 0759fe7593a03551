"""Issue 17, "How well the warnings worked": a constructed history with known counts, through the
real path: sessions, their ratings in the risk history, both ends' live samples in the store,
the summary job replaying them, Trends' counts, and the dashboard's table and CSV.

100 sessions that went live, in two weeks (alternately), in four groups:

| group | last rating before live | what happened live | sessions |
|---|---|---|---|
| foreseen | at risk, client:high_upload_loss | the client loses 20 % in bursts | 30 |
| false alarm | not ready, therapist:high_cpu | nothing | 10 |
| missed | ready | the therapist's agent drops for 20 s | 20 |
| quiet | ready (then at risk *while live*, which must not count) | nothing | 40 |

So 40 flagged of which 30 degraded (precision 30/40 = 0.750), 50 degraded of which 30 flagged
(recall 30/50 = 0.600). Not counted: a foreseen session the week before the period.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboard.trends_view import section_csv, warning_records
from dashboard.warnings_view import of, total_sentence, warnings_block
from monitor.http.trends import TrendQuery, build_trends
from monitor.risk.summaries import SummaryJob
from monitor.store.core import TokenInfo
from monitor.store.protocols import Store
from monitor.store.trends import TrendFilter
from sessionready.schema import ReportEnvelope, SpoolStatus
from sessionready.typed import decode, encode
from tests.stores import BACKENDS, StoreFactory

WEEK_A = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc).timestamp()  # a Monday
WEEK_B = WEEK_A + 7 * 86400
TICKS = 16  # 2 s live samples per end and session: 32 s live
GROUPS = (("foreseen", 30), ("false_alarm", 10), ("missed", 20), ("quiet", 40))
SPOOL = SpoolStatus(0, 0, 0)


def live_sample(session_id: str, taken_at: float, loss: float) -> ReportEnvelope:
    stamp = datetime.fromtimestamp(taken_at, timezone.utc).isoformat().replace("+00:00", "Z")
    network = {"packets_sent": 20, "packets_received": 20, "rtt_p50_ms": 25.0, "rtt_p95_ms": 30.0, "jitter_up_ms": 2.0, "jitter_down_ms": 2.0,
               "loss_up": loss, "loss_down": 0.0, "mos": 3.3 if loss else 4.35}  # fmt: skip
    return decode(ReportEnvelope, {
        "report_id": uuid.uuid4().hex, "seq": 1, "kind": "live",
        "sample": {"schema_version": 1, "taken_at": stamp, "interval_s": 2.0, "session_id": session_id, "agent": {"version": "1.0", "os": "linux"},
                   "network": network, "machine": None, "traffic_mbps": None, "room": None},
    })  # fmt: skip


def rate(store: Store, session_id: str, state: str, reasons: list[tuple[str, str, str]], at: float) -> None:
    rows = [{"end": e, "cause": c, "severity": s, "message": "m", "action": "a"} for e, c, s in reasons]
    store.save_risk(session_id, state, [f"{e}:{c}" for e, c, _ in reasons], {}, rows, at)


def build_history(store: Store, therapist: TokenInfo, client: TokenInfo) -> None:
    """The groups' sessions, all of a week at one time (one batch per agent and tick carries
    every session's sample: samples arrive as they are taken)."""
    plan: list[tuple[str, str, float]] = []
    index = 0
    for group, count in GROUPS:
        for _ in range(count):
            plan.append((f"s-{group}-{index}", group, WEEK_A if index % 2 == 0 else WEEK_B))
            index += 1
    plan.append(("s-outside", "foreseen", WEEK_A - 7 * 86400))
    for session_id, group, start in plan:
        store.create_session(session_id, "t-acc", "c-acc", int(start), 600)
        if group == "foreseen":
            rate(store, session_id, "ready", [], start - 3600)  # an earlier rating: the last one counts
            rate(store, session_id, "at_risk", [("client", "high_upload_loss", "warning")], start - 600)
        elif group == "false_alarm":
            rate(store, session_id, "not_ready", [("therapist", "high_cpu", "critical")], start - 600)
        else:
            rate(store, session_id, "ready", [], start - 600)
        store.set_session_state(session_id, "live", start, "both_agents_live")
        if group == "quiet":
            rate(store, session_id, "at_risk", [("client", "recent_loss", "warning")], start + 10)  # while live: not a forecast
    for start in (WEEK_A - 7 * 86400, WEEK_A, WEEK_B):
        sessions = [(sid, group) for sid, group, s in plan if s == start]
        for k in range(1, TICKS + 1):
            at = start + 2.0 * k
            client_batch = [live_sample(sid, at, 0.2 if group == "foreseen" and 5 <= k <= 7 else 0.0) for sid, group in sessions]
            therapist_batch = [live_sample(sid, at, 0.0) for sid, group in sessions if not (group == "missed" and 5 <= k <= 14)]
            assert all(store.add_reports(client, client_batch, SPOOL, at + 0.05))
            if therapist_batch:
                assert all(store.add_reports(therapist, therapist_batch, SPOOL, at + 0.05))
        for sid, _ in sessions:
            store.set_session_state(sid, "ended", start + 2.0 * TICKS + 61, "agents_stopped")


@pytest.fixture(scope="module", params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Built once for the module on each back end (the contract suite: tests/stores.py). SQLite
    in memory-backed /dev/shm where there is one: the history is some 800 small transactions,
    and each one's fsync on a busy disk costs more than its work (the test PostgreSQL does not sync)."""
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="sr-accuracy-", dir=shm)) if shm.is_dir() else tmp_path_factory.mktemp("accuracy")
    server = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None
    stores = StoreFactory(request.param, folder, server)
    now = [WEEK_B + 2 * 86400]
    opened = stores.open(lambda: now[0])
    opened.add_participant("t-acc", "therapist")
    opened.add_participant("c-acc", "client")
    therapist = opened.create_token("therapist", "t-acc")[0]
    client = opened.create_token("client", "c-acc")[0]
    build_history(opened, therapist, client)
    job = SummaryJob(opened, clock=lambda: now[0])
    while job.run_once():
        pass
    try:
        yield opened
    finally:
        stores.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_precision_and_recall_match_the_constructed_history(store: Store) -> None:
    # The summaries themselves: each group as planned.
    summary = store.stored_summary("s-foreseen-0")
    assert summary and summary["foresight"] == "foreseen" and [(s["end"], s["cause"]) for s in summary["stretches"]] == [("client", "loss_burst")]
    assert store.stored_summary("s-missed-40")["foresight"] == "missed"  # type: ignore[index]
    assert store.stored_summary("s-quiet-60")["foresight"] == "quiet"  # type: ignore[index]
    assert store.stored_summary("s-false_alarm-30")["foresight"] == "false_alarm"  # type: ignore[index]

    query = TrendQuery(date(2026, 3, 2), date(2026, 3, 15), ZoneInfo("UTC"), "UTC", TrendFilter())
    answer = encode(build_trends(store, query))
    accuracy = answer["warnings"]  # type: ignore[index]
    assert (accuracy["sessions"], accuracy["flagged"], accuracy["degraded"], accuracy["flagged_degraded"]) == (100, 40, 50, 30)
    # Alternate sessions per week: 15 foreseen, 5 false alarms, 10 missed, 20 quiet in each.
    assert [(w["week_start"], w["sessions"], w["flagged"], w["degraded"], w["flagged_degraded"]) for w in accuracy["weeks"]] == [
        ("2026-03-02", 50, 20, 25, 15),
        ("2026-03-09", 50, 20, 25, 15),
    ]
    assert {e["end"]: (e["flagged"], e["degraded"], e["flagged_degraded"]) for e in accuracy["by_end"]} == {"client": (30, 30, 30), "therapist": (10, 20, 0)}
    assert [(c["side"], c["end"], c["cause"], c["sessions"], c["hits"]) for c in accuracy["by_cause"]] == [
        ("flag", "client", "high_upload_loss", 30, 30),
        ("flag", "therapist", "high_cpu", 10, 0),
        ("live", "client", "loss_burst", 30, 30),
        ("live", "therapist", "agent_dropped", 20, 0),
    ]

    # The CSV download: the same counts, precision 30/40 and recall 30/50 to three decimals.
    rows = list(csv.DictReader(io.StringIO(section_csv(answer, "warnings"))))  # type: ignore[arg-type]
    total = next(r for r in rows if r["table"] == "total")
    assert (total["sessions"], total["flagged"], total["degraded"], total["flagged_degraded"]) == ("100", "40", "50", "30")
    assert (total["precision"], total["recall"]) == ("0.750", "0.600")
    weeks = [r for r in rows if r["table"] == "week"]
    assert [(r["week_start"], r["precision"], r["recall"]) for r in weeks] == [("2026-03-02", "0.750", "0.600"), ("2026-03-09", "0.750", "0.600")]
    therapist = next(r for r in rows if r["table"] == "end" and r["end"] == "therapist")
    assert (therapist["precision"], therapist["recall"]) == ("0.000", "0.000")
    flag_cpu = next(r for r in rows if r["table"] == "flag_cause" and r["cause"] == "high_cpu")
    assert (flag_cpu["flagged"], flag_cpu["flagged_degraded"], flag_cpu["precision"], flag_cpu["recall"]) == ("10", "0", "0.000", "")

    # On the page: counts always, a percentage only with enough sessions.
    assert total_sentence(warning_records(answer)[0]) == (  # type: ignore[arg-type]
        "100 sessions went live. Of those flagged before they started, 30 of 40 (75 %) had trouble; of those with trouble, 30 of 50 (60 %) had been flagged."
    )
    assert warnings_block(answer) is not None  # type: ignore[arg-type]


def test_a_handful_is_never_a_bare_percentage() -> None:
    assert of(3, 4) == "3 of 4"
    assert of(9, 9) == "9 of 9"
    assert of(7, 10) == "7 of 10 (70 %)"
    assert of(0, 0) == "—"


def test_a_therapist_filter_counts_only_their_sessions(store: Store) -> None:
    query = TrendQuery(date(2026, 3, 2), date(2026, 3, 15), ZoneInfo("UTC"), "UTC", TrendFilter(therapist_id="t-other"))
    accuracy = encode(build_trends(store, query))["warnings"]  # type: ignore[index]
    assert (accuracy["sessions"], accuracy["flagged"], accuracy["degraded"]) == (0, 0, 0)
    assert accuracy["by_cause"] == []
