"""Alerts: dedup, outbox, delivery with retries, payload formats, privacy, API visibility.

Every delivery goes over real HTTP to ``tests/webhook_receiver.py`` on loopback; the store is
a real SQLite file. The clock is injected so backoff and leases are exact; one test runs the
worker on the real clock to show a hanging webhook does not hold up ``submit``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import statistics
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerts.config import AlertsConfig, WebhookConfig
from monitor.alerts.delivery import Alerter, AlertEvent, AlertReason
from monitor.config import load_config
from monitor.metrics import build_alert_metrics
from monitor.store.core import SQLiteStore, open_store
from sessionready.config import ConfigError
from tests.conftest import run_cli, start_monitor
from tests.stores import StoreFactory
from tests.webhook_receiver import WebhookReceiver

SECRET = "s3cret-for-tests-0123456789"
START = 1_767_254_400.0  # 2026-01-01T08:00:00Z


class Clock:
    def __init__(self, now: float = START - 1800) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


REASON = AlertReason("client_loss_up", "client", "The client's connection loses 8 % of packets on the way up.", "Ask the client to move closer to the router or use a cable.")


def event(session: str = "s-1", *, therapist: str = "t-1", client: str = "c-1", kind: str = "session_not_ready",
          cause: str = "client_loss_up", state: str = "not_ready", end: str = "client", at: float = START - 900) -> AlertEvent:
    return AlertEvent(session, therapist, client, kind, cause, end, state, (REASON,), at, START)  # type: ignore[arg-type]


def hook(name: str, url: str, **kwargs: object) -> WebhookConfig:
    return WebhookConfig(name=name, url=url, **kwargs)  # type: ignore[arg-type]


async def drain(alerter: Alerter) -> int:
    """Deliver everything due now, pass after pass (one request per webhook per pass)."""
    total = 0
    while (made := await alerter.deliver_due()) > 0:
        total += made
    return total


def counter(registry: CollectorRegistry, name: str, result: str) -> float:
    return registry.get_sample_value(name, {"result": result}) or 0.0


# --- config -------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(text)
    return path


def test_alerts_table_loads_next_to_monitor(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[monitor]
port = 9000
[alerts]
max_attempts = 3
[[alerts.webhook]]
name = "it-slack"
url = "https://hooks.slack.com/services/T1/B1/abc"
format = "slack"
[[alerts.webhook]]
name = "t-1-own"
url = "http://127.0.0.1:9/hook"
audience = "therapist"
therapist_id = "t-1"
kinds = ["session_at_risk", "session_not_ready"]
secret = "{SECRET}"
""",
    )
    config = load_config(path)
    assert config.port == 9000
    assert config.alerts.max_attempts == 3
    assert [w.name for w in config.alerts.webhook] == ["it-slack", "t-1-own"]
    assert config.alerts.webhook[1].kinds == ("session_at_risk", "session_not_ready")
    # Neither secret nor URL shows up when the config is printed.
    assert SECRET not in repr(config) and "hooks.slack.com" not in repr(config.alerts)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[alerts]\nretries = 3\n', "key 'alerts.retries': unknown field"),
        ('[[alerts.webhook]]\nname = "a"\nurl = "https://x.example"\ncolour = "red"\n', "key 'alerts.webhook[0].colour': unknown field"),
        ('[[alerts.webhook]]\nname = "a"\nurl = "https://x.example"\nformat = "email"\n', "alerts.webhook[0].format"),
        ('[[alerts.webhook]]\nname = "a"\nurl = "https://x.example"\nkinds = ["lunch"]\n', "alerts.webhook[0].kinds[0]"),
        ('[[alerts.webhook]]\nname = "a"\nurl = "http://hooks.example.org/secret-path"\n', "must use https://"),
        ('[[alerts.webhook]]\nname = "a"\nurl = "https://x.example"\naudience = "therapist"\n', "needs therapist_id"),
        ('[[alerts.webhook]]\nname = "a"\nurl = "https://x.example"\nformat = "slack"\nsecret = "0123456789abcdefXYZ"\n', "generic payloads only"),
        ('[[alerts.webhook]]\nname = "a"\nurl = "https://x.example"\n[[alerts.webhook]]\nname = "a"\nurl = "https://y.example"\n', "'a' is used twice"),
        ('[monitor]\n[monitor.alerts.delivery]\nmax_attempts = 2\n', "own top-level [alerts] table"),
    ],
)
def test_bad_alerts_config_is_rejected_by_name(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, body))
    assert expected in str(caught.value)
    assert str(caught.value).startswith(f"config file {tmp_path / 'monitor.toml'}")
    assert "secret-path" not in str(caught.value)


