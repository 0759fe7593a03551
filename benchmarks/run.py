"""``make bench``: run every benchmark and write docs/benchmarks.md.

    .venv/bin/python -m benchmarks.run [--quick] [--only NAME ...] [--output FILE]

A benchmark is a function ``(Context) -> Section`` listed in ``BENCHMARKS``; to add one (room
analysis CPU, agent footprint, risk engine, ...) write it in its own module and add it there.
A benchmark that fails becomes a section saying why; the others still run, the document is
still written, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from benchmarks.adaptive_matrix import adaptive_matrix
from benchmarks.agent_footprint import agent_footprint
from benchmarks.browser_check import browser_check_time, browser_checks_at_once
from benchmarks.check_time import check_wall_time
from benchmarks.core import Benchmark, BenchmarkError, Context, Section, table
from benchmarks.dashboard_connections import dashboard_connections
from benchmarks.dashboard_pages import dashboard_pages
from benchmarks.ingest import ingest_rate
from benchmarks.risk import risk_evaluation
from benchmarks.room import room_analysis
from benchmarks.scale import scale_load

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"

BENCHMARKS: dict[str, Benchmark] = {
    "check": check_wall_time,
    "ingest": ingest_rate,
    "room": room_analysis,
    "agent": agent_footprint,
    "risk": risk_evaluation,
    "dashboard": dashboard_pages,
    "connections": dashboard_connections,
    "browser": browser_check_time,
    "browser20": browser_checks_at_once,
    "adaptive": adaptive_matrix,
    "scale": scale_load,
}


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Processor", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return table(
        ["CPU", "Cores (usable)", "Python", "aiohttp", "SQLite", "OS", "Load average at start (1, 5, 15 min)"],
        [[cpu_model(), f"{os.cpu_count()} ({usable})", platform.python_version(), version("aiohttp"), sqlite3.sqlite_version, f"{platform.system()} {platform.release()}", load]],
    )


def product_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = str(workdir / "config")  # no agent.toml of whoever runs this
    env.pop("SESSIONREADY_TOKEN", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_one(name: str, benchmark: Benchmark, workdir: Path, quick: bool) -> tuple[Section, float, bool]:
    directory = workdir / name
    directory.mkdir()
    started = time.monotonic()
    try:
        section = benchmark(Context(directory, product_env(directory), quick))
        ok = True
    except (BenchmarkError, OSError, ValueError, KeyError) as error:
        traceback.print_exc()
        section = Section(name, f"**Did not run:** {error}")
        ok = False
    return section, time.monotonic() - started, ok


def document(sections: list[tuple[Section, float]], quick: bool, started: datetime, total_s: float) -> str:
    parts = [
        "# Benchmarks",
        "",
        "_Written by `benchmarks/run.py`: change the script, not this file, and run it again._",
        "",
        "## How to run",
        "",
        "```",
        "make bench                      # = .venv/bin/python -m benchmarks.run, from the repository root",
        ".venv/bin/python -m benchmarks.run --quick            # smoke test: 1 run each, small loads",
        ".venv/bin/python -m benchmarks.run --only ingest      # one benchmark (names: "
        + ", ".join(BENCHMARKS)
        + ")",
        ".venv/bin/python -m benchmarks.dashboard_pages --data-dir DIR   # the dashboard's section alone; reuses a loaded DIR",
        "```",
        "",
        "Everything runs on 127.0.0.1 in temporary directories: a monitor, the check, a load",
        "generator, a minimal reference server, the dashboard and a headless Chromium, each its own",
        "process. A full run takes about half an hour (the dashboard benchmark first loads 90 days",
        "× 200 agents through the ingest API) and rewrites this file (`--output FILE` writes elsewhere).",
        "",
        "Machines are shared and noisy. Every number is a median over several runs, shown with",
        "its range, and each benchmark measures a reference in the same run: compare the",
        "**ratios** between machines or commits, not the absolute numbers.",
        "",
        "## Latest run",
        "",
        f"{started.strftime('%Y-%m-%d %H:%M UTC')}, took {total_s:.0f} s"
        + (" — **quick run: smoke-test numbers, not for comparison**" if quick else "")
        + ".",
        "",
        machine(),
        "",
    ]
    for index, (section, seconds) in enumerate(sections, 1):
        parts += [f"## {index}. {section.title}", "", section.markdown, "", f"_This benchmark took {seconds:.0f} s._", ""]
    parts += [
        "## Adding a benchmark",
        "",
        "Write a function `(Context) -> Section` in a module of its own under `benchmarks/` (see",
        "`benchmarks/core.py`), start what it needs as real processes in `context.workdir`,",
        "measure a reference in the same run, and add it to `BENCHMARKS` in `benchmarks/run.py`.",
        "Raise `BenchmarkError` when it cannot produce numbers.",
        "",
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description="Run the benchmarks and write docs/benchmarks.md.")
    parser.add_argument("--quick", action="store_true", help="smoke test: one run each and small loads")
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), help="run only this benchmark (repeatable)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"where to write (default {DEFAULT_OUTPUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)

    started_at = datetime.now(timezone.utc)
    started = time.monotonic()
    chosen = [(name, BENCHMARKS[name]) for name in BENCHMARKS if not args.only or name in args.only]
    sections: list[tuple[Section, float]] = []
    all_ok = True
    with tempfile.TemporaryDirectory(prefix="sessionready-bench-") as workdir:
        for index, (name, benchmark) in enumerate(chosen, 1):
            print(f"[{index}/{len(chosen)}] {name} ...", file=sys.stderr, flush=True)
            section, seconds, ok = run_one(name, benchmark, Path(workdir), args.quick)
            print(f"[{index}/{len(chosen)}] {name}: {'done' if ok else 'FAILED'} in {seconds:.0f} s", file=sys.stderr, flush=True)
            sections.append((section, seconds))
            all_ok = all_ok and ok
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(document(sections, args.quick, started_at, time.monotonic() - started))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
