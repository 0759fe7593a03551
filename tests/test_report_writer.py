"""Ingest's group commit and the live loop's one read and one write per pass (issue 16 part 5),
against real stores: SQLite and a real PostgreSQL (the ``stores`` fixture), and a real monitor.

- A group of several agents' batches is answered, per report, what each batch alone would
  have been answered one after another (stored, retry, another agent's id), stored once.
- The writer: requests queued together go in one commit, a request that finds the writer idle
  goes at once and alone; each request is answered only once its commit is visible to another
  connection; a store that refuses one request inside a group (a failed insert, rolled back)
  fails that request alone, the others are stored; a commit that loses the database answers
  every request of it "unavailable" and stores none of them, and the next commit works.
- A real monitor under concurrent POSTs: every report acknowledged stored once, and every
  request counted in exactly one commit (``sessionready_ingest_commit_requests``).
- The live loop reads the samples of all its sessions in one query and writes all their
  steps in one transaction, whatever the number of sessions.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path

from monitor.report_writer import ReportWriter
from monitor.risk.service import RiskService
from monitor.store.core import StoreUnavailable
from monitor.store.reports import ReportBatch
from sessionready.schema import CheckReport, ReportEnvelope, SpoolStatus
from sessionready.typed import decode, encode, rfc3339
from tests.conftest import CHECK, Monitor, make_sample, new_token
from tests.pg import PostgresServer
from tests.stores import StoreFactory

NOW = 1_800_000_000.0


def envelope(seq: int, session_id: str | None = None, kind: str = "background", taken_at: float = NOW) -> ReportEnvelope:
    sample = encode(make_sample(rfc3339(taken_at), session_id=session_id))
    return decode(ReportEnvelope, {"report_id": uuid.uuid4().hex, "seq": seq, "kind": kind, "sample": sample})


def check_envelope(seq: int) -> ReportEnvelope:
    check = decode(CheckReport, CHECK)
    check = replace(check, check_id=uuid.uuid4().hex)
    return ReportEnvelope(report_id=check.check_id, seq=seq, kind="check", check=check)


class Recording:
    """The real store, with a count of the calls the code under test makes (the seam it is given)."""

    def __init__(self, store: object) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()
        self.groups: list[int] = []

    def add_report_batches(self, batches: list[ReportBatch]) -> list[list[bool | None]]:
        self.groups.append(len(batches))
        return self.store.add_report_batches(batches)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        method = getattr(self.store, name)
        if not callable(method):
            return method

        def counted(*args: object, **kwargs: object) -> object:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


def count_samples(stores: StoreFactory, report_ids: list[str]) -> int:
    """Rows with these ids, read with the back end's own client (another connection)."""
    quoted = ", ".join(f"'{report_id}'" for report_id in report_ids)
    return stores.sql(f"SELECT count(*) FROM samples WHERE report_id IN ({quoted})")[0][0]


def test_a_group_answers_each_batch_as_if_it_came_alone(stores: StoreFactory) -> None:
    store = stores.open()
    a, _ = store.create_token("client", "c-group-a")
    b, _ = store.create_token("therapist", "t-group-b")
    c, _ = store.create_token("client", "c-group-c")
    earlier, new_a, new_b, check = envelope(1), envelope(2), envelope(1), check_envelope(3)
    assert store.add_reports(a, [earlier], SpoolStatus(5, 0, 0), NOW) == [True]

    results = store.add_report_batches(
        [
            ReportBatch(a, [new_a, earlier, check], SpoolStatus(3, 0, 0), NOW + 1),  # new, a retry, a check
            ReportBatch(b, [new_b, earlier, new_a], SpoolStatus(0, 0, 0), NOW + 1),  # new, two ids of a's
            ReportBatch(a, [new_a], SpoolStatus(1, 2, 3, 4), NOW + 2),  # a retry of a report stored in this very group
            ReportBatch(c, [], SpoolStatus(7, 0, 0), NOW + 3),  # nothing but the spool's numbers
        ]
    )

    assert results == [[True, False, True], [True, None, None], [False], []]
    assert count_samples(stores, [earlier.report_id, new_a.report_id, new_b.report_id]) == 3, "each stored once"
    assert dict(stores.sql(f"SELECT report_id, agent_id FROM samples WHERE agent_id = '{b.token_id}'")) == {new_b.report_id: b.token_id}
    assert store.get_check(check.report_id) is not None
    status = {s.agent_id: s for s in store.agent_statuses()}
    # a's last batch in the group wins, as if they had come one after the other
    assert (status[a.token_id].last_seen, status[a.token_id].last_seq, status[a.token_id].spool_pending, status[a.token_id].spool_dropped_live) == (NOW + 2, 2, 1, 4)
    assert (status[b.token_id].last_seq, status[b.token_id].spool_pending) == (1, 0)
    assert (status[c.token_id].last_seen, status[c.token_id].last_seq, status[c.token_id].spool_pending) == (NOW + 3, None, 7)


