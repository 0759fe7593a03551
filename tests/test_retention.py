"""Retention on a real store (SQLite and PostgreSQL: the contract suite, tests/stores.py) with an injected clock: each kind is deleted when it has
outlived its limit, in bounded batches, and nothing else is touched."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.retention import DAY_S, RetentionConfig, RetentionJob
from monitor.store.alerts import AlertRecord
from monitor.store.protocols import Store
from monitor.store.retention import KINDS
from sessionready.config import ConfigError
from sessionready.schema import CheckReport, ReportEnvelope, SpoolStatus
from sessionready.typed import decode, encode, rfc3339
from tests.conftest import CHECK, make_sample
from tests.stores import StoreFactory

NOW = 1_800_000_000.0  # 2027-01-15
SPOOL = SpoolStatus(0, 0, 0, 0)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def fill(store: Store, clock: Clock, age_days: float, tag: str) -> None:
    """One row of every kind, written ``age_days`` before NOW by the store's own methods."""
    clock.now = NOW - age_days * DAY_S
    agent, _ = store.create_token("client", f"c-{tag}")
    sample = encode(make_sample(rfc3339(clock.now)))
    envelope = decode(ReportEnvelope, {"report_id": uuid.uuid4().hex, "seq": 1, "kind": "background", "sample": sample})
    store.add_reports(agent, [envelope], SPOOL, clock.now)
    check = decode(CheckReport, {**CHECK, "check_id": uuid.uuid4().hex, "session_id": None})
    store.add_check(agent, check, json.dumps(encode(check)), clock.now)
    session, _ = store.create_session(None, f"t-{tag}", f"c-{tag}", int(clock.now + 3600), 3000)
    store.save_risk(session.session_id, "at_risk", ["client:no_check"], {}, [], clock.now)
    alert_id = uuid.uuid4().hex
    alert = AlertRecord(alert_id, session.session_id, f"t-{tag}", f"c-{tag}", "risk", "no_check", "client", "at_risk", (), clock.now, clock.now + 3600, clock.now)
    store.add_alert(alert, [("hook", "{}")])
    delivery = store.claim_alert_deliveries(["hook"], clock.now, 30, 10)[0]
    store.finish_alert_attempt(delivery.delivery_id, clock.now, 0.1, "sent", 200, None, clock.now)
    clock.now = NOW


def run(job: RetentionJob) -> dict[str, int]:
    return asyncio.run(job.run_once())


def test_each_kind_goes_when_it_outlives_its_limit_and_nothing_else(stores: StoreFactory) -> None:
    clock = Clock()
    store = stores.open(clock)
    try:
        fill(store, clock, 400, "old")  # beyond every limit
        fill(store, clock, 100, "mid")  # beyond samples' and deliveries' 90 days only
        fill(store, clock, 10, "new")  # within every limit
        before = stores.table_counts()
        deleted = run(RetentionJob(store, RetentionConfig(), clock))
        after = stores.table_counts()
    finally:
        store.close()
    assert deleted == {"samples": 2, "checks": 1, "risk_history": 1, "alert_deliveries": 2, "alerts": 1, "trends": deleted["trends"]}
    assert deleted["trends"] >= 4, "the oldest fill's hourly and daily rollups"
    changed = {table: before[table] - after[table] for table in before if before[table] != after[table]}
    assert changed == {
        "samples": 2,
        "checks": 1,
        "latest_checks": 1,
        "session_risk_history": 1,
        "alert_deliveries": 2,
        "alert_attempts": 2,
        "alerts": 1,
        "alert_last": 1,
        "trend_agent_hour": 1,
        "trend_hour": 1,
        "trend_hour_total": 1,
        "trend_agent_day": 1,
        # PostgreSQL keeps each stored sample's report id beside the partitioned samples.
        **({"sample_ids": 2} if stores.backend == "postgresql" else {}),
    }, "tokens, sessions, their risk, users, caseloads and everything newer stay"


def test_a_day_more_or_less_decides_and_the_limits_are_the_configs(stores: StoreFactory) -> None:
    clock = Clock()
    store = stores.open(clock)
    try:
        fill(store, clock, 30.01, "just-over")
        fill(store, clock, 29.99, "just-under")
        config = RetentionConfig(samples_days=30, checks_days=30, risk_history_days=30, alert_deliveries_days=30, alerts_days=30, trends_days=365)
        deleted = run(RetentionJob(store, config, clock))
    finally:
        store.close()
    assert {kind: deleted[kind] for kind in ("samples", "checks", "risk_history", "alert_deliveries", "alerts")} == dict.fromkeys(
        ("samples", "checks", "risk_history", "alert_deliveries", "alerts"), 1
    )
    assert deleted["trends"] == 0


def test_batches_are_bounded_and_a_pass_still_finishes(stores: StoreFactory) -> None:
    clock = Clock()
    store = stores.open(clock)
    calls: list[tuple[str, int]] = []

    class Counting:
        def expire_batch(self, kind: str, before: float, limit: int) -> int:
            rows = store.expire_batch(kind, before, limit)
            calls.append((kind, rows))
            return rows

    try:
        agent, _ = store.create_token("client", "c-many")
        clock.now = NOW - 200 * DAY_S
        envelopes = [
            decode(ReportEnvelope, {"report_id": uuid.uuid4().hex, "seq": n + 1, "kind": "background", "sample": encode(make_sample(rfc3339(clock.now)))})
            for n in range(25)
        ]
        store.add_reports(agent, envelopes, SPOOL, clock.now)
        clock.now = NOW
        deleted = run(RetentionJob(Counting(), RetentionConfig(batch_rows=10), clock))
    finally:
        store.close()
    assert deleted["samples"] == 25
    assert [rows for kind, rows in calls if kind == "samples"] == [10, 10, 5]


def test_a_monitor_config_sets_the_limits_and_refuses_nonsense(tmp_path: Path) -> None:
    config_file = tmp_path / "monitor.toml"
    config_file.write_text("[retention]\nsamples_days = 30\nbatch_rows = 500\n")
    config = load_config(config_file)
    assert config.retention.samples_days == 30.0 and config.retention.batch_rows == 500
    assert config.retention.checks_days == 395.0
    for bad, key in (("samples_days = 0", "samples_days"), ("kept_days = 3", "kept_days"), ("batch_rows = 'all'", "batch_rows")):
        config_file.write_text(f"[retention]\n{bad}\n")
        with pytest.raises(ConfigError, match=key):
            load_config(config_file)
    config_file.write_text("[monitor.alerts]\nmax_attempts = 3\n")
    with pytest.raises(ConfigError, match=r"key 'monitor\.alerts': alerts go in their own top-level \[alerts\] table"):
        load_config(config_file)
    assert set(KINDS) == {name[: -len("_days")] for name in RetentionConfig.__dataclass_fields__ if name.endswith("_days")}
