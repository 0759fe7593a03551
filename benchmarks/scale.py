"""How many live agents one machine holds (issue 16, "Load proof").

For each configuration — one monitor on SQLite, one on PostgreSQL, two on PostgreSQL behind
HAProxy — the number of live agents is stepped up (pairs: a therapist and a client in one live
session) until a step does not hold, then bisected. A step holds when, over a sustained window
after a warm-up:

- p99 report latency ≤ 250 ms (sent → answered; a report never answered counts as infinitely
  late), and the generators kept their schedules (p99 lag ≤ 250 ms, else the load offered was
  less than the step claims);
- ≥ 99 % of the reports due were delivered: acknowledged as ``stored`` by the monitor *and*
  found in the store afterwards (rows counted by report id);
- every live session's risk was stepped every 2 s: on every monitor, every cycle of the risk
  service's live loop within 2.25 s (``sessionready_risk_live_cycle_seconds``), every live session
  stepped in every cycle (``sessionready_risk_live_sessions_stepped_total``), and all the
  step's sessions live (``sessionready_sessions``).

Each step starts from an empty store and new processes. The simulated agents
(``benchmarks.scale_agents``) run in processes of their own; their CPU is measured and shown.
The reference is ``benchmarks.scale_endpoint`` (a bare aiohttp app on the same route) under the
same generator in the same run.

    .venv/bin/python -m benchmarks.scale --config sqlite --raw raw.jsonl --output section.md
    .venv/bin/python -m benchmarks.scale --from-raw raw.jsonl --output section.md
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import psutil
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.core import BenchmarkError, Context, Section, table
from benchmarks.processes import PYTHON, SESSIONREADY, Server, get_text, start_server
from benchmarks.scale_servers import Postgres, start_haproxy, start_postgres
from sessionready.typed import rfc3339

CONFIGS = {
    "sqlite": "1 monitor + SQLite",
    "postgresql": "1 monitor + PostgreSQL",
    "haproxy": "2 monitors + PostgreSQL behind HAProxy",
}
REFERENCE = "reference"
STEPS = (250, 500, 1000, 1500, 2000, 3000)
QUICK_STEPS = (20,)
WARMUP_S = 10.0  # sessions go live (both ends seen within 10 s), connections open, caches fill
WINDOW_S = 30.0
INTERVAL_S = 2.0  # the agent's live_interval_s default
P99_LIMIT_MS = 250.0
LAG_LIMIT_MS = 250.0
DELIVERED_MIN = 0.99
CYCLE_LIMIT_S = 2.25  # a bucket of sessionready_risk_live_cycle_seconds: 2 s plus a loaded machine's timer slack
STEPPED_MIN = 0.99
AGENTS_PER_GENERATOR = 750
AGENTS_PER_ADDRESS = 100  # below the monitor's default 256 connections per address
START_DELAY_S = 6.0  # generator processes start and import before the shared start
REFERENCE_AGENTS = 1000
BISECT_ROUNDS = 2
GRANULARITY = 50


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cadence:
    """One monitor's risk live loop over the window."""

    cycles: int
    longest_cycle_s: float | None  # the smallest bucket bound holding every cycle; inf past the last
    stepped: int
    live_sessions: int  # sessionready_sessions{state="live"} at the end of the window
    pass_mean_s: float | None = None  # mean wall time of one pass over the live sessions
    # sessionready_leader{job="risk"} at the window's end: only the lease holder runs the risk
    # service (monitor/leader.py); None from a monitor without leases (each ran it).
    leader: bool | None = None
    # Passes that ended in the window (sessionready_risk_live_pass_seconds_count): the count the
    # stepped counter goes with. ``cycles`` counts starts: the window's edges can split one pass.
    passes: int | None = None
    # Ingest's group commit (monitor/report_writer.py): report requests ÷ store commits over the
    # window (``sessionready_ingest_commit_requests``); None from a monitor without it.
    requests_per_commit: float | None = None

    def passes_counted(self) -> int:
        return self.passes if self.passes is not None else max(0, self.cycles - 1)