def test_the_writer_groups_what_queues_answers_after_the_commit_and_isolates_a_refused_request(stores: StoreFactory) -> None:
    store = stores.open()
    agents = [store.create_token("client", f"c-writer-{n}")[0] for n in range(12)]
    recording = Recording(store)
    seen_when_answered: dict[str, int] = {}

    async def scenario() -> tuple[list[object], list[int], list[object]]:
        writer = ReportWriter(recording)  # type: ignore[arg-type]
        task = asyncio.create_task(writer.run())

        async def post(agent: object, report: ReportEnvelope) -> list[bool | None]:
            result = await writer.add(ReportBatch(agent, [report], SpoolStatus(0, 0, 0), NOW))  # type: ignore[arg-type]
            seen_when_answered[report.report_id] = count_samples(stores, [report.report_id])
            return result

        reports = [envelope(1) for _ in agents]
        queued = await asyncio.gather(*(post(agent, report) for agent, report in zip(agents, reports)))
        groups_then = list(recording.groups)
        alone = await post(agents[0], envelope(2))
        # A token the store does not hold: its insert breaks a foreign key inside the group's
        # transaction, after the others' rows went in; the whole transaction is rolled back.
        stranger = replace(agents[0], token_id="not-a-token")
        mixed = await asyncio.gather(
            post(agents[1], envelope(2)), post(stranger, envelope(1)), post(agents[2], envelope(2)), return_exceptions=True
        )
        writer.close()
        await task
        return [*queued, alone], groups_then, mixed

    answers, groups_then, mixed = asyncio.run(scenario())
    assert answers == [[True]] * 13
    assert groups_then == [12], "the requests queued together went in one commit"
    assert recording.groups[1] == 1, "a request finding the writer idle went at once, alone"
    assert set(seen_when_answered.values()) == {1}, "each answered once its row was visible to another connection"
    assert mixed[0] == [True] and mixed[2] == [True]
    assert isinstance(mixed[1], Exception) and not isinstance(mixed[1], StoreUnavailable)
    assert recording.groups[2:] == [3, 1, 1, 1], "the refused group, then each of its requests alone"
    assert stores.sql("SELECT count(*) FROM samples WHERE agent_id = 'not-a-token'")[0][0] == 0


def test_a_commit_that_loses_the_database_answers_every_request_unavailable_and_stores_none(tmp_path: Path, postgres_server: PostgresServer) -> None:
    stores = StoreFactory("postgresql", tmp_path / "store", postgres_server)
    try:
        store = stores.open()
        agents = [store.create_token("client", f"c-lost-{n}")[0] for n in range(5)]

        class CutOff(Recording):
            """Ends every connection the store holds just before its first group is written:
            the database restarting, as the store sees it."""

            def add_report_batches(self, batches: list[ReportBatch]) -> list[list[bool | None]]:
                if not self.groups:
                    stores.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
                return super().add_report_batches(batches)

        recording = CutOff(store)
        first = [envelope(1) for _ in agents]

        async def scenario() -> tuple[list[object], list[bool | None]]:
            writer = ReportWriter(recording)  # type: ignore[arg-type]
            task = asyncio.create_task(writer.run())
            lost = await asyncio.gather(
                *(writer.add(ReportBatch(agent, [report], SpoolStatus(0, 0, 0), NOW)) for agent, report in zip(agents, first)), return_exceptions=True
            )
            again = await writer.add(ReportBatch(agents[0], [first[0]], SpoolStatus(0, 0, 0), NOW))
            writer.close()
            await task
            return lost, again

        lost, again = asyncio.run(scenario())
        assert recording.groups[0] == 5
        assert all(isinstance(answer, StoreUnavailable) for answer in lost), lost
        assert again == [True], "the agent's retry is stored: the pool reconnected"
        assert count_samples(stores, [r.report_id for r in first]) == 1, "nothing of the lost commit was stored"
    finally:
        stores.close()


