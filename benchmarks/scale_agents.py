"""Simulated agents for the scale benchmark: one process runs many, each on its own schedule.

    python -m benchmarks.scale_agents --plan plan.json --out result.json

The plan (written by ``benchmarks.scale``) names the monitor, a wall-clock start shared by every
generator process, the warm-up and window lengths, and the agents: each with its own token, its
session, its phase within the 2 s interval and the loopback address it connects from (real
agents come from many addresses; the monitor caps connections per address).

Each agent does what the daemon does in live mode (docs/agent.md, docs/reports.md): every 2 s
a live sample (``sessionready.schema.Sample``, built and encoded by the product's own schema
code) in an envelope with a fresh ``report_id`` and the next ``seq``, POSTed to
``/api/v1/reports`` over its own keep-alive connection, one batch in flight at a time (a sample
whose predecessor is still unanswered waits for it, as the forwarder's lock makes it).

For every report due within the window the result records: the lag (due → sent: this process
falling behind), the latency (sent → answered), the HTTP status or error, and whether the
monitor acknowledged it as stored. It prints nothing; the JSON goes to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from sessionready import __version__
from sessionready.schema import (
    Agent,
    ReportEnvelope,
    Sample,
    SampleMachine,
    SampleNetwork,
    SpoolStatus,
    Throughput,
)
from sessionready.typed import encode

TIMEOUT_S = 10.0  # the agent's MonitorClient default


@dataclass(frozen=True)
class PlannedAgent:
    token: str
    session_id: str
    phase_s: float  # offset of its schedule within the interval
    source_ip: str


def live_sample(session_id: str, now: float, rng: random.Random) -> Sample:
    """A plausible live sample of a healthy home link (numbers vary a little, as real ones do)."""
    rtt = rng.uniform(18.0, 40.0)
    return Sample(
        schema_version=1,
        taken_at=datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
        interval_s=2.0,
        session_id=session_id,
        agent=Agent(version=__version__, os="linux"),
        network=SampleNetwork(
            packets_sent=20,
            packets_received=20,
            rtt_p50_ms=round(rtt, 3),
            rtt_p95_ms=round(rtt * 1.3, 3),
            jitter_up_ms=round(rng.uniform(0.5, 3.0), 3),
            jitter_down_ms=round(rng.uniform(0.5, 3.0), 3),
            loss_up=0.0,
            loss_down=0.0,
            mos=4.35,
        ),
        machine=SampleMachine(
            cpu_pct=round(rng.uniform(10, 40), 1),
            memory_available_pct=round(rng.uniform(30, 60), 1),
            battery_pct=None,
            battery_charging=None,
            link_type="wifi",
            wifi_signal_dbm=-55.0,
        ),
        traffic_mbps=Throughput(down=round(rng.uniform(1.0, 2.5), 3), up=round(rng.uniform(0.8, 2.0), 3)),
        room=None,
    )


def batch_body(session_id: str, seq: int, now: float, rng: random.Random) -> tuple[str, bytes]:
    """One live report as the forwarder sends it: a batch of one with the spool's counts."""
    report_id = secrets.token_hex(16)
    envelope = ReportEnvelope(report_id=report_id, seq=seq, kind="live", sample=live_sample(session_id, now, rng))
    body = {"spool": encode(SpoolStatus(pending=1, dropped_background=0, rejected=0)), "reports": [encode(envelope)]}
    return report_id, json.dumps(body).encode()


@dataclass
class Recorder:
    """Results of the reports due within the window (due times on this process's monotonic clock)."""

    window_start: float
    window_end: float

    def __post_init__(self) -> None:
        self.rows: list[list[object]] = []  # [lag_ms, latency_ms | None, status, stored, report_id]

    def counts(self, due: float) -> bool:
        return self.window_start <= due < self.window_end


async def run_agent(index: int, agent: PlannedAgent, url: str, start: float, interval_s: float, ticks: int, recorder: Recorder) -> None:
    rng = random.Random(index)
    connector = aiohttp.TCPConnector(limit=1, local_addr=(agent.source_ip, 0))
    headers = {"Authorization": f"Bearer {agent.token}", "Content-Type": "application/json", "User-Agent": "sessionready-agent"}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as session:
        for seq in range(1, ticks + 1):
            due = start + agent.phase_s + (seq - 1) * interval_s
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            report_id, body = batch_body(agent.session_id, seq, time.time(), rng)
            sent = time.monotonic()
            status: str
            stored = False
            latency_ms: float | None = None
            try:
                async with session.post(url, data=body) as response:
                    answer = await response.read()
                    latency_ms = (time.monotonic() - sent) * 1000
                    status = str(response.status)
                    if response.status == 200:
                        results = json.loads(answer).get("results", [])
                        stored = len(results) == 1 and results[0].get("report_id") == report_id and results[0].get("status") == "stored"
            except (TimeoutError, aiohttp.ClientError, ValueError) as error:
                status = type(error).__name__
            if recorder.counts(due):
                recorder.rows.append([round((sent - due) * 1000, 3), None if latency_ms is None else round(latency_ms, 3), status, stored, report_id])


async def run(plan: dict) -> dict[str, object]:
    agents = [PlannedAgent(**a) for a in plan["agents"]]
    interval_s = float(plan["interval_s"])
    warmup_s, window_s = float(plan["warmup_s"]), float(plan["window_s"])
    # The wall-clock start is shared by every generator process; intervals run on the monotonic clock.
    start = time.monotonic() + (float(plan["start_at"]) - time.time())
    ticks = int((warmup_s + window_s) / interval_s) + 1
    recorder = Recorder(start + warmup_s, start + warmup_s + window_s)
    cpu: dict[str, float] = {}

    async def meter() -> None:  # this process's own CPU over exactly the window
        await asyncio.sleep(max(0.0, recorder.window_start - time.monotonic()))
        cpu["start"] = time.process_time()
        await asyncio.sleep(max(0.0, recorder.window_end - time.monotonic()))
        cpu["end"] = time.process_time()

    url = plan["url"].rstrip("/") + "/api/v1/reports"
    await asyncio.gather(meter(), *(run_agent(i, a, url, start, interval_s, ticks, recorder) for i, a in enumerate(agents)))
    return {"agents": len(agents), "window_s": window_s, "cpu_window_s": cpu["end"] - cpu["start"], "rows": recorder.rows}


def main() -> None:
    parser = argparse.ArgumentParser(description="Run simulated live agents against a monitor (benchmarks.scale).")
    parser.add_argument("--plan", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(json.loads(args.plan.read_text())))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
