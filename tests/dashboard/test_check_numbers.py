"""The check's numbers on the dashboard show the jitter the verdict judged (issue 15): mean |D|
per direction when the check carries it, RFC 3550's J for a check from before."""

from __future__ import annotations

import json
from pathlib import Path

from dashboard.present import check_numbers

REPORT = Path(__file__).parents[1] / "data" / "report.json"


def _jitter_row(report: dict) -> str:
    return dict(check_numbers(report))["Jitter up / down"]


def test_the_jitter_shown_is_the_one_judged_and_an_older_check_shows_j() -> None:
    report = json.loads(REPORT.read_text())
    report["network"]["jitter_ms"] = {"up": 31.9, "down": 4.0}
    report["network"]["jitter_mean_ms"] = {"up": 26.8, "down": 3.5}
    assert _jitter_row(report) == "26.8 ms / 3.5 ms", "a 'ready' check must not show 31.9 ms beside it"
    del report["network"]["jitter_mean_ms"]
    assert _jitter_row(report) == "31.9 ms / 4.0 ms"
