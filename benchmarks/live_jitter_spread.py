"""How much one live window's jitter figures spread around the path's mean |D| (docs/quality-model.md,
"Which jitter is judged"): ``python -m benchmarks.live_jitter_spread``.

Not part of ``make bench``: it measures arithmetic, not the machine. Transit times are drawn
i.i.d. (seeded), probes are 100 ms apart as the live stream sends them, and the windows are cut
by the agent's own ``LiveWindows`` (through the stream seam it reads), so the figures are the
ones a live sample would carry: RFC 3550's J continued across windows, and the window's mean |D|.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable

from agents.daemon.samplers import LiveWindows
from agents.probes.udp_stream import Probe

MS = 1_000_000
WINDOW = 20  # probes per 2 s window at 10 probes/s
WINDOWS = 1000
WARM_UP = 3  # windows left out while J climbs from 0


class _ScriptedStream:
    """Probes every 100 ms; upstream transit constant, downstream transit as given (ms)."""

    def __init__(self, down_ms: list[float]) -> None:
        self.sent = [Probe(seq, seq * 100 * MS, seq * 100 * MS + round(down * MS), seq * 100 * MS, seq * 100 * MS, seq + 1) for seq, down in enumerate(down_ms)]

    def probes(self, key: bytes, first_seq: int = 0) -> list[Probe]:
        return self.sent[first_seq:]

    def forget_flow(self, key: bytes) -> None:
        pass


def spread(draw: Callable[[], float]) -> dict[str, float]:
    """Per-window J and mean |D| (down), and ten windows' means pooled, against the path's mean
    |D|: standard deviation and share of readings over 110 % of it, in %."""
    transit = [min(95.0, max(0.0, draw())) for _ in range(WINDOW * (WINDOWS + 1))]  # < 100 ms: no reordering
    stream = _ScriptedStream(transit)
    windows = LiveWindows(stream)  # type: ignore[arg-type]
    windows.add_flow(b"k")
    j: list[float] = []
    mean: list[float] = []
    for k in range(1, WINDOWS + 1):
        flow = windows.take(stream.sent[WINDOW * k].sent_ns)
        if k > WARM_UP and flow.jitter_down_ms is not None and flow.jitter_mean_down_ms is not None:
            j.append(flow.jitter_down_ms)
            mean.append(flow.jitter_mean_down_ms)
    truth = statistics.fmean(abs(b - a) for a, b in zip(transit, transit[1:]))
    result = {"truth_ms": truth}
    # Ten consecutive windows pooled (a 20 s stretch; equal echoes, so a plain mean of means).
    pooled = [statistics.fmean(mean[i : i + 10]) for i in range(0, len(mean) - 9, 10)]
    for name, values in (("j", j), ("mean", mean), ("pooled", pooled)):
        result[f"{name}_avg_ms"] = statistics.fmean(values)
        result[f"{name}_sd_pct"] = 100 * statistics.stdev(values) / truth
        result[f"{name}_over_110_pct"] = 100 * sum(v > 1.1 * truth for v in values) / len(values)
    return result


def main() -> None:
    rng = random.Random(7)
    paths = {
        "uniform 0-72 ms": lambda: rng.uniform(0, 72),
        "exponential, mean 27 ms": lambda: rng.expovariate(1 / 27),
        "normal, mean 60, sd 24 ms": lambda: rng.gauss(60, 24),
    }
    print("| transit times | path's mean abs(D) | J: sd / over +10 % | window mean: sd / over +10 % | 10 windows pooled: sd / over +10 % |")
    print("|---|---|---|---|---|")
    for name, draw in paths.items():
        r = spread(draw)
        print(f"| {name} | {r['truth_ms']:.1f} ms | {r['j_sd_pct']:.1f} % / {r['j_over_110_pct']:.1f} % | {r['mean_sd_pct']:.1f} % / {r['mean_over_110_pct']:.1f} % | {r['pooled_sd_pct']:.1f} % / {r['pooled_over_110_pct']:.1f} % |")


if __name__ == "__main__":
    main()
