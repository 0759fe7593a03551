"""How a session's risk appears in the sessions API: its state and reasons in lists, and in
full (both ends, the end-to-end estimate, live numbers, every change) for one session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

from monitor.store_risk import StoredRisk
from sessionready.typed import limits

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
class RiskOut:
    """The risk engine's latest word on a session. ``live_state`` while (or after) it was live."""

    state: RiskState
    live_state: Literal["ready", "at_risk"] | None
    reasons: tuple[ReasonOut, ...]


@dataclass(frozen=True)
class EndOut:
    role: Literal["client", "therapist"]
    participant_id: str
    state: RiskState
    check_age_s: float | None  # None: this end has never run a check
    online: bool
    live_mos: float | None  # the latest live sample's MOS, while live


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


def _time(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _reasons(reasons: list[dict[str, object]]) -> tuple[ReasonOut, ...]:
    return tuple(ReasonOut(r["end"], r["cause"], r["severity"], r["message"], r["action"]) for r in reasons)  # type: ignore[arg-type]


def risk_out(state: str, live_state: str | None, reasons: list[dict[str, object]]) -> RiskOut:
    return RiskOut(state, live_state, _reasons(reasons))  # type: ignore[arg-type]


def risk_detail(stored: StoredRisk) -> RiskDetail:
    assessment = stored.assessment

    def end(role: str, live_mos: float | None) -> EndOut | None:
        data = assessment.get(role)
        if not isinstance(data, dict):
            return None
        return EndOut(role, data["participant_id"], data["state"], data["check_age_s"], data["online"], live_mos)  # type: ignore[arg-type]

    e2e = assessment.get("end_to_end")
    end_to_end = None
    if isinstance(e2e, dict):
        directions = [e2e["client_to_therapist"], e2e["therapist_to_client"]]
        worst = max(directions, key=lambda d: d["network_one_way_ms"])
        losses = [d["loss_ratio"] for d in directions if d["loss_ratio"] is not None]
        end_to_end = EndToEndOut(e2e["mos"], e2e["video_tier"], worst["network_one_way_ms"], max(losses) if losses else None)
    return RiskDetail(
        state=stored.state,  # type: ignore[arg-type]
        evaluated_at=_time(stored.evaluated_at),
        changed_at=_time(stored.changed_at),
        reasons=_reasons(assessment.get("reasons", [])),  # type: ignore[arg-type]
        client=end("client", stored.client_mos),
        therapist=end("therapist", stored.therapist_mos),
        end_to_end=end_to_end,
        live_state=stored.live_state,  # type: ignore[arg-type]
        live_degraded=stored.live_degraded,
        history=tuple(RiskChangeOut(_time(c.at), c.state, _reasons(c.reasons)) for c in stored.history),  # type: ignore[arg-type]
    )
