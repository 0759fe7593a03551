"""Issue 15's scenario matrix: the adaptive check's verdict against a 60 s reference check.

``--only adaptive`` in ``make bench``, or on its own (writes the section's markdown)::

    sudo nice -n 10 .venv/bin/python -m benchmarks.adaptive_matrix [--runs N] [--scenario NAME ...]
                                     [--raw FILE.jsonl] [--output FILE.md]

The network lab (tests/lab/netlab.py: client, router and monitor namespaces; needs root), a
fresh lab per scenario, the monitor daemon in the monitor namespace and ``sessionready check``
in the client namespace (tests/lab/product.py). Per scenario:

* one **reference** check: the idle phase 60 s and each throughput phase 10 s, run by the same
  adaptive code with ``udp_min_seconds = udp_max_seconds = 60`` and ``load_min_seconds =
  load_max_seconds = 10`` (a config file). The same path, the same rule, six times the idle
  phase's longest: whether the reference itself is settled is the product's own answer (its
  phases stop ``settled``, or ``max_length`` with the figures still unsettled and a
  ``borderline`` reason);
* then ``runs`` (10) **adaptive** checks with the default settings.

Every check runs with ``--no-machine --no-audio``: the machine's reasons would follow the other
work on this shared host, not the path, and do not depend on a phase's length; without them no
floor is given to the network phases, the hardest case for the stopping rule (every line
matters). Each check's verdict, whether it carried a ``borderline`` reason, its wall time (the
process, start to exit) and its phases (length, why they stopped, what was unsettled) are kept;
the loss the kernel really applied (nftables counters, reset before each check) and the jitter
the relay really applied (its log) are the ground truth shown next to the verdicts.

Thresholds, tier needs and headroom are read from ``sessionready.quality``'s defaults.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from benchmarks.core import BenchmarkError, Context, Section, table
from sessionready import quality

RUNS = 10
QUICK_RUNS = 2
REFERENCE_IDLE_S = 60.0
REFERENCE_LOAD_S = 10.0
QUICK_REFERENCE_IDLE_S = 15.0
ADAPTIVE_TIMEOUT_S = 120.0
RELAY_PORT = 4100

# The loss levels the issue names (percent, each direction): below the warning line, between
# the lines, close to the critical one, at it, far above.
LOSS_PERCENTS = (0.5, 1.5, 2.0, 3.0, 8.0)
# A good home line for every scenario but the slow and the fast one: well above the best
# video tier's need with headroom (both directions at least twice it, where the throughput
# phases settle at once as "far above"), and a 20 ms queue so that delay under load stays far
# from its lines and the scenarios test what they name.
BASE_DOWN_KBIT, BASE_UP_KBIT, BASE_QUEUE_MS = 40_000, 20_000, 20.0
SLOW_QUEUE_MS = 50.0
# RFC 3550 jitter of a uniform hold of +-w ms (w ms base delay) at the probe's 20 ms spacing,
# in the order packets leave the relay (it reorders above 10 ms): about 0.72 w. Found by
# simulating the relay's hold and the RFC 3550 running mean over 20,000 packets for w from 20
# to 120 ms (0.70-0.73); the relay's log gives the jitter really applied, shown in the table.
UNIFORM_JITTER_PER_HALF_WIDTH = 0.72
JITTER_BELOW_FACTOR = 0.9  # "below": 10 % under the warning line (a stop too eager would say "at risk")
JITTER_NEAR_FACTOR = 1.1  # "near": 10 % above the warning line
JITTER_FAR_FACTOR = 2.5  # "far": two and a half times it (above the critical line as well)

Grade = Literal["ready", "at_risk", "not_ready"]
GRADES: tuple[Grade, ...] = ("ready", "at_risk", "not_ready")
Agreement = Literal["equal", "borderline", "opposite", "failed"]
AGREEMENTS: tuple[Agreement, ...] = ("equal", "borderline", "opposite", "failed")
VERDICT_WORDS = {"ready": "ready", "at_risk": "at risk", "not_ready": "not ready"}


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """The router's tbf per direction (None: unshaped veth, as fast as the machine moves it)."""

    down_kbit: int | None
    up_kbit: int | None
    queue_ms: float

    def describe(self) -> str:
        if self.down_kbit is None or self.up_kbit is None:
            return "unshaped"
        return f"{self.down_kbit / 1000:g}/{self.up_kbit / 1000:g} Mbit/s, {self.queue_ms:g} ms queue"


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str  # one line for the table
    link: Link
    loss_up_pct: float = 0.0
    loss_down_pct: float = 0.0
    # The relay's uniform hold in the downstream direction: base delay = half width = this (ms).
    jitter_half_width_ms: float | None = None


