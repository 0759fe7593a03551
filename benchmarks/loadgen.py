"""Load generator for the ingest benchmark: POST check reports over N concurrent connections.

Run as its own process so that it does not share an event loop (or a GIL) with the server:

    python -m benchmarks.loadgen --url URL/api/v1/checks --token T --template report.json \
        --count 3000 --concurrency 16 --max-seconds 60

Every body is the template with a fresh, unique ``check_id``; all bodies are encoded before the
clock starts. A short warm-up (not counted) opens the connections first. Stops after ``count``
posts or ``max-seconds``, whichever comes first, and prints one JSON object on stdout:
posts, statuses, errors, seconds, its own CPU seconds while posting (cpu_s), checks_per_s
(answers 201 per second) and the latency p50/p99 (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp


def make_bodies(template: dict[str, object], count: int) -> list[bytes]:
    bodies = []
    for _ in range(count):
        report = dict(template)
        report["check_id"] = uuid.uuid4().hex
        bodies.append(json.dumps(report).encode())
    return bodies


async def post_all(
    session: aiohttp.ClientSession, url: str, bodies: list[bytes], concurrency: int, max_seconds: float
) -> tuple[list[float], Counter[int], Counter[str], float]:
    """Latencies (seconds) of the posts that got an answer, statuses, errors, elapsed seconds."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    pending = iter(bodies)
    started = time.perf_counter()
    deadline = started + max_seconds

    async def worker() -> None:
        for body in pending:  # one shared iterator: every body is sent once
            if time.perf_counter() >= deadline:
                return
            sent = time.perf_counter()
            try:
                async with session.post(url, data=body) as response:
                    await response.read()
                    statuses[response.status] += 1
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                errors[type(error).__name__] += 1
                continue
            latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, errors, time.perf_counter() - started


async def run(url: str, token: str, template: dict[str, object], count: int, concurrency: int, max_seconds: float, warmup: int) -> dict[str, object]:
    warmup_bodies = make_bodies(template, warmup)
    bodies = make_bodies(template, count)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as session:
        _, warm_statuses, warm_errors, _ = await post_all(session, url, warmup_bodies, concurrency, max_seconds)
        cpu_before = time.process_time()
        latencies, statuses, errors, elapsed = await post_all(session, url, bodies, concurrency, max_seconds)
        cpu_s = time.process_time() - cpu_before
    ordered = sorted(latencies)
    quantiles = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) >= 2 else ordered * 99
    return {
        "url": url,
        "concurrency": concurrency,
        "posts": sum(statuses.values()) + sum(errors.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": dict(errors),
        "warmup_statuses": {str(k): v for k, v in sorted(warm_statuses.items())},
        "warmup_errors": dict(warm_errors),
        "seconds": elapsed,
        "cpu_s": cpu_s,
        "checks_per_s": statuses.get(201, 0) / elapsed if elapsed > 0 else 0.0,
        "latency_p50_ms": quantiles[49] * 1000 if ordered else None,
        "latency_p99_ms": quantiles[98] * 1000 if ordered else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="POST check reports to a monitor (or the minimal endpoint) and time them.")
    parser.add_argument("--url", required=True, help="full URL of the ingest endpoint")
    parser.add_argument("--token", default="none", help="bearer token (a client token for the monitor)")
    parser.add_argument("--template", required=True, type=Path, help="a real check report (JSON) to post copies of")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    template = json.loads(args.template.read_text())
    result = asyncio.run(run(args.url, args.token, template, args.count, args.concurrency, args.max_seconds, args.warmup))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
