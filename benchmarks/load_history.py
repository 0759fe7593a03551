"""Load weeks of realistic history into a monitor, for the Trends page and its benchmark.

    python -m benchmarks.load_history --monitor http://127.0.0.1:8470 --data-dir DIR --days 90 --agents 200
    python -m benchmarks.load_history --monitor http://127.0.0.1:8470 --data-dir DIR --today-only

What it makes, with a fixed seed (``--seed``):
- ``--agents`` agents, one per pseudonymous participant (a quarter therapists ``bt-NNN``, the
  rest clients ``bc-NNN``), each with a network profile: link type (wired/wifi/cellular),
  OS, base RTT, jitter and loss, evening congestion, and a few agents on bad links;
- a background sample per agent every ``--interval-s`` seconds (300 = the agent's default)
  over the last ``--days`` days, taken_at in the past; MOS computed with the product's own
  E-model (sessionready.quality), as an agent does;
- sessions: every therapist has ``--sessions-per-day`` sessions on weekdays with one of
  their clients; a tenth of them carry live samples from both ends (every 30 s, tagged with
  the session id), sent through the same ingest path;
- today (``--today-sessions``, default 100, in the viewer's zone ``--tz``; ``auto`` picks a zone
  where it is early afternoon now): sessions on the hour from 08:00 to 18:00, at most one an
  hour per therapist (the historic sessions end before that day begins there). Those already over get their outcome like past ones; for the others
  both ends post a fresh full check and a background sample through the ingest API, and the
  running monitor's risk engine assesses them (sessions within its ``risk_horizon_minutes``).
  ``--today-only`` does just this on a loaded data directory: the same sessions on the same
  day (only the checks are new), the next day's on the next day.

How it loads:
- samples go through the ingest API, ``POST /api/v1/reports`` with each agent's own token,
  in batches of up to 200, over ``--connections`` concurrent connections; sessions through
  ``POST /api/v1/sessions/import`` (text/csv) with an it token. The monitor stamps
  received_at itself (now): fine for trends, which use taken_at;
- tokens are created in this process with the store's ``create_token`` on ``--data-dir`` (what
  ``sessionready monitor token create`` does, without a process start per agent) and kept in
  ``load_history-tokens.json`` there (mode 0600) for ``--today-only``;
- NOT through HTTP: the risk engine only assesses sessions around now, so what it would have
  concluded about past sessions (risk history before the start, degraded live, the live and
  ended states) is written with the store's own methods (``save_risk``, ``save_live``,
  ``set_session_state``) on ``--data-dir``, the same rows the engine writes;
- ``--direct``: a fast path that does not use HTTP at all. Samples are built as the schema's
  dataclasses (in a second process) and written with the store's own ``add_reports`` in this
  process (what the ingest handler calls), sessions with ``create_session``. Rollups are maintained exactly as
  at ingest; HTTP parsing, authentication and the network are skipped. No monitor needs to
  run (it may: SQLite WAL lets both write).

Prints progress to stderr and a JSON summary (rows, seconds, rows/s; ``today``: zone, day,
sessions) to stdout, and keeps it in ``load_history.json`` in ``--data-dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import json
import math
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from datetime import time as dt_time
from pathlib import Path
from zoneinfo import ZoneInfo

from agents.enroll import write_private
from sessionready import quality
from sessionready.typed import rfc3339

BATCH = 200
LIVE_INTERVAL_S = 30
SESSION_MINUTES = 50
VERSION = "0.1.0-history"
TOKENS_FILE = "load_history-tokens.json"
CHECK_TEMPLATE = Path(__file__).resolve().parent.parent / "tests" / "data" / "report.json"  # a real check's report
SUMMARY_FILE = "load_history.json"
TODAY_HOURS = range(8, 19)  # today's sessions start on the hour, 08:00 to 18:00 local
# Candidate viewer zones for --tz auto, one per UTC offset from -10 to +13 hours.
ZONES = (
    "Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles", "America/Denver", "America/Chicago",
    "America/New_York", "America/Halifax", "America/Sao_Paulo", "Atlantic/South_Georgia", "Atlantic/Azores",
    "Europe/London", "Europe/Berlin", "Europe/Athens", "Europe/Moscow", "Asia/Dubai", "Asia/Karachi",
    "Asia/Dhaka", "Asia/Bangkok", "Asia/Shanghai", "Asia/Tokyo", "Australia/Brisbane", "Pacific/Noumea",
    "Pacific/Auckland", "Pacific/Tongatapu",
)  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """One simulated agent's network: base values, and how bad its evenings get."""

    participant_id: str
    role: str  # therapist | client
    link_type: str
    os: str
    rtt_ms: float
    jitter_ms: float
    loss: float  # typical loss ratio
    evening_factor: float  # multiplies RTT, jitter and loss between 18 and 23 UTC
    bad: bool  # a poor link: bursts of heavy loss