def scenarios(t: quality.Thresholds | None = None) -> tuple[Scenario, ...]:
    """The matrix, its lines read from the quality model's defaults (or ``t``)."""
    t = t or quality.Thresholds()
    base = Link(BASE_DOWN_KBIT, BASE_UP_KBIT, BASE_QUEUE_MS)
    # Half of what the 360p tier needs with the model's headroom, both ways: clearly "not ready".
    slow_kbit = round(0.5 * min(quality.TIER_NEEDS_MBPS["360p"]) * t.throughput_headroom_factor * 1000)
    matrix = [Scenario("clean", "no loss, no added jitter", base)]
    for percent in LOSS_PERCENTS:
        matrix.append(Scenario(f"loss-{percent:g}", f"{percent:g} % loss up and down", base, loss_up_pct=percent, loss_down_pct=percent))
    for label, factor in (("below", JITTER_BELOW_FACTOR), ("near", JITTER_NEAR_FACTOR), ("far", JITTER_FAR_FACTOR)):
        target = factor * t.jitter_warning_ms
        matrix.append(
            Scenario(
                f"jitter-{label}",
                f"downstream jitter about {target:.0f} ms (warning line {t.jitter_warning_ms:g} ms)",
                base,
                jitter_half_width_ms=round(target / UNIFORM_JITTER_PER_HALF_WIDTH, 1),
            )
        )
    matrix.append(Scenario("slow", f"{slow_kbit / 1000:g} Mbit/s each way (360p needs {min(quality.TIER_NEEDS_MBPS['360p']) * t.throughput_headroom_factor:g} with headroom)",
                           Link(slow_kbit, slow_kbit, SLOW_QUEUE_MS)))  # fmt: skip
    matrix.append(Scenario("fast", "unshaped veth (Gbit/s)", Link(None, None, 0.0)))
    return tuple(matrix)


# --------------------------------------------------------------------------------------------
# One check, as the benchmark keeps it
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    stopped: str
    unsettled: tuple[str, ...]  # "figure low..high"


@dataclass(frozen=True)
class Outcome:
    """One check: its verdict (None when it did not run), whether it said ``borderline``, how
    long it took, its phases, the figures behind the verdict, and the ground truth meanwhile."""

    verdict: Grade | None
    borderline: bool
    wall_s: float
    phases: tuple[Phase, ...] = ()
    reasons: tuple[str, ...] = ()  # "severity code"
    figures: dict[str, object] = field(default_factory=dict)
    truth: dict[str, object] = field(default_factory=dict)
    error: str | None = None

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    @property
    def settled(self) -> bool:
        """Every figure settled by the time its phase stopped (what makes a reference one): no
        ``borderline`` reason, no phase failed, none with figures still unsettled. A phase whose
        minimum is its maximum stops ``max_length`` even when all is settled (settle.decide)."""
        return (
            self.verdict is not None
            and not self.borderline
            and all(p.stopped != "failed" and not p.unsettled for p in self.phases)
        )


def outcome_from_report(report: dict, wall_s: float, truth: dict[str, object] | None = None) -> Outcome:
    """The benchmark's view of a check's JSON report (docs/check.md)."""
    verdict = report.get("verdict")
    if verdict not in GRADES:
        raise ValueError(f"a report without a verdict: {str(report)[:200]}")
    phases = tuple(
        Phase(p["name"], float(p["seconds"]), p["stopped"],
              tuple(f"{u['figure']} {_number(u['low'])}..{_number(u['high'])}" for u in p.get("unsettled") or ()))
        for p in report.get("phases") or ()
    )  # fmt: skip
    reasons = tuple(f"{r['severity']} {r['code']}" for r in report.get("reasons") or ())
    net = report.get("network") or {}
    figures = {
        "loss": net.get("loss"),
        "jitter_ms": net.get("jitter_ms"),
        "jitter_mean_ms": net.get("jitter_mean_ms"),  # the jitter judged (mean |D|); absent before it existed
        "rtt_p50_ms": (net.get("rtt_ms") or {}).get("p50"),
        "throughput_mbps": net.get("throughput_mbps"),
        "loaded_latency_ms": net.get("loaded_latency_ms"),
        "mos": (report.get("quality") or {}).get("mos"),
        "packets": net.get("packets"),
        "errors": {k: net[k] for k in ("udp_error", "throughput_error") if net.get(k)},
    }
    borderline = any(r.get("code") == "borderline" for r in report.get("reasons") or ())
    return Outcome(verdict, borderline, wall_s, phases, reasons, figures, truth or {})


