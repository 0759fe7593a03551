"""PostgreSQL's samples before and after the weekly partitions (schema version 5 against 6,
monitor/store/partitions.py), on a throwaway server started as the tests start theirs
(tests/pg.py: no fsync, so flushes and vacuum are not in these numbers).

    .venv/bin/python -m benchmarks.samples_partitions [--rounds 3] [--rows 100000] [--durable]

Prints one JSON object: per round, the median wall time of a 50-sample ingest statement (the
store's own ``INSERT ... ON CONFLICT DO NOTHING RETURNING``) on each version and their ratio,
and the time to delete ``--rows`` expired samples spread over four weeks: version 5 by the
batches its retention ran (1,000 rows), version 6 by dropping the weeks and then deleting the ids
in ``sample_ids`` by the same batches. Rounds alternate the versions, so a busy machine slows both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

import psycopg

from monitor.store import partitions, postgres
from monitor.store.reports import _INSERT_COLUMNS
from tests.pg import PostgresServer, start_server

NOW = 1_800_000_000.0
BATCH = 1000
PER_STATEMENT = 50
WEEKS = [partitions.span_start(NOW) - (5 - k) * partitions.SPAN_S + 3600 for k in range(4)]  # inside four whole weeks


def _row(t: float) -> tuple[object, ...]:
    # The sample's JSON about as long as a live sample's (600 bytes).
    return (uuid.uuid4().hex, "agent-1", "c-1", "s-1", "live", 1, t, t, *([1.5] * 18), 1, None, json.dumps({"pad": "y" * 600}))


def _ingest(url: str, statements: int, start: float) -> list[float]:
    columns = ", ".join(_INSERT_COLUMNS)
    marks = ", ".join(["(" + ", ".join(["%s"] * len(_INSERT_COLUMNS)) + ")"] * PER_STATEMENT)
    times = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tokens (token_id, token_hash, role, participant_id, created_at) VALUES ('agent-1', 'h', 'client', 'c-1', 0) ON CONFLICT DO NOTHING"
        )
        for n in range(statements):
            values = [value for _ in range(PER_STATEMENT) for value in _row(start + n)]
            began = time.perf_counter()
            with conn.transaction():
                conn.execute(f"INSERT INTO samples ({columns}) VALUES {marks} ON CONFLICT DO NOTHING RETURNING report_id", values).fetchall()
            times.append(time.perf_counter() - began)
    return times


def _database(server: PostgresServer, name: str, version: int | None) -> str:
    server.admin(f'CREATE DATABASE "{name}"')
    url = server.url(name)
    postgres.upgrade(url, up_to=version)
    if version is None:
        with psycopg.connect(url, autocommit=True) as conn:
            for t in [NOW, *WEEKS]:
                with conn.transaction():
                    partitions.maintain(conn, t, None)
    return url


def _expire(url: str, version: int | None) -> tuple[float, float]:
    """(seconds dropping weeks, seconds deleting by batches) for everything before NOW - 5 days."""
    before = NOW - 5 * 86_400
    with psycopg.connect(url, autocommit=True) as conn:
        began = time.perf_counter()
        if version is None:
            with conn.transaction():
                partitions.maintain(conn, NOW, before)
        dropped = time.perf_counter()
        while True:
            with conn.transaction():
                if version is None:
                    rows = partitions.delete_rows(conn, before, BATCH)
                else:
                    rows = conn.execute(
                        "DELETE FROM samples WHERE rowid IN (SELECT rowid FROM samples WHERE received_at < %s LIMIT %s)", (before, BATCH)
                    ).rowcount
            if rows < BATCH:
                break
        return dropped - began, time.perf_counter() - dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--durable", action="store_true", help="keep fsync and synchronous commits")
    args = parser.parse_args()
    server = start_server(durable=args.durable, prefix="sr-bench-parts-")
    rounds = []
    try:
        for n in range(args.rounds):
            result: dict[str, object] = {}
            for label, version in (("v5", 5), ("v6", None)):
                url = _database(server, f"i{label}{n}", version)
                result[f"ingest_{label}_ms"] = round(statistics.median(_ingest(url, 300, NOW)[50:]) * 1000, 2)
                url = _database(server, f"r{label}{n}", version)
                for start in WEEKS:
                    _ingest(url, args.rows // len(WEEKS) // PER_STATEMENT, start)
                dropping, deleting = _expire(url, version)
                result[f"expire_{label}_s"] = {"drop": round(dropping, 3), "batches": round(deleting, 3)}
            result["ingest_ratio_v6_v5"] = round(result["ingest_v6_ms"] / result["ingest_v5_ms"], 2)  # type: ignore[operator]
            rounds.append(result)
    finally:
        server.stop()
    print(json.dumps({"rows": args.rows, "weeks": len(WEEKS), "durable": args.durable, "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
