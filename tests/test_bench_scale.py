"""The scale benchmark's own logic (benchmarks/scale.py): the verdict of a step, the delivered
count, the search and the tables, on hand-made results; then one short real run (20 simulated
agents against one monitor on SQLite) so that the whole path is exercised."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from benchmarks import scale
from benchmarks.scale import Cadence, StepResult, largest_held, longest_cycle, percentile, search, summarise
from benchmarks.scale_agents import batch_body
from sessionready.schema import ReportEnvelope
from sessionready.typed import decode


def step(agents: int, *, p99: float = 50.0, in_store: int | None = None, cycle: float = 2.05, stepped_per_cycle: int | None = None, live: int | None = None) -> StepResult:
    sessions = agents // 2
    due = agents * 15  # a 30 s window, one report per agent every 2 s
    cycles = 15
    return StepResult(
        config="sqlite", agents=agents, window_s=30.0, due=due, answered=due, acknowledged=due,
        in_store=due if in_store is None else in_store, p50_ms=10.0, p99_ms=p99, lag_p99_ms=5.0, statuses={"200": due},
        cadence=(Cadence(cycles, cycle, cycles * (sessions if stepped_per_cycle is None else stepped_per_cycle), sessions if live is None else live, passes=cycles),),
        monitor_cpu_s=3.0, loadgen_cpu_s=(6.0, 3.0),
    )  # fmt: skip


def test_a_step_holds_only_within_every_limit() -> None:
    assert step(500).held
    assert step(500, p99=250.0).held  # the limit itself holds
    assert "p99 251 ms > 250" in step(500, p99=251.0).failures()
    # 500 agents × 15 reports = 7500 due; 99 % is 7425 delivered.
    assert step(500, in_store=7425).held
    assert step(500, in_store=7424).failures() == ["delivered 99.0 % < 99"]
    assert step(500, cycle=2.25).held
    assert step(500, cycle=2.5).failures() == ["risk cycle up to 2.5 s"]
    assert step(500, cycle=math.inf).failures() == ["risk cycle up to > 30 s"]
    assert step(500, stepped_per_cycle=200).failures() == ["200 of 250 sessions stepped per pass"]
    # Without a pass count (an older raw file) one pass split by the window's edges is forgiven.
    edge = dataclasses.replace(step(500).cadence[0], stepped=14 * 250, passes=None)
    assert dataclasses.replace(step(500), cadence=(edge,)).held
    assert step(500, live=249).failures() == ["249 of 250 sessions live"]
    # 15 cycles are due in 30 s; a pass that outlasts the window's end shows as too few cycles.
    stalled = dataclasses.replace(step(500).cadence[0], cycles=3, passes=3, stepped=3 * 250)
    assert dataclasses.replace(step(500), cadence=(stalled,)).failures() == ["3 risk cycles in 30 s"]


def test_with_two_monitors_the_lease_holder_s_loop_counts() -> None:
    holder = Cadence(15, 2.05, 15 * 250, 250, 0.5, leader=True, passes=15)
    standby = Cadence(0, None, 0, 250, None, leader=False)
    two = dataclasses.replace(step(500), config="haproxy", cadence=(standby, holder))
    assert two.held
    slow = dataclasses.replace(holder, longest_cycle_s=4.0)
    assert dataclasses.replace(two, cadence=(standby, slow)).failures() == ["monitor 2: risk cycle up to 4 s"]
    assert dataclasses.replace(two, cadence=(standby, standby)).failures() == ["no monitor held the risk service's lease"]


def test_the_cycle_bound_is_the_smallest_bucket_holding_every_cycle() -> None:
    before = {1.0: 0, 2.05: 3, 2.1: 4, 2.25: 4, math.inf: 4}
    # 10 cycles in the window: 6 within 2.05 s, 9 within 2.1 s, all 10 within 2.25 s.
    after = {1.0: 0, 2.05: 9, 2.1: 13, 2.25: 14, math.inf: 14}
    assert longest_cycle(before, after) == (10, 2.25)
    assert longest_cycle(before, {**after, 2.25: 13}) == (10, math.inf)
    assert longest_cycle(after, after) == (0, None)


def test_delivered_counts_only_acknowledged_reports_found_in_the_store() -> None:
    rows = [
        [1.0, 10.0, "200", True, "a"],
        [1.0, 12.0, "200", True, "b"],  # acknowledged but (below) not in the store
        [1.0, 11.0, "200", False, "c"],  # answered, not "stored"
        [2.0, None, "TimeoutError", False, "d"],  # never answered
    ]
    looked_up: list[list[str]] = []

    def found(ids: list[str]) -> int:
        looked_up.append(ids)
        return len(set(ids) & {"a", "c", "d"})

    # 2 agents over a 4 s window: 4 reports due.
    result = summarise("sqlite", 2, 4.0, [{"cpu_window_s": 0.4, "rows": rows}], found, (), 0.2)
    assert looked_up == [["a", "b"]]
    assert (result.due, result.answered, result.acknowledged, result.in_store) == (4, 3, 2, 1)
    assert result.delivered_ratio == 0.25
    assert result.p99_ms == math.inf  # the unanswered report is infinitely late
    assert result.p50_ms == 11.0
    assert result.monitor_cpu_ms_per_sample == 200.0  # 0.2 CPU s for the one sample stored


def test_a_missing_row_counts_as_late() -> None:
    rows = [[0.0, 5.0, "200", True, str(i)] for i in range(98)]
    result = summarise("sqlite", 2, 100.0, [{"cpu_window_s": 0.0, "rows": rows}], len, (), 0.0)
    assert result.due == 100
    assert result.p50_ms == 5.0 and result.p99_ms == math.inf  # 98 rows: ranks 99 and 100 missing


def test_percentile_is_the_nearest_rank() -> None:
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 99) == 99
    assert percentile(values, 50) == 50
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 99) == math.inf


def test_search_steps_up_then_bisects() -> None:
    tried: list[int] = []

    def try_step(agents: int) -> StepResult:
        tried.append(agents)
        return step(agents, p99=100.0 if agents <= 1300 else 400.0)

    results = search((250, 500, 1000, 1500, 2000), try_step, bisect_rounds=2, granularity=50)
    # Up to the first failure (1500); then (1000 + 1500) / 2 = 1250 holds; (1250 + 1500) / 2 = 1375,
    # to a multiple of 50 is 1400 (27.5 rounds to the even 28), which fails.
    assert tried == [250, 500, 1000, 1500, 1250, 1400]
    assert largest_held(results).agents == 1250


def test_search_stops_on_its_budget_and_never_counts_a_pass_above_a_failure() -> None:
    clock = iter([0.0, 0.0, 100.0, 700.0]).__next__
    results = search((250, 500, 1000), lambda n: step(n), budget_s=600.0, clock=clock)
    assert [r.agents for r in results] == [250, 500]  # 1000 would start at 700 s, past the budget
    noisy = [step(500), step(1000, p99=300.0), step(1500)]
    assert largest_held(noisy).agents == 500


def test_tables_say_what_held_and_why_not() -> None:
    steps = [step(500), step(1000, p99=400.0)]
    markdown = scale.section(steps, 30.0, 10.0).markdown
    assert "| 1 monitor + SQLite | **500** (250 sessions) | 50.0 | 100.00 |" in markdown
    assert "1000: p99 400 ms > 250" in markdown
    assert "15 cycles ≤ 2.05 s, 250/250 stepped, 250 live" in markdown
    # Monitor CPU per sample: 3 CPU s ÷ 7500 samples = 0.40 ms; generators (6 + 3) s ÷ 30 s = 30 %.
    assert "| 0.40 | 30 |" in markdown


def test_raw_lines_give_back_the_same_results(tmp_path: Path) -> None:
    from dataclasses import asdict

    raw = tmp_path / "raw.jsonl"
    raw.write_text("\n".join(json.dumps(asdict(s)) for s in (step(500), step(1000, cycle=3.0))) + "\n")
    assert scale.load_raw([raw]) == [step(500), step(1000, cycle=3.0)]


def test_the_generator_posts_the_real_live_report_format() -> None:
    import random

    report_id, body = batch_body("s-00001", 7, 1_765_000_000.0, random.Random(1))
    batch = json.loads(body)
    envelope = decode(ReportEnvelope, batch["reports"][0])
    assert envelope.report_id == report_id and envelope.seq == 7 and envelope.kind == "live"
    assert envelope.sample is not None and envelope.sample.session_id == "s-00001"
    assert batch["spool"] == {"pending": 1, "dropped_background": 0, "rejected": 0, "dropped_live": 0}


@pytest.mark.slow
def test_twenty_agents_against_one_monitor(tmp_path: Path) -> None:
    """The real path: tokens, sessions through the API, generator process, risk metrics, row count."""
    from benchmarks.run import product_env

    result = scale.run_step("sqlite", 20, tmp_path, product_env(tmp_path), None, warmup_s=2.0, window_s=4.0, start_delay_s=2.5)
    assert result.due == 40  # 20 agents × 4 s ÷ 2 s
    # Every report acknowledged was found in the store, and every one was acknowledged.
    assert result.acknowledged == result.in_store == 40, result
    assert len(result.cadence) == 1
    assert result.cadence[0].live_sessions == 10  # both ends reported: all 10 sessions went live
    assert result.cadence[0].cycles >= 1
    assert result.monitor_cpu_ms_per_sample is not None and result.monitor_cpu_ms_per_sample > 0