def _number(value: object) -> str:
    return "?" if value is None else f"{value:.4g}"  # type: ignore[str-format]


def classify(reference: Outcome, adaptive: Outcome) -> Agreement:
    """How an adaptive check's verdict stands against the reference's.

    * ``equal``: the same verdict (whether or not either said "borderline").
    * ``borderline``: verdicts one grade apart (ready / at risk, or at risk / not ready) and at
      least one of the two carried a ``borderline`` reason: it said it could not tell.
    * ``opposite``: two grades apart (ready against not ready), always; or one grade apart
      while both were settled: a check sure of a verdict that the reference is sure is wrong.
    * ``failed``: either check produced no verdict.
    """
    if adaptive.verdict is None or reference.verdict is None:
        return "failed"
    if adaptive.verdict == reference.verdict:
        return "equal"
    apart = abs(GRADES.index(adaptive.verdict) - GRADES.index(reference.verdict))
    if apart == 1 and (adaptive.borderline or reference.borderline):
        return "borderline"
    return "opposite"


# --------------------------------------------------------------------------------------------
# A scenario's result and the section
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    reference: Outcome
    checks: tuple[Outcome, ...]
    congestion: str = "unknown"

    def agreements(self) -> list[Agreement]:
        return [classify(self.reference, check) for check in self.checks]


def verdict_label(outcome: Outcome) -> str:
    if outcome.verdict is None:
        return "failed"
    return VERDICT_WORDS[outcome.verdict] + (" (borderline)" if outcome.borderline else "")


def verdict_counts(checks: Iterable[Outcome]) -> str:
    """``7 at risk, 3 at risk (borderline)``, most frequent first."""
    counts = Counter(verdict_label(c) for c in checks)
    return ", ".join(f"{n} {label}" for label, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def stop_counts(checks: Iterable[Outcome], phase: str) -> str:
    """A phase's lengths (median, max) and why it stopped, e.g. ``7.7 (10.0); 8 settled, 2 max_length``."""
    ran = [p for c in checks if (p := c.phase(phase)) is not None]
    if not ran:
        return "–"
    seconds = [p.seconds for p in ran]
    reasons = Counter(p.stopped for p in ran)
    return f"{statistics.median(seconds):.1f} ({max(seconds):.1f}); " + ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())


def probe_rate(checks: Iterable[Outcome]) -> str:
    """The lowest rate at which a check's idle phase got its probes out (sent / the phase's seconds):
    50/s when the sender keeps its 20 ms cadence. A machine too busy to keep it sends fewer, and the
    loss lines then need longer (first seen on this host under a load average of 12)."""
    rates = []
    for check in checks:
        idle, packets = check.phase("idle"), check.figures.get("packets")
        if idle is not None and idle.seconds > 0 and isinstance(packets, dict) and packets.get("sent"):
            rates.append(packets["sent"] / idle.seconds)
    return f"{min(rates):.0f}" if rates else "–"


def truth_text(outcomes: Sequence[Outcome]) -> str:
    """What the path really did over the scenario's checks (nftables, the relay's log)."""
    parts = []
    for direction in ("up", "down"):
        seen = sum(int(o.truth.get(f"seen_{direction}", 0)) for o in outcomes)
        dropped = sum(int(o.truth.get(f"drop_{direction}", 0)) for o in outcomes)
        if seen:
            parts.append(f"loss {direction} {100 * dropped / seen:.2f} %")
    for outcome in outcomes:
        if "jitter_down_ms" in outcome.truth:
            parts.append(f"jitter down {outcome.truth['jitter_down_ms']:.1f} ms (mean \\|D\\| {outcome.truth['mean_abs_d_down_ms']:.1f})")
            break
    return "; ".join(parts) or "–"


