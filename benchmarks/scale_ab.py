"""The monitor's CPU per live sample, two versions of the code against each other in one run.

Each checkout (``--base``, ``--new``: git worktrees, e.g. ``git worktree add /tmp/base COMMIT``)
runs the same scale step (``benchmarks.scale``, one configuration, one agent count, a fresh
store and monitor each time) in turn, the order swapped every repetition so that neither side
always runs on the busier minute. Each side uses its own checkout's code for the monitor and the
load generator. The machine is shared: the CPU per sample (user + system of the monitor
processes ÷ samples stored) does not depend much on waiting for the CPU; latency and agents held
do, and are not compared here.

    .venv/bin/python -m benchmarks.scale_ab --base /tmp/base --new . --agents 500,1000 --reps 2 --raw-dir results/

Prints one row per step and the ratio new ÷ base per agent count (the median of the pairs).
Requests per commit are shown: under more load commits hold more requests and a sample costs
less, so a pair is fair only when both sides' commits held about as many.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.scale import CONFIGS, StepResult, load_raw


def run_side(tree: Path, config: str, agents: int, raw: Path) -> StepResult:
    before = len(raw.read_text().splitlines()) if raw.exists() else 0
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-m", "benchmarks.scale", "--config", config, "--steps", str(agents), "--reference-agents", "0", "--budget", "1",
               "--raw", str(raw.resolve()), "--output", os.devnull]  # fmt: skip
    subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    steps = load_raw([raw])
    if len(steps) != before + 1:
        raise RuntimeError(f"{tree}: the step left no result in {raw}")
    return steps[-1]


def describe(side: str, step: StepResult) -> str:
    cadence = step.cadence[0] if step.cadence else None
    per_commit = f"{cadence.requests_per_commit:.2f}" if cadence and cadence.requests_per_commit is not None else "n/a"
    cpu = step.monitor_cpu_ms_per_sample
    return (f"{side:4} {step.config} {step.agents:5} agents, started {step.started_at}: monitor CPU {cpu if cpu is None else round(cpu, 3)} ms/sample, "
            f"{per_commit} requests/commit, p99 {step.p99_ms:.0f} ms, machine busy {step.machine_busy_cores or 0:.2f} cores, delivered {step.delivered_ratio * 100:.2f} %")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_ab", description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="checkout of the code before")
    parser.add_argument("--new", type=Path, required=True, help="checkout of the code after")
    parser.add_argument("--config", choices=list(CONFIGS), default="sqlite")
    parser.add_argument("--agents", default="500,1000", help="agent counts, comma-separated")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--raw-dir", type=Path, required=True, help="where base.jsonl and new.jsonl collect the steps' results")
    args = parser.parse_args(argv)
    args.raw_dir.mkdir(parents=True, exist_ok=True)
    ratios: dict[int, list[float]] = {}
    for rep in range(args.reps):
        for agents in (int(n) for n in args.agents.split(",")):
            order = [("base", args.base), ("new", args.new)]
            results = {}
            for side, tree in order if rep % 2 == 0 else reversed(order):
                results[side] = run_side(tree.resolve(), args.config, agents, args.raw_dir / f"{side}.jsonl")
                print(describe(side, results[side]), flush=True)
            base, new = results["base"].monitor_cpu_ms_per_sample, results["new"].monitor_cpu_ms_per_sample
            if base and new:
                ratios.setdefault(agents, []).append(new / base)
    for agents, values in ratios.items():
        print(f"{args.config} {agents} agents: monitor CPU per sample, new / base = {statistics.median(values):.2f} "
              f"(pairs: {', '.join(f'{v:.2f}' for v in values)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
