"""Issue 17, the session summary: the real monitor application (``create_app``) on loopback with
an injected clock, agents' live samples posted through its HTTP API every 2 s of that clock,
the risk service stepping live sessions and ending them as it does, the summary job keeping
the summary, read back through ``GET /api/v1/sessions/{id}/summary`` and a real webhook server.

Ground truth is the schedule the test itself sends: a sample taken at t covers (t - 2 s, t],
so loss "from 60 s to 80 s after the start" is the samples taken at 62, 64, ..., 80.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.alerts.config import AlertsConfig, WebhookConfig
from monitor.http.summary import SUMMARIES
from monitor.risk.summaries import SummaryJob
from monitor.risk.summary import TICK_S, EndSample, SessionSummary, SummaryInputs, summarise
from monitor.store.core import open_store
from tests.test_risk_scenarios import MINUTE, Clock, Practice
from tests.test_store_migrations import release_copy, snapshot, version
from tests.stores import StoreFactory
from tests.webhook_receiver import WebhookReceiver

INTERVAL_S = 2.0


@pytest.fixture
def practice(tmp_path: Path, hook: WebhookReceiver, stores: StoreFactory) -> Iterator[Practice]:
    alerts = AlertsConfig(webhook=(
        WebhookConfig(name="all", url=hook.url("/all"), format="generic", audience="it"),  # every kind: but not summaries
        WebhookConfig(name="summaries", url=hook.url("/summaries"), format="generic", audience="therapist", therapist_id="t-1", kinds=("session_summary",)),
        WebhookConfig(name="slack", url=hook.url("/slack"), format="slack", audience="it", kinds=("session_summary",)),
    ))  # fmt: skip
    p = Practice(tmp_path, Clock(float(int(time.time() // 60 * 60))), alerts, stores)
    try:
        yield p
    finally:
        p.close()


def run_session(
    p: Practice,
    session_id: str,
    therapist: str,
    client: str,
    seconds: float,
    client_loss=lambda t: 0.0,
    client_quiet=lambda t: False,
) -> float:
    """A 5-minute session live from its start for ``seconds``, then both agents stop and the
    risk service ends it; the summary job runs. Returns the start (unix s)."""
    start = p.clock.now + MINUTE
    p.session(session_id, therapist, client, start, minutes=5)
    t_token, c_token = p.token("therapist", therapist), p.token("client", client)
    p.check(t_token)
    p.check(c_token)
    p.risk.evaluate()
    p.clock.now = start
    while p.clock.now < start + seconds:
        p.clock.now += INTERVAL_S
        t = p.clock.now - start
        p.live(t_token, session_id)
        if not client_quiet(t):
            loss = client_loss(t)
            p.live(c_token, session_id, loss_up=loss, mos=4.35 if loss < 0.05 else 3.4)
        p.risk.track_live()
    p.clock.now = start + 5 * MINUTE + 61  # both agents stopped; a minute after the planned end it ends
    p.risk.track_live()
    _, detail = p.call("GET", f"/api/v1/sessions/{session_id}", p.staff)
    assert detail["session"]["state"] == "ended", detail["history"]
    assert p.app[SUMMARIES].run_once() == 1
    return start


def test_two_loss_bursts_at_the_clients_end_are_named_with_their_times_and_cause(practice: Practice, hook: WebhookReceiver) -> None:
    bursts = [
        (60.0, 80.0),
        (150.0, 166.0),
    ]  # seconds after the start: the client loses 15 % meanwhile

    def loss(t: float) -> float:
        return 0.15 if any(a < t <= b for a, b in bursts) else 0.0

    start = run_session(practice, "s-bursts", "t-1", "c-1", 240.0, client_loss=loss)
    status, summary = practice.call("GET", "/api/v1/sessions/s-bursts/summary", practice.staff)
    assert status == 200, summary
    assert summary["final"] is True and summary["verdict"] == "trouble" and summary["at_fault"] == "client"
    stretches = summary["stretches"]
    assert [(s["end"], s["cause"]) for s in stretches] == [
        ("client", "loss_burst"),
        ("client", "loss_burst"),
    ]
    for stretch, (a, b) in zip(stretches, bursts):
        # Within one live interval of the truth, start and length.
        assert abs(stretch["start_unix"] - (start + a)) <= INTERVAL_S, (stretch, a)
        assert abs(stretch["length_s"] - (b - a)) <= INTERVAL_S, (stretch, b - a)
        assert stretch["worst_loss_ratio"] == pytest.approx(0.15)
        assert "client's connection lost up to 15 % of packets" in stretch["words"] and "frozen" in stretch["words"]
    assert summary["therapist"]["trouble_s"] == 0 and summary["client"]["trouble_s"] == pytest.approx(36, abs=2 * INTERVAL_S)
    assert abs(summary["live_s"] - 240) <= TICK_S + INTERVAL_S
    assert summary["headline"].startswith("2 stretches of trouble") and "client's end" in summary["headline"]
    # Both ends' MOS over the session: the figure's series dips where the client lost packets.
    lows = [p["offset_s"] for p in summary["mos_series"] if p["client"] is not None and p["client"] < 4.0]
    assert lows and all(55 <= t <= 170 for t in lows)
    assert all(p["therapist"] == 4.35 for p in summary["mos_series"] if p["therapist"] is not None)
    # The checks before said ready: the rating did not foresee it.
    assert summary["rating"]["state"] == "ready" and summary["foresight"] == "missed"
    assert "did not see this coming" in summary["foresight_words"]

    # Its therapist may read it, another therapist and a client may not; IT may.
    assert (
        practice.call(
            "GET",
            "/api/v1/sessions/s-bursts/summary",
            practice.token("therapist", "t-1"),
        )[0]
        == 200
    )
    assert (
        practice.call(
            "GET",
            "/api/v1/sessions/s-bursts/summary",
            practice.token("therapist", "t-9"),
        )[0]
        == 404
    )
    assert practice.call("GET", "/api/v1/sessions/s-bursts/summary", practice.token("client", "c-1"))[0] == 403
    assert practice.call("GET", "/api/v1/sessions/s-bursts/summary?x=1", practice.staff)[0] == 400

    # The session_summary webhook: only where it was asked for, once.
    sent = hook.wait_for(1, "/summaries")[0].json()
    assert (sent["kind"], sent["session_id"], sent["state"], sent["end"]) == (
        "session_summary",
        "s-bursts",
        "trouble",
        "client",
    )
    assert [r["code"] for r in sent["reasons"]] == [
        "trouble",
        "loss_burst",
        "loss_burst",
    ]
    # Minutes from going live (its first tick, 2 s after the start): the bursts ran 58-78 s and 148-164 s into it.
    assert sent["reasons"][1]["message"].startswith("Minutes 1 to 2 of the session: The client's connection lost up to 15 %")
    assert sent["reasons"][2]["message"].startswith("In minute 3 of the session:")
    assert "text" in hook.wait_for(1, "/slack")[0].json()
    assert practice.app[SUMMARIES].run_once() == 0  # kept once: nothing left to do
    time.sleep(0.5)
    assert [r.json()["kind"] for r in hook.delivered("/all")].count("session_summary") == 0
    assert len(hook.delivered("/summaries")) == 1


def test_a_clean_session_gets_no_trouble(practice: Practice, hook: WebhookReceiver) -> None:
    run_session(practice, "s-clean", "t-2", "c-2", 120.0)
    status, summary = practice.call("GET", "/api/v1/sessions/s-clean/summary", practice.staff)
    assert status == 200
    assert summary["verdict"] == "no_trouble" and summary["stretches"] == [] and summary["at_fault"] is None
    assert summary["headline"].startswith("No trouble")
    assert summary["foresight"] == "quiet" and summary["notes"] == []
    time.sleep(0.5)
    assert hook.delivered("/summaries") == []  # t-2's sessions do not go to t-1's channel


def test_a_session_with_a_dropped_agent_says_so(practice: Practice) -> None:
    gone = (50.0, 90.0)  # the client's agent sends nothing meanwhile
    start = run_session(
        practice,
        "s-drop",
        "t-3",
        "c-3",
        150.0,
        client_quiet=lambda t: gone[0] < t <= gone[1],
    )
    status, summary = practice.call("GET", "/api/v1/sessions/s-drop/summary", practice.staff)
    assert status == 200
    [stretch] = summary["stretches"]
    assert (stretch["end"], stretch["cause"]) == ("client", "agent_dropped")
    # The last sample before the gap was taken at 50 s; the next one covers (90, 92].
    assert abs(stretch["start_unix"] - (start + gone[0])) <= INTERVAL_S
    assert abs(stretch["length_s"] - (gone[1] - gone[0])) <= INTERVAL_S
    assert "No measurements came from the client's computer for 40 seconds" in stretch["words"]


def test_a_session_that_never_went_live_has_no_summary_and_a_live_one_a_provisional_one(
    practice: Practice,
) -> None:
    practice.session("s-later", "t-4", "c-4", practice.clock.now + 30 * MINUTE)
    status, body = practice.call("GET", "/api/v1/sessions/s-later/summary", practice.staff)
    assert status == 409 and body["error"]["code"] == "not_live"
    assert practice.call("GET", "/api/v1/sessions/s-nope/summary", practice.staff)[0] == 404

    start = practice.clock.now + MINUTE
    practice.session("s-now", "t-4", "c-4", start)
    t_token, c_token = (
        practice.token("therapist", "t-4"),
        practice.token("client", "c-4"),
    )
    practice.clock.now = start
    for _ in range(10):
        practice.clock.now += INTERVAL_S
        practice.live(t_token, "s-now")
        practice.live(c_token, "s-now")
        practice.risk.track_live()
    status, summary = practice.call("GET", "/api/v1/sessions/s-now/summary", practice.staff)
    assert status == 200 and summary["final"] is False and summary["verdict"] == "no_trouble"
    assert summary["rating"] is None and summary["foresight"] == "no_rating"
    assert practice.app[SUMMARIES].run_once() == 0  # not ended: nothing kept


# --- the summary itself, pure: causes, notes and edges -------------------------------------------

T0 = 1_800_000_000.0


def end_sample(end: str, k: int, *, loss: float = 0.0, mos: float = 4.35, rtt: float = 20.0, wifi: float | None = -60.0, cpu: float = 10.0) -> EndSample:
    """The k-th 2 s live sample of an end, taken at T0 + 2k and received 50 ms later."""
    t = T0 + 2.0 * k
    return EndSample(end, t, 2.0, t + 0.05, t, mos, loss, loss, 0.0, rtt, 2.0, cpu, wifi, -60.0, None)  # type: ignore[arg-type]


def summary_of(samples: list[EndSample], *, ticks: int = 60, live_from_k: int = 0, planned_s: float = 3000.0) -> SessionSummary:
    inputs = SummaryInputs("s-1", "t-1", "c-1", T0, planned_s, T0 + 2.0 * live_from_k, T0 + 2.0 * ticks + 61, None, tuple(samples))
    return summarise(inputs, T0 + 10_000)


def clean(end: str, ks: range, **numbers: float) -> list[EndSample]:
    return [end_sample(end, k, **numbers) for k in ks]  # type: ignore[arg-type]


def test_low_sound_from_a_long_round_trip_is_named_delay_and_weak_wifi_all_session_a_note() -> None:
    client = [end_sample("client", k, mos=3.2 if 20 < k <= 30 else 4.3, rtt=450.0 if 20 < k <= 30 else 40.0, wifi=-78.0) for k in range(1, 61)]
    result = summary_of(client + clean("therapist", range(1, 61)))
    [stretch] = result.stretches
    assert (stretch.end, stretch.cause) == ("client", "delay")
    # Samples 21..30 cover (40 s, 60 s] of the agent's clock, received 50 ms later: the monitor's clock.
    assert stretch.start_unix == pytest.approx(T0 + 40.05) and stretch.length_s == 20.0
    assert "round trip up to 450 ms" in stretch.words and "weak_wifi" in stretch.factors
    assert [(n.end, n.note, n.share) for n in result.notes] == [("client", "weak_wifi", 1.0)]
    assert "Wi-Fi signal was weak all session (around -78 dBm)" in result.notes[0].words


def test_a_stretch_is_clipped_to_the_live_session_and_one_blip_is_not_trouble() -> None:
    client = [end_sample("client", k, loss=0.2 if k <= 4 or k == 40 else 0.0) for k in range(1, 61)]  # lossy as it went live; one blip later
    result = summary_of(client + clean("therapist", range(1, 61)), live_from_k=3)
    [stretch] = result.stretches
    assert stretch.start_unix == pytest.approx(T0 + 6.0)  # not before the session went live (at 6 s, monitor clock)
    assert stretch.end_unix == pytest.approx(T0 + 8.05)  # the end of sample 4's window


def test_an_end_that_leaves_after_the_planned_end_left_but_one_gone_before_it_dropped() -> None:
    after = summary_of(clean("client", range(1, 41)) + clean("therapist", range(1, 61)), planned_s=60.0)
    assert after.stretches == () and after.verdict == "no_trouble"
    before = summary_of(clean("client", range(1, 41)) + clean("therapist", range(1, 61)), planned_s=3000.0)
    [stretch] = before.stretches
    assert (stretch.end, stretch.cause, stretch.until_end) == ("client", "agent_dropped", True)
    assert stretch.start_unix == pytest.approx(T0 + 80.05) and "did not come back" in stretch.words


def test_migration_4_adds_the_summaries_to_a_store_at_version_3_and_keeps_every_row(tmp_path: Path) -> None:
    """tests/test_store_migrations.py's release store at version 3, as the release before
    summaries left it (this version's upgrade less migration 4's one table), then opened by
    this version: one step, backed up first, every row kept."""
    data_dir = release_copy(tmp_path)
    database = data_dir / "sessionready.sqlite3"
    open_store(data_dir).close()
    db = sqlite3.connect(database, isolation_level=None)
    try:
        db.execute("DROP TABLE session_summaries")  # its index goes with it
        db.execute("DROP TABLE leases")  # and migration 5's table, which came after
        db.execute("PRAGMA user_version = 3")
    finally:
        db.close()
    assert version(database) == 3
    before = snapshot(database)

    store = open_store(data_dir)
    try:
        assert [m.version for m in store.migrations_applied] == [4, 5, 6]
        after = snapshot(database)
        assert {t: rows for t, rows in after.items() if t in before} == before and after["session_summaries"] == []
        assert version(database.with_name("sessionready.sqlite3.before-v4")) == 3
        # The release's sessions, on the new table: one goes live and ends, and gets its summary.
        session = next(s for s in store.list_sessions(limit=10) if s.state == "scheduled")
        store.set_session_state(session.session_id, "live", session.start_at_s, "api")
        store.set_session_state(session.session_id, "ended", session.start_at_s + 60, "api")
        assert SummaryJob(store, clock=lambda: session.start_at_s + 120.0).run_once() == 1
        assert store.stored_summary(session.session_id)["verdict"] == "not_measured"  # type: ignore[index]
    finally:
        store.close()
