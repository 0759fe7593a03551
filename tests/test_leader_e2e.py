"""Issue 16 part 4, with real processes: two ``sessionready monitor`` processes on one real
PostgreSQL (tests/pg.py) run the risk service and the alert worker once between them; the
holder is killed with SIGKILL and the other takes over within two of the risk service's 2 s live
intervals; every alert reaches the webhook receiver once, before and after the kill.

Ground truth: each monitor's own /metrics (``sessionready_leader{job}``, and the live loop's
cycle count, which only a monitor running the risk service moves), the receiver's log of
what arrived, and the store's alert rows. The lease is 1.5 s here (``leader_lease_s``), so the
take-over bound is 2 s and the test takes seconds.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import Monitor, start_monitor, wait_for

pytestmark = pytest.mark.slow

LEASE_S = 1.5
LIVE_INTERVAL_S = 2.0  # the risk service's live loop (monitor.risk.service.RiskTimes)


def leads(monitor: Monitor, token: str, job: str) -> bool:
    return monitor.metrics(token).get(f'sessionready_leader{{job="{job}"}}') == 1.0


def leaders_now(monitors: list[Monitor], token: str, job: str) -> list[Monitor]:
    """The monitors that say they lead ``job``. The scrapes come one after another, so a
    reading can straddle a hand-over and catch the old leader before it stopped and the new one
    after it started: every one that said so but the last is asked again, and only those that
    still say so count (two that keep saying so are two leaders)."""
    said = [m for m in monitors if leads(m, token, job)]
    return [m for m in said[:-1] if leads(m, token, job)] + said[-1:]


def risk_cycles(monitor: Monitor, token: str) -> float:
    return monitor.metrics(token).get("sessionready_risk_live_cycle_seconds_count", 0.0)


def once_each(hook, store) -> int:
    """Every alert in the store reached the receiver exactly once, one per session and cause;
    returns how many."""
    stored = store.list_alerts(None, None, 1000)
    delivered = Counter(r.headers["X-Sessionready-Alert-Id"] for r in hook.delivered("/it"))
    keys = Counter((s.alert.session_id, s.alert.cause) for s in stored)
    assert set(keys.values()) == {1}, keys
    assert set(delivered.values()) == {1} and set(delivered) == {s.alert.alert_id for s in stored}, (delivered, keys)
    return len(stored)


def write_config(path: Path, url: str, hook_url: str) -> Path:
    path.write_text(
        f"[monitor]\nstore_url = {json.dumps(url)}\nleader_lease_s = {LEASE_S}\nrisk_interval_s = 1.0\n\n"
        f'[[alerts.webhook]]\nname = "it"\nurl = "{hook_url}"\n'
    )
    return path


def test_two_monitors_run_risk_and_alerts_once_and_the_survivor_takes_over(tmp_path: Path, postgres_server, hook) -> None:
    from monitor.store.postgres import PostgresStore

    url = postgres_server.new_database(migrated=True)
    config = write_config(tmp_path / "monitor.toml", url, hook.url("/it"))
    store = PostgresStore(url)
    running: list[Monitor] = []
    try:
        metrics = store.create_token("metrics", "prom")[1]
        # A session 5 minutes away with no check from either end: past the check deadline
        # (T-15 min, plus the 2 min grace before it is alerted), so each end is "no check yet".
        store.create_session("s-lead-1", "t-lead", "c-lead", int(time.time()) + 300, 3000)
        running.append(start_monitor(tmp_path / "a", "--config", str(config)))
        running.append(start_monitor(tmp_path / "b", "--config", str(config)))
        a, b = running

        holders = wait_for(lambda: leaders_now(running, metrics, "risk"), 10, "a risk leader", poll_s=0.1)
        holder = holders[0]
        other = b if holder is a else a
        # Each end is offline and has no check: four alerts for the session, each once.
        hook.wait_for(4, "/it", timeout_s=20)
        # Both monitors run through several evaluations (risk_interval_s = 1 s) and live passes.
        wait_for(lambda: risk_cycles(holder, metrics) >= 2, 10, "the leader's live passes", poll_s=0.2)
        leaders = {job: [m in leaders_now(running, metrics, job) for m in running] for job in ("risk", "alerts")}
        cycles = {m.url: risk_cycles(m, metrics) for m in running}
        before_kill = once_each(hook, store)
        print(f"leader: risk {leaders['risk']}, alerts {leaders['alerts']}; live cycles per monitor {list(cycles.values())}; alerts stored and delivered once each {before_kill}")
        assert sum(leaders["risk"]) == 1 and sum(leaders["alerts"]) == 1, leaders
        assert cycles[holder.url] >= 2 and cycles[other.url] == 0, "only the risk leader runs the risk service"
        assert before_kill == 4

        holder.process.kill()  # SIGKILL: no chance to release the lease
        killed = time.monotonic()
        holder.process.wait(timeout=10)
        wait_for(lambda: leads(other, metrics, "risk") and leads(other, metrics, "alerts"), 10, "the survivor leading", poll_s=0.02)
        takeover_s = time.monotonic() - killed
        cycles_then = risk_cycles(other, metrics)
        print(f"leader: take-over {takeover_s:.2f} s after SIGKILL (lease {LEASE_S} s: bound {LEASE_S * 4 / 3:.1f} s; two live intervals {2 * LIVE_INTERVAL_S:.0f} s)")
        assert takeover_s <= 2 * LIVE_INTERVAL_S, takeover_s

        # The survivor assesses and alerts: a new session's four alerts arrive, once each.
        store.create_session("s-lead-2", "t-lead2", "c-lead2", int(time.time()) + 300, 3000)
        hook.wait_for(8, "/it", timeout_s=20)
        wait_for(lambda: risk_cycles(other, metrics) >= cycles_then + 1, 10, "the survivor's live passes", poll_s=0.2)
        after = once_each(hook, store)
        print(f"leader: after the kill, alerts stored and delivered once each {after}")
        assert after == 8
        logs = holder.logs() + other.logs()
        assert "leader lease gained" in logs and str(url) not in logs
    finally:
        for monitor in running:
            monitor.stop()
        store.close()
