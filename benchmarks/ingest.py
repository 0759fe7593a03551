"""The monitor's ingest rate: valid, unique check reports POSTed to /api/v1/checks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.core import BenchmarkError, Context, Section, median, spread, table
from benchmarks.processes import PYTHON, SESSIONREADY, Server, create_token, get_text, run_timed, start_minimal_endpoint, start_monitor
from sessionready.schema import CheckReport
from sessionready.typed import decode

CONCURRENCY = 16
MAX_SECONDS = 60.0  # per load-generator run; a run that hits it reports what it managed


@dataclass(frozen=True)
class LoadRun:
    checks_per_s: float
    p50_ms: float
    p99_ms: float
    created: int  # answers 201, warm-up included
    posts: int  # measured posts (warm-up excluded)
    failures: int  # measured posts not answered 201
    server_cpu_ms_per_post: float  # the server process's CPU (all threads) per post, warm-up included
    loadgen_cpu_share: float  # the load generator's CPU seconds per second while posting (1 = one core)


def _real_report(url: str, token: str, context: Context) -> dict[str, object]:
    """A report made by the product itself, so the posts are exactly what agents send."""
    timed = run_timed(
        [*SESSIONREADY, "check", "--monitor", url, "--token", token, "--json", "--no-throughput", "--udp-seconds", "1", "--no-submit"],
        context.env,
        timeout_s=60,
    )
    if timed.returncode not in (0, 1, 2):
        raise BenchmarkError(f"the template check could not run: {timed.stderr.strip()[-500:]}")
    report = json.loads(timed.stdout)
    report.pop("submitted")
    report.pop("submit_error")
    return report


def _load(server: Server, token: str, count: int, context: Context) -> LoadRun:
    process = psutil.Process(server.process.pid)
    cpu_before = sum(process.cpu_times()[:2])
    timed = run_timed(
        [
            PYTHON, "-m", "benchmarks.loadgen",
            "--url", f"{server.url}/api/v1/checks",
            "--token", token,
            "--template", str(context.workdir / "report.json"),
            "--count", str(count),
            "--concurrency", str(CONCURRENCY),
            "--max-seconds", str(MAX_SECONDS),
        ],
        context.env,
        timeout_s=MAX_SECONDS * 3,
    )
    if timed.returncode != 0:
        raise BenchmarkError(f"the load generator failed against {server.name}: {timed.stderr.strip()[-500:]}")
    # Includes the server's share of the warm-up, a few percent of the posts.
    server_cpu_s = sum(process.cpu_times()[:2]) - cpu_before
    result = json.loads(timed.stdout)
    created = result["statuses"].get("201", 0)
    if created == 0:
        raise BenchmarkError(f"{server.name} accepted none of the posts: {result}")
    return LoadRun(
        checks_per_s=result["checks_per_s"],
        p50_ms=result["latency_p50_ms"],
        p99_ms=result["latency_p99_ms"],
        created=created + result["warmup_statuses"].get("201", 0),
        posts=result["posts"],
        failures=result["posts"] - created,
        server_cpu_ms_per_post=server_cpu_s / (result["posts"] + sum(result["warmup_statuses"].values())) * 1000,
        loadgen_cpu_share=result["cpu_s"] / result["seconds"],
    )


def _cpu_ms_per_call(function: Callable[[], object], calls: int = 200, batches: int = 5) -> float:
    """Median over batches of the CPU time of one call, in ms (this process, one thread)."""
    per_call = []
    for _ in range(batches):
        started = time.process_time()
        for _ in range(calls):
            function()
        per_call.append((time.process_time() - started) / calls * 1000)
    return median(per_call)


def _ingest_counters(monitor: Server, metrics_token: str) -> dict[str, float]:
    """The monitor's own count of accepted checks and its handling-time histogram sum and count."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(get_text(f"{monitor.url}/metrics", metrics_token)):
        for sample in family.samples:
            if sample.name == "sessionready_ingest_checks_total" and sample.labels.get("result") == "accepted":
                values["accepted"] = sample.value
            elif sample.name in ("sessionready_ingest_duration_seconds_sum", "sessionready_ingest_duration_seconds_count"):
                values[sample.name.rsplit("_", 1)[1]] = sample.value
    return values