def reference_text(reference: Outcome) -> str:
    if reference.verdict is None:
        return f"**failed**: {reference.error}"
    idle = reference.phase("idle")
    how = "settled" if reference.settled else "**not settled**: " + "; ".join(u for p in reference.phases for u in p.unsettled)
    length = f"; idle {idle.seconds:.0f} s" if idle else ""
    return f"{verdict_label(reference)} ({how}{length}; {reference.wall_s:.0f} s in all)"


def scenario_row(result: ScenarioResult) -> list[object]:
    agreements = Counter(result.agreements())
    walls = [c.wall_s for c in result.checks if c.verdict is not None] or [0.0]
    return [
        f"`{result.scenario.name}`: {result.scenario.what}; {result.scenario.link.describe()}",
        truth_text([result.reference, *result.checks]),
        reference_text(result.reference),
        verdict_counts(result.checks),
        " / ".join(str(agreements.get(a, 0)) for a in AGREEMENTS),
        f"{statistics.median(walls):.1f}",
        f"{max(walls):.1f}",
        stop_counts(result.checks, "idle"),
        stop_counts(result.checks, "download"),
        stop_counts(result.checks, "upload"),
        probe_rate(result.checks),
    ]


HEADERS = ["Scenario", "Truth (kernel, relay)", "Reference", "Adaptive verdicts", "Equal / borderline / opposite / failed",
           "Wall s, median", "Wall s, max", "Idle s, median (max); stops", "Download s; stops", "Upload s; stops",
           "Idle probes/s, lowest"]  # fmt: skip


def totals(results: Sequence[ScenarioResult]) -> Counter[Agreement]:
    return Counter(a for r in results for a in r.agreements())


def opposite_details(results: Sequence[ScenarioResult]) -> list[str]:
    """Each opposite (or failed) check, with what made its verdict; its reference once per scenario."""
    lines = []
    for result in results:
        odd = [(index, check) for index, (check, agreement) in enumerate(zip(result.checks, result.agreements(), strict=True), 1)
               if agreement in ("opposite", "failed")]  # fmt: skip
        if not odd:
            continue
        reference = result.reference
        lines.append(f"- `{result.scenario.name}`, the reference: **{verdict_label(reference)}**; reasons: {', '.join(reference.reasons) or 'none'}; "
                     f"figures: {json.dumps(reference.figures)}" + (f"; truth: {json.dumps(reference.truth)}" if reference.truth else ""))  # fmt: skip
        for index, check in odd:
            if check.verdict is None:
                lines.append(f"  - check {index}: **failed**: {check.error}")
                continue
            phases = "; ".join(f"{p.name} {p.seconds:.1f} s {p.stopped}{' (' + ', '.join(p.unsettled) + ')' if p.unsettled else ''}" for p in check.phases)
            lines.append(f"  - check {index}: **{verdict_label(check)}**; reasons: {', '.join(check.reasons) or 'none'}; figures: {json.dumps(check.figures)}; "
                         f"phases: {phases}" + (f"; truth: {json.dumps(check.truth)}" if check.truth else ""))  # fmt: skip
    return lines


