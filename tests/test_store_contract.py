"""The store's contract, method by method, on SQLite and on PostgreSQL (the ``stores`` fixture):
the methods no area's own tests reach without a running monitor, and what two monitors sharing one
store do at the same moment (PostgreSQL: two store objects, each with its own connection pool,
stand for two monitor processes)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable

import pytest

from monitor.store.alerts import AlertRecord
from monitor.store.sessions import SessionConflict
from sessionready.schema import CheckReport, ReportEnvelope, SpoolStatus
from sessionready.typed import decode, encode, rfc3339
from tests.conftest import CHECK, make_sample
from tests.stores import StoreFactory

NOW = 1_800_000_000.0
SPOOL = SpoolStatus(0, 0, 0, 0)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def envelope(taken_at: float, seq: int, session_id: str | None = None, kind: str = "background") -> ReportEnvelope:
    sample = encode(make_sample(rfc3339(taken_at), session_id=session_id))
    return decode(ReportEnvelope, {"report_id": uuid.uuid4().hex, "seq": seq, "kind": kind, "sample": sample})


def test_tokens_enrollment_codes_and_their_lists(stores: StoreFactory) -> None:
    clock = Clock()
    store = stores.open(clock)
    agent, token = store.create_token("client", "c-1")
    clock.now += 5  # lists are ordered by creation time (equal times: in no particular order)
    scraper, _ = store.create_token("metrics", "prom")
    assert [t.token_id for t in store.list_tokens()] == [agent.token_id, scraper.token_id]
    clock.now += 5
    assert store.revoke_token(agent.token_id) is True
    assert store.revoke_token(agent.token_id) is False, "revoked once"
    assert store.authenticate(token) is None
    assert store.list_tokens()[0].revoked_at == NOW + 10

    code = store.create_enrollment("h" * 64, "client", "c-2", 600)
    assert store.get_participant("c-2") is not None and store.get_participant("c-2").role == "client"  # type: ignore[union-attr]
    redeemed = store.redeem_enrollment("h" * 64)
    assert redeemed is not None
    used, made, secret = redeemed
    assert (used.code_id, used.used_at, used.token_id) == (code.code_id, NOW + 10, made.token_id)
    assert store.authenticate(secret).participant_id == "c-2"  # type: ignore[union-attr]
    assert store.redeem_enrollment("h" * 64) is None, "a code works once"

    clock.now += 1
    late = store.create_enrollment("l" * 64, "client", "c-2", 600)
    clock.now += 600
    assert store.redeem_enrollment("l" * 64) is None, "expired"
    revoked = store.create_enrollment("r" * 64, "therapist", "t-1", 600)
    assert store.revoke_enrollment(revoked.code_id) is True and store.revoke_enrollment(revoked.code_id) is False
    assert store.redeem_enrollment("r" * 64) is None
    states = {e.code_id: e.state(clock.now) for e in store.list_enrollments()}
    assert states == {code.code_id: "used", late.code_id: "expired", revoked.code_id: "revoked"}
    with pytest.raises(SessionConflict):  # c-2 is a client: no therapist's code for that id
        store.create_enrollment("x" * 64, "therapist", "c-2", 600)


def test_samples_by_agent_session_and_participant_oldest_first(stores: StoreFactory) -> None:
    store = stores.open()
    phone, _ = store.create_token("client", "c-1")
    laptop, _ = store.create_token("client", "c-1")
    other, _ = store.create_token("client", "c-9")
    batch = [envelope(NOW + 20, 2, "s-1", "live"), envelope(NOW, 1), envelope(NOW + 40, 3, "s-1", "live")]
    assert store.add_reports(phone, batch, SPOOL, NOW + 50) == [True, True, True]
    assert store.add_reports(phone, batch[:1], SPOOL, NOW + 51) == [False], "a retry"
    assert store.add_reports(other, batch[:1], SPOOL, NOW + 51) == [None], "another agent's report id"
    assert store.add_reports(laptop, [envelope(NOW + 30, 1, "s-1", "live")], SPOOL, NOW + 52) == [True]

    assert [s.taken_at for s in store.samples_for_agent(phone.token_id, NOW, None, 10)] == [NOW, NOW + 20, NOW + 40]
    assert [s.taken_at for s in store.samples_for_agent(phone.token_id, NOW, "live", 10)] == [NOW + 20, NOW + 40]
    assert [s.taken_at for s in store.samples_for_agent(phone.token_id, NOW + 21, None, 10)] == [NOW + 40]
    assert [(s.agent_id, s.taken_at) for s in store.samples_for_session("s-1", NOW)] == [
        (phone.token_id, NOW + 20), (laptop.token_id, NOW + 30), (phone.token_id, NOW + 40),
    ]  # fmt: skip
    assert [s.taken_at for s in store.latest_samples("c-1", NOW, limit=2)] == [NOW, NOW + 20]
    first = store.samples_for_agent(phone.token_id, NOW, None, 1)[0]
    assert first.battery_charging is False and first.link_type == "wifi" and first.sample["agent"] == {"version": "0.1.0", "os": "linux"}
    assert store.latest_samples("c-9", NOW) == []


def test_live_samples_since_reads_only_what_each_end_took_after_its_last(stores: StoreFactory) -> None:
    # The risk pass's read: each participant's live samples received since ``since`` and taken
    # after the last it applied (less the store's 1 s margin); another participant's not at all.
    store = stores.open()
    client, _ = store.create_token("client", "c-1")
    therapist, _ = store.create_token("therapist", "t-1")
    stranger, _ = store.create_token("client", "c-9")
    for agent in (client, therapist, stranger):
        batch = [envelope(NOW + t, t, "s-1", "live") for t in (2, 4, 6, 8)]
        assert store.add_reports(agent, batch, SPOOL, NOW + 10) == [True] * 4
    everything = store.live_samples_since({"s-1": NOW}, {"s-1": {"c-1": None, "t-1": None, "c-9": None}})
    assert len(everything["s-1"]) == 12
    newer = store.live_samples_since({"s-1": NOW}, {"s-1": {"c-1": NOW + 6, "t-1": None}})
    by_participant: dict[str, list[str]] = {}
    for participant, received_at, sample in newer["s-1"]:
        assert received_at == NOW + 10
        by_participant.setdefault(participant, []).append(str(sample["taken_at"]))
    # c-1: taken after NOW + 6 - 1 s: NOW + 6 (again: the margin) and NOW + 8; t-1: all four; c-9: none.
    assert by_participant == {
        "c-1": [rfc3339(NOW + 6), rfc3339(NOW + 8)],
        "t-1": [rfc3339(NOW + t) for t in (2, 4, 6, 8)],
    }
    assert store.live_samples_since({"s-1": NOW}, {"s-1": {"c-1": NOW + 9.5, "t-1": NOW + 9.5}}) == {}
    assert store.live_samples_since({"s-1": NOW + 11}, {"s-1": {"c-1": None}}) == {}  # received before since


def test_a_live_pass_keeps_the_assessment_and_remembers_a_degraded_session(stores: StoreFactory) -> None:
    # save_lives writes only the live columns: a session the assessment never saw gets a row of
    # its own, one it did keeps its state and history, and once degraded stays degraded.
    store = stores.open()
    therapist, _ = store.create_token("therapist", "t-1")
    client, _ = store.create_token("client", "c-1")
    for session_id in ("s-1", "s-2"):
        store.create_session(session_id, therapist.participant_id, client.participant_id, int(NOW) + 600, 3600, assign=True)
    store.save_risk("s-1", "at_risk", ["client:high_loss"], {"state": "at_risk"}, [], NOW)
    store.save_live("s-1", '{"a": 1}', "at_risk", 3.1, 4.2, NOW + 2)
    store.save_live("s-2", '{"b": 2}', "ready", None, 4.0, NOW + 2)
    store.save_live("s-1", '{"a": 2}', "ready", 4.0, 4.3, NOW + 4)
    first, second = store.stored_risk("s-1"), store.stored_risk("s-2")
    assert first is not None and second is not None
    assert (first.state, first.evaluated_at, first.assessment, len(first.history)) == ("at_risk", NOW, {"state": "at_risk"}, 1)
    assert (first.live_state, first.client_mos, first.therapist_mos, first.live_degraded) == ("ready", 4.0, 4.3, True)
    assert (second.state, second.evaluated_at, second.live_state, second.client_mos, second.therapist_mos, second.live_degraded) == (
        "unknown", NOW + 2, "ready", None, 4.0, False,
    )
    assert [s.session_id for s in store.live_sessions()] == []  # live columns do not make a session live


def test_an_assessment_and_a_live_pass_side_by_side_neither_fails(stores: StoreFactory) -> None:
    # The risk service runs them at once (monitor/risk/service.py, ``run``). An assessment lists
    # sessions by start time and a live pass by id: rows locked in two orders deadlocked
    # (PostgreSQL aborts one), and a row the live pass made after the assessment looked for it
    # failed the assessment's plain INSERT.
    store = stores.open()
    therapist, _ = store.create_token("therapist", "t-1")
    client, _ = store.create_token("client", "c-1")
    ids = [f"s-{i:03d}" for i in range(120)]
    for session_id in ids:
        store.create_session(session_id, therapist.participant_id, client.participant_id, int(NOW) + 600, 3600, assign=True)
    from monitor.store.risk import LiveRow, RiskRow

    failures: list[BaseException] = []
    start = threading.Barrier(2)

    def assess() -> None:
        start.wait()
        for round_ in range(8):
            rows = [RiskRow(i, "at_risk" if round_ % 2 else "ready", [], {}, []) for i in reversed(ids)]
            try:
                store.save_risks(rows, NOW + round_)
            except Exception as error:  # noqa: BLE001 - the test reports what failed
                failures.append(error)

    def step() -> None:
        start.wait()
        for round_ in range(8):
            try:
                store.save_lives([LiveRow(i, "{}", "ready", 4.0, 4.0) for i in ids[round_ * 15 :] + ids[: round_ * 15]], NOW + round_)
            except Exception as error:  # noqa: BLE001
                failures.append(error)

    threads = [threading.Thread(target=assess), threading.Thread(target=step)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    risks = [store.stored_risk(i) for i in ids]
    assert all(r is not None and r.state == "at_risk" and r.live_state == "ready" for r in risks)


def test_participants_sessions_in_a_window_and_caseloads(stores: StoreFactory) -> None:
    store = stores.open()
    assert store.get_participant("t-1") is None
    info, new = store.add_participant("t-1", "therapist")
    assert new and store.add_participant("t-1", "therapist") == (info, False)
    with pytest.raises(SessionConflict):
        store.add_participant("t-1", "client")
    start = 2_000_000_000
    early, _ = store.create_session("s-early", "t-1", "c-1", start, 3000)
    later, _ = store.create_session("s-later", "t-2", "c-1", start + 7200, 3000)
    # c-1 in sessions starting before start+3600 and ending after start+100: only the early one.
    assert store.sessions_for_participant("c-1", start + 3600, start + 100) == [(early, "client")]
    assert store.sessions_for_participant("t-1", start + 10_000, start) == [(early, "therapist")]
    assert [s.session_id for s, _ in store.sessions_for_participant("c-1", start + 10_000, start)] == ["s-early", "s-later"]
    assert later.state == "scheduled"

    entry, new = store.assign_client("t-1", "c-1", "api")
    assert new and store.assign_client("t-1", "c-1", "cli") == (entry, False), "the first assignment stands"
    store.assign_client("t-2", "c-1", "cli")
    store.assign_client("t-1", "c-3", "api")
    assert [(e.therapist_id, e.client_id) for e in store.caseload()] == [("t-1", "c-1"), ("t-1", "c-3"), ("t-2", "c-1")]
    assert [e.client_id for e in store.caseload("t-1")] == ["c-1", "c-3"]
    assert store.on_caseload("t-1", "c-1") and not store.on_caseload("t-1", "c-9")
    assert store.unassign_client("t-1", "c-1") is True and store.unassign_client("t-1", "c-1") is False
    assert not store.on_caseload("t-1", "c-1")


def test_users_logins_and_check_links(stores: StoreFactory) -> None:
    clock = Clock()
    store = stores.open(clock)
    user = store.create_user("th.one", "therapist", "t-1", "hash-1")
    with pytest.raises(ValueError, match="taken"):
        store.create_user("th.one", "it", None, "hash-2")
    found = store.user_for_login("th.one")
    assert found is not None and found[0].user_id == user.user_id and found[1] == "hash-1"
    assert store.user_for_login("nobody") is None
    started = store.start_user_session(user.user_id, "tok-1", 3600, 600)
    assert started is not None
    assert store.authenticate_user("tok-1").username == "th.one"  # type: ignore[union-attr]
    assert store.revoke_user_session(started[1].session_id) is True and store.revoke_user_session(started[1].session_id) is False
    assert store.authenticate_user("tok-1") is None
    store.start_user_session(user.user_id, "tok-2", 3600, 600)
    assert store.disable_user("th.one") is True and store.disable_user("th.one") is False
    assert store.authenticate_user("tok-2") is None, "disabling ends the user's sessions"
    assert store.start_user_session(user.user_id, "tok-3", 3600, 600) is None

    store.add_participant("c-1", "client")
    link = store.create_check_link("k" * 64, "c-1", None, 3600)
    store.touch_check_link(link.link_id)
    clock.now += 30
    store.touch_check_link(link.link_id)  # within the minute: not written
    assert store.get_check_link(link.link_id).last_used_at == NOW  # type: ignore[union-attr]
    clock.now += 31
    store.touch_check_link(link.link_id)
    assert store.get_check_link(link.link_id).last_used_at == NOW + 61  # type: ignore[union-attr]
    assert store.revoke_check_link(link.link_id) is True and store.revoke_check_link(link.link_id) is False
    assert store.get_check_link(link.link_id).state(clock.now) == "revoked"  # type: ignore[union-attr]


# --- two monitors at the same moment ------------------------------------------------------------


def race(count: int, action: Callable[[int], object]) -> list[object]:
    """Run ``action(i)`` for i in range(count) in threads released at once; their results."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(10)
            results[i] = action(i)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [], errors
    return results