def test_monitor_refuses_bad_alerts_config_in_one_sentence(tmp_path: Path) -> None:
    path = write(tmp_path, '[[alerts.webhook]]\nname = "it"\nurl = "http://hooks.example.org/T0/very-secret"\n')
    result = run_cli("monitor", "--config", str(path), "--port", "0", "--data-dir", str(tmp_path / "data"), timeout=60)
    assert result.returncode != 0
    assert "webhook 'it': url must use https://" in result.stderr
    assert "very-secret" not in result.stderr and "Traceback" not in result.stderr


# --- delivery -----------------------------------------------------------------------------------


def test_exactly_one_delivery_per_transition_in_each_format(stores: StoreFactory) -> None:
    store = stores.open()
    clock = Clock()
    registry = CollectorRegistry()
    with WebhookReceiver() as receiver:
        config = AlertsConfig(
            webhook=(
                hook("generic", receiver.url("/generic"), secret=SECRET),
                hook("slack", receiver.url("/slack"), format="slack"),
                hook("teams", receiver.url("/teams"), format="teams"),
            )
        )
        alerter = Alerter(store, config, clock=clock, metrics=build_alert_metrics(registry, store.pending_alert_deliveries))

        async def scenario() -> None:
            assert alerter.submit(event()) is True
            assert alerter.submit(event()) is False  # the same state again is not news
            assert alerter.submit(event(at=START - 800)) is False  # nor a later evaluation of it
            assert await drain(alerter) == 3
            clock.advance(60)
            assert alerter.submit(event(kind="live_recovered", state="live", at=START + 300)) is True
            assert alerter.submit(event(kind="live_degraded", state="at_risk", at=START + 600)) is True  # degraded again: sent again
            assert alerter.submit(event(kind="live_degraded", state="at_risk", at=START + 610)) is False
            assert alerter.submit(event(cause="therapist_cpu", end="therapist", kind="live_degraded", state="at_risk")) is True  # another cause
            assert await drain(alerter) == 9

        asyncio.run(scenario())
        for path in ("/generic", "/slack", "/teams"):
            assert len(receiver.delivered(path)) == 4
        assert len(receiver.received) == 12  # nothing else was sent, nothing twice

        generic = [r.json() for r in receiver.delivered("/generic")]
        # Each channel gets its alerts in the order they were raised.
        assert [(g["kind"], g["cause"]) for g in generic] == [
            ("session_not_ready", "client_loss_up"),
            ("live_recovered", "client_loss_up"),
            ("live_degraded", "client_loss_up"),
            ("live_degraded", "therapist_cpu"),
        ]
        first = generic[0]
        assert set(first) == {
            "type", "version", "alert_id", "kind", "cause", "end", "state", "session_id", "therapist_id", "client_id",
            "at", "at_unix", "starts_at", "starts_at_unix", "summary", "reasons",
        }
        assert (first["session_id"], first["therapist_id"], first["client_id"], first["state"]) == ("s-1", "t-1", "c-1", "not_ready")
        assert first["starts_at"] == "2026-01-01T08:00:00Z" and first["starts_at_unix"] == START
        assert first["reasons"] == [{"code": REASON.code, "end": "client", "message": REASON.message, "action": REASON.action}]
        # The signature verifies with the shared secret over "timestamp.body".
        request = receiver.delivered("/generic")[0]
        timestamp = request.headers["X-Sessionready-Timestamp"]
        expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
        assert request.headers["X-Sessionready-Signature"] == f"sha256={expected}"
        assert request.headers["X-Sessionready-Alert-Id"] == first["alert_id"]
        assert "X-Sessionready-Signature" not in receiver.delivered("/slack")[0].headers  # no secret configured there

        slack = receiver.delivered("/slack")[0].json()
        assert set(slack) == {"text", "blocks"}
        assert slack["text"].startswith("Session s-1 is not ready")
        assert [b["type"] for b in slack["blocks"]] == ["header", "section", "section", "context"]
        assert slack["blocks"][2]["text"]["type"] == "mrkdwn" and REASON.action in slack["blocks"][2]["text"]["text"]

        teams = receiver.delivered("/teams")[0].json()
        assert teams["type"] == "message"
        [attachment] = teams["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = attachment["content"]
        assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
        assert card["body"][0]["text"] == "Session s-1 is not ready"
        assert {"title": "Client", "value": "c-1"} in card["body"][1]["facts"]


    assert counter(registry, "sessionready_alerts_total", "queued") == 4
    assert counter(registry, "sessionready_alerts_total", "deduplicated") == 3
    assert counter(registry, "sessionready_alert_deliveries_total", "sent") == 12
    alerts = store.list_alerts(None, None, 10)
    assert len(alerts) == 4 and all(d.status == "sent" and d.attempts == 1 for a in alerts for d in a.deliveries)
    store.close()


def test_failing_receiver_is_retried_with_backoff_until_it_succeeds(stores: StoreFactory) -> None:
    store = stores.open()
    clock = Clock()
    registry = CollectorRegistry()
    with WebhookReceiver() as receiver:
        receiver.fail_next(2, status=500)
        config = AlertsConfig(webhook=(hook("it", receiver.url()),), min_backoff_s=10, max_backoff_s=600)
        # random() = 0: the shortest jittered backoff, half the ceiling (5 s, then 10 s).
        alerter = Alerter(store, config, clock=clock, random=lambda: 0.0, metrics=build_alert_metrics(registry, store.pending_alert_deliveries))
        assert alerter.submit(event())

        async def scenario() -> None:
            assert await alerter.deliver_due() == 1  # 500
            assert await alerter.deliver_due() == 0  # backing off
            clock.advance(4.9)
            assert await alerter.deliver_due() == 0
            clock.advance(0.2)
            assert await alerter.deliver_due() == 1  # 500 again
            clock.advance(9.8)
            assert await alerter.deliver_due() == 0
            clock.advance(0.3)
            assert await alerter.deliver_due() == 1  # 200
            clock.advance(3600)
            assert await alerter.deliver_due() == 0  # delivered once, never again

        asyncio.run(scenario())
        assert [r.answered for r in receiver.received] == [500, 500, 200]
        assert len({r.json()["alert_id"] for r in receiver.received}) == 1  # the same alert each time
    [stored] = store.list_alerts(None, None, 10)
    [delivery] = stored.deliveries
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == ("sent", 3, 200, None)
    attempts = store.alert_attempts(stored.alert.alert_id)
    assert [(a[3], a[4], a[5]) for a in attempts] == [("retry", 500, "http_5xx"), ("retry", 500, "http_5xx"), ("sent", 200, None)]
    assert attempts[1][2] - attempts[0][2] == pytest.approx(5.1) and attempts[2][2] - attempts[1][2] == pytest.approx(10.1)
    assert counter(registry, "sessionready_alert_deliveries_total", "retried") == 2
    assert counter(registry, "sessionready_alert_deliveries_total", "sent") == 1
    store.close()


def test_delivery_gives_up_after_max_attempts_and_on_client_errors(stores: StoreFactory) -> None:
    store = stores.open()
    clock = Clock()
    with WebhookReceiver() as receiver:
        receiver.fail_next(100, status=503, headers={"Retry-After": "120"})
        config = AlertsConfig(webhook=(hook("flaky", receiver.url("/flaky")),), max_attempts=3, min_backoff_s=1, max_backoff_s=600)
        alerter = Alerter(store, config, clock=clock, random=lambda: 1.0)
        alerter.submit(event("s-1"))

        async def scenario() -> None:
            for _ in range(3):
                assert await alerter.deliver_due() == 1
                assert await alerter.deliver_due() == 0
                clock.advance(119)
                assert await alerter.deliver_due() == 0  # Retry-After: 120 is honoured over the 1-2 s backoff
                clock.advance(1)
            assert await alerter.deliver_due() == 0

        asyncio.run(scenario())
        receiver.fail_next(100, status=404)
        alerter.submit(event("s-2"))
        assert asyncio.run(alerter.deliver_due()) == 1
        clock.advance(3600)
        assert asyncio.run(alerter.deliver_due()) == 0  # a 404 is not worth another try
    by_session = {a.alert.session_id: a.deliveries[0] for a in store.list_alerts(None, None, 10)}
    assert (by_session["s-1"].status, by_session["s-1"].attempts, by_session["s-1"].last_error) == ("failed", 3, "http_5xx")
    assert (by_session["s-2"].status, by_session["s-2"].attempts, by_session["s-2"].last_error) == ("failed", 1, "http_4xx")
    store.close()


def test_stale_alerts_are_given_up_not_sent(stores: StoreFactory) -> None:
    store = stores.open()
    clock = Clock()
    with WebhookReceiver() as receiver:
        receiver.fail_next(1)
        config = AlertsConfig(webhook=(hook("it", receiver.url()),), max_age_s=600, min_backoff_s=300, max_backoff_s=600)
        alerter = Alerter(store, config, clock=clock, random=lambda: 1.0)
        alerter.submit(event())
        assert asyncio.run(alerter.deliver_due()) == 1  # fails; next try in 300 s
        clock.advance(601)
        assert asyncio.run(alerter.deliver_due()) == 0
        assert len(receiver.received) == 1
    [stored] = store.list_alerts(None, None, 10)
    assert (stored.deliveries[0].status, stored.deliveries[0].last_error) == ("failed", "expired")
    store.close()


def test_hanging_receiver_times_out_and_does_not_slow_submit(tmp_path: Path) -> None:
    """The worker runs on the real clock; submit latency is compared with a fast receiver's."""
    timeout_s = 2.0

    def measure(hang: bool, data: Path) -> tuple[list[float], SQLiteStore, WebhookReceiver]:
        store = open_store(data)
        receiver = WebhookReceiver().__enter__()
        receiver.hang(hang)
        config = AlertsConfig(webhook=(hook("it", receiver.url(), timeout_s=timeout_s),), min_backoff_s=0.5, max_backoff_s=1)
        alerter = Alerter(store, config)

        async def scenario() -> list[float]:
            worker = asyncio.create_task(alerter.run())
            assert alerter.submit(event("first"))
            deadline = time.monotonic() + 10
            while not receiver.received and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert receiver.received, "the worker never reached the receiver"
            latencies = []
            for i in range(40):
                started = time.perf_counter()
                assert alerter.submit(event(f"s-{i}"))
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.002)  # let the worker run between submits
            if hang:
                # The hanging request is given up after its timeout and recorded as such.
                deadline = time.monotonic() + timeout_s + 10
                while time.monotonic() < deadline:
                    first = store.list_alerts(None, "first", 1)[0].deliveries[0]
                    if first.last_error == "timeout":
                        break
                    await asyncio.sleep(0.05)
                assert (first.status, first.last_error, first.last_status_code) == ("pending", "timeout", None)
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            return latencies

        return asyncio.run(scenario()), store, receiver

    hanging, hanging_store, hanging_receiver = measure(True, tmp_path / "hang")
    fast, fast_store, fast_receiver = measure(False, tmp_path / "fast")
    try:
        assert len(fast_receiver.delivered()) >= 1
        assert len(hanging_receiver.delivered()) == 0
        ratio = statistics.median(hanging) / statistics.median(fast)
        print(f"submit median: hanging {statistics.median(hanging) * 1e3:.3f} ms, fast {statistics.median(fast) * 1e3:.3f} ms, ratio {ratio:.2f}")
        assert ratio < 3
        assert max(hanging) < timeout_s  # no submit waited for the hanging request
    finally:
        for receiver in (hanging_receiver, fast_receiver):
            receiver.hang(False)
            receiver.__exit__(None, None, None)
        hanging_store.close()
        fast_store.close()