def section_markdown(results: Sequence[ScenarioResult], *, runs: int, reference_idle_s: float, started: datetime, command: str) -> str:
    t = quality.Thresholds()
    all_counts = totals(results)
    decided = sum(all_counts.values())
    equal_share = all_counts["equal"] / decided if decided else 0.0
    opposite = all_counts["opposite"]
    met = equal_share >= 0.95 and opposite == 0 and all_counts["failed"] == 0
    congestion = sorted({r.congestion for r in results})
    lines = [
        (f"Run {started.strftime('%Y-%m-%d %H:%M UTC')} with `{command}`: {len(results)} scenario(s), one reference and "
        f"{runs} adaptive check(s) each. The network lab (tests/lab/netlab.py): client, router and monitor namespaces, "
        "tbf on the router, nftables random loss on the probe's UDP port at each receiver's input, the lab's relay "
        "(tests/lab/relay.py) for jitter; a fresh lab per scenario; TCP congestion control in the client namespace: "
        f"{', '.join(congestion)}. `sessionready check --json --no-machine --no-audio` in the client namespace "
        "against the monitor daemon in the monitor namespace (the machine's reasons would follow the other work on "
        "this shared host, not the path; without them no floor is given, so every line matters to the stopping rule)."),
        "",
        (f"**Reference**: one check per scenario of the same path with the same rule, the idle phase "
        f"{reference_idle_s:g} s (`udp_min_seconds = udp_max_seconds = {reference_idle_s:g}`) and each throughput "
        f"phase {REFERENCE_LOAD_S:g} s (`load_min_seconds = load_max_seconds = {REFERENCE_LOAD_S:g}`), so that its phases say "
        "themselves whether they are settled (`settled`), or not even at that length (`max_length`, with the "
        "interval, and a `borderline` reason). **Adaptive**: the defaults (idle 2–10 s, each throughput phase 2–6 s)."),
        "",
        ("**Scenarios**: loss in both directions at once: each direction has its own counter, its own interval and "
         "the same lines, and the verdict reads the worse, so the idle phase stops only once both have settled (the "
         "harder case for the rule), in half the time up-only and down-only scenarios would take. Jitter downstream "
         "only, from the relay (each echo held 0 to 2w ms, uniform; the relay's log gives the jitter really applied). "
         f"Every scenario but `slow` and `fast` runs on a {BASE_DOWN_KBIT / 1000:g}/{BASE_UP_KBIT / 1000:g} Mbit/s link "
         f"with a {BASE_QUEUE_MS:g} ms queue (tbf), far above the best tier's need, so that the throughput phases "
         "settle at once and delay under load stays far from its lines."),
        "",
        (f"Lines (sessionready/quality.py defaults): loss {100 * t.loss_warning_ratio:g} % / {100 * t.loss_critical_ratio:g} %, "
        f"jitter {t.jitter_warning_ms:g} / {t.jitter_critical_ms:g} ms, the 360p tier "
        f"{min(quality.TIER_NEEDS_MBPS['360p']) * t.throughput_headroom_factor:g} Mbit/s with headroom."),
        "",
        ("**Agreement** of an adaptive check with its scenario's reference: *equal*, the same verdict (whether or not "
        "either said borderline); *borderline*, one grade apart (ready / at risk, or at risk / not ready) and at least "
        "one of the two carried a `borderline` reason, i.e. said it could not tell; *opposite*, two grades apart (ready "
        "against not ready), or one grade apart with both settled (a check sure of what the settled reference is sure "
        "is wrong); *failed*, no verdict. Wall time: the `sessionready check` process, start to exit (submitting "
        "included). Phase columns: median (max) seconds, and how many stopped `settled` / `max_length`."),
        "",
        table(HEADERS, [scenario_row(r) for r in results]),
        "",
        f"**Overall**: {all_counts['equal']} of {decided} adaptive checks equal to the reference ({100 * equal_share:.1f} %; "
        f"the issue asks ≥ 95 %), {all_counts['borderline']} borderline, {opposite} opposite, {all_counts['failed']} failed: "
        + ("**met**." if met else "**not met**."),
        "",
    ]
    settled = [r for r in results if r.reference.settled]
    if len(settled) < len(results):
        counts = totals(settled)
        share = counts["equal"] / sum(counts.values()) if counts else 0.0
        lines.append(
            f"Against the {len(settled)} settled references alone (an unsettled reference's verdict is itself a coin toss "
            f"that said so): {counts['equal']} of {sum(counts.values())} equal ({100 * share:.1f} %), "
            f"{counts['borderline']} borderline, {counts['opposite']} opposite, {counts['failed']} failed."
        )
    details = opposite_details(results)
    if details:
        lines += ["", "Opposite or failed checks, with what made their verdict:", "", *details]
    unsettled_refs = [r.scenario.name for r in results if r.reference.verdict is not None and not r.reference.settled]
    if unsettled_refs:
        lines += ["", (f"References not settled even at {reference_idle_s:g} s: {', '.join(f'`{n}`' for n in unsettled_refs)} "
                  "(their verdict carries a `borderline` reason: a one-grade difference there counts as borderline, not opposite).")]  # fmt: skip
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Running it in the lab
# --------------------------------------------------------------------------------------------


