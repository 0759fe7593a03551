"""Risk engine: one evaluation of every upcoming session, with a week of history behind each.

The store is filled through its own methods (the ones ingest and the sessions API call), not
over HTTP: loading a week of samples for a thousand people through the API would take longer
than the rest of ``make bench`` together, and the evaluation never goes through HTTP anyway.
"""

from __future__ import annotations

import json
import random
import secrets
import statistics
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from benchmarks.core import Context, Section, spread, table
from monitor.risk.engine import RiskConfig
from monitor.risk.service import RiskService, RiskTimes
from monitor.store.core import SQLiteStore, open_store
from sessionready import schema
from sessionready.typed import decode, rfc3339

ROOT_REPORT = "tests/data/report.json"
THERAPISTS = 50
DAY = 86400.0
HISTORY_STEP_S = 1800.0  # background network samples over the past week, one per half hour ...
RECENT_STEP_S = 300.0  # ... and every 5 minutes over the last 2 hours, as agents send them
TARGET_S = 1.0


def _sample(taken_at: float, rng: random.Random) -> schema.Sample:
    return schema.Sample(
        schema_version=1,
        taken_at=rfc3339(taken_at),
        interval_s=300.0,
        session_id=None,
        agent=schema.Agent("0.1.0", "linux"),
        network=schema.SampleNetwork(100, 100, 20 + rng.random() * 30, 40 + rng.random() * 40, rng.random() * 4, rng.random() * 4, 0.0, rng.random() * 0.004, 4.3),
        machine=schema.SampleMachine(10 + rng.random() * 30, 60.0, None, None, "wifi", -60.0),
        traffic_mbps=schema.Throughput(1.0, 0.5),
        room=None,
    )


def _reference_s() -> float:
    """A fixed amount of plain Python work (2 × 10^6 multiply-adds), to compare the machine with."""
    started = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i * i
    return time.perf_counter() - started


def build_dataset(directory: Path, sessions: int, rng: random.Random) -> tuple[SQLiteStore, float, int, int, float]:
    """A store with ``sessions`` upcoming sessions and a week of history behind each end.
    Returns the store, "now", the number of samples and of past sessions, and the load time."""
    store = open_store(directory)
    now = float(int(time.time()))
    base_report = decode(schema.CheckReport, _report())
    loading = time.monotonic()
    therapists = [f"t-{i:03d}" for i in range(THERAPISTS)]
    clients = [f"c-{i:04d}" for i in range(sessions)]
    samples = 0
    for participant, role in [(t, "therapist") for t in therapists] + [(c, "client") for c in clients]:
        agent, _ = store.create_token(role, participant)
        history = [now - 7 * DAY + k * HISTORY_STEP_S for k in range(int((7 * DAY - 2 * 3600) / HISTORY_STEP_S))]
        recent = [now - 2 * 3600 + k * RECENT_STEP_S for k in range(24)]
        envelopes = [
            schema.ReportEnvelope(secrets.token_hex(16), seq + 1, "background", _sample(t, rng))
            for seq, t in enumerate(history + recent)
        ]
        check = replace(base_report, check_id=secrets.token_hex(16))
        envelopes.append(schema.ReportEnvelope(check.check_id, len(envelopes) + 1, "check", check=check))
        for start in range(0, len(envelopes), 500):
            store.add_reports(agent, envelopes[start : start + 500], schema.SpoolStatus(0, 0, 0), now - 60)
        samples += len(envelopes) - 1
    past = 0
    for index, client in enumerate(clients):
        therapist = therapists[index % THERAPISTS]
        for day in range(1, 8):  # a session a day over the past week, some of them degraded
            info, _ = store.create_session(None, therapist, client, int(now - day * DAY), 3000)
            store.set_session_state(info.session_id, "live", now - day * DAY, "both_agents_live")
            store.save_live(info.session_id, "{}", "at_risk" if rng.random() < 0.2 else "ready", 4.2, 4.3, now - day * DAY)
            store.set_session_state(info.session_id, "ended", now - day * DAY + 3000, "agents_stopped")
            past += 1
        store.create_session(f"up-{index:04d}", therapist, client, int(now + 600 + rng.random() * 6600), 3000)
    return store, now, samples, past, time.monotonic() - loading


def risk_evaluation(context: Context) -> Section:
    rng = random.Random(5)
    sessions = 100 if context.quick else 1000
    store, now, samples, past, load_s = build_dataset(context.workdir / "monitor", sessions, rng)
    service = RiskService(store, RiskConfig(), RiskTimes(), submit=None, clock=lambda: now)
    references = [_reference_s()]
    started = time.perf_counter()
    first = service.evaluate()
    cold_s = time.perf_counter() - started
    warm = []
    for _ in range(3 if context.quick else 5):
        references.append(_reference_s())
        started = time.perf_counter()
        results = service.evaluate()
        warm.append(time.perf_counter() - started)
    store.close()
    states = {s: sum(1 for r in results if r.state == s) for s in ("ready", "unknown", "at_risk", "not_ready")}
    causes = Counter(f"{reason.end} {reason.cause} ({reason.severity})" for r in results for reason in r.reasons)
    reference = statistics.median(references)
    warm_median = statistics.median(warm)
    rows = [
        [f"First evaluation (each check summarised once, {len(first)} risk rows written)", f"{cold_s:.3f}", f"{cold_s / reference:.1f}", "yes" if cold_s < TARGET_S else "**no**"],
        ["Steady state (median of later evaluations)", spread(warm, 3), f"{warm_median / reference:.1f}", "yes" if warm_median < TARGET_S else "**no**"],
        ["Reference: 2 × 10⁶ multiply-adds in Python", f"{reference:.3f}", "1.0", ""],
    ]
    text = (
        f"`RiskService.evaluate()` over {len(first)} sessions starting within the next 2 hours, each end with a"
        f" week of history: {samples} background samples in all (every 30 min over the week, every 5 min over"
        f" the last 2 h), {past} past sessions (one a day, a fifth degraded live), one full check per person;"
        f" {THERAPISTS} therapists, {sessions} clients. Loading took {load_s:.0f} s (not measured). The engine"
        " reads the last 2 h of samples per person through the (participant, time) index and keeps each"
        f" check's summary by check id. Target: under {TARGET_S:.0f} s.\n\n"
        + table(["Evaluation", "Seconds", "× reference", f"Under {TARGET_S:.0f} s"], rows)
        + f"\n\nStates found: {states}. Most frequent reasons (random data): "
        + ", ".join(f"{cause} × {count}" for cause, count in causes.most_common(5))
        + ".\n"
    )
    return Section(f"Risk engine: {sessions:,} upcoming sessions", text)


def _report() -> dict[str, object]:
    report = json.loads((Path(__file__).resolve().parent.parent / ROOT_REPORT).read_text())
    report["network"]["rtt_ms"] = {"min": 18.0, "p50": 20.0, "p95": 24.0}
    report["network"]["packets"] = {"sent": 1000, "received": 1000, "reflected": 1000}
    report["network"]["loss"] = {"up": 0.0, "down": 0.0, "up_ci95": [0.0, 0.004], "down_ci95": [0.0, 0.004]}
    report["network"]["throughput_mbps"] = {"down": 50.0, "up": 20.0}
    return report

