"""Where a live sample's cost goes, in one process without HTTP: the store's ``add_reports`` (the
ingest's write) and one pass of the risk service's live loop (``RiskService.track_live``), on
the SQLite store and, with ``--postgres``, a PostgreSQL server started as the scale benchmark
starts it. CPU time of this process (``time.process_time``, all threads) and wall time.

    .venv/bin/python -m benchmarks.scale_costs [--sessions 250] [--passes 5] [--postgres]

Prints one JSON object per store: per sample stored (``add_reports``, one batch of one, as a live
agent sends it) and per session per pass of the live loop (a live session is stepped every 2 s,
so the loop costs half of that per sample).
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
from sessionready.schema import ReportEnvelope, SpoolStatus


def measure(store, sessions: int, passes: int) -> dict[str, float]:  # noqa: ANN001 - a SQLite or PostgreSQL store
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

    def one_round() -> tuple[float, float]:
        nonlocal seq
        seq += 1
        cpu, wall = time.process_time(), time.perf_counter()
        for agent, session_id in ends:
            now = time.time()
            envelope = ReportEnvelope(report_id=f"{rng.getrandbits(128):032x}", seq=seq, kind="live", sample=live_sample(session_id, now, rng))
            store.add_reports(agent, [envelope], spool, now)
        return time.process_time() - cpu, time.perf_counter() - wall

    service = RiskService(store)
    one_round()
    service.track_live()  # both ends reported: every session goes live
    ingest_cpu = ingest_wall = risk_cpu = risk_wall = 0.0
    stepped = 0
    for _ in range(passes):
        cpu, wall = one_round()
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
        "add_reports_cpu_ms_per_sample": ingest_cpu / samples * 1000,
        "add_reports_wall_ms_per_sample": ingest_wall / samples * 1000,
        "live_pass_cpu_ms_per_session": risk_cpu / stepped * 1000 if stepped else float("nan"),
        "live_pass_wall_ms_per_session": risk_wall / stepped * 1000 if stepped else float("nan"),
        "stepped_per_pass": stepped / passes,
    }


def main() -> None:
    from monitor.store.core import open_store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=250)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="also on a PostgreSQL server started for it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sessionready-costs-") as directory:
        store = open_store(Path(directory))
        try:
            print(json.dumps({"store": "sqlite", **measure(store, args.sessions, args.passes)}))
        finally:
            store.close()
    if args.postgres:
        from benchmarks.scale_servers import start_postgres
        from monitor.store.postgres import open_postgres

        with start_postgres() as server:
            store = open_postgres(server.create_database("costs"))
            try:
                print(json.dumps({"store": "postgresql", **measure(store, args.sessions, args.passes)}))
            finally:
                store.close()


if __name__ == "__main__":
    main()