@dataclass(frozen=True)
class StepResult:
    config: str
    agents: int
    window_s: float
    due: int  # reports due within the window: agents × window ÷ interval
    answered: int  # HTTP 200
    acknowledged: int  # answered "stored"
    in_store: int  # acknowledged and found in the store
    p50_ms: float
    p99_ms: float  # over every due report; a report never answered is infinitely late
    lag_p99_ms: float
    statuses: dict[str, int]
    cadence: tuple[Cadence, ...]  # one per monitor; empty for the reference
    monitor_cpu_s: float  # all monitors (or the reference endpoint), over the window
    loadgen_cpu_s: tuple[float, ...]  # per generator process, over the window
    postgres_cpu_s: float | None = None
    haproxy_cpu_s: float | None = None
    machine_busy_cores: float | None = None  # the whole machine, over the window (2 = both cores busy)
    started_at: str = ""
    stopped: str = ""  # why the step could not run, if it could not

    @property
    def sessions(self) -> int:
        return self.agents // 2

    @property
    def delivered_ratio(self) -> float:
        return self.in_store / self.due if self.due else 0.0

    @property
    def monitor_cpu_ms_per_sample(self) -> float | None:
        stored = self.in_store if self.config != REFERENCE else self.acknowledged
        return self.monitor_cpu_s / stored * 1000 if stored else None

    @property
    def loadgen_cores(self) -> float:
        return sum(self.loadgen_cpu_s) / self.window_s

    def failures(self) -> list[str]:
        """Why the step did not hold; empty when it held."""
        if self.stopped:
            return [self.stopped]
        why = []
        if not self.p99_ms <= P99_LIMIT_MS:
            why.append(f"p99 {fmt_ms(self.p99_ms)} ms > {P99_LIMIT_MS:g}")
        if not self.lag_p99_ms <= LAG_LIMIT_MS:
            why.append(f"generator lag p99 {fmt_ms(self.lag_p99_ms)} ms > {LAG_LIMIT_MS:g}")
        if self.delivered_ratio < DELIVERED_MIN:
            why.append(f"delivered {self.delivered_ratio * 100:.1f} % < {DELIVERED_MIN * 100:g}")
        if self.config != REFERENCE:
            if not any(c.leader is not False for c in self.cadence):
                why.append("no monitor held the risk service's lease")
            for index, c in enumerate(self.cadence, 1):
                if c.leader is False:
                    continue  # a standby: the lease holder steps every session
                who = f"monitor {index}: " if len(self.cadence) > 1 else ""
                if c.cycles == 0 or c.longest_cycle_s is None or c.longest_cycle_s > CYCLE_LIMIT_S:
                    why.append(f"{who}risk cycle up to {fmt_s(c.longest_cycle_s)} s")
                elif c.cycles < self.window_s / INTERVAL_S - 1:
                    # A pass still running at the window's end is in no cycle's bucket yet.
                    why.append(f"{who}{c.cycles} risk cycles in {self.window_s:g} s")
                if c.passes_counted() and c.stepped < STEPPED_MIN * self.sessions * c.passes_counted():
                    why.append(f"{who}{c.stepped / c.passes_counted():.0f} of {self.sessions} sessions stepped per pass")
                if c.live_sessions < self.sessions:
                    why.append(f"{who}{c.live_sessions} of {self.sessions} sessions live")
        return why

    @property
    def held(self) -> bool:
        return not self.failures()