ROUNDS = 10  # each race repeated: one lucky interleaving proves little


def test_two_monitors_never_redeem_one_code_twice_nor_alert_twice(stores: StoreFactory) -> None:
    first, second = stores.open(), stores.open()
    for n in range(ROUNDS):
        first.create_enrollment(f"{n:064d}", "client", f"c-{n}", 600)
        won = race(2, lambda i, n=n: (first, second)[i].redeem_enrollment(f"{n:064d}"))
        assert sum(result is not None for result in won) == 1, f"round {n}: {won}"
        alert = AlertRecord(uuid.uuid4().hex, f"s-{n}", "t-1", "c-1", "risk", "no_check", "client", "at_risk", (), NOW, NOW, NOW)
        raised = race(2, lambda i, alert=alert: (first, second)[i].add_alert(alert if i == 0 else _renamed(alert), [("hook", "{}")]))
        assert sorted(raised) == [False, True], f"round {n}: {raised}"
    assert len(first.list_alerts(None, None, 100)) == ROUNDS
    assert len(first.list_tokens()) == ROUNDS


def test_two_monitors_share_one_secret_and_register_a_participant_once(stores: StoreFactory) -> None:
    first, second = stores.open(), stores.open()
    secrets = race(2, lambda i: (first, second)[i].probe_secret())
    assert secrets[0] == secrets[1] and len(secrets[0]) == 32  # type: ignore[arg-type]
    for n in range(ROUNDS):
        made = race(2, lambda i, n=n: (first, second)[i].add_participant(f"p-{n}", "client")[1])
        assert sorted(made) == [False, True], f"round {n}: {made}"
        caseload = race(2, lambda i, n=n: (first, second)[i].assign_client("t-1", f"p-{n}", "api")[1])
        assert sorted(caseload) == [False, True], f"round {n}: {caseload}"