def test_restart_neither_resends_nor_forgets(stores: StoreFactory) -> None:
    clock = Clock()
    with WebhookReceiver() as receiver:
        config = AlertsConfig(webhook=(hook("it", receiver.url()),))
        store = stores.open()
        before = Alerter(store, config, clock=clock)
        assert before.submit(event("s-1")) and before.submit(event("s-2")) and before.submit(event("s-3"))
        assert asyncio.run(before.deliver_due()) == 1  # s-1 delivered; s-2 and s-3 still queued
        # A worker that died mid-request: it claimed s-2 (leased) and never recorded an answer.
        [claimed] = store.claim_alert_deliveries(["it"], clock(), 40.0, 10)
        store.close()

        store = stores.open()  # the monitor restarts
        after = Alerter(store, config, clock=clock)
        assert after.submit(event("s-1")) is False  # dedup survived the restart
        assert asyncio.run(after.deliver_due()) == 0  # s-2 is still leased; s-3 waits behind it (order)
        clock.advance(40)
        assert asyncio.run(drain(after)) == 2
        sessions = [r.json()["session_id"] for r in receiver.delivered()]
        assert sessions == ["s-1", "s-2", "s-3"]
        assert receiver.delivered()[1].json()["alert_id"] == claimed.alert_id
        clock.advance(3600)
        assert asyncio.run(drain(after)) == 0
        assert len(receiver.received) == 3
        store.close()


