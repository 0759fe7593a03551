"""Issue 5's scenarios: the real monitor application (``create_app``) served on loopback with an
injected clock, reports posted through its HTTP API as agents post them, the risk engine's
conclusions read back through the sessions API, and alerts received by a real webhook server.

The clock is the application's: it stamps what arrives, drives the risk engine and the alert
worker's schedule, so a test can stand at T-20 min, then at T-14 min, without waiting.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from aiohttp import web

from monitor import keys
from monitor.alerts.config import AlertsConfig, WebhookConfig
from monitor.app import create_app
from monitor.config import MonitorConfig
from monitor.store.core import SQLiteStore
from sessionready import schema
from sessionready.typed import encode
from tests.conftest import CHECK, make_sample
from tests.stores import StoreFactory
from tests.webhook_receiver import WebhookReceiver

MINUTE = 60.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rfc3339(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Practice:
    """One monitor application on loopback, its store, its clock, and HTTP helpers."""

    def __init__(self, tmp_path: Path, clock: Clock, alerts: AlertsConfig, stores: StoreFactory | None = None) -> None:
        self.clock = clock
        # The store on the back end under test (the contract suite: tests/stores.py), SQLite by default.
        self.store = stores.open(clock) if stores is not None else SQLiteStore(tmp_path / "monitor.sqlite3", clock=clock)
        config = MonitorConfig(host="127.0.0.1", port=0, data_dir=str(tmp_path), risk_interval_s=3600, alerts=alerts)
        self.app = create_app(config, self.store, clock=clock)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner = web.AppRunner(self.app)
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        self.seq: dict[str, int] = {}
        self.staff = self.token("it", "staff-it")
        # The monitor assesses once as it starts (then hourly, with this config): let that pass
        # happen first, so that every later change is one the test made.
        deadline = time.monotonic() + 30
        while self.risk.evaluations < 1:
            assert time.monotonic() < deadline, "the risk engine's first pass never ran"
            time.sleep(0.05)

    async def _start(self) -> str:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the ephemeral port
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self.store.close()

    @property
    def risk(self):  # noqa: ANN201
        return self.app[keys.RISK]

    def token(self, role: str, participant: str) -> str:
        return self.store.create_token(role, participant)[1]

    def call(self, method: str, path: str, token: str, payload: object | None = None) -> tuple[int, dict]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def session(self, session_id: str, therapist: str, client: str, start: float, minutes: int = 50) -> None:
        status, body = self.call("POST", "/api/v1/sessions", self.staff, {
            "session_id": session_id, "therapist_id": therapist, "client_id": client,
            "start": rfc3339(start).replace(".000", ""), "planned_duration_s": minutes * 60,
        })  # fmt: skip
        assert status == 201, body

    def post(self, token: str, *envelopes: dict) -> None:
        status, body = self.call("POST", "/api/v1/reports", token, {"spool": {"pending": 0, "dropped_background": 0, "rejected": 0}, "reports": list(envelopes)})
        assert status == 200, body
        assert all(r["status"] == "stored" for r in body["results"]), body

    def envelope(self, token: str, kind: str, body: dict) -> dict:
        self.seq[token] = self.seq.get(token, 0) + 1
        report_id = body["check_id"] if kind == "check" else secrets.token_hex(16)
        return {"report_id": report_id, "seq": self.seq[token], "kind": kind, kind if kind == "check" else "sample": body}

    def check(self, token: str, *, loss_up: float = 0.0, cpu_pct: float = 21.4) -> None:
        """A full check (as the agent's pre-session check sends it) plus a background sample: the agent is online."""
        report = copy.deepcopy(CHECK)
        report["check_id"] = secrets.token_hex(16)
        report["started_at"] = rfc3339(self.clock.now - 20)
        report["network"]["rtt_ms"] = {"min": 18.0, "p50": 20.0, "p95": 24.0}
        report["network"]["jitter_ms"] = {"up": 1.0, "down": 1.0}
        report["network"]["packets"] = {"sent": 1000, "received": int(1000 * (1 - loss_up)), "reflected": int(1000 * (1 - loss_up))}
        report["network"]["loss"] = {"up": loss_up, "down": 0.0, "up_ci95": [max(0.0, loss_up - 0.01), min(1.0, loss_up + 0.01)], "down_ci95": [0.0, 0.004]}
        report["network"]["throughput_mbps"] = {"down": 50.0, "up": 20.0}
        report["network"]["loaded_latency_ms"] = {"down": 5.0, "up": 5.0}
        report["machine"]["cpu_pct"] = cpu_pct
        self.post(token, self.envelope(token, "check", report), self.envelope(token, "background", self.sample()))

    def sample(self, session_id: str | None = None, *, loss_up: float = 0.0, mos: float = 4.35) -> dict:
        base = make_sample(taken_at=rfc3339(self.clock.now), session_id=session_id)
        network = replace(base.network, packets_sent=20, packets_received=20, loss_up=loss_up, loss_down=0.0, mos=mos, rtt_p50_ms=20.0, rtt_p95_ms=24.0)
        return encode(replace(base, network=network))

    def heartbeat(self, *tokens: str) -> None:
        """A background sample from each agent, as they send every minute: they are online."""
        for token in tokens:
            self.post(token, self.envelope(token, "background", self.sample()))

    def live(self, token: str, session_id: str, **numbers: float) -> None:
        self.post(token, self.envelope(token, "live", self.sample(session_id, **numbers)))

    def risk_of(self, session_id: str) -> dict:
        status, body = self.call("GET", f"/api/v1/sessions/{session_id}", self.staff)
        assert status == 200, body
        return body["risk"]


@pytest.fixture
def practice(tmp_path: Path, hook: WebhookReceiver, stores: StoreFactory) -> Iterator[Practice]:
    alerts = AlertsConfig(webhook=(
        WebhookConfig(name="it", url=hook.url("/it"), format="generic", audience="it"),
        WebhookConfig(name="slack", url=hook.url("/slack"), format="slack", audience="it"),
        WebhookConfig(name="teams", url=hook.url("/teams"), format="teams", audience="it"),
    ))  # fmt: skip
    # Start on a whole minute, so "T-15 min" is an exact moment of the injected clock.
    p = Practice(tmp_path, Clock(float(int(time.time() // 60 * 60))), alerts, stores)
    try:
        yield p
    finally:
        p.close()


def reasons_for(risk: dict, end: str) -> list[dict]:
    return [r for r in risk["reasons"] if r["end"] == end]


def test_client_with_8_percent_upstream_loss_makes_the_session_not_ready(practice: Practice, hook: WebhookReceiver) -> None:
    start = practice.clock.now + 30 * MINUTE
    practice.session("s-loss", "t-1", "c-1", start)
    practice.check(practice.token("therapist", "t-1"))
    practice.check(practice.token("client", "c-1"), loss_up=0.08)
    practice.risk.evaluate()

    risk = practice.risk_of("s-loss")
    assert risk["state"] == "not_ready"
    client = reasons_for(risk, "client")
    assert client and client[0]["severity"] == "critical"
    assert "client" in client[0]["message"] and "8" in client[0]["message"]
    assert client[0]["action"]
    assert not [r for r in reasons_for(risk, "therapist") if r["severity"] != "info"]
    assert risk["client"]["state"] == "not_ready" and risk["therapist"]["state"] == "ready"
    assert [h["state"] for h in risk["history"]] == ["not_ready"]

    # One alert per (session, cause), in each format; evaluating again sends nothing new.
    alerts = hook.wait_for(1, "/it")
    practice.risk.evaluate()
    time.sleep(1.0)
    generic = [r.json() for r in hook.delivered("/it")]
    assert len(generic) == len({(a["session_id"], a["cause"]) for a in generic})
    loss_alert = next(a for a in generic if a["end"] == "client")
    assert loss_alert["kind"] == "session_not_ready" and loss_alert["session_id"] == "s-loss"
    assert alerts[0].json()["client_id"] == "c-1" and "names" not in json.dumps(loss_alert)
    assert "text" in hook.wait_for(len(generic), "/slack")[0].json()
    teams = hook.wait_for(len(generic), "/teams")[0].json()
    assert teams["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"


def test_a_client_who_never_ran_a_check_is_flagged_by_t_minus_15(practice: Practice, hook: WebhookReceiver) -> None:
    start = practice.clock.now + 30 * MINUTE
    practice.session("s-nocheck", "t-2", "c-2", start)
    therapist_token, client_token = practice.token("therapist", "t-2"), practice.token("client", "c-2")
    practice.check(therapist_token)

    practice.clock.now = start - 20 * MINUTE
    practice.heartbeat(therapist_token, client_token)  # online, but the client has run no check
    practice.risk.evaluate()
    early = practice.risk_of("s-nocheck")
    assert early["state"] == "unknown"  # too early to call it: the check runs at T-15
    assert not [r for r in early["reasons"] if r["severity"] != "info"]

    practice.clock.now = start - 14 * MINUTE
    practice.heartbeat(therapist_token, client_token)
    practice.risk.evaluate()
    late = practice.risk_of("s-nocheck")
    assert late["state"] == "at_risk"
    flagged = [r for r in reasons_for(late, "client") if r["cause"] == "no_check"]
    assert flagged and flagged[0]["severity"] == "warning" and "client" in flagged[0]["message"]
    assert [h["state"] for h in late["history"]] == ["unknown", "at_risk"]

    # The alert waits two minutes past the deadline: the agent's own check may still be running.
    time.sleep(1.0)
    assert not [r for r in hook.delivered("/it") if r.json()["cause"] == "client_no_check"]
    practice.clock.now = start - 12 * MINUTE
    practice.heartbeat(therapist_token, client_token)
    practice.risk.evaluate()
    alert = next(r.json() for r in hook.wait_for(1, "/it") if r.json()["cause"] == "client_no_check")
    assert (alert["kind"], alert["end"], alert["state"]) == ("session_at_risk", "client", "at_risk")


def test_a_therapist_whose_cpu_is_pegged_is_flagged(practice: Practice) -> None:
    start = practice.clock.now + 30 * MINUTE
    practice.session("s-cpu", "t-3", "c-3", start)
    practice.check(practice.token("therapist", "t-3"), cpu_pct=99.0)
    practice.check(practice.token("client", "c-3"))
    practice.risk.evaluate()
    risk = practice.risk_of("s-cpu")
    assert risk["state"] in ("at_risk", "not_ready")
    therapist = [r for r in reasons_for(risk, "therapist") if r["severity"] != "info"]
    assert therapist and therapist[0]["cause"] == "high_cpu" and "therapist" in therapist[0]["message"]
    assert not [r for r in reasons_for(risk, "client") if r["severity"] != "info"]


def test_both_ends_fine_is_ready(practice: Practice, hook: WebhookReceiver) -> None:
    start = practice.clock.now + 30 * MINUTE
    practice.session("s-fine", "t-4", "c-4", start)
    practice.check(practice.token("therapist", "t-4"))
    practice.check(practice.token("client", "c-4"))
    practice.risk.evaluate()
    risk = practice.risk_of("s-fine")
    assert risk["state"] == "ready", risk["reasons"]
    assert risk["end_to_end"]["mos"] > 4.0
    assert risk["client"]["online"] and risk["therapist"]["online"]
    status, listing = practice.call("GET", "/api/v1/sessions", practice.staff)
    assert status == 200 and listing["sessions"][0]["risk"]["state"] == "ready"
    time.sleep(1.0)
    assert hook.received == []  # nothing to tell anyone


def test_a_live_session_whose_loss_spikes_goes_at_risk_and_recovers_with_hysteresis(practice: Practice, hook: WebhookReceiver) -> None:
    start = practice.clock.now + 1 * MINUTE
    practice.session("s-live", "t-5", "c-5", start)
    therapist, client = practice.token("therapist", "t-5"), practice.token("client", "c-5")
    practice.check(therapist)
    practice.check(client)

    def tick(client_loss: float) -> None:
        practice.clock.now += 2.0
        practice.live(therapist, "s-live")
        practice.live(client, "s-live", loss_up=client_loss, mos=4.35 if client_loss < 0.05 else 3.9)
        practice.risk.track_live()

    practice.clock.now = start
    tick(0.0)
    status, detail = practice.call("GET", "/api/v1/sessions/s-live", practice.staff)
    assert detail["session"]["state"] == "live"  # both agents reported it
    assert [h["reason"] for h in detail["history"]][-1] == "both_agents_live"
    for _ in range(5):
        tick(0.0)
    assert practice.risk_of("s-live")["live_state"] == "ready"

    tick(0.2)  # one lossy sample is a blip
    assert practice.risk_of("s-live")["live_state"] == "ready"
    tick(0.2)  # the second within 10 s is a burst
    assert practice.risk_of("s-live")["live_state"] == "at_risk"
    degraded = hook.wait_for(1, "/it")[0].json()
    assert (degraded["kind"], degraded["end"], degraded["cause"]) == ("live_degraded", "client", "client_live_loss_burst")

    # Hysteresis: good samples for less than the recovery period, then another burst: still at risk, no new alert.
    for _ in range(4):
        tick(0.0)
    assert practice.risk_of("s-live")["live_state"] == "at_risk"
    tick(0.2)
    # Recovery needs 20 s of good samples.
    for _ in range(9):
        tick(0.0)
        assert practice.risk_of("s-live")["live_state"] == "at_risk"
    for _ in range(3):
        tick(0.0)
    risk = practice.risk_of("s-live")
    assert risk["live_state"] == "ready" and risk["live_degraded"] is True
    delivered = [r.json() for r in hook.wait_for(2, "/it")]
    assert [(a["kind"], a["cause"]) for a in delivered] == [("live_degraded", "client_live_loss_burst"), ("live_recovered", "client_live_loss_burst")]

    # /metrics: the live session's MOS per end, and the session counted as live.
    metrics_token = practice.token("metrics", "prom")
    request = urllib.request.Request(f"{practice.url}/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
    text = urllib.request.urlopen(request, timeout=30).read().decode()
    assert 'sessionready_live_session_mos{client_id="c-5",end="client",session_id="s-live",therapist_id="t-5"} 4.35' in text
    assert 'sessionready_sessions{risk="ready",state="live"} 1.0' in text

    # Both agents stop after the planned end: the session ends.
    practice.clock.now = start + 50 * MINUTE + 61
    practice.risk.track_live()
    status, detail = practice.call("GET", "/api/v1/sessions/s-live", practice.staff)
    assert detail["session"]["state"] == "ended" and detail["history"][-1]["reason"] == "agents_stopped"


def test_an_agent_that_goes_offline_before_its_session_raises_an_alert(practice: Practice, hook: WebhookReceiver) -> None:
    start = practice.clock.now + 40 * MINUTE
    practice.session("s-off", "t-6", "c-6", start)
    therapist, client = practice.token("therapist", "t-6"), practice.token("client", "c-6")
    practice.check(therapist)
    practice.check(client)
    practice.clock.now = start - 25 * MINUTE
    practice.heartbeat(therapist, client)
    practice.risk.evaluate()
    assert practice.risk_of("s-off")["state"] == "ready"
    practice.clock.now = start - 17 * MINUTE
    practice.heartbeat(therapist)  # the client's laptop has gone quiet for eight minutes
    practice.risk.evaluate()
    risk = practice.risk_of("s-off")
    assert risk["state"] == "at_risk" and not risk["client"]["online"] and risk["therapist"]["online"]
    alert = hook.wait_for(1, "/it")[0].json()
    assert (alert["kind"], alert["end"], alert["cause"]) == ("agent_offline", "client", "client_agent_offline")
    practice.heartbeat(therapist, client)  # back again: the state clears, and nothing is re-sent
    practice.risk.evaluate()
    assert practice.risk_of("s-off")["state"] == "ready"
    time.sleep(1.0)
    assert len(hook.delivered("/it")) == 1


def test_the_live_page_reads_a_sessions_samples_and_the_checks_of_its_client(practice: Practice) -> None:
    start = practice.clock.now
    practice.session("s-read", "t-7", "c-7", start)
    therapist, client, other = practice.token("therapist", "t-7"), practice.token("client", "c-7"), practice.token("therapist", "t-8")
    practice.check(client)
    practice.clock.now += 2
    practice.live(therapist, "s-read")
    practice.live(client, "s-read", loss_up=0.01)
    status, body = practice.call("GET", "/api/v1/sessions/s-read/samples", therapist)
    assert status == 200
    assert sorted(s["end"] for s in body["samples"]) == ["client", "therapist"]
    assert next(s for s in body["samples"] if s["end"] == "client")["sample"]["network"]["loss_up"] == 0.01
    assert practice.call("GET", "/api/v1/sessions/s-read/samples", other)[0] == 404
    assert practice.call("GET", "/api/v1/sessions/s-read/samples", client)[0] == 403
    assert practice.call("GET", "/api/v1/sessions/s-read/samples?since=soon", therapist)[0] == 400
    # The client's check: its therapist and IT may read it, another therapist may not.
    status, checks = practice.call("GET", "/api/v1/agents/" + client.split("_")[1] + "/checks", client)
    check_id = checks["checks"][0]["report"]["check_id"]
    assert practice.call("GET", f"/api/v1/checks/{check_id}", therapist)[0] == 200
    assert practice.call("GET", f"/api/v1/checks/{check_id}", practice.staff)[0] == 200
    assert practice.call("GET", f"/api/v1/checks/{check_id}", other)[0] == 404


def test_a_therapist_sees_only_their_own_sessions_risk(practice: Practice) -> None:
    start = practice.clock.now + 30 * MINUTE
    practice.session("s-a", "t-a", "c-a", start)
    practice.session("s-b", "t-b", "c-b", start)
    practice.risk.evaluate()
    mine = practice.token("therapist", "t-a")
    status, listing = practice.call("GET", "/api/v1/sessions", mine)
    assert status == 200 and [s["session_id"] for s in listing["sessions"]] == ["s-a"]
    assert practice.call("GET", "/api/v1/sessions/s-b", mine)[0] == 404
    status, alerts = practice.call("GET", "/api/v1/alerts", mine)
    assert status == 200 and all(a["session_id"] == "s-a" for a in alerts["alerts"])
    assert schema.ID_PATTERN  # ids in every answer are the pseudonymous ones