def _reference_config(path: Path, idle_s: float, load_s: float) -> Path:
    path.write_text(
        "[check]\n"
        f"udp_min_seconds = {idle_s}\nudp_max_seconds = {idle_s}\n"
        f"load_min_seconds = {load_s}\nload_max_seconds = {load_s}\n"
    )
    return path


def _is_echo(head: bytes) -> bool:
    from sessionready import wire

    return len(head) > 4 and head[:4] == wire.MAGIC and head[4] == wire.ECHO


class LabRun:
    """One scenario's lab: shaped, lossy or jittery as the scenario says, with a monitor."""

    def __init__(self, scenario: Scenario, workdir: Path) -> None:
        from tests.lab.groundtruth import DelayProfile, Relay
        from tests.lab.netlab import MONITOR_ADDR, Lab, Tbf
        from tests.lab.product import MONITOR_PORT, Product, product_cli_problem

        self.scenario = scenario
        self.workdir = workdir
        cli, problem = product_cli_problem()
        if problem:
            raise BenchmarkError(problem)
        self.cli = cli
        self._tokens = 0
        self.lab = Lab.create(congestion="cubic")  # what real clients run (tests/lab/README.md)
        try:
            link = scenario.link
            if link.down_kbit is not None and link.up_kbit is not None:
                self.lab.shape("down", Tbf(link.down_kbit, link.queue_ms))
                self.lab.shape("up", Tbf(link.up_kbit, link.queue_ms))
            self.relay = None
            if scenario.jitter_half_width_ms is not None:
                w = scenario.jitter_half_width_ms
                self.relay = Relay(self.lab, RELAY_PORT, f"{MONITOR_ADDR}:{MONITOR_PORT}", DelayProfile(0.0), DelayProfile(w, w, "uniform"),
                                   str(workdir / "relay.jsonl"), seed=15)  # fmt: skip
            if scenario.loss_up_pct:
                self.lab.add_loss("up", scenario.loss_up_pct, [MONITOR_PORT])
            if scenario.loss_down_pct:
                self.lab.add_loss("down", scenario.loss_down_pct, [MONITOR_PORT])
            self.product = Product(self.lab, cli, workdir, advertise_udp=self.relay.address if self.relay else None)
            self.congestion = self.lab.congestion_control
        except BaseException:
            self.lab.close()
            raise

    def check(self, config: Path | None, timeout_s: float) -> Outcome:
        lossy = bool(self.scenario.loss_up_pct or self.scenario.loss_down_pct)
        if lossy:
            self.lab.reset_loss_counters()
        args = [self.cli, "check", "--monitor", self.product.url, "--json", "--allow-insecure-http", "--no-machine", "--no-audio"]
        if config is not None:
            args += ["--config", str(config)]
        # The token through the environment: on a command line every local user sees it in ps.
        env = {**self.product.env, "SESSIONREADY_TOKEN": self._new_token()}
        started = time.perf_counter()
        try:
            done = subprocess.run(self.lab.client.cmd(args), capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
        except subprocess.TimeoutExpired:
            return Outcome(None, False, time.perf_counter() - started, error=f"no answer within {timeout_s:g} s")
        wall = time.perf_counter() - started
        truth: dict[str, object] = {}
        if lossy:
            for direction, percent in (("up", self.scenario.loss_up_pct), ("down", self.scenario.loss_down_pct)):
                if percent:
                    truth[f"seen_{direction}"], truth[f"drop_{direction}"] = self.lab.loss_counters(direction)
        try:
            return outcome_from_report(json.loads(done.stdout), wall, truth)
        except (json.JSONDecodeError, ValueError, KeyError, TypeError) as error:
            tail = (done.stderr.strip() or done.stdout.strip())[-500:]
            return Outcome(None, False, wall, truth=truth, error=f"exit {done.returncode}: {tail or error}")

    def _new_token(self) -> str:
        """A client token of its own for each check. One token may start 30 probe sessions at
        once and one more a minute (the monitor's probe_session_burst: a person re-running a
        check ten times in a row), and a check takes three: eleven checks in a row from one token
        meet HTTP 429 once they are quick (first seen here: the last check of `jitter-far`)."""
        self._tokens += 1
        created = self.lab.monitor.run([self.cli, "monitor", "token", "create", "--role", "client",
                                        "--participant", f"bench-{self._tokens}", "--data-dir", str(self.product.data_dir)])  # fmt: skip
        lines = [line.strip() for line in created.stdout.splitlines() if line.strip()]
        if not lines:
            raise BenchmarkError(f"token create printed nothing: {created.stderr.strip()[-300:]}")
        return lines[-1]

    def relay_truth(self) -> dict[str, object]:
        """The downstream jitter the relay really applied to the echoes (its log), all checks."""
        if self.relay is None:
            return {}
        log = self.relay.stop()
        truth = log.truth("down", lambda p: _is_echo(p.head))
        self.relay = None
        if truth.jitter_ms is None or truth.mean_abs_d_ms is None:
            return {}
        return {"jitter_down_ms": round(truth.jitter_ms, 2), "mean_abs_d_down_ms": round(truth.mean_abs_d_ms, 2),
                "sched_error_p99_us": truth.sched_error_p99_us, "echoes": truth.packets}  # fmt: skip

    def close(self) -> None:
        self.lab.close()


def run_scenario(scenario: Scenario, workdir: Path, *, runs: int, reference_idle_s: float, say: Callable[[str], None]) -> ScenarioResult:
    workdir.mkdir(parents=True, exist_ok=True)
    config = _reference_config(workdir / "reference.toml", reference_idle_s, REFERENCE_LOAD_S)
    lab = LabRun(scenario, workdir)
    try:
        reference = lab.check(config, timeout_s=reference_idle_s + 2 * REFERENCE_LOAD_S + 120)
        say(f"{scenario.name}: reference {verdict_label(reference)} in {reference.wall_s:.1f} s, settled {reference.settled} {reference.error or ''}")
        checks = []
        for index in range(runs):
            check = lab.check(None, timeout_s=ADAPTIVE_TIMEOUT_S)
            agreement = classify(reference, check)
            phases = ", ".join(f"{p.name} {p.seconds:.1f} {p.stopped}" for p in check.phases)
            say(f"{scenario.name} {index + 1}/{runs}: {verdict_label(check)} [{agreement}] {check.wall_s:.1f} s ({phases}) {check.error or ''}")
            if agreement == "opposite":
                say(json.dumps({"opposite": asdict(check), "reference": asdict(reference)}))
            checks.append(check)
        relay = lab.relay_truth()
        if relay:
            reference = replace(reference, truth={**reference.truth, **relay})
        return ScenarioResult(scenario, reference, tuple(checks), lab.congestion)
    finally:
        lab.close()


def raw_line(result: ScenarioResult, *, reference_idle_s: float, started: datetime) -> str:
    """One scenario as a JSON line (``--raw``): everything the section is made from."""
    return json.dumps({
        "scenario": asdict(result.scenario), "congestion": result.congestion, "reference_idle_s": reference_idle_s,
        "started": started.isoformat(timespec="seconds"), "reference": asdict(result.reference),
        "checks": [asdict(c) for c in result.checks], "agreements": result.agreements(),
    })  # fmt: skip


def _outcome(item: dict) -> Outcome:
    phases = tuple(Phase(p["name"], p["seconds"], p["stopped"], tuple(p["unsettled"])) for p in item.get("phases") or ())
    return Outcome(item["verdict"], item["borderline"], item["wall_s"], phases, tuple(item.get("reasons") or ()),
                   item.get("figures") or {}, item.get("truth") or {}, item.get("error"))  # fmt: skip


def result_from_raw(line: str) -> tuple[ScenarioResult, float, datetime | None]:
    """A ``--raw`` line back: the scenario's result, its reference's idle length, when it ran."""
    item = json.loads(line)
    scenario = Scenario(**{**item["scenario"], "link": Link(**item["scenario"]["link"])})
    result = ScenarioResult(scenario, _outcome(item["reference"]), tuple(_outcome(c) for c in item["checks"]), item.get("congestion", "unknown"))
    started = datetime.fromisoformat(item["started"]) if item.get("started") else None
    return result, float(item.get("reference_idle_s", REFERENCE_IDLE_S)), started


def lab_problems() -> list[str]:
    from tests.lab.netlab import missing_requirements

    return missing_requirements()


def run_matrix(chosen: Sequence[Scenario], workdir: Path, *, runs: int, reference_idle_s: float,
               raw: Path | None = None, say: Callable[[str], None] = lambda line: None) -> list[ScenarioResult]:  # fmt: skip
    problems = lab_problems()
    if problems:
        raise BenchmarkError("the network lab cannot run here: " + "; ".join(problems) + " (run as root: sudo make bench)")
    from tests.lab.netlab import LabError, remove_stale_namespaces

    remove_stale_namespaces()
    results = []
    started = datetime.now(UTC)
    for scenario in chosen:
        try:
            result = run_scenario(scenario, workdir / scenario.name, runs=runs, reference_idle_s=reference_idle_s, say=say)
        except LabError as error:
            raise BenchmarkError(f"scenario {scenario.name}: {error}") from None
        results.append(result)
        if raw is not None:
            with raw.open("a") as f:
                f.write(raw_line(result, reference_idle_s=reference_idle_s, started=started) + "\n")
    return results


def adaptive_matrix(context: Context) -> Section:
    chosen = scenarios()
    runs = RUNS
    reference_idle_s = REFERENCE_IDLE_S
    if context.quick:
        chosen = tuple(s for s in chosen if s.name in ("clean", "loss-8", "slow"))
        runs, reference_idle_s = QUICK_RUNS, QUICK_REFERENCE_IDLE_S
    started = datetime.now(UTC)
    results = run_matrix(chosen, context.workdir, runs=runs, reference_idle_s=reference_idle_s,
                         say=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    command = "make bench" + (" (--quick)" if context.quick else "")
    return Section("Adaptive length: the verdict against a 60 s reference, scenario by scenario (issue 15)",
                   section_markdown(results, runs=runs, reference_idle_s=reference_idle_s, started=started, command=command))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    names = [s.name for s in scenarios()]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adaptive_matrix", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS, help=f"adaptive checks per scenario (default {RUNS})")
    parser.add_argument("--scenario", action="append", choices=names, help="run only this scenario (repeatable)")
    parser.add_argument("--reference-seconds", type=float, default=REFERENCE_IDLE_S, help=f"the reference's idle phase (default {REFERENCE_IDLE_S:g})")
    parser.add_argument("--raw", type=Path, help="append each scenario's checks to this JSON-lines file")
    parser.add_argument("--output", type=Path, help="write the section's markdown here (default: stdout)")
    parser.add_argument("--from-raw", type=Path, metavar="FILE", help="run nothing: write the section from a --raw file of an earlier run")
    parser.add_argument("--command", help="with --from-raw: the command that ran, as the section should name it")
    parser.add_argument("--started", type=datetime.fromisoformat, help="with --from-raw: when that run started (ISO 8601), for a file without it")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.from_raw is not None:
        return _from_raw(args.from_raw, args.output, args.command, args.started)
    chosen = tuple(s for s in scenarios() if not args.scenario or s.name in args.scenario)
    started = datetime.now(UTC)
    command = "python -m benchmarks.adaptive_matrix" + (f" {' '.join(sys.argv[1:])}" if argv is None else " " + " ".join(argv))
    with tempfile.TemporaryDirectory(prefix="sessionready-adaptive-") as workdir:
        try:
            results = run_matrix(chosen, Path(workdir), runs=args.runs, reference_idle_s=args.reference_seconds, raw=args.raw,
                                 say=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
        except BenchmarkError as error:
            print(f"adaptive matrix: {error}", file=sys.stderr)
            return 1
    markdown = section_markdown(results, runs=args.runs, reference_idle_s=args.reference_seconds, started=started, command=command.strip())
    if args.output:
        args.output.write_text(markdown + "\n")
    else:
        print(markdown)
    return 0


def _from_raw(path: Path, output: Path | None, command: str | None, started_at: datetime | None) -> int:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        parsed = [result_from_raw(line) for line in lines]
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"adaptive matrix: cannot read {path}: {error}", file=sys.stderr)
        return 1
    if not parsed:
        print(f"adaptive matrix: {path} holds no scenario", file=sys.stderr)
        return 1
    results = [result for result, _, _ in parsed]
    started = parsed[0][2] or started_at or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    markdown = section_markdown(results, runs=max(len(r.checks) for r in results), reference_idle_s=parsed[0][1], started=started,
                                command=command or f"python -m benchmarks.adaptive_matrix --raw {path}")  # fmt: skip
    if output:
        output.write_text(markdown + "\n")
    else:
        print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
