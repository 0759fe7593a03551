"""The wire schema rejects what it must, names the field, and round-trips a real report."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sessionready.schema import CheckReport
from sessionready.typed import SchemaError, decode, encode, json_schema, rfc3339

REPORT = json.loads((Path(__file__).parent / "data" / "report.json").read_text())


def test_a_real_report_round_trips() -> None:
    report = decode(CheckReport, REPORT)
    assert encode(report) == REPORT


def _rejects(mutate, field: str) -> str:  # noqa: ANN001
    data = copy.deepcopy(REPORT)
    mutate(data)
    with pytest.raises(SchemaError) as raised:
        decode(CheckReport, data)
    assert raised.value.path == field
    return raised.value.message


def test_unknown_field_is_named() -> None:
    assert "unknown" in _rejects(lambda d: d["network"].__setitem__("hostname", "laptop"), "network.hostname")
    assert "unknown" in _rejects(lambda d: d.__setitem__("client_name", "x"), "client_name")


def test_wrong_types_are_named() -> None:
    _rejects(lambda d: d["network"]["rtt_ms"].__setitem__("p50", "12"), "network.rtt_ms.p50")
    _rejects(lambda d: d["network"]["packets"].__setitem__("sent", 1.5), "network.packets.sent")
    assert decode(CheckReport, {**REPORT, "network": {**REPORT["network"], "packets": {"sent": 3.0, "received": 3, "reflected": 3}}}).network.packets.sent == 3
    _rejects(lambda d: d["network"]["packets"].__setitem__("sent", True), "network.packets.sent")
    _rejects(lambda d: d.__setitem__("reasons", {}), "reasons")


def test_out_of_range_values_are_named() -> None:
    assert ">=" in _rejects(lambda d: d["network"]["loss"].__setitem__("up", -0.1), "network.loss.up")
    assert "<=" in _rejects(lambda d: d["network"]["loss"].__setitem__("down", 1.5), "network.loss.down")
    _rejects(lambda d: d["network"]["loss"].__setitem__("up_ci95", [0.0, 2.0]), "network.loss.up_ci95[1]")
    _rejects(lambda d: d["network"]["loss"].__setitem__("up_ci95", [0.0]), "network.loss.up_ci95")
    _rejects(lambda d: d["network"]["rtt_ms"].__setitem__("p95", float("nan")), "network.rtt_ms.p95")


def test_missing_and_null_fields() -> None:
    assert "missing" in _rejects(lambda d: d.pop("verdict"), "verdict")
    _rejects(lambda d: d.__setitem__("verdict", None), "verdict")
    _rejects(lambda d: d.__setitem__("verdict", "fine"), "verdict")


def test_ids_must_be_pseudonymous_tokens() -> None:
    _rejects(lambda d: d.__setitem__("session_id", "Jane Doe 10am"), "session_id")
    _rejects(lambda d: d.__setitem__("check_id", "../../etc"), "check_id")
    _rejects(lambda d: d.__setitem__("started_at", "yesterday"), "started_at")
    _rejects(lambda d: d.__setitem__("started_at", "2026-01-01T10:00:00"), "started_at")


def test_long_text_is_refused() -> None:
    _rejects(lambda d: d["network"].__setitem__("udp_error", "x" * 5000), "network.udp_error")


def test_json_schema_describes_every_component() -> None:
    components: dict = {}
    ref = json_schema(CheckReport, components)
    assert ref == {"$ref": "#/components/schemas/CheckReport"}
    report = components["CheckReport"]
    assert report["additionalProperties"] is False
    assert set(report["required"]) == set(REPORT) - {"machine", "room", "source", "browser", "devices", "phases"}
    assert "adaptive" not in components["CheckSettings"]["required"]  # optional: older agents and the browser send none
    assert {"Network", "Loss", "RttMs", "Reason", "Quality"} <= set(components)
    assert components["Loss"]["properties"]["up"]["maximum"] == 1


def test_rfc3339_gives_whole_utc_seconds_with_a_padded_year() -> None:
    assert rfc3339(1_795_669_200.9) == "2026-11-26T05:00:00Z"  # truncated, not rounded up
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(-61_000_000_000) == "0036-12-26T11:33:20Z"  # %Y alone would not pad