def plan(agents: int, rng: random.Random) -> list[Profile]:
    therapists = max(1, agents // 4)
    profiles = []
    for index in range(agents):
        role = "therapist" if index < therapists else "client"
        participant = f"bt-{index:03d}" if role == "therapist" else f"bc-{index:03d}"
        link = rng.choices(("wired", "wifi", "cellular"), weights=(40, 45, 15))[0]
        base_rtt = {"wired": 18.0, "wifi": 28.0, "cellular": 55.0}[link] * rng.lognormvariate(0, 0.35)
        profiles.append(
            Profile(
                participant_id=participant,
                role=role,
                link_type=link,
                os=rng.choices(("windows", "macos", "linux"), weights=(55, 35, 10))[0],
                rtt_ms=base_rtt,
                jitter_ms={"wired": 1.0, "wifi": 4.0, "cellular": 9.0}[link] * rng.lognormvariate(0, 0.4),
                loss={"wired": 0.0005, "wifi": 0.004, "cellular": 0.01}[link] * rng.lognormvariate(0, 0.5),
                evening_factor=1.0 + rng.random() * (0.3 if link == "wired" else 1.2),
                bad=rng.random() < 0.08,
            )
        )
    return profiles


def sample_envelope(profile: Profile, taken_at: float, seq: int, kind: str, session_id: str | None, rng: random.Random) -> dict[str, object]:
    """A report as an agent spools it: a network burst of 100 packets, the machine and traffic."""
    hour = int(taken_at // 3600) % 24
    factor = profile.evening_factor if 18 <= hour <= 23 else 1.0
    rtt = profile.rtt_ms * factor * rng.lognormvariate(0, 0.15)
    jitter_up = profile.jitter_ms * factor * rng.lognormvariate(0, 0.5)
    jitter_down = profile.jitter_ms * factor * rng.lognormvariate(0, 0.5)
    mean_loss = profile.loss * factor * (12 if profile.bad and rng.random() < 0.3 else 1)
    sent = 100
    lost_up = min(sent, _poisson(mean_loss * sent, rng))
    lost_down = min(sent - lost_up, _poisson(mean_loss * sent, rng))
    loss_up, loss_down = lost_up / sent, lost_down / (sent - lost_up) if sent > lost_up else 0.0
    worse_jitter, worse_loss = max(jitter_up, jitter_down), max(loss_up, loss_down)
    mos = quality.mos_from_r(quality.r_factor(quality.mouth_to_ear_delay_ms(rtt, worse_jitter), worse_loss))
    wifi = profile.link_type == "wifi"
    sample = {
        "schema_version": 1,
        "taken_at": rfc3339(taken_at),
        "interval_s": 2.0 if kind == "live" else 300.0,
        "session_id": session_id,
        "agent": {"version": VERSION, "os": profile.os},
        "network": {
            "packets_sent": sent,
            "packets_received": sent - lost_up - lost_down,
            "rtt_p50_ms": round(rtt, 2),
            "rtt_p95_ms": round(rtt * (1.2 + rng.random() * 0.5), 2),
            "jitter_up_ms": round(jitter_up, 3),
            "jitter_down_ms": round(jitter_down, 3),
            "loss_up": loss_up,
            "loss_down": round(loss_down, 6),
            "mos": round(mos, 2),
        },
        "machine": {
            "cpu_pct": round(min(100.0, rng.uniform(3, 45)), 1),
            "memory_available_pct": round(rng.uniform(20, 70), 1),
            "battery_pct": None,
            "battery_charging": None,
            "link_type": profile.link_type,
            "wifi_signal_dbm": round(rng.uniform(-75, -45), 0) if wifi else None,
        },
        "traffic_mbps": {"down": round(rng.uniform(0.05, 3.0), 3), "up": round(rng.uniform(0.02, 0.8), 3)},
        "room": None,
    }
    return {"report_id": uuid.UUID(int=rng.getrandbits(128)).hex, "seq": seq, "kind": kind, "sample": sample}


def _poisson(mean: float, rng: random.Random) -> int:
    # Knuth's method: means here are below 30.
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


@dataclass(frozen=True)
class PlannedSession:
    session_id: str
    therapist: int  # index into the profiles
    client: int
    start_s: int
    flagged_state: str | None  # at_risk | not_ready before the start, or None
    degraded_live: bool
    live_samples: bool


def plan_sessions(profiles: list[Profile], start_s: float, end_s: float, per_day: int, rng: random.Random) -> list[PlannedSession]:
    therapists = [i for i, p in enumerate(profiles) if p.role == "therapist"]
    clients = [i for i, p in enumerate(profiles) if p.role == "client"] or therapists
    sessions = []
    day = math.floor(start_s / 86400) * 86400
    while day < end_s:  # every session starts at least an hour before end_s (below)
        if datetime.fromtimestamp(day, timezone.utc).weekday() < 5:
            for t in therapists:
                for hour in rng.sample(range(8, 19), per_day):
                    start = int(day + hour * 3600)
                    if not start_s <= start < end_s - 3600:
                        continue
                    client = clients[(t * 7 + rng.randrange(3)) % len(clients)]
                    roll = rng.random()
                    sessions.append(
                        PlannedSession(
                            session_id=f"hist-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}",
                            therapist=t,
                            client=client,
                            start_s=start,
                            flagged_state="not_ready" if roll < 0.04 else "at_risk" if roll < 0.16 else None,
                            degraded_live=rng.random() < (0.25 if profiles[client].bad else 0.06),
                            live_samples=rng.random() < 0.1,
                        )
                    )
        day += 86400
    return sessions


def history_batches(profiles: list[Profile], sessions: list[PlannedSession], start_s: float, end_s: float, interval_s: float, seed: int) -> Iterator[tuple[int, list[dict[str, object]]]]:
    """(agent index, up to 200 envelopes), agent by agent, oldest first within an agent."""
    live_by_agent: dict[int, list[PlannedSession]] = {}
    for session in sessions:
        if session.live_samples:
            live_by_agent.setdefault(session.therapist, []).append(session)
            live_by_agent.setdefault(session.client, []).append(session)
    for index, profile in enumerate(profiles):
        rng = random.Random(seed * 1_000_003 + index)
        seq = 0
        batch: list[dict[str, object]] = []
        taken = start_s + rng.random() * interval_s
        while taken < end_s:
            seq += 1
            batch.append(sample_envelope(profile, taken, seq, "background", None, rng))
            if len(batch) == BATCH:
                yield index, batch
                batch = []
            taken += interval_s
        for session in live_by_agent.get(index, []):
            for offset in range(0, SESSION_MINUTES * 60, LIVE_INTERVAL_S):
                seq += 1
                batch.append(sample_envelope(profile, session.start_s + offset, seq, "live", session.session_id, rng))
                if len(batch) == BATCH:
                    yield index, batch
                    batch = []
        if batch:
            yield index, batch


def create_tokens(store: object, profiles: list[Profile]) -> tuple[list[str], str]:
    """One agent token per profile and an it token, made in this process with the store's own
    ``create_token`` (what ``sessionready monitor token create`` calls: a CLI process per agent
    cost 0.7 s each, 166 s for 200 agents)."""
    tokens = [store.create_token(p.role, p.participant_id)[1] for p in profiles]  # type: ignore[attr-defined]
    return tokens, store.create_token("it", "history-loader")[1]  # type: ignore[attr-defined]


def save_tokens(data_dir: Path, tokens: list[str], it_token: str) -> None:
    """Keep the loader's tokens next to the store (mode 0600), so ``--today-only`` can post
    today's checks as the same agents later: the store holds only their hashes."""
    write_private(data_dir / TOKENS_FILE, json.dumps({"agents": tokens, "it": it_token}), replace=True)


def read_tokens(data_dir: Path) -> tuple[list[str], str]:
    try:
        saved = json.loads((data_dir / TOKENS_FILE).read_text())
    except (OSError, ValueError):
        raise SystemExit(f"load_history: {data_dir} has no loaded history (no {TOKENS_FILE}): load it first, without --today-only") from None
    return saved["agents"], saved["it"]


def _progress(done: int, started: float, what: str) -> None:
    elapsed = time.monotonic() - started
    print(f"  {what}: {done} rows in {elapsed:.0f} s ({done / max(elapsed, 1e-9):.0f}/s)", file=sys.stderr, flush=True)


async def load_http(url: str, tokens: list[str], batches: Iterator[tuple[int, list[dict[str, object]]]], connections: int) -> tuple[int, int]:
    """POST every batch; returns (stored, not stored). Each batch is retried on 5xx/network errors."""
    import aiohttp

    stored = failed = 0
    started = time.monotonic()
    next_report = 100_000
    lock = asyncio.Lock()

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal stored, failed, next_report
        while True:
            async with lock:
                item = next(batches, None)
            if item is None:
                return
            index, reports = item
            body = json.dumps({"spool": {"pending": 0, "dropped_background": 0, "rejected": 0}, "reports": reports}).encode()
            for attempt in range(5):
                try:
                    async with session.post(
                        f"{url}/api/v1/reports", data=body, headers={"Authorization": f"Bearer {tokens[index]}", "Content-Type": "application/json"}
                    ) as response:
                        if response.status == 200:
                            results = (await response.json())["results"]
                            ok = sum(r["status"] in ("stored", "duplicate") for r in results)
                            stored += ok
                            failed += len(results) - ok
                            break
                        if response.status < 500 and response.status != 429:
                            raise SystemExit(f"load_history: the monitor refused a batch: {response.status} {(await response.text())[:300]}")
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5 * 2**attempt)
            else:
                failed += len(reports)
            if stored >= next_report:
                next_report += 100_000
                _progress(stored, started, "samples")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return stored, failed


def _session_csv(profiles: list[Profile], sessions: list[PlannedSession]) -> str:
    rows = ["session_id,therapist_id,client_id,start,planned_duration_minutes"]
    rows += [f"{s.session_id},{profiles[s.therapist].participant_id},{profiles[s.client].participant_id},{rfc3339(s.start_s)},{SESSION_MINUTES}" for s in sessions]
    return "\n".join(rows) + "\n"


async def import_sessions_http(url: str, it_token: str, profiles: list[Profile], sessions: list[PlannedSession]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        # The import registers participants the first time a session names them (docs/sessions.md).
        for start in range(0, len(sessions), 20_000):
            body = _session_csv(profiles, sessions[start : start + 20_000])
            async with session.post(
                f"{url}/api/v1/sessions/import", data=body.encode(), headers={"Authorization": f"Bearer {it_token}", "Content-Type": "text/csv"}
            ) as response:
                if response.status != 200:
                    raise SystemExit(f"load_history: the session import failed: {response.status} {(await response.text())[:500]}")


def write_outcomes(store: object, sessions: list[PlannedSession]) -> None:
    """What the risk engine and the agents would have left behind for past sessions (see the
    module docstring: written with the store's own methods, not through HTTP)."""
    for s in sessions:
        before = s.start_s - 900
        store.save_risk(s.session_id, "ready", [], {"state": "ready"}, [], before - 3600)  # type: ignore[attr-defined]
        if s.flagged_state is not None:
            cause = "client:recent_loss"
            reason = {"end": "client", "cause": "recent_loss", "severity": "warning" if s.flagged_state == "at_risk" else "critical"}
            store.save_risk(s.session_id, s.flagged_state, [cause], {"state": s.flagged_state}, [reason], before)  # type: ignore[attr-defined]
        store.set_session_state(s.session_id, "live", s.start_s, "both_agents_live")  # type: ignore[attr-defined]
        store.save_live(s.session_id, "{}", "at_risk" if s.degraded_live else "ready", None, None, s.start_s + 600)  # type: ignore[attr-defined]
        store.set_session_state(s.session_id, "ended", s.start_s + SESSION_MINUTES * 60, "api")  # type: ignore[attr-defined]


def afternoon_zone(now_s: float) -> str:
    """The candidate zone where it is closest to 14:00 now, so that today there holds sessions
    already over, some under way and most still to come, whatever time the load runs."""
    return min(ZONES, key=lambda zone: abs(datetime.fromtimestamp(now_s, ZoneInfo(zone)).hour - 14))


def today_zone(requested: str, previous: dict[str, object] | None, now_s: float) -> str:
    """The viewer's zone: the one asked for; for ``auto``, the one today's sessions were made in
    earlier the same day (not a second set elsewhere), else where it is early afternoon now."""
    if requested != "auto":
        return requested
    if previous and datetime.fromtimestamp(now_s, ZoneInfo(str(previous["zone"]))).date().isoformat() == previous["day"]:
        return str(previous["zone"])
    return afternoon_zone(now_s)


def local_midnight(zone: str, unix_s: float) -> float:
    """The start of the day in ``zone`` that holds ``unix_s``."""
    local = datetime.fromtimestamp(unix_s, ZoneInfo(zone))
    return datetime.combine(local.date(), dt_time(0), ZoneInfo(zone)).timestamp()


def plan_today(profiles: list[Profile], zone: str, now_s: float, count: int, seed: int) -> tuple[str, list[PlannedSession]]:
    """``count`` sessions on today's date in ``zone`` (the same ones on every call that day), each
    therapist at most one an hour; and the date, ``YYYY-MM-DD``."""
    day = datetime.fromtimestamp(now_s, ZoneInfo(zone)).date()
    rng = random.Random(f"{seed}-{day.isoformat()}")
    therapists = [i for i, p in enumerate(profiles) if p.role == "therapist"]
    clients = [i for i, p in enumerate(profiles) if p.role == "client"] or therapists
    hours = {t: rng.sample(TODAY_HOURS, len(TODAY_HOURS)) for t in therapists}
    sessions = []
    for k in range(min(count, len(therapists) * len(TODAY_HOURS))):
        therapist = therapists[k % len(therapists)]
        start = datetime.combine(day, dt_time(hours[therapist][k // len(therapists)]), ZoneInfo(zone))
        sessions.append(
            PlannedSession(
                session_id=f"today-{day:%Y%m%d}-{k:03d}",
                therapist=therapist,
                client=clients[(therapist * 7 + rng.randrange(3)) % len(clients)],
                start_s=int(start.timestamp()),
                flagged_state=None,
                degraded_live=rng.random() < 0.06,
                live_samples=False,
            )
        )
    return day.isoformat(), sorted(sessions, key=lambda s: (s.start_s, s.session_id))


@functools.cache
def _check_template() -> dict[str, object]:
    """Read once per run, not once per agent."""
    return json.loads(CHECK_TEMPLATE.read_text())


def check_report(profile: Profile, started_at: float, rng: random.Random) -> dict[str, object]:
    """A full pre-session check as the agent sends it, with this agent's network (a bad link,
    half the time, loses 1.5-6 % upstream and queues up to 150 ms under load: flagged)."""
    report = copy.deepcopy(_check_template())
    troubled = profile.bad and rng.random() < 0.5
    loss_up = rng.uniform(0.015, 0.06) if troubled else min(0.005, profile.loss * rng.lognormvariate(0, 0.5))
    sent = 1000
    received = sent - round(sent * loss_up)
    rtt = profile.rtt_ms * rng.lognormvariate(0, 0.15)
    report["check_id"] = uuid.UUID(int=rng.getrandbits(128)).hex
    report["started_at"] = rfc3339(started_at)
    report["agent"] = {"version": VERSION, "os": profile.os}
    report["network"].update(
        rtt_ms={"min": round(rtt * 0.9, 2), "p50": round(rtt, 2), "p95": round(rtt * 1.3, 2)},
        jitter_ms={"up": round(profile.jitter_ms, 3), "down": round(profile.jitter_ms, 3)},
        packets={"sent": sent, "received": received, "reflected": received},
        loss={"up": loss_up, "down": 0.0, "up_ci95": [max(0.0, loss_up - 0.01), min(1.0, loss_up + 0.01)], "down_ci95": [0.0, 0.004]},
        throughput_mbps={"down": round(rng.uniform(15, 200), 1), "up": round(rng.uniform(3, 40), 1)},
        loaded_latency_ms={"down": round(rng.uniform(2, 30), 1), "up": round(rng.uniform(2, 150 if troubled else 30), 1)},
    )
    report["machine"]["link"] = {"type": profile.link_type, "speed_mbps": None, "wifi_signal_dbm": -60.0 if profile.link_type == "wifi" else None}
    return report


async def load_today_http(url: str, store: object, profiles: list[Profile], tokens: list[str], it_token: str, sessions: list[PlannedSession], now_s: float, seed: int) -> int:
    """Today's sessions through ``POST /api/v1/sessions``; what is already over gets its outcome
    (``write_outcomes``); both ends of every other session post a fresh check and a background
    sample through the ingest API, as running agents do, and the monitor's risk engine assesses
    them. Re-running on the same day changes only the checks. Returns the sessions created."""
    import aiohttp

    rng = random.Random(f"{seed}-{now_s}")
    created = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {it_token}"}) as http:
        for s in sessions:
            body = {"session_id": s.session_id, "therapist_id": profiles[s.therapist].participant_id, "client_id": profiles[s.client].participant_id,
                    "start": rfc3339(s.start_s), "planned_duration_s": SESSION_MINUTES * 60}  # fmt: skip
            async with http.post(f"{url}/api/v1/sessions", json=body) as response:
                if response.status not in (200, 201):
                    raise SystemExit(f"load_history: creating today's session failed: {response.status} {(await response.text())[:300]}")
                if response.status == 201:
                    created.append(s)
    write_outcomes(store, [s for s in created if s.start_s + SESSION_MINUTES * 60 < now_s])
    coming = {i for s in sessions if s.start_s + SESSION_MINUTES * 60 >= now_s for i in (s.therapist, s.client)}
    seq = int(now_s)  # above every history seq of these agents
    batches = (
        (i, [{"report_id": report["check_id"], "seq": seq, "kind": "check", "check": report},
             sample_envelope(profiles[i], now_s - 30, seq + 1, "background", None, rng)])
        for i in sorted(coming)
        for report in [check_report(profiles[i], now_s - rng.uniform(60, 1800), rng)]
    )  # fmt: skip
    _, failed = await load_http(url, tokens, batches, 4)
    if failed:
        raise SystemExit(f"load_history: the monitor did not store {failed} of today's checks and samples")
    return len(created)


def as_envelope(report: dict) -> object:
    """The dataclasses for one generated report, built directly (the generator's output is
    valid by construction; --direct skips JSON decoding as it skips HTTP)."""
    from sessionready.schema import Agent, ReportEnvelope, Sample, SampleMachine, SampleNetwork, Throughput

    sample = report["sample"]
    return ReportEnvelope(
        report["report_id"],
        report["seq"],
        report["kind"],
        Sample(
            schema_version=1,
            taken_at=sample["taken_at"],
            interval_s=sample["interval_s"],
            session_id=sample["session_id"],
            agent=Agent(**sample["agent"]),
            network=SampleNetwork(**sample["network"]),
            machine=SampleMachine(**sample["machine"]),
            traffic_mbps=Throughput(**sample["traffic_mbps"]),
            room=None,
        ),
    )


def _produce(queue: object, profiles: list[Profile], sessions: list[PlannedSession], start_s: float, end_s: float, interval_s: float, seed: int) -> None:
    # Runs in a child process: generating samples costs about as much as storing them.
    for index, reports in history_batches(profiles, sessions, start_s, end_s, interval_s, seed):
        queue.put((index, [as_envelope(r) for r in reports]))  # type: ignore[attr-defined]
    queue.put(None)  # type: ignore[attr-defined]


def load_direct(store: object, tokens: list[str], producer_args: tuple[object, ...]) -> tuple[int, int]:
    import multiprocessing
    from queue import Empty

    from sessionready.schema import SpoolStatus

    agents = [store.authenticate(token) for token in tokens]  # type: ignore[attr-defined]
    spool = SpoolStatus(0, 0, 0)
    stored = failed = 0
    started = time.monotonic()
    next_report = 100_000
    queue: multiprocessing.Queue = multiprocessing.Queue(maxsize=64)
    producer = multiprocessing.Process(target=_produce, args=(queue, *producer_args), daemon=True)
    producer.start()
    while True:
        try:
            item = queue.get(timeout=5)
        except Empty:
            if producer.exitcode not in (None, 0):
                raise SystemExit(f"load_history: the sample generator died (exit {producer.exitcode})") from None
            continue
        if item is None:
            break
        index, envelopes = item
        results = store.add_reports(agents[index], envelopes, spool, time.time())  # type: ignore[attr-defined]
        ok = sum(r is not None for r in results)
        stored += ok
        failed += len(results) - ok
        if stored >= next_report:
            next_report += 100_000
            _progress(stored, started, "samples")
    producer.join()
    return stored, failed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=90, help="days of history, ending now (default 90)")
    parser.add_argument("--agents", type=int, default=200, help="agents, one per participant (default 200)")
    parser.add_argument("--monitor", metavar="URL", help="the running monitor (not needed with --direct)")
    parser.add_argument("--data-dir", metavar="DIR", type=Path, required=True, help="the monitor's data directory (tokens, past risk)")
    parser.add_argument("--interval-s", type=float, default=300.0, help="seconds between background samples (default 300)")
    parser.add_argument("--sessions-per-day", type=int, default=2, help="sessions per therapist per weekday (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent HTTP connections (default 8)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--direct", action="store_true", help="write through the store's add_reports in this process, not HTTP")
    parser.add_argument("--today-sessions", type=int, default=None, help="sessions on today's date in --tz (default 100; 0 with --direct)")
    parser.add_argument("--tz", default="auto", help="the viewer's IANA zone for today's sessions (default auto: where it is closest to 14:00 now)")
    parser.add_argument("--today-only", action="store_true", help="on a loaded --data-dir: only today's sessions and fresh checks")
    args = parser.parse_args(argv)
    if args.today_sessions is None:
        args.today_sessions = 0 if args.direct else 100
    if not args.monitor and (not args.direct or args.today_sessions or args.today_only):
        parser.error("give --monitor URL (today's sessions need the running monitor's risk engine), or --direct with --today-sessions 0")
    if not 1 <= args.days <= 3650 or not 1 <= args.agents <= 10_000 or not 1 <= args.sessions_per_day <= 11 or not 0 <= args.today_sessions <= 10_000:
        parser.error("--days 1-3650, --agents 1-10000, --sessions-per-day 1-11, --today-sessions 0-10000")
    if args.tz != "auto":
        try:
            ZoneInfo(args.tz)
        except (ValueError, KeyError):
            parser.error(f"--tz: {args.tz!r} is not an IANA time zone")
    return args


def load_history(args: argparse.Namespace, store: object, zone: str) -> dict[str, object]:
    """The whole history: tokens, sessions with their outcomes, samples. Returns the summary."""
    rng = random.Random(args.seed)
    profiles = plan(args.agents, rng)
    end_s = time.time() - 60
    start_s = end_s - args.days * 86400
    # Today's sessions are planned in the viewer's zone (load_today): history's end before its day.
    sessions_end_s = min(end_s, local_midnight(zone, end_s)) if args.today_sessions else end_s
    sessions = plan_sessions(profiles, start_s, sessions_end_s, args.sessions_per_day, rng)
    print(f"load_history: {args.agents} agents, {args.days} days, {len(sessions)} sessions; creating tokens", file=sys.stderr, flush=True)
    started = time.monotonic()
    tokens, it_token = create_tokens(store, profiles)
    save_tokens(args.data_dir, tokens, it_token)
    token_s = time.monotonic() - started
    started = time.monotonic()
    if args.direct:
        for p in profiles:
            store.add_participant(p.participant_id, p.role)  # type: ignore[attr-defined]
        for s in sessions:
            store.create_session(s.session_id, profiles[s.therapist].participant_id, profiles[s.client].participant_id, s.start_s, SESSION_MINUTES * 60)  # type: ignore[attr-defined]
    else:
        asyncio.run(import_sessions_http(args.monitor.rstrip("/"), it_token, profiles, sessions))
    write_outcomes(store, sessions)
    session_s = time.monotonic() - started
    print(f"load_history: sessions done in {session_s:.0f} s; loading samples", file=sys.stderr, flush=True)
    started = time.monotonic()
    if args.direct:
        stored, failed = load_direct(store, tokens, (profiles, sessions, start_s, end_s, args.interval_s, args.seed))
    else:
        batches = history_batches(profiles, sessions, start_s, end_s, args.interval_s, args.seed)
        stored, failed = asyncio.run(load_http(args.monitor.rstrip("/"), tokens, batches, args.connections))
    sample_s = time.monotonic() - started
    return {
        "path": "direct (store.add_reports in-process, no HTTP)" if args.direct else f"HTTP ingest API, {args.connections} connections",
        "history_until": rfc3339(end_s),
        "days": args.days,
        "agents": args.agents,
        "interval_s": args.interval_s,
        "seed": args.seed,
        "sessions": len(sessions),
        "samples_stored": stored,
        "samples_not_stored": failed,
        "token_seconds": round(token_s, 1),
        "session_seconds": round(session_s, 1),
        "sample_seconds": round(sample_s, 1),
        "samples_per_s": round(stored / sample_s) if sample_s else None,
    }


def load_today(args: argparse.Namespace, store: object, history: dict[str, object], zone: str) -> dict[str, object]:
    """Today's sessions and checks (``load_today_http``), for the agents the history was made with."""
    profiles = plan(int(history["agents"]), random.Random(int(history["seed"])))  # type: ignore[call-overload]
    tokens, it_token = read_tokens(args.data_dir)
    now = time.time()
    day, sessions = plan_today(profiles, zone, now, args.today_sessions, int(history["seed"]))  # type: ignore[call-overload]
    started = time.monotonic()
    created = asyncio.run(load_today_http(args.monitor.rstrip("/"), store, profiles, tokens, it_token, sessions, now, int(history["seed"])))  # type: ignore[call-overload]
    over = sum(s.start_s + SESSION_MINUTES * 60 < now for s in sessions)
    print(f"load_history: today ({day}, {zone}): {len(sessions)} sessions, {created} new, {over} already over", file=sys.stderr, flush=True)
    return {"zone": zone, "day": day, "sessions": len(sessions), "created": created, "over": over, "seconds": round(time.monotonic() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from monitor.store.core import open_store

    summary_path = args.data_dir / SUMMARY_FILE
    store = open_store(args.data_dir)
    try:
        if args.today_only:
            try:
                history = json.loads(summary_path.read_text())
            except (OSError, ValueError):
                raise SystemExit(f"load_history: {args.data_dir} has no loaded history (no {SUMMARY_FILE}): load it first, without --today-only") from None
        zone = today_zone(args.tz, history.get("today") if args.today_only else None, time.time())
        if not args.today_only:
            history = load_history(args, store, zone)
        history["today"] = load_today(args, store, history, zone) if args.today_sessions else None
        summary_path.write_text(json.dumps(history, indent=2) + "\n")
    finally:
        store.close()
    print(json.dumps(history, indent=2))
    return 0 if history["samples_not_stored"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