def fmt_ms(value: float | None) -> str:
    if value is None or math.isinf(value):
        return "∞"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def fmt_s(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"> {max(b for b in CYCLE_BUCKETS):g}" if math.isinf(value) else f"{value:g}"


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of values; inf entries stay inf."""
    if not values:
        return math.inf
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


CYCLE_BUCKETS = (1.0, 2.05, 2.1, 2.25, 2.5, 3.0, 4.0, 6.0, 10.0, 30.0)  # monitor.risk.service.LIVE_CYCLE_BUCKETS


def longest_cycle(buckets_before: dict[float, float], buckets_after: dict[float, float]) -> tuple[int, float | None]:
    """Cycles in the window and the smallest bucket bound that holds all of them (inf: past the
    last finite bound; None: no cycle at all)."""
    count = int(buckets_after.get(math.inf, 0) - buckets_before.get(math.inf, 0))
    if count == 0:
        return 0, None
    for bound in sorted(buckets_after):
        if buckets_after[bound] - buckets_before.get(bound, 0) >= count:
            return count, bound
    return count, math.inf


def summarise(
    config: str,
    agents: int,
    window_s: float,
    generator_results: Iterable[dict],
    found_in_store: Callable[[list[str]], int],
    cadence: tuple[Cadence, ...],
    monitor_cpu_s: float,
    **extra: object,
) -> StepResult:
    """A step's numbers from the generators' rows (``[lag_ms, latency_ms|None, status, stored, id]``)."""
    latencies: list[float] = []
    lags: list[float] = []
    statuses: Counter[str] = Counter()
    acknowledged: list[str] = []
    cpu: list[float] = []
    for result in generator_results:
        cpu.append(result["cpu_window_s"])
        for lag_ms, latency_ms, status, stored, report_id in result["rows"]:
            lags.append(lag_ms)
            statuses[status] += 1
            latencies.append(latency_ms if latency_ms is not None and status == "200" else math.inf)
            if stored:
                acknowledged.append(report_id)
    due = int(agents * round(window_s / INTERVAL_S))
    # A due report with no row at all (its generator died) is as late as one never answered.
    latencies += [math.inf] * max(0, due - len(latencies))
    return StepResult(
        config=config,
        agents=agents,
        window_s=window_s,
        due=due,
        answered=statuses.get("200", 0),
        acknowledged=len(acknowledged),
        in_store=found_in_store(acknowledged) if acknowledged else 0,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        lag_p99_ms=percentile(lags, 99),
        statuses=dict(statuses),
        cadence=cadence,
        monitor_cpu_s=monitor_cpu_s,
        loadgen_cpu_s=tuple(cpu),
        **extra,  # type: ignore[arg-type]
    )


# --- the search -------------------------------------------------------------------------------


def search(
    steps: Sequence[int],
    try_step: Callable[[int], StepResult],
    bisect_rounds: int = BISECT_ROUNDS,
    granularity: int = GRANULARITY,
    budget_s: float = math.inf,
    clock: Callable[[], float] = time.monotonic,
) -> list[StepResult]:
    """Step up until a step fails, then bisect between the last that held and the first that
    failed ``bisect_rounds`` times (to multiples of ``granularity``). No new step starts once
    ``budget_s`` has passed. Returns every step tried, in order."""
    started = clock()
    results: list[StepResult] = []
    held, failed = 0, None
    for agents in steps:
        if clock() - started > budget_s:
            return results
        result = try_step(agents)
        results.append(result)
        if result.held:
            held = agents
        else:
            failed = agents
            break
    for _ in range(bisect_rounds):
        if failed is None or clock() - started > budget_s:
            break
        middle = round((held + failed) / 2 / granularity) * granularity
        if middle <= held or middle >= failed:
            break
        result = try_step(middle)
        results.append(result)
        if result.held:
            held = middle
        else:
            failed = middle
    return results


def largest_held(results: Sequence[StepResult]) -> StepResult | None:
    """The largest step that held below the smallest that failed (a noisy machine can let a
    larger step pass after a smaller one failed; that one is not counted)."""
    failed = min((r.agents for r in results if not r.held), default=math.inf)
    held = [r for r in results if r.held and r.agents < failed]
    return max(held, key=lambda r: r.agents, default=None)


# --- one step: real processes -----------------------------------------------------------------


def _metrics(url: str, token: str) -> dict[str, object]:
    buckets: dict[float, float] = {}
    values: dict[str, object] = {
        "buckets": buckets, "stepped": 0.0, "live": 0.0, "pass_sum": 0.0, "pass_count": 0.0, "leader": None, "commit_sum": None, "commit_count": None,
    }  # fmt: skip
    for family in text_string_to_metric_families(get_text(f"{url}/metrics", token)):
        for sample in family.samples:
            if sample.name == "sessionready_risk_live_cycle_seconds_bucket":
                buckets[float(sample.labels["le"])] = sample.value
            elif sample.name == "sessionready_leader" and sample.labels.get("job") == "risk":
                values["leader"] = sample.value == 1
            elif sample.name == "sessionready_risk_live_pass_seconds_sum":
                values["pass_sum"] = sample.value
            elif sample.name == "sessionready_risk_live_pass_seconds_count":
                values["pass_count"] = sample.value
            elif sample.name == "sessionready_ingest_commit_requests_sum":
                values["commit_sum"] = sample.value
            elif sample.name == "sessionready_ingest_commit_requests_count":
                values["commit_count"] = sample.value
            elif sample.name == "sessionready_risk_live_sessions_stepped_total":
                values["stepped"] = sample.value
            elif sample.name == "sessionready_sessions" and sample.labels.get("state") == "live":
                values["live"] = float(values["live"]) + sample.value  # type: ignore[arg-type]
    return values


def _cadence_of(before: dict, after: dict) -> Cadence:
    passes = after["pass_count"] - before["pass_count"]
    commits = None if after.get("commit_count") is None else after["commit_count"] - (before.get("commit_count") or 0.0)
    requests = None if after.get("commit_sum") is None else after["commit_sum"] - (before.get("commit_sum") or 0.0)
    return Cadence(
        *longest_cycle(before["buckets"], after["buckets"]),
        stepped=int(after["stepped"] - before["stepped"]),
        live_sessions=int(after["live"]),
        pass_mean_s=(after["pass_sum"] - before["pass_sum"]) / passes if passes else None,
        leader=after["leader"],
        passes=int(passes),
        requests_per_commit=requests / commits if commits and requests is not None else None,
    )


def _cpu_s(processes: Iterable[psutil.Process]) -> dict[int, float]:
    seen = {}
    for process in processes:
        try:
            times = process.cpu_times()
            seen[process.pid] = times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return seen


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    # A process that appeared in the window (a new PostgreSQL backend) counts from zero.
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def _machine_busy_s() -> float:
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + times.irq + times.softirq + getattr(times, "steal", 0.0)


def _found_sqlite(path: Path) -> Callable[[list[str]], int]:
    def count(ids: list[str]) -> int:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            found = 0
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                found += db.execute(f"SELECT count(*) FROM samples WHERE report_id IN ({marks})", chunk).fetchone()[0]
            return found

    return count


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _found_postgres(url: str) -> Callable[[list[str]], int]:
    def count(ids: list[str]) -> int:
        import psycopg

        with psycopg.connect(url) as conn:
            return conn.execute("SELECT count(*) FROM samples WHERE report_id = ANY(%s)", (ids,)).fetchone()[0]

    return count


def _write_monitor_config(path: Path, data_dir: Path, store_url: str, behind_proxy: bool) -> None:
    lines = ["[monitor]", f'data_dir = "{data_dir}"', f'store_url = "{store_url}"']
    if behind_proxy:
        lines.append("max_connections_per_address = 0  # every connection is the proxy's (docs/deployment.md)")
    path.write_text("\n".join(lines) + "\n")


def _tokens(config_path: Path, sessions: int) -> tuple[str, str, list[tuple[str, str, str]]]:
    """An admin and a metrics token, and (token, participant, role) for both ends of each session.

    Made with the store's own ``create_token``, the function behind ``sessionready monitor token
    create``: one process for thousands of tokens instead of one process each."""
    from monitor.config import load_config
    from monitor.store.core import open_store_from_config

    store = open_store_from_config(load_config(config_path))
    try:
        _, admin = store.create_token("admin", "bench-admin")
        _, metrics = store.create_token("metrics", "bench-metrics")
        ends = []
        for index in range(sessions):
            for role, prefix in (("therapist", "t"), ("client", "c")):
                _, token = store.create_token(role, f"{prefix}-{index:05d}")
                ends.append((token, f"{prefix}-{index:05d}", role))
        return admin, metrics, ends
    finally:
        store.close()


async def _create_sessions(url: str, admin: str, sessions: int) -> None:
    start = rfc3339(time.time() - 60)  # under way: the agents' live samples make it live
    headers = {"Authorization": f"Bearer {admin}"}
    queue = iter(range(sessions))

    async def worker(client: aiohttp.ClientSession) -> None:
        for index in queue:
            body = {"session_id": f"s-{index:05d}", "therapist_id": f"t-{index:05d}", "client_id": f"c-{index:05d}", "start": start, "planned_duration_s": 3600}
            async with client.post(f"{url}/api/v1/sessions", json=body) as response:
                if response.status not in (200, 201):
                    raise BenchmarkError(f"creating session s-{index:05d} answered {response.status}: {(await response.text())[:200]}")

    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as client:
        await asyncio.gather(*(worker(client) for _ in range(8)))


def plans(url: str, ends: Sequence[tuple[str, str]], start_at: float, warmup_s: float, window_s: float) -> list[dict]:
    """Split the agents over generator processes. ``ends``: (token, session id) per agent. Phases
    are spread evenly over the interval; each process gets every n-th agent, so each carries
    phases from the whole interval; addresses: AGENTS_PER_ADDRESS agents per loopback address."""
    count = len(ends)
    processes = max(1, math.ceil(count / AGENTS_PER_GENERATOR))
    agents: list[list[dict]] = [[] for _ in range(processes)]
    for index, (token, session_id) in enumerate(ends):
        address = index // AGENTS_PER_ADDRESS
        agents[index % processes].append(
            {
                "token": token,
                "session_id": session_id,
                "phase_s": round(index * INTERVAL_S / count, 6),
                "source_ip": f"127.1.{address // 250}.{address % 250 + 1}",
            }
        )
    return [{"url": url, "start_at": start_at, "warmup_s": warmup_s, "window_s": window_s, "interval_s": INTERVAL_S, "agents": a} for a in agents]


def _run_generators(step_dir: Path, plan_list: list[dict], env: dict[str, str], groups: dict[str, Callable[[], list[psutil.Process]]],
                    snapshot: Callable[[], object]) -> tuple[list[dict], dict[str, float], tuple[object, object], float]:  # fmt: skip
    """Start the generators, read the CPU of each group of processes (and ``snapshot``) at the
    window's edges, wait for them. A group is listed anew at each edge (PostgreSQL's backends)."""
    generators = []
    try:
        for index, plan in enumerate(plan_list):
            plan_path, out_path = step_dir / f"plan{index}.json", step_dir / f"result{index}.json"
            plan_path.write_text(json.dumps(plan))
            log = (step_dir / f"generator{index}.log").open("w")
            generators.append((subprocess.Popen([PYTHON, "-m", "benchmarks.scale_agents", "--plan", str(plan_path), "--out", str(out_path)], env=env, stderr=log), out_path))
            log.close()
        start_at, warmup_s, window_s = plan_list[0]["start_at"], plan_list[0]["warmup_s"], plan_list[0]["window_s"]
        time.sleep(max(0.0, start_at + warmup_s - time.time()))
        before = {name: _cpu_s(processes()) for name, processes in groups.items()}
        machine_before = _machine_busy_s()
        first = snapshot()
        time.sleep(max(0.0, start_at + warmup_s + window_s - time.time()))
        after = {name: _cpu_s(processes()) for name, processes in groups.items()}
        machine_after = _machine_busy_s()
        second = snapshot()
        results = []
        for process, out_path in generators:
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                raise BenchmarkError("a load generator did not finish within 60 s of the window's end") from None
            if code != 0 or not out_path.exists():
                raise BenchmarkError(f"a load generator failed: {(step_dir / 'generator0.log').read_text()[-500:]}")
            results.append(json.loads(out_path.read_text()))
        cpu = {name: _cpu_delta(before[name], after[name]) for name in groups}
        return results, cpu, (first, second), (machine_after - machine_before) / window_s
    finally:
        for process, _ in generators:
            if process.poll() is None:
                process.kill()
                process.wait()


_DATABASES = itertools.count(1)


def run_step(config: str, agents: int, workdir: Path, env: dict[str, str], postgres: Postgres | None, warmup_s: float = WARMUP_S,
             window_s: float = WINDOW_S, start_delay_s: float = START_DELAY_S) -> StepResult:  # fmt: skip
    """One step: a new store, the monitors (and HAProxy), tokens and live sessions, the agents."""
    if agents % 2:
        raise ValueError("agents come in pairs (a therapist and a client per session)")
    started_at = datetime.now(UTC).strftime("%H:%M:%S")
    step_dir = workdir / f"{config}-{agents}"
    step_dir.mkdir(parents=True)
    if config == REFERENCE:
        return _reference_step(agents, step_dir, env, warmup_s, window_s, start_delay_s, started_at)
    database = f"scale_{os.getpid()}_{next(_DATABASES)}"
    store_url = postgres.create_database(database) if config != "sqlite" and postgres is not None else ""
    if config != "sqlite" and postgres is None:
        raise BenchmarkError(f"configuration {config} needs PostgreSQL")
    config_path = step_dir / "monitor.toml"
    _write_monitor_config(config_path, step_dir / "monitor", store_url, behind_proxy=config == "haproxy")
    servers: list[Server] = []
    proxy = None
    try:
        sessions = agents // 2
        admin, metrics_token, tokens = _tokens(config_path, sessions)
        for index in range(2 if config == "haproxy" else 1):
            command = [*SESSIONREADY, "monitor", "--config", str(config_path), "--host", "127.0.0.1", "--port", "0"]
            servers.append(start_server(f"monitor {index + 1}", command, step_dir / f"monitor{index + 1}.log", env))
        if config == "haproxy":
            proxy = start_haproxy(step_dir, [s.url for s in servers])
        url = proxy.url if proxy else servers[0].url
        asyncio.run(_create_sessions(url, admin, sessions))
        ends = [(token, f"s-{int(participant.split('-')[1]):05d}") for token, participant, _ in tokens]
        plan_list = plans(url, ends, time.time() + start_delay_s, warmup_s, window_s)
        monitors = [psutil.Process(s.process.pid) for s in servers]
        groups: dict[str, Callable[[], list[psutil.Process]]] = {"monitor": lambda: monitors}
        if postgres is not None and config != "sqlite":
            groups["postgres"] = postgres.processes
        if proxy is not None:
            haproxy = [psutil.Process(proxy.process.pid)]
            groups["haproxy"] = lambda: haproxy
        results, cpu, (first, second), busy = _run_generators(
            step_dir, plan_list, env, groups, lambda: [_metrics(s.url, metrics_token) for s in servers]
        )
        cadence = tuple(_cadence_of(a, b) for a, b in zip(first, second))  # type: ignore[call-overload]
        found = _found_postgres(store_url) if store_url else _found_sqlite(step_dir / "monitor" / "sessionready.sqlite3")
        return summarise(
            config, agents, window_s, results, found, cadence, cpu["monitor"],
            postgres_cpu_s=cpu.get("postgres"), haproxy_cpu_s=cpu.get("haproxy"), machine_busy_cores=busy, started_at=started_at,
        )  # fmt: skip
    finally:
        if proxy is not None:
            proxy.stop()
        for server in servers:
            server.stop()
        if store_url and postgres is not None:
            postgres.drop_database(database)


def _reference_step(agents: int, step_dir: Path, env: dict[str, str], warmup_s: float, window_s: float, start_delay_s: float, started_at: str) -> StepResult:
    command = [PYTHON, "-m", "benchmarks.scale_endpoint", "--host", "127.0.0.1", "--port", "0"]
    with start_server("the reference endpoint", command, step_dir / "endpoint.log", env) as server:
        ends = [("none", f"s-{index // 2:05d}") for index in range(agents)]
        plan_list = plans(server.url, ends, time.time() + start_delay_s, warmup_s, window_s)
        endpoint = [psutil.Process(server.process.pid)]
        results, cpu, _, busy = _run_generators(step_dir, plan_list, env, {"monitor": lambda: endpoint}, lambda: None)
    return summarise(REFERENCE, agents, window_s, results, lambda ids: len(ids), (), cpu["monitor"], machine_busy_cores=busy, started_at=started_at)


# --- the section ------------------------------------------------------------------------------


def _pct(cpu_s: float | None, window_s: float) -> str:
    return "" if cpu_s is None else f"{cpu_s / window_s * 100:.0f}"


def _cadence(step: StepResult) -> str:
    if not step.cadence:
        return ""
    return "; ".join(
        ("standby (not the lease holder): " if c.leader is False else "lease holder: " if c.leader and len(step.cadence) > 1 else "")
        + f"{c.cycles} cycles ≤ {fmt_s(c.longest_cycle_s)} s, {c.stepped / c.passes_counted() if c.passes_counted() else 0:.0f}/{step.sessions} stepped, {c.live_sessions} live"
        + (f", pass {c.pass_mean_s:.2f} s" if c.pass_mean_s is not None else "")
        + (f", {c.requests_per_commit:.1f} requests a commit" if c.requests_per_commit is not None else "")
        for c in step.cadence
    )


def step_rows(steps: Sequence[StepResult]) -> list[list[object]]:
    rows = []
    for s in steps:
        cpu_ms = s.monitor_cpu_ms_per_sample
        rows.append([
            CONFIGS.get(s.config, "reference: bare aiohttp endpoint"), s.agents, s.started_at, fmt_ms(s.p50_ms), fmt_ms(s.p99_ms), fmt_ms(s.lag_p99_ms),
            f"{s.delivered_ratio * 100:.2f}", _cadence(s), "" if cpu_ms is None else f"{cpu_ms:.2f}", _pct(s.monitor_cpu_s, s.window_s),
            _pct(s.postgres_cpu_s, s.window_s), _pct(s.haproxy_cpu_s, s.window_s),
            f"{s.loadgen_cores * 100:.0f} ({len(s.loadgen_cpu_s)} × ≤ {max(s.loadgen_cpu_s, default=0) / s.window_s * 100:.0f})",
            "" if s.machine_busy_cores is None else f"{s.machine_busy_cores * 100:.0f}",
            "yes" if s.held else "**no**: " + "; ".join(s.failures()),
        ])  # fmt: skip
    return rows


STEP_HEADERS = [
    "Configuration", "Agents", "Started (UTC)", "p50 (ms)", "p99 (ms)", "Gen. lag p99 (ms)", "Delivered %", "Risk live loop (per monitor)",
    "Monitor CPU / sample (ms)", "Monitors CPU %", "PostgreSQL CPU %", "HAProxy CPU %", "Load gen. CPU % (procs × max)", "Machine busy %", "Held",
]  # fmt: skip


def summary_rows(by_config: dict[str, list[StepResult]]) -> list[list[object]]:
    rows = []
    for config, steps in by_config.items():
        if config == REFERENCE:
            continue
        best = largest_held(steps)
        first_failed = min((s for s in steps if not s.held), key=lambda s: s.agents, default=None)
        if best is None:
            rows.append([CONFIGS[config], "none held", "", "", "", "", "", "", _why(first_failed)])
            continue
        cpu_ms = best.monitor_cpu_ms_per_sample
        rows.append([
            CONFIGS[config], f"**{best.agents}** ({best.sessions} sessions)", fmt_ms(best.p99_ms), f"{best.delivered_ratio * 100:.2f}",
            _cadence(best), "" if cpu_ms is None else f"{cpu_ms:.2f}", f"{best.loadgen_cores * 100:.0f}",
            "" if best.machine_busy_cores is None else f"{best.machine_busy_cores * 100:.0f}", _why(first_failed),
        ])  # fmt: skip
    return rows


def _why(failed: StepResult | None) -> str:
    if failed is None:
        return "no step failed (the steps ran out)"
    return f"{failed.agents}: " + "; ".join(failed.failures())


SUMMARY_HEADERS = ["Configuration", "Live agents held", "p99 (ms)", "Delivered %", "Risk live loop", "Monitor CPU / sample (ms)", "Load gen. CPU %", "Machine busy %", "First step that failed, and why"]


def section(steps: Sequence[StepResult], window_s: float, warmup_s: float) -> Section:
    by_config: dict[str, list[StepResult]] = {}
    for s in steps:
        by_config.setdefault(s.config, []).append(s)
    reference = by_config.get(REFERENCE, [])
    ref_line = ""
    if reference:
        r = reference[-1]
        ref_line = (
            f"\n**Reference** (same run, same generator): the bare aiohttp endpoint under {r.agents} agents answered with p99 "
            f"{fmt_ms(r.p99_ms)} ms (held: {'yes' if r.held else 'no'}) at {r.monitor_cpu_ms_per_sample or 0:.3f} ms CPU per sample "
            f"({_pct(r.monitor_cpu_s, r.window_s)} % of a core), the generators using {r.loadgen_cores * 100:.0f} % of a core.\n"
        )
    return Section(
        "Scale: live agents one machine holds",
        f"""`benchmarks/scale.py` (issue 16, "Load proof"). Simulated agents (`benchmarks/scale_agents.py`,
{AGENTS_PER_GENERATOR} per process, in processes of their own) each with its own token, in pairs
(therapist and client) in sessions created through `POST /api/v1/sessions` and under way, each
POST a real live sample (`sessionready.schema.Sample` in a `ReportEnvelope`, as the daemon's
forwarder sends it: a batch of one, one in flight) to `/api/v1/reports` every {INTERVAL_S:g} s on its own
schedule, the agents' phases spread evenly over the {INTERVAL_S:g} s, each over its own keep-alive
connection from one of many loopback addresses ({AGENTS_PER_ADDRESS} agents per address). Every step starts
from an empty store and new processes, runs a {warmup_s:g} s warm-up (sessions go live once both ends have
reported within 10 s; connections open) and then the measured **{window_s:g} s window**.