def test_two_monitors_storing_the_same_check_keep_it_once(stores: StoreFactory) -> None:
    first, second = stores.open(), stores.open()
    agent, _ = first.create_token("client", "c-1")
    for n in range(ROUNDS):
        report = decode(CheckReport, {**CHECK, "check_id": f"{n:032x}", "session_id": None})
        stored = race(2, lambda i, report=report, n=n: (first, second)[i].add_check(agent, report, json.dumps(CHECK), NOW + n))
        assert sorted(stored) == [False, True], f"round {n}: {stored}"
    assert len(first.checks_for_agent(agent.token_id, 100)) == ROUNDS


def test_two_monitors_storing_the_same_batch_keep_each_sample_once(stores: StoreFactory) -> None:
    # An agent that gave up on one monitor sends the batch to the other while the first still
    # writes it. PostgreSQL's samples are partitioned by arrival and cannot hold a unique report
    # id; sample_ids and its trigger keep it (monitor/store/partitions.py).
    first, second = stores.open(), stores.open()
    agent, _ = first.create_token("client", "c-1")
    for n in range(ROUNDS):
        batch = [envelope(NOW + n, 2 * n + 1, "s-1", "live"), envelope(NOW + n + 0.5, 2 * n + 2, "s-1", "live")]
        stored = race(2, lambda i, batch=batch, n=n: (first, second)[i].add_reports(agent, batch, SPOOL, NOW + n + i))
        assert sorted(stored) == [[False, False], [True, True]], f"round {n}: {stored}"  # type: ignore[type-var]
    assert stores.sql("SELECT count(*), count(DISTINCT report_id) FROM samples") == [(2 * ROUNDS, 2 * ROUNDS)]


def _renamed(alert: AlertRecord) -> AlertRecord:
    """The same change raised by the other monitor: its own alert id."""
    from dataclasses import replace

    return replace(alert, alert_id=uuid.uuid4().hex)


def test_two_monitors_rebuilding_the_rollups_at_once_count_each_sample_once(stores: StoreFactory) -> None:
    first, second = stores.open(), stores.open()
    agent, _ = first.create_token("client", "c-1")
    first.add_reports(agent, [envelope(NOW + 60 * n, n + 1) for n in range(2000)], SPOOL, NOW + 1)
    assert stores.sql("SELECT SUM(n) FROM trend_hour_total") == [(2000,)]
    for n in range(ROUNDS):
        race(2, lambda i: (first, second)[i].rebuild_rollups())
        assert stores.sql("SELECT SUM(n) FROM trend_hour_total") == [(2000,)], f"round {n}"
