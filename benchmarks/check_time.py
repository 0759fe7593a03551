"""How long ``sessionready check`` takes, end to end, against a monitor on this machine."""

from __future__ import annotations

import json
from dataclasses import dataclass

from benchmarks.core import BenchmarkError, Context, Section, median, spread, table
from benchmarks.processes import SESSIONREADY, create_token, run_timed, start_monitor

TARGET_DEFAULT_S = 15.0  # what a person waiting before a session should have to bear
MODES = (("default settings", ()), ("--no-throughput", ("--no-throughput",)))


@dataclass(frozen=True)
class CheckRun:
    wall_s: float  # process start to exit, as the person running it waits
    cpu_s: float  # user + system CPU of the check process
    duration_s: float  # the report's own duration_s: from the first phase to the verdict
    configured_s: float  # the phases' configured length: udp_seconds + 2 x load_seconds
    verdict: str


def run_check(url: str, token: str, flags: tuple[str, ...], context: Context) -> CheckRun:
    timed = run_timed([*SESSIONREADY, "check", "--monitor", url, "--token", token, "--json", *flags], context.env, timeout_s=120)
    if timed.returncode not in (0, 1, 2):
        raise BenchmarkError(f"the check could not run (exit {timed.returncode}): {timed.stderr.strip()[-500:]}")
    report = json.loads(timed.stdout)
    if not report["submitted"]:
        raise BenchmarkError(f"the check's report was not accepted: {report['submit_error']}")
    settings = report["settings"]
    return CheckRun(
        wall_s=timed.wall_s,
        cpu_s=timed.cpu_s,
        duration_s=report["duration_s"],
        configured_s=settings["udp_seconds"] + 2 * settings["load_seconds"],
        verdict=report["verdict"],
    )


def check_wall_time(context: Context) -> Section:
    runs = 1 if context.quick else 3
    data_dir = context.workdir / "monitor"
    startup: list[float] = []
    results: dict[str, list[CheckRun]] = {name: [] for name, _ in MODES}
    with start_monitor(data_dir, context.env) as monitor:
        for _ in range(runs):
            # Reference: the interpreter and the CLI's imports, the part of the wall time that
            # is this machine's speed rather than the check's phases.
            version = run_timed([*SESSIONREADY, "--version"], context.env, timeout_s=60)
            if version.returncode != 0:
                raise BenchmarkError(f"'sessionready --version' failed: {version.stderr.strip()}")
            startup.append(version.wall_s)
            # Modes alternate, so that drift in the machine's load touches both alike. A fresh
            # token per check keeps the runs clear of the per-token probe rate limit.
            for name, flags in MODES:
                token = create_token(data_dir, "client", "bench", context.env)
                results[name].append(run_check(monitor.url, token, flags, context))

    rows = []
    for name, _ in MODES:
        checks = results[name]
        walls = [c.wall_s for c in checks]
        configured = median([c.configured_s for c in checks])
        rows.append(
            [
                name,
                len(checks),
                spread(walls),
                spread([c.duration_s for c in checks]),
                f"{configured:g}",
                f"{median(walls) / configured:.2f}",
                f"{median(walls) - configured:.2f}",
                spread([c.cpu_s for c in checks]),
                ", ".join(sorted({c.verdict for c in checks})),
            ]
        )
    default_wall = median([c.wall_s for c in results[MODES[0][0]]])
    verdict = "within" if default_wall <= TARGET_DEFAULT_S else "**over**"
    return Section(
        "Check wall time",
        f"""`sessionready check --json` run as a new process against a monitor on 127.0.0.1, as a
person would run it: interpreter start, token check, UDP stream, throughput phases (default
4 streams, 4 s down and 4 s up), the verdict and the upload of the report. Each mode ran
{runs} time(s), alternating; times are in seconds, median (min–max).

- **Wall**: process start to exit, what the person waits.
- **duration_s**: the report's own figure, from the first probe to the verdict.
- **Configured**: the phases' set length (`udp_seconds` + 2 × `load_seconds`, from the
  report's `settings`): the floor no implementation can beat.
- **Wall ÷ configured** and **overhead** (wall − configured): what the check adds around its
  measurements (start-up, probe keys, the last answers, submitting). Compare these across
  machines, not the absolute times.
- **CPU**: user + system CPU seconds of the check process (on loopback the throughput phases
  move several Gbit/s, so this is far above what a real link costs).

Reference measured in the same run: `sessionready --version` (interpreter start and the CLI's
imports) took {spread(startup)} s.

{table(["Mode", "Runs", "Wall (s)", "duration_s (s)", "Configured (s)", "Wall ÷ configured", "Overhead (s)", "CPU (s)", "Verdicts"], rows)}

The default check's median wall time is {default_wall:.1f} s: {verdict} the {TARGET_DEFAULT_S:g} s target.""",
    )