def test_a_monitor_under_concurrent_posts_stores_each_once_and_counts_each_request_in_one_commit(shared_monitor: Monitor) -> None:
    metrics = new_token(shared_monitor, "metrics", "prom")

    def commits() -> tuple[float, float]:
        status, raw = shared_monitor.request("GET", "/metrics", metrics)
        assert status == 200
        values = dict(line.rsplit(" ", 1) for line in raw.decode().splitlines() if line.startswith("sessionready_ingest_commit_requests_"))
        return float(values["sessionready_ingest_commit_requests_sum"]), float(values["sessionready_ingest_commit_requests_count"])

    tokens = [new_token(shared_monitor, "client", f"c-concurrent-{n}") for n in range(16)]
    sent = {token: [envelope(n + 1, kind="live") for n in range(2)] for token in tokens}
    answers: dict[str, list[str]] = {}
    before = commits()
    start = threading.Barrier(len(tokens))

    def agent(token: str) -> None:
        start.wait()
        for report in sent[token]:
            status, body = shared_monitor.json(
                "POST", "/api/v1/reports", token, {"spool": {"pending": 0, "dropped_background": 0, "rejected": 0, "dropped_live": 0}, "reports": [encode(report)]}
            )
            assert status == 200, body
            answers.setdefault(token, []).extend(r["status"] for r in body["results"])

    threads = [threading.Thread(target=agent, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    after = commits()

    assert answers == {token: ["stored", "stored"] for token in tokens}
    for token in tokens:
        me = shared_monitor.json("GET", "/api/v1/whoami", token)[1]["agent_id"]
        stored = shared_monitor.json("GET", f"/api/v1/agents/{me}/samples?since=0", token)[1]["samples"]
        assert sorted(s["report_id"] for s in stored) == sorted(r.report_id for r in sent[token])
    requests, commits_made = after[0] - before[0], after[1] - before[1]
    assert requests == 2 * len(tokens), "every request in exactly one commit"
    assert 1 <= commits_made <= requests
    print(f"{int(requests)} concurrent requests in {int(commits_made)} commits")


def test_the_live_loop_reads_once_and_writes_once_per_pass(stores: StoreFactory) -> None:
    now = [NOW]
    store = stores.open(lambda: now[0])
    ends = []
    for n in range(4):
        therapist, _ = store.create_token("therapist", f"t-pass-{n}")
        client, _ = store.create_token("client", f"c-pass-{n}")
        store.create_session(f"s-pass-{n}", therapist.participant_id, client.participant_id, int(NOW) - 60, 3600, assign=True)
        ends += [(therapist, f"s-pass-{n}"), (client, f"s-pass-{n}")]
    recording = Recording(store)
    service = RiskService(recording, clock=lambda: now[0])  # type: ignore[arg-type]

    for seq in range(1, 4):
        for agent, session_id in ends:
            store.add_reports(agent, [envelope(seq, session_id, "live", now[0] - 0.5)], SpoolStatus(0, 0, 0), now[0])
        recording.calls.clear()
        stepped = service.track_live()
        assert stepped == 4
        # the first pass starts the sessions (one look-up and one state change each)
        assert recording.calls["get_session"] == (4 if seq == 1 else 0) and recording.calls["set_session_state"] == (4 if seq == 1 else 0)
        assert recording.calls["live_samples_since"] == 1 and recording.calls["save_lives"] == 1
        assert recording.calls["live_samples"] == recording.calls["save_live"] == 0
        now[0] += 2.0

    risks = store.risk_states([f"s-pass-{n}" for n in range(4)])
    assert {r.live_state for r in risks.values()} == {"ready"}
    assert all(r.client_mos is not None and r.therapist_mos is not None for r in risks.values())