def test_therapist_webhooks_get_only_their_own_sessions(stores: StoreFactory) -> None:
    store = stores.open()
    with WebhookReceiver() as receiver:
        config = AlertsConfig(
            webhook=(
                hook("it", receiver.url("/it")),
                hook("t-1", receiver.url("/t-1"), audience="therapist", therapist_id="t-1", format="slack"),
                hook("t-2", receiver.url("/t-2"), audience="therapist", therapist_id="t-2", format="teams"),
                hook("offline", receiver.url("/offline"), kinds=("agent_offline",)),
            ),
            max_concurrent=2,
        )
        alerter = Alerter(store, config, clock=Clock())
        alerter.submit(event("a", therapist="t-1"))
        alerter.submit(event("b", therapist="t-2"))
        alerter.submit(event("c", therapist="t-1", kind="agent_offline", cause="client_agent_offline", state="at_risk"))
        alerter.submit(event("d", therapist="t-3"))
        assert asyncio.run(drain(alerter)) == 4 + 2 + 1 + 1
    assert sorted(r.json()["session_id"] for r in receiver.delivered("/it")) == ["a", "b", "c", "d"]
    assert sorted(r.json()["blocks"][1]["fields"][0]["text"] for r in receiver.delivered("/t-1")) == ["*Session*\na", "*Session*\nc"]
    assert [r.json()["attachments"][0]["content"]["body"][0]["text"] for r in receiver.delivered("/t-2")] == ["Session b is not ready"]
    assert [r.json()["session_id"] for r in receiver.delivered("/offline")] == ["c"]
    store.close()


