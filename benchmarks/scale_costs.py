"""Where a live sample's cost goes, in one process without HTTP: the store's write of ingest
(``add_report_batches``) and one pass of the risk service's live loop (``RiskService.track_live``),
on the SQLite store and, with ``--postgres``, a PostgreSQL server started as the scale benchmark
starts it. CPU time of this process (``time.process_time``, all threads) and wall time.

    .venv/bin/python -m benchmarks.scale_costs [--sessions 250] [--passes 5] [--group 1] [--postgres]

Prints one JSON object per store: per sample stored, ``--group`` agents' requests of one live
sample each to a transaction (as the monitor's group commit writes the requests that arrive
while a commit is under way, monitor/report_writer.py; 1 is one commit per report, what the
monitor did before it), and per session per pass of the live loop (a live session is stepped
every 2 s, so the loop costs half of that per sample). Each pass writes one round of samples,
every agent's next one, then runs the loop once.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from benchmarks.scale_agents import live_sample
from monitor.risk.service import RiskService
from monitor.store.reports import ReportBatch
from sessionready.schema import ReportEnvelope, SpoolStatus


def measure(store, sessions: int, passes: int, group: int = 1) -> dict[str, float]:  # a SQLite or PostgreSQL store
    rng = random.Random(1)
    start = int(time.time()) - 60
    ends = []
    for index in range(sessions):
        therapist, _ = store.create_token("therapist", f"t-{index:05d}")
        client, _ = store.create_token("client", f"c-{index:05d}")
        store.create_session(f"s-{index:05d}", therapist.participant_id, client.participant_id, start, 3600, assign=True)
        ends += [(therapist, f"s-{index:05d}"), (client, f"s-{index:05d}")]
    spool = SpoolStatus(pending=1, dropped_background=0, rejected=0)
    seq = 0

    def one_round(group: int) -> tuple[float, float]:
        """Every agent's next live sample, ``group`` agents' requests to a transaction; CPU and wall
        seconds (building the samples included, as in the first measurements of docs/benchmarks.md)."""
        nonlocal seq
        seq += 1
        cpu, wall = time.process_time(), time.perf_counter()
        batches = []
        for agent, session_id in ends:
            now = time.time()
            envelope = ReportEnvelope(report_id=f"{rng.getrandbits(128):032x}", seq=seq, kind="live", sample=live_sample(session_id, now, rng))
            batches.append(ReportBatch(agent, [envelope], spool, now))
            if len(batches) == group:
                store.add_report_batches(batches)
                batches = []
        if batches:
            store.add_report_batches(batches)
        return time.process_time() - cpu, time.perf_counter() - wall

    service = RiskService(store)
    one_round(group)
    service.track_live()  # both ends reported: every session goes live
    ingest_cpu = ingest_wall = risk_cpu = risk_wall = 0.0
    stepped = 0
    for _ in range(passes):
        cpu, wall = one_round(group)
        ingest_cpu += cpu
        ingest_wall += wall
        cpu, wall = time.process_time(), time.perf_counter()
        stepped += service.track_live()
        risk_cpu += time.process_time() - cpu
        risk_wall += time.perf_counter() - wall
    samples = passes * len(ends)
    return {
        "sessions": sessions,
        "passes": passes,
        "group": group,
        "ingest_cpu_ms_per_sample": ingest_cpu / samples * 1000,
        "ingest_wall_ms_per_sample": ingest_wall / samples * 1000,
        "live_pass_cpu_ms_per_session": risk_cpu / stepped * 1000 if stepped else float("nan"),
        "live_pass_wall_ms_per_session": risk_wall / stepped * 1000 if stepped else float("nan"),
        "stepped_per_pass": stepped / passes,
    }


def main() -> None:
    from monitor.store.core import open_store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=250)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--group", type=int, default=1, help="agents' requests (one live sample each) per transaction")
    parser.add_argument("--postgres", action="store_true", help="also on a PostgreSQL server started for it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sessionready-costs-") as directory:
        store = open_store(Path(directory))
        try:
            print(json.dumps({"store": "sqlite", **measure(store, args.sessions, args.passes, args.group)}))
        finally:
            store.close()
    if args.postgres:
        from benchmarks.scale_servers import start_postgres
        from monitor.store.postgres import open_postgres

        with start_postgres() as server:
            store = open_postgres(server.create_database("costs"))
            try:
                print(json.dumps({"store": "postgresql", **measure(store, args.sessions, args.passes, args.group)}))
            finally:
                store.close()


if __name__ == "__main__":
    main()