def ingest_rate(context: Context) -> Section:
    posts, rounds = (300, 1) if context.quick else (3000, 3)
    data_dir = context.workdir / "monitor"
    monitor_runs: list[LoadRun] = []
    minimal_runs: list[LoadRun] = []
    with start_monitor(data_dir, context.env) as monitor, start_minimal_endpoint(context.workdir, context.env) as minimal:
        client_token = create_token(data_dir, "client", "bench", context.env)
        metrics_token = create_token(data_dir, "metrics", "bench", context.env)
        (context.workdir / "report.json").write_text(json.dumps(_real_report(monitor.url, client_token, context)))
        before = _ingest_counters(monitor, metrics_token)
        for _ in range(rounds):
            # Alternate the targets, so that drift in the machine's load touches both alike.
            monitor_runs.append(_load(monitor, client_token, posts, context))
            minimal_runs.append(_load(minimal, "none", posts, context))
        after = _ingest_counters(monitor, metrics_token)

    # In this process, on the same report: the monitor's schema validation against the bare
    # JSON parse that is all the minimal endpoint does. Explains much of the CPU ratio above.
    body = (context.workdir / "report.json").read_text()
    parse_ms = _cpu_ms_per_call(lambda: json.loads(body))
    validate_ms = _cpu_ms_per_call(lambda: decode(CheckReport, json.loads(body)))

    created = sum(r.created for r in monitor_runs)
    accepted = after["accepted"] - before["accepted"]
    if accepted != created:
        raise BenchmarkError(f"the load generator saw {created} answers 201 but the monitor counted {accepted} accepted checks")
    handled = after["count"] - before["count"]
    server_mean_ms = (after["sum"] - before["sum"]) / handled * 1000 if handled else float("nan")
    rate_ratios = [m.checks_per_s / r.checks_per_s for m, r in zip(monitor_runs, minimal_runs)]
    p50_ratios = [m.p50_ms / r.p50_ms for m, r in zip(monitor_runs, minimal_runs)]
    cpu_ratios = [m.server_cpu_ms_per_post / r.server_cpu_ms_per_post for m, r in zip(monitor_runs, minimal_runs)]

    def row(name: str, runs: list[LoadRun]) -> list[object]:
        return [
            name,
            f"{len(runs)} × {posts}",
            spread([r.checks_per_s for r in runs], 0),
            spread([r.p50_ms for r in runs]),
            spread([r.p99_ms for r in runs]),
            spread([r.server_cpu_ms_per_post for r in runs]),
            spread([r.loadgen_cpu_share * 100 for r in runs], 0),
            sum(r.failures for r in runs),
        ]

    return Section(
        "Ingest rate",
        f"""A load generator (`benchmarks/loadgen.py`, aiohttp client, its own process) POSTs valid
check reports, each with a unique `check_id`, over {CONCURRENCY} concurrent keep-alive
connections: {posts} posts per round (after a 100-post warm-up), at most {MAX_SECONDS:g} s
per round, {rounds} round(s) alternating between two servers, each its own process:

- **monitor**: the real `sessionready monitor` (token check, strict schema validation,
  SQLite store in WAL mode, metrics, JSON access log).
- **minimal endpoint**: `benchmarks/minimal_endpoint.py`, an aiohttp app that only parses
  the same JSON and answers 201: the floor for aiohttp and JSON on this machine.

The report posted is a real one, made by `sessionready check` at the start of the run.

- **Checks/s**: answers 201 per second of the round, median (min–max) over rounds.
- **p50 / p99**: latency of one POST seen by the client, in ms (includes queueing
  behind the other {CONCURRENCY - 1} connections), median (min–max) over rounds.
- **Server CPU / post**: CPU time (user + system, all threads) of the server process per
  post, in ms, warm-up included: the cost of one check, less sensitive to the load
  generator than the rate.
- **Load gen. CPU**: the load generator's own CPU time while posting, in % of one core.
  Near 100 % it, not the server, sets the pace.
- **Not 201**: posts that failed or got another status (should be 0).

On a small machine the load generator and the server share the CPU cores: the absolute rates
are lower than a server would reach alone; the ratios are the numbers to compare.

{table(["Server", "Posts", "Checks/s", "p50 (ms)", "p99 (ms)", "Server CPU / post (ms)", "Load gen. CPU (%)", "Not 201"], [row("monitor", monitor_runs), row("minimal endpoint", minimal_runs)])}

- **Monitor ÷ minimal endpoint, checks/s**: {median(rate_ratios):.2f} (median of the per-round ratios;
  {", ".join(f"{r:.2f}" for r in rate_ratios)}).
- **Monitor ÷ minimal endpoint, p50 latency**: {median(p50_ratios):.2f}.
- **Monitor ÷ minimal endpoint, server CPU per post**: {median(cpu_ratios):.2f}.
- **Monitor's own handling time** (`sessionready_ingest_duration_seconds`, mean over the
  {int(handled)} posts of the run): {server_mean_ms:.2f} ms. Wall time inside the handler (read,
  validate, store), waits for the event loop and the store's thread under {CONCURRENCY}-way load
  included.
- **Parsing vs validating one report** (CPU in the benchmark's own process, median of 5 × 200):
  `json.loads` {parse_ms:.3f} ms; `json.loads` + `decode(CheckReport, …)`, the monitor's
  validation, {validate_ms:.3f} ms: {validate_ms / parse_ms:.0f} × the parse alone.
- The monitor's `sessionready_ingest_checks_total{{result="accepted"}}` rose by {int(accepted)},
  exactly the number of answers 201 the load generator counted.""",
    )