A step **holds** when, over the window: p99 report latency ≤ {P99_LIMIT_MS:g} ms (sent → answered; a
report not answered within the agent's 10 s counts as infinitely late) and the generators kept their
schedules (p99 lag ≤ {LAG_LIMIT_MS:g} ms); ≥ {DELIVERED_MIN * 100:g} % of the reports due were
**delivered** (acknowledged `stored` *and* found in the store afterwards, counted by report id); and
every live session's risk was stepped every 2 s on every monitor: each cycle of the risk
service's live loop ≤ {CYCLE_LIMIT_S:g} s (`sessionready_risk_live_cycle_seconds`, a bucket bound),
every live session stepped in every pass (`sessionready_risk_live_sessions_stepped_total` ÷
`sessionready_risk_live_pass_seconds_count`), and
every session of the step live (`sessionready_sessions`). The agents are stepped up
({", ".join(str(n) for n in STEPS)}) until a step fails, then bisected {BISECT_ROUNDS} time(s).

- **Monitor CPU / sample**: the monitor processes' CPU time (user + system, all threads) over the
  window ÷ samples stored in it: ingest, the risk loop, metrics and the access log together.
- **PostgreSQL CPU**: the postmaster and all its processes. **Machine busy**: all CPUs, in % of
  one core (200 = both cores busy): the machine is shared, so this includes other sessions' work.
- In the HAProxy configuration both monitors take reports; the risk service and the alert
  worker run on the monitor holding their lease (`monitor/leader.py`, `sessionready_leader`), and
  the risk criterion applies to that monitor's live loop; the other is a standby.
{ref_line}
### Live agents held

{table(SUMMARY_HEADERS, summary_rows(by_config))}

### Every step

{table(STEP_HEADERS, step_rows(steps))}
""",
    )


def scale_load(context: Context) -> Section:
    """``make bench`` section "scale"."""
    configs = list(CONFIGS)
    steps = QUICK_STEPS if context.quick else STEPS
    window_s, warmup_s = (6.0, 4.0) if context.quick else (WINDOW_S, WARMUP_S)
    results = measure(configs, steps, context.workdir, context.env, window_s, warmup_s, reference_agents=20 if context.quick else REFERENCE_AGENTS)
    return section(results, window_s, warmup_s)


def measure(configs: Sequence[str], steps: Sequence[int], workdir: Path, env: dict[str, str], window_s: float, warmup_s: float,
            reference_agents: int = REFERENCE_AGENTS, raw: Path | None = None, budget_s: float = 600.0) -> list[StepResult]:  # fmt: skip
    results: list[StepResult] = []

    def keep(result: StepResult) -> StepResult:
        results.append(result)
        print(f"scale: {result.config} {result.agents} agents: p99 {fmt_ms(result.p99_ms)} ms, delivered {result.delivered_ratio * 100:.2f} %, "
              f"{'held' if result.held else 'failed: ' + '; '.join(result.failures())}", file=sys.stderr, flush=True)  # fmt: skip
        if raw is not None:
            with raw.open("a") as out:
                out.write(json.dumps(asdict(result)) + "\n")
        return result

    def attempt(config: str, agents: int, postgres: Postgres | None) -> StepResult:
        try:
            return keep(run_step(config, agents, workdir, env, postgres, warmup_s, window_s))
        except (BenchmarkError, OSError, subprocess.SubprocessError) as error:
            # A step that cannot run is a failed step with its reason; the other configurations still run.
            return keep(StepResult(config, agents, window_s, 0, 0, 0, 0, math.inf, math.inf, math.inf, {}, (), 0.0, (), stopped=f"did not run: {error}"[:300]))

    if reference_agents:
        attempt(REFERENCE, reference_agents, None)
    postgres = start_postgres() if any(c != "sqlite" for c in configs) else None
    try:
        for config in configs:
            search(steps, lambda n, c=config: attempt(c, n, postgres), budget_s=budget_s)
    finally:
        if postgres is not None:
            postgres.stop()
    return results


def load_raw(paths: Iterable[Path]) -> list[StepResult]:
    steps = []
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                data = json.loads(line)
                data["cadence"] = tuple(Cadence(**c) for c in data["cadence"])
                data["loadgen_cpu_s"] = tuple(data["loadgen_cpu_s"])
                steps.append(StepResult(**data))
    return steps


def main(argv: list[str] | None = None) -> int:
    import tempfile

    from benchmarks.run import product_env

    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description="How many live agents one machine holds.")
    parser.add_argument("--config", action="append", choices=list(CONFIGS), help="configuration (repeatable; default all)")
    parser.add_argument("--steps", default=",".join(map(str, STEPS)), help="agent counts to step through, comma-separated")
    parser.add_argument("--window", type=float, default=WINDOW_S, help="measured window per step, seconds")
    parser.add_argument("--warmup", type=float, default=WARMUP_S, help="warm-up per step, seconds")
    parser.add_argument("--reference-agents", type=int, default=REFERENCE_AGENTS, help="agents for the reference endpoint (0: none)")
    parser.add_argument("--budget", type=float, default=600.0, help="no new step of a configuration after this many seconds")
    parser.add_argument("--raw", type=Path, help="append each step's result to this JSON-lines file")
    parser.add_argument("--from-raw", type=Path, action="append", help="write the section from earlier raw files, running nothing")
    parser.add_argument("--output", type=Path, required=True, help="where to write the section (markdown)")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so that every monitor, generator and server started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.from_raw:
        steps = load_raw(args.from_raw)
    else:
        counts = [int(n) for n in args.steps.split(",")]
        with tempfile.TemporaryDirectory(prefix="sessionready-scale-") as workdir:
            steps = measure(args.config or list(CONFIGS), counts, Path(workdir), product_env(Path(workdir)), args.window, args.warmup,
                            args.reference_agents, args.raw, args.budget)  # fmt: skip
    window = steps[0].window_s if steps else args.window
    result = section(steps, window, args.warmup)
    args.output.write_text(f"## {result.title}\n\n{result.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
