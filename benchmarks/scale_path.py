"""The monitor's CPU per live report on the ingest path alone, at a chosen number of requests in
flight, for one or more checkouts of the code in turn (old against new).

A monitor (SQLite, from each checkout's own code) takes live reports (``benchmarks.scale_agents``'
body: a batch of one real live sample) from ``--concurrency`` clients, each sending its next
report as soon as the last is answered, ``--requests`` in all after a warm-up. No sessions exist,
so the risk service's live loop has nothing to step: this is HTTP, authentication, validation,
the group commit and the access log. With one request in flight every commit holds one request,
on any machine, however busy: CPU time per request is then comparable across checkouts even
when the latency is not. Prints, per checkout: monitor CPU (user + system, all threads) per
request and requests per commit (``sessionready_ingest_commit_requests``; absent before it).

    .venv/bin/python -m benchmarks.scale_path --tree /tmp/base --tree . --concurrency 1 --requests 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.processes import SESSIONREADY, get_text, start_server
from benchmarks.scale_agents import batch_body


def _tokens(tree: Path, data_dir: Path, count: int) -> list[str]:
    """Tokens made by the checkout's own store code (one process), the last one a metrics token."""
    code = (
        "import sys; from pathlib import Path; from monitor.store.core import open_store\n"
        f"store = open_store(Path({str(data_dir)!r}))\n"
        f"tokens = [store.create_token('client', f'c-{{n:05d}}')[1] for n in range({count})]\n"
        "tokens.append(store.create_token('metrics', 'bench-metrics')[1]); store.close(); print('\\n'.join(tokens))\n"
    )
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True, check=True)
    return result.stdout.split()


def _commit_stats(url: str, token: str) -> tuple[float, float] | None:
    for family in text_string_to_metric_families(get_text(f"{url}/metrics", token)):
        if family.name == "sessionready_ingest_commit_requests":
            values = {s.name: s.value for s in family.samples}
            return values["sessionready_ingest_commit_requests_sum"], values["sessionready_ingest_commit_requests_count"]
    return None


async def _post_all(url: str, tokens: list[str], requests: int, concurrency: int) -> float:
    """Send ``requests`` reports over ``concurrency`` clients, each one in flight; seconds taken."""
    remaining = iter(range(requests))
    started = time.perf_counter()

    async def client(index: int) -> None:
        rng = random.Random(index)
        headers = {"Authorization": f"Bearer {tokens[index]}", "Content-Type": "application/json"}
        seq = 0
        async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=1)) as session:
            for _ in remaining:
                seq += 1
                _, body = batch_body(f"s-{index:05d}", seq, time.time(), rng)
                async with session.post(f"{url}/api/v1/reports", data=body) as response:
                    answer = await response.read()
                    if response.status != 200 or json.loads(answer)["results"][0]["status"] != "stored":
                        raise RuntimeError(f"a report was not stored: {response.status} {answer[:200]!r}")

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return time.perf_counter() - started


def measure(tree: Path, concurrency: int, requests: int, warmup: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="sessionready-path-") as directory:
        data_dir = Path(directory) / "monitor"
        tokens = _tokens(tree, data_dir, concurrency)
        metrics_token, tokens = tokens[-1], tokens[:-1]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        command = [*SESSIONREADY, "monitor", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", "0"]
        with start_server("the monitor", command, Path(directory) / "monitor.log", env) as server:
            asyncio.run(_post_all(server.url, tokens, warmup, concurrency))
            process = psutil.Process(server.process.pid)
            cpu_before, commits_before = sum(process.cpu_times()[:2]), _commit_stats(server.url, metrics_token)
            wall = asyncio.run(_post_all(server.url, tokens, requests, concurrency))
            cpu, commits = sum(process.cpu_times()[:2]) - cpu_before, _commit_stats(server.url, metrics_token)
    per_commit = None
    if commits is not None and commits_before is not None and commits[1] > commits_before[1]:
        per_commit = (commits[0] - commits_before[0]) / (commits[1] - commits_before[1])
    return {"tree": str(tree), "concurrency": concurrency, "requests": requests, "cpu_ms_per_request": round(cpu / requests * 1000, 4),
            "requests_per_commit": None if per_commit is None else round(per_commit, 2), "requests_per_s": round(requests / wall, 1),
            "loadavg_1min": os.getloadavg()[0]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_path", description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, action="append", required=True, help="a checkout to run the monitor from (repeatable; run in turn)")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--reps", type=int, default=1, help="rounds over the checkouts, the order reversed every other round")
    args = parser.parse_args(argv)
    trees = [tree.resolve() for tree in args.tree]
    for rep in range(args.reps):
        for tree in trees if rep % 2 == 0 else reversed(trees):
            print(json.dumps(measure(tree, args.concurrency, args.requests, args.warmup)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
