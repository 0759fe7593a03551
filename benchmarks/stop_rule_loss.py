"""How often the adaptive check's loss rule settles on the wrong side of a line, by simulation.

The idle phase looks at its figures every 0.1 s (5 probes at 50 packets/s) from its minimum
(2 s, 100 probes) to its maximum (10 s, 500) and stops as soon as every figure's 95 % interval
lies on one side of each line that matters (docs/quality-model.md, "Adaptive length"); a loss
settled above the critical line makes the check "not ready" at once. Each look is a fresh
chance for a random run of losses to push the Wilson interval past a line: looking ~80 times
at a 95 % interval is not a 95 % decision. This script draws independent (binomial) losses in
both directions at a fixed rate and applies the loss part of that rule (the lines of
``sessionready.quality.Thresholds``; the interval of ``sessionready.stats.wilson_interval``)
to measure, per true loss rate (by default with the rule's own intervals: its low end, which
settles "above" a line, at ``settle.Z_LOSS_ABOVE``):

* **wrong**: settled on a grade the true rate does not have (e.g. "not ready" at 2 %);
* **borderline**: not settled by the maximum (the check says so);
* the median number of probes at the stop.

It models only the loss figures (delay, jitter and sound quality are left out) and independent
losses; it is arithmetic about the rule, not a measurement of a network. ``--z-above`` asks
what another interval for concluding "above a line" would change (1.96: the rule before).

    .venv/bin/python -m benchmarks.stop_rule_loss [--trials 4000] [--z-above 1.96]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from sessionready.quality import Thresholds
from sessionready.settle import Z_LOSS_ABOVE
from sessionready.stats import Z95, wilson_interval

PROBES_PER_LOOK = 5  # 0.1 s at 50 packets/s (agents/check.py SETTLE_POLL_S)
MIN_PROBES, MAX_PROBES = 100, 500  # the idle phase's default 2 s and 10 s
RATES = (0.0, 0.005, 0.015, 0.02, 0.0227, 0.025, 0.028, 0.03, 0.035, 0.04, 0.08)


def settle_one(up: np.ndarray, down: np.ndarray, lines: tuple[float, float], z_below: float, z_above: float) -> tuple[int | None, int]:
    """(grade 0 ready / 1 at risk / 2 not ready, or None when never settled; probes at the stop)."""
    for n in range(MIN_PROBES, MAX_PROBES + 1, PROBES_PER_LOOK):
        grades: list[int | None] = []
        for lost in (up, down):
            k = int(lost[:n].sum())
            low = wilson_interval(k, n, z_above)[0]
            high = wilson_interval(k, n, z_below)[1]
            above = sum(low >= line for line in lines)
            if above == 2:
                grades.append(2)
            elif high < lines[0]:
                grades.append(0)
            elif above == 1 and high < lines[1]:
                grades.append(1)
            else:
                grades.append(None)
        if 2 in grades:
            return 2, n  # critical settled: nothing below that line matters any more
        if None not in grades:
            return max(grades), n  # type: ignore[type-var]
    return None, MAX_PROBES


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stop_rule_loss", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=4000, help="simulated checks per loss rate (default 4000)")
    parser.add_argument("--z-above", type=float, default=Z_LOSS_ABOVE, help=f"z of the interval's low end, which settles above a line (default: {Z_LOSS_ABOVE}, the rule's; 1.96 was the rule before)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.trials < 1 or args.z_above <= 0:
        parser.error("--trials must be at least 1 and --z-above positive")
    t = Thresholds()
    lines = (t.loss_warning_ratio, t.loss_critical_ratio)
    rng = np.random.default_rng(args.seed)
    print(f"loss lines {lines[0]:.0%} / {lines[1]:.0%}; looks every {PROBES_PER_LOOK} probes from {MIN_PROBES} to {MAX_PROBES}; "
          f"z below {Z95:.3f}, z above {args.z_above:.3f}; {args.trials} checks per rate")  # fmt: skip
    print("| true loss (both ways) | wrong | borderline | median probes at the stop |")
    print("|---|---|---|---|")
    for rate in RATES:
        truth = sum(rate >= line for line in lines)
        outcomes = [settle_one(rng.random(MAX_PROBES) < rate, rng.random(MAX_PROBES) < rate, lines, Z95, args.z_above) for _ in range(args.trials)]
        wrong = sum(1 for grade, _ in outcomes if grade is not None and grade != truth)
        never = sum(1 for grade, _ in outcomes if grade is None)
        print(f"| {rate:.2%} | {wrong / args.trials:.2%} | {never / args.trials:.1%} | {statistics.median(n for _, n in outcomes):.0f} |")


if __name__ == "__main__":
    main()
