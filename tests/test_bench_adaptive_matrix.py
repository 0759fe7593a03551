"""The scenario-matrix benchmark's own logic (benchmarks/adaptive_matrix.py), without the lab:
reading a check's report, classifying verdicts against the reference, and the table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from benchmarks.adaptive_matrix import (
    Outcome,
    Phase,
    ScenarioResult,
    classify,
    outcome_from_report,
    probe_rate,
    scenario_row,
    scenarios,
    section_markdown,
    stop_counts,
    totals,
    verdict_counts,
)
from sessionready import quality


def report(verdict: str, *codes: str, phases: list[dict] | None = None) -> dict:
    """The parts of a `sessionready check --json` report the benchmark reads (docs/check.md)."""
    return {
        "verdict": verdict,
        "reasons": [{"code": code, "severity": "warning", "message": "…", "fix": "…"} for code in codes],
        "network": {"loss": {"up": 0.02, "down": 0.0}, "jitter_ms": {"up": 1.0, "down": 2.0}, "rtt_ms": {"p50": 3.0}},
        "quality": {"mos": 4.1},
        "phases": phases
        if phases is not None
        else [
            {"name": "idle", "seconds": 7.7, "stopped": "settled", "min_s": 2.0, "max_s": 10.0, "unsettled": []},
            {"name": "download", "seconds": 2.0, "stopped": "settled", "min_s": 2.0, "max_s": 6.0, "unsettled": []},
        ],
    }


def check(verdict: str | None, borderline: bool = False, wall_s: float = 10.0, phases: tuple[Phase, ...] = ()) -> Outcome:
    return Outcome(verdict, borderline, wall_s, phases)  # type: ignore[arg-type]


# --- reading a report --------------------------------------------------------------------------


def test_report_read_with_its_borderline_reason_and_unsettled_figures():
    outcome = outcome_from_report(
        report("at_risk", "high_upload_loss", "borderline", phases=[
            {"name": "idle", "seconds": 10.0, "stopped": "max_length", "min_s": 2.0, "max_s": 10.0,
             "unsettled": [{"figure": "loss_up", "low": 0.0112, "high": 0.0361}]},
        ]),
        wall_s=14.2,
        truth={"seen_up": 500, "drop_up": 10},
    )  # fmt: skip
    assert outcome.verdict == "at_risk"
    assert outcome.borderline
    assert outcome.wall_s == 14.2
    assert outcome.phases == (Phase("idle", 10.0, "max_length", ("loss_up 0.0112..0.0361",)),)
    assert outcome.reasons == ("warning high_upload_loss", "warning borderline")
    assert outcome.truth == {"seen_up": 500, "drop_up": 10}
    assert not outcome.settled


def test_report_without_a_verdict_is_refused():
    with pytest.raises(ValueError, match="without a verdict"):
        outcome_from_report({"reasons": []}, wall_s=1.0)
    with pytest.raises(ValueError, match="without a verdict"):
        outcome_from_report({"verdict": "fine"}, wall_s=1.0)


def test_a_reference_is_settled_when_no_figure_was_left_unsettled():
    # The reference's phases have min = max, so settle.decide stops them "max_length" even when
    # every figure is settled: what counts is that none is left unsettled, and no borderline.
    at_max = [{"name": "idle", "seconds": 60.0, "stopped": "max_length", "min_s": 60.0, "max_s": 60.0, "unsettled": []}]
    assert outcome_from_report(report("ready", phases=at_max), 80.0).settled
    unsettled = [{**at_max[0], "unsettled": [{"figure": "loss_up", "low": 0.024, "high": 0.037}]}]
    assert not outcome_from_report(report("at_risk", "borderline", phases=unsettled), 80.0).settled
    failed = [{**at_max[0], "stopped": "failed"}]
    assert not outcome_from_report(report("ready", phases=failed), 80.0).settled


# --- classifying -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "adaptive", "expected"),
    [
        (check("ready"), check("ready"), "equal"),
        (check("at_risk"), check("at_risk", borderline=True), "equal"),  # borderline but the same verdict
        (check("ready"), check("at_risk", borderline=True), "borderline"),  # it said it could not tell
        (check("at_risk", borderline=True), check("not_ready"), "borderline"),  # the reference could not tell
        (check("ready"), check("at_risk"), "opposite"),  # both sure, one grade apart
        (check("not_ready"), check("at_risk"), "opposite"),
        (check("ready"), check("not_ready", borderline=True), "opposite"),  # two grades apart: always
        (check("not_ready", borderline=True), check("ready", borderline=True), "opposite"),
        (check("ready"), check(None), "failed"),
        (check(None), check("ready"), "failed"),
    ],
)
def test_classify(reference: Outcome, adaptive: Outcome, expected: str):
    assert classify(reference, adaptive) == expected


# --- the scenarios -----------------------------------------------------------------------------


def test_scenarios_take_their_lines_from_the_quality_model():
    defaults = {s.name: s for s in scenarios()}
    t = quality.Thresholds()
    need_360p = min(quality.TIER_NEEDS_MBPS["360p"]) * t.throughput_headroom_factor
    slow = defaults["slow"].link
    assert slow.down_kbit is not None and slow.down_kbit / 1000 < need_360p
    assert slow.up_kbit == slow.down_kbit
    assert {defaults[f"loss-{p}"].loss_up_pct for p in ("0.5", "1.5", "2", "3", "8")} == {0.5, 1.5, 2.0, 3.0, 8.0}
    assert defaults["fast"].link.down_kbit is None
    below, near = defaults["jitter-below"].jitter_half_width_ms, defaults["jitter-near"].jitter_half_width_ms
    assert below is not None and near is not None and below < near
    # Jitter follows the warning line: twice the line, twice the relay's spread.
    doubled = {s.name: s for s in scenarios(quality.Thresholds(jitter_warning_ms=2 * t.jitter_warning_ms, jitter_critical_ms=4 * t.jitter_critical_ms))}
    for name in ("jitter-below", "jitter-near", "jitter-far"):
        assert doubled[name].jitter_half_width_ms == pytest.approx(2 * defaults[name].jitter_half_width_ms, abs=0.2)
    assert len({s.name for s in scenarios()}) == len(scenarios()) == 11


# --- the table ---------------------------------------------------------------------------------


def scenario_result(name: str, reference: Outcome, checks: list[Outcome]) -> ScenarioResult:
    scenario = next(s for s in scenarios() if s.name == name)
    return ScenarioResult(scenario, reference, tuple(checks), "cubic")


IDLE_SETTLED = (Phase("idle", 7.7, "settled", ()),)
IDLE_AT_MAX = (Phase("idle", 10.0, "max_length", ("loss_up 0.01..0.03",)),)


def test_counts_and_phase_columns():
    checks = [check("at_risk", phases=IDLE_SETTLED), check("at_risk", True, phases=IDLE_AT_MAX), check("at_risk", phases=IDLE_SETTLED)]
    assert verdict_counts(checks) == "2 at risk, 1 at risk (borderline)"
    assert stop_counts(checks, "idle") == "7.7 (10.0); 2 settled, 1 max_length"
    assert stop_counts(checks, "upload") == "–"
    paced = Outcome("ready", False, 14.0, IDLE_SETTLED, figures={"packets": {"sent": 385}})
    starved = Outcome("at_risk", True, 16.0, IDLE_AT_MAX, figures={"packets": {"sent": 357}})
    assert probe_rate([paced, starved]) == "36"  # 357 probes in 10 s; 385 in 7.7 s is 50/s
    assert probe_rate([check(None)]) == "–"


def test_row_and_section_with_an_opposite_verdict():
    clean = scenario_result("clean", check("ready", phases=IDLE_SETTLED), [check("ready", wall_s=w, phases=IDLE_SETTLED) for w in (13.0, 14.0, 15.0)])
    lossy = scenario_result(
        "loss-0.5",
        check("ready", phases=IDLE_SETTLED),
        [check("at_risk", True, 20.0, IDLE_AT_MAX), check("not_ready", False, 18.0, IDLE_SETTLED), check(None, wall_s=1.0)],
    )
    row = scenario_row(clean)
    assert row[4] == "3 / 0 / 0 / 0"
    assert (row[5], row[6]) == ("14.0", "15.0")
    assert scenario_row(lossy)[4] == "0 / 1 / 1 / 1"
    assert scenario_row(lossy)[5:7] == ["19.0", "20.0"]  # a failed check has no wall time to count
    assert totals([clean, lossy]) == {"equal": 3, "borderline": 1, "opposite": 1, "failed": 1}

    text = section_markdown([clean, lossy], runs=3, reference_idle_s=60, started=datetime(2026, 12, 7, tzinfo=UTC), command="make bench")
    assert "3 of 6 adaptive checks equal to the reference (50.0 %" in text
    assert "1 borderline, 1 opposite, 1 failed: **not met**." in text
    assert "- `loss-0.5`, the reference: **ready**; reasons: none" in text
    assert "  - check 2: **not ready**; reasons: none" in text
    assert "  - check 3: **failed**" in text
    assert "`clean`, the reference" not in text  # nothing odd there


def test_section_says_met_only_without_opposites():
    good = scenario_result("clean", check("ready"), [check("ready")] * 19 + [check("at_risk", True)])
    text = section_markdown([good], runs=20, reference_idle_s=60, started=datetime(2026, 12, 7, tzinfo=UTC), command="make bench")
    assert "19 of 20 adaptive checks equal to the reference (95.0 %" in text
    assert "**met**." in text
    unsettled = scenario_result("loss-3", check("at_risk", True, phases=IDLE_AT_MAX), [check("not_ready")])
    text = section_markdown([unsettled], runs=1, reference_idle_s=60, started=datetime(2026, 12, 7, tzinfo=UTC), command="make bench")
    assert "References not settled even at 60 s: `loss-3`" in text
    both = section_markdown([good, unsettled], runs=20, reference_idle_s=60, started=datetime(2026, 12, 7, tzinfo=UTC), command="make bench")
    assert "19 of 21 adaptive checks equal" in both
    assert "Against the 1 settled references alone (an unsettled reference's verdict is itself a coin toss that said so): 19 of 20 equal (95.0 %)" in both
    assert "**not met**." in text


def test_raw_lines_give_back_the_same_section(tmp_path):
    """--raw keeps every check; --from-raw writes the section from it without running anything."""
    from benchmarks.adaptive_matrix import main, raw_line, result_from_raw

    started = datetime(2026, 12, 7, 7, 5, tzinfo=UTC)
    outcome = outcome_from_report(report("at_risk", "borderline", phases=[
        {"name": "idle", "seconds": 10.0, "stopped": "max_length", "min_s": 2.0, "max_s": 10.0,
         "unsettled": [{"figure": "loss_up", "low": 0.0112, "high": None}]},
    ]), 14.2, {"seen_up": 500, "drop_up": 9})  # fmt: skip
    results = [scenario_result("loss-2", check("at_risk", phases=IDLE_SETTLED), [outcome, check("not_ready")])]
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(raw_line(r, reference_idle_s=60, started=started) + "\n" for r in results))
    back, idle_s, when = result_from_raw(raw.read_text().splitlines()[0])
    assert back == results[0]
    assert (idle_s, when) == (60, started)
    out = tmp_path / "section.md"
    assert main(["--from-raw", str(raw), "--output", str(out), "--command", "make bench"]) == 0
    assert out.read_text() == section_markdown(results, runs=2, reference_idle_s=60, started=started, command="make bench") + "\n"
    raw.write_text("not json\n")
    assert main(["--from-raw", str(raw)]) == 1
