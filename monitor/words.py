"""The words staff read about a check are the monitor's own, never an agent's.

A check report carries its reasons as code, severity, message and fix. The code and the
severity are data; the message and the fix were plain text an agent (or anyone holding a
client's token) could fill with anything up to 400 characters: a phishing line on the IT
desk's screen, a bidi override, a NUL. The quality model is shared, so the monitor renders the
words itself from the report's numbers: a reason the monitor's own assessment also finds gets
the monitor's message, any other gets a sentence made from its code, and every fix is the
model's fix for that code and severity. Every other free-text field is made plain
(``sessionready.plaintext``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from sessionready import quality, schema, settle
from sessionready.facts import assess_check
from sessionready.plaintext import plain_strings

T = TypeVar("T")


def in_own_words(
    report: schema.CheckReport,
    thresholds: quality.Thresholds = quality.Thresholds(),
    *,
    judged: quality.Assessment | None = None,
) -> schema.CheckReport:
    """``report`` with every reason's message and fix rendered here, and plain free text.

    ``judged``: the monitor's own assessment of this very report, when the caller made it
    already (a browser check is judged by the monitor in the first place): not judged twice.
    """
    if judged is None:
        try:
            judged = assess_check(report.network, report.machine, report.room, thresholds, report.devices)
        except (ValueError, TypeError):  # numbers the model cannot judge: every message from its code
            judged = None
    found = {} if judged is None else {reason.code: reason.message for reason in judged.reasons}
    found.update({reason.code: reason.message for reason in settle.borderline_of_phases(report.phases)})
    reasons = tuple(
        schema.Reason(
            code=reason.code,
            severity=reason.severity,
            message=found.get(reason.code) or code_message(reason.code),
            fix=quality.fix_text(reason.code, reason.severity),
        )
        for reason in report.reasons
    )
    return plain_strings(replace(report, reasons=reasons))


def code_message(code: str) -> str:
    """A reason's message from its code alone, for a reason the agent found with limits other
    than the monitor's (its numbers are in the report)."""
    return f"The check on this computer found: {code.replace('_', ' ')}."


def plain_report(envelope: T) -> T:
    """A report envelope as the monitor keeps it: a check in the monitor's words, a sample
    with plain free text."""
    if isinstance(envelope, schema.ReportEnvelope) and envelope.check is not None:
        return replace(envelope, check=in_own_words(envelope.check))  # type: ignore[return-value]
    return plain_strings(envelope)
