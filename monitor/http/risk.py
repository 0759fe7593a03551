"""How a session's risk appears in the sessions API: its state, reasons and both ends in lists,
and in full (the end-to-end estimate, live numbers, every change too) for one session."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from monitor.store.risk import RiskSummary, StoredRisk
from sessionready.terms import CHECK_ID_PATTERN
from sessionready.typed import limits, rfc3339

_text = limits(max_len=600)
RiskState = Literal["ready", "unknown", "at_risk", "not_ready"]


@dataclass(frozen=True)
class ReasonOut:
    """Why: the end it concerns, a cause code, how bad, plain words, and what the therapist can do."""

    end: Literal["client", "therapist", "session"]
    cause: str = field(metadata=limits(max_len=64))
    severity: Literal["info", "warning", "critical"]
    message: str = field(metadata=_text)
    action: str = field(metadata=_text)


@dataclass(frozen=True)
class EndOut:
    """One end as the risk engine last saw it: its own state, its latest full check, whether
    its agent was online, and its latest live MOS."""

    role: Literal["client", "therapist"]
    participant_id: str
    state: RiskState
    check_age_s: float | None = field(metadata=limits(doc="the check's age at the evaluation, seconds; null: no check"))
    online: bool
    live_mos: float | None  # the latest live sample's MOS, while live
    checked_at: str | None = field(metadata=limits(timestamp=True, doc="when the monitor received that check; null: no check"))
    check_id: str | None = field(metadata=limits(pattern=CHECK_ID_PATTERN, doc="that check, for GET /api/v1/checks/{check_id}; null: no check (or assessed before monitors recorded it)"))


@dataclass(frozen=True)
class RiskOut:
    """The risk engine's latest word on a session, with each end's own. ``live_state`` while
    (or after) it was live."""

    state: RiskState
    live_state: Literal["ready", "at_risk"] | None
    reasons: tuple[ReasonOut, ...]
    client: EndOut | None  # None: no pre-session assessment yet (only live numbers, or none)
    therapist: EndOut | None


@dataclass(frozen=True)
class EndToEndOut:
    """The two access links combined (docs/risk.md): the worse direction's MOS and video tier."""

    mos: float | None
    video_tier: str = field(metadata=limits(max_len=20))
    one_way_delay_ms: float  # the worse direction's network one-way delay
    loss_ratio: float | None  # the worse direction's compounded loss


@dataclass(frozen=True)
class RiskChangeOut:
    at: str = field(metadata=limits(timestamp=True))
    state: RiskState
    reasons: tuple[ReasonOut, ...]


@dataclass(frozen=True)
class RiskDetail:
    state: RiskState
    evaluated_at: str = field(metadata=limits(timestamp=True))
    changed_at: str = field(metadata=limits(timestamp=True))
    reasons: tuple[ReasonOut, ...]
    client: EndOut | None
    therapist: EndOut | None
    end_to_end: EndToEndOut | None
    live_state: Literal["ready", "at_risk"] | None
    live_degraded: bool  # went at risk at some point while live
    history: tuple[RiskChangeOut, ...]  # every change, oldest first


def _reasons(reasons: list[dict[str, object]]) -> tuple[ReasonOut, ...]:
    return tuple(ReasonOut(r["end"], r["cause"], r["severity"], r["message"], r["action"]) for r in reasons)  # type: ignore[arg-type]


def _end(risk: RiskSummary | StoredRisk, role: str) -> EndOut | None:
    """One end from the stored assessment. The check's time is the evaluation's less the
    check's age then, so a viewer can count the age from their own now."""
    data = risk.assessment.get(role)
    if not isinstance(data, dict):
        return None
    age = data["check_age_s"]
    checked_at = None if age is None else rfc3339(round(risk.evaluated_at - age))
    live_mos = risk.client_mos if role == "client" else risk.therapist_mos
    return EndOut(role, data["participant_id"], data["state"], age, data["online"], live_mos, checked_at, data.get("check_id"))  # type: ignore[arg-type]


def risk_out(risk: RiskSummary | StoredRisk) -> RiskOut:
    """What a list shows of a session's risk; the same ends as its detail."""
    reasons = _reasons(risk.assessment.get("reasons", []))  # type: ignore[arg-type]
    return RiskOut(risk.state, risk.live_state, reasons, _end(risk, "client"), _end(risk, "therapist"))  # type: ignore[arg-type]


def risk_detail(stored: StoredRisk) -> RiskDetail:
    assessment = stored.assessment
    e2e = assessment.get("end_to_end")
    end_to_end = None
    if isinstance(e2e, dict):
        directions = [e2e["client_to_therapist"], e2e["therapist_to_client"]]
        worst = max(directions, key=lambda d: d["network_one_way_ms"])
        losses = [d["loss_ratio"] for d in directions if d["loss_ratio"] is not None]
        end_to_end = EndToEndOut(e2e["mos"], e2e["video_tier"], worst["network_one_way_ms"], max(losses) if losses else None)
    return RiskDetail(
        state=stored.state,  # type: ignore[arg-type]
        evaluated_at=rfc3339(stored.evaluated_at),
        changed_at=rfc3339(stored.changed_at),
        reasons=_reasons(assessment.get("reasons", [])),  # type: ignore[arg-type]
        client=_end(stored, "client"),
        therapist=_end(stored, "therapist"),
        end_to_end=end_to_end,
        live_state=stored.live_state,  # type: ignore[arg-type]
        live_degraded=stored.live_degraded,
        history=tuple(RiskChangeOut(rfc3339(c.at), c.state, _reasons(c.reasons)) for c in stored.history),  # type: ignore[arg-type]
    )