def test_events_with_names_or_free_text_are_refused() -> None:
    with pytest.raises(ValueError, match="pseudonymous"):
        event("Jane Doe")
    with pytest.raises(ValueError, match="closed codes"):
        event(cause="the client said she is anxious")


# --- through a real monitor ---------------------------------------------------------------------


def test_alerts_api_visibility_and_delivery_by_the_running_monitor(tmp_path: Path) -> None:
    """Alerts queued in the shared store (as a second monitor would) are listed per role and
    delivered by the running monitor's own worker."""
    with WebhookReceiver() as receiver:
        config_path = write(tmp_path, f'[[alerts.webhook]]\nname = "it"\nurl = "{receiver.url("/it")}"\n')
        data = tmp_path / "monitor"
        monitor = start_monitor(data, "--config", str(config_path))
        try:
            it, therapist, other, client, scraper = (
                monitor.token("it", "staff-1"),
                monitor.token("therapist", "t-1"),
                monitor.token("therapist", "t-2"),
                monitor.token("client", "c-1"),
                monitor.token("metrics", "prom"),
            )
            store = open_store(data)
            queuer = Alerter(store, AlertsConfig(webhook=(hook("it", receiver.url("/it")),)))
            assert queuer.submit(event("s-1", therapist="t-1"))
            assert queuer.submit(event("s-2", therapist="t-2", kind="session_at_risk", state="at_risk"))
            store.close()

            status, body = monitor.json("GET", "/api/v1/alerts", it)
            assert status == 200
            assert sorted(a["session_id"] for a in body["alerts"]) == ["s-1", "s-2"]
            status, body = monitor.json("GET", "/api/v1/alerts", therapist)
            assert status == 200 and [a["session_id"] for a in body["alerts"]] == ["s-1"]
            alert = body["alerts"][0]
            assert (alert["therapist_id"], alert["client_id"], alert["kind"], alert["end"]) == ("t-1", "c-1", "session_not_ready", "client")
            assert alert["reasons"] == [{"code": REASON.code, "end": "client", "message": REASON.message, "action": REASON.action}]
            assert monitor.json("GET", "/api/v1/alerts?therapist_id=t-2", therapist) == (200, {"alerts": []})
            assert [a["session_id"] for a in monitor.json("GET", "/api/v1/alerts", other)[1]["alerts"]] == ["s-2"]
            assert [a["session_id"] for a in monitor.json("GET", "/api/v1/alerts?session_id=s-2", it)[1]["alerts"]] == ["s-2"]
            assert monitor.json("GET", "/api/v1/alerts", client)[0] == 403
            assert monitor.json("GET", "/api/v1/alerts")[0] == 401
            status, body = monitor.json("GET", "/api/v1/alerts?limit=0", it)
            assert status == 400 and body["error"]["field"] == "limit"
            assert monitor.json("GET", "/api/v1/alerts?session_id=a%20b", it)[0] == 400

            # The monitor's worker polls the shared outbox and delivers both, once each.
            delivered = receiver.wait_for(2, "/it", timeout_s=20)
            assert sorted(r.json()["session_id"] for r in delivered) == ["s-1", "s-2"]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                alerts = monitor.json("GET", "/api/v1/alerts", it)[1]["alerts"]
                if all(a["deliveries"][0]["status"] == "sent" for a in alerts):
                    break
                time.sleep(0.1)
            assert [(d["webhook"], d["status"], d["attempts"], d["last_status_code"]) for a in alerts for d in a["deliveries"]] == [("it", "sent", 1, 200)] * 2
            status, raw = monitor.request("GET", "/metrics", scraper)
            assert status == 200
            assert 'sessionready_alert_deliveries_total{result="sent"} 2.0' in raw.decode()
            assert "sessionready_alert_deliveries_pending 0.0" in raw.decode()
            time.sleep(0.5)
            assert len(receiver.received) == 2
            assert receiver.url() not in monitor.logs()
        finally:
            monitor.stop()


def test_openapi_describes_the_alerts_list() -> None:
    from monitor.openapi import openapi_document

    document = openapi_document()
    operation = document["paths"]["/api/v1/alerts"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"session_id", "therapist_id", "limit"}
    schema = document["components"]["schemas"]["AlertOut"]
    assert {"alert_id", "session_id", "therapist_id", "kind", "cause", "reasons", "deliveries"} <= set(schema["required"])
