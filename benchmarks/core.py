"""What every benchmark shares: its context, its result (a markdown section), small helpers."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class BenchmarkError(Exception):
    """The benchmark could not produce numbers; the message says why in one sentence."""


@dataclass(frozen=True)
class Context:
    """Where a benchmark runs. ``workdir`` is a fresh directory of its own, removed afterwards."""

    workdir: Path
    env: dict[str, str]  # for product processes: no user config, nothing from the caller's shell
    quick: bool  # a smoke test: fewer runs, smaller loads; numbers not for comparison


@dataclass(frozen=True)
class Section:
    """A benchmark's part of docs/benchmarks.md: what it measures, what the numbers mean, the table."""

    title: str
    markdown: str


Benchmark = Callable[[Context], Section]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], digits: int = 2) -> str:
    """``median (min–max)``, or just the value for a single run."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
