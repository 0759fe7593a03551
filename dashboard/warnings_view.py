"""Trends' "How well the warnings worked" (issue 17, docs/summary.md): of the sessions the
risk engine flagged before they started, how many had trouble live (precision), and of the
sessions with trouble, how many had been flagged (recall), per week, per end and per cause.

Pure builders over the records of ``dashboard.trends_view.warning_records`` (the same rows the
CSV holds). A share is never shown alone: every cell reads "30 of 40", and the percentage
joins it only when there are at least ``MIN_FOR_PERCENT`` sessions to divide by.
"""

from __future__ import annotations

from typing import Any

from dash import html

from dashboard.trends_view import Answer, Record, warning_records

MIN_FOR_PERCENT = 10
END_TITLE = {"client": "Client's end", "therapist": "Therapist's end", "session": "Both together"}
EXPLAINED = (
    "Flagged: the last rating before the session went live was at risk or not ready. Trouble: its summary has a stretch "
    "of trouble (loss bursts, low sound quality, a dropped agent). Only sessions that went live and were measured count."
)


def of(part: int | None, whole: int | None) -> str:
    """``30 of 40 (75 %)``; ``3 of 4`` for a handful; ``—`` when there is nothing to count."""
    if not whole:
        return "—"
    text = f"{part or 0} of {whole}"
    if whole >= MIN_FOR_PERCENT:
        text += f" ({100 * (part or 0) / whole:.0f} %)"
    return text


def total_sentence(total: Record) -> str:
    if not total["sessions"]:
        return "No session that went live in this period has a summary yet."
    return (
        f"{total['sessions']} sessions went live. Of those flagged before they started, "
        f"{of(total['flagged_degraded'], total['flagged'])} had trouble; of those with trouble, "
        f"{of(total['flagged_degraded'], total['degraded'])} had been flagged."
    )


def _table(table_id: str, head: list[str], rows: list[list[Any]]) -> html.Table:
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody([html.Tr([html.Td(cell) for cell in row]) for row in rows])],
        className="numbers trends-table",
        id=table_id,
    )


def warnings_block(answer: Answer) -> html.Div | None:
    records = warning_records(answer)
    if not records:
        return None
    total = records[0]
    weeks = [r for r in records if r["table"] == "week"]
    ends = [r for r in records if r["table"] == "end"]
    flag_causes = [r for r in records if r["table"] == "flag_cause"]
    live_causes = [r for r in records if r["table"] == "live_cause"]
    parts: list[Any] = [html.P(total_sentence(total), id="trends-warnings-total"), html.P(EXPLAINED, className="muted")]
    if not total["sessions"]:
        return html.Div(parts)
    head = ["Flagged before → had trouble", "Had trouble → flagged before"]
    parts.append(
        _table(
            "trends-warnings-weeks",
            ["Week of (Monday)", "Sessions", *head],
            [[w["week_start"], w["sessions"], of(w["flagged_degraded"], w["flagged"]), of(w["flagged_degraded"], w["degraded"])] for w in weeks],
        )
    )
    parts.append(
        _table(
            "trends-warnings-ends",
            ["End", "Flagged at this end → trouble there", "Trouble at this end → flagged there"],
            [[END_TITLE[e["end"]], of(e["flagged_degraded"], e["flagged"]), of(e["flagged_degraded"], e["degraded"])] for e in ends],
        )
    )
    if flag_causes:
        parts.append(
            _table(
                "trends-warnings-flag-causes",
                ["Flagged for", "End", "Then had trouble at that end"],
                [[c["cause"], END_TITLE[c["end"]], of(c["flagged_degraded"], c["flagged"])] for c in flag_causes],
            )
        )
    if live_causes:
        parts.append(
            _table(
                "trends-warnings-live-causes",
                ["Trouble live", "End", "Flagged at that end before"],
                [[c["cause"], END_TITLE[c["end"]], of(c["flagged_degraded"], c["degraded"])] for c in live_causes],
            )
        )
    return html.Div(parts)
