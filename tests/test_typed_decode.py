"""sessionready.typed decodes each kind of field the same way since it works out a type's shape
once per type (it asked ``typing`` at every value before): the same values, the same errors with
the same paths. Also run against the code before that change (same results), and fuzzed: any
JSON either decodes to what encodes back to it, or is a SchemaError."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionready.schema import ReportEnvelope
from sessionready.typed import SchemaError, decode, encode, limits


@dataclass(frozen=True)
class Inner:
    level: float = field(metadata=limits(ge=0.0, le=1.0))
    note: str | None = field(default=None, metadata=limits(max_len=5))


@dataclass(frozen=True)
class Outer:
    kind: Literal["a", 1]
    count: int
    on: bool
    at: str = field(metadata=limits(timestamp=True))
    items: tuple[Inner, ...] = field(default=(), metadata=limits(max_len=2))
    pair: tuple[int, str] | None = None
    inner: Inner | None = None


GOOD = {"kind": "a", "count": 3.0, "on": True, "at": "2026-12-07T12:00:00Z", "items": [{"level": 1}], "pair": [1, "x"], "inner": {"level": 0.5, "note": "ok"}}


def test_values_decode_as_declared() -> None:
    decoded = decode(Outer, GOOD)
    assert decoded == Outer("a", 3, True, "2026-12-07T12:00:00Z", (Inner(1.0),), (1, "x"), Inner(0.5, "ok"))
    assert type(decoded.count) is int and type(decoded.items[0].level) is float
    assert decode(Outer, {**GOOD, "kind": 1}).kind == 1
    assert encode(decoded) == {**GOOD, "count": 3, "items": [{"level": 1.0, "note": None}]}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"kind": True}, "kind: must be one of 'a', 1"),
        ({"kind": 1.0}, "kind: must be one of 'a', 1"),
        ({"count": 2.5}, "count: expected an integer, got a number"),
        ({"count": None}, "count: must not be null"),
        ({"on": 1}, "on: expected true or false, got a number"),
        ({"at": "2026-12-07 12:00:00"}, "at: expected an RFC 3339 timestamp with a time zone, e.g. 2026-01-31T09:00:00+00:00"),
        ({"items": [{"level": 2}]}, "items[0].level: must be <= 1.0, got 2.0"),
        ({"items": [{"level": 0}] * 3}, "items: at most 2 items allowed, got 3"),
        ({"items": {"level": 0}}, "items: expected an array, got an object"),
        ({"pair": [1]}, "pair: expected exactly 2 items, got 1"),
        ({"pair": [1, 2]}, "pair[1]: expected a string, got a number"),
        ({"inner": {"level": float("nan")}}, "inner.level: must be a finite number"),
        ({"inner": {"level": 0, "note": "toolong"}}, "inner.note: at most 5 characters allowed, got 7"),
        ({"inner": {"level": 0, "extra": 1}}, "inner.extra: unknown field"),
        ({"inner": {}}, "inner.level: missing required field"),
        ({"inner": []}, "inner: expected an object, got an array"),
    ],
)
def test_errors_name_the_field(change: dict, error: str) -> None:
    with pytest.raises(SchemaError) as raised:
        decode(Outer, {**GOOD, **change})
    assert str(raised.value) == error


def test_a_union_of_two_types_is_not_a_schema() -> None:
    @dataclass(frozen=True)
    class Odd:
        value: int | str | None = None

    assert decode(Odd, {"value": None}) == Odd(None)
    with pytest.raises(TypeError, match="unsupported union"):
        decode(Odd, {"value": 1})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.sampled_from(["a", "x", "2026-12-07T12:00:00Z", "toolong"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(list(GOOD) + ["level", "note", "other"]), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(list(GOOD)), JSON, max_size=7))
def test_any_json_decodes_to_itself_or_is_a_schema_error(data: dict) -> None:
    try:
        decoded = decode(Outer, {**GOOD, **data})
    except SchemaError:
        return
    assert decode(Outer, json.loads(json.dumps(encode(decoded)))) == decoded


def test_a_live_report_round_trips() -> None:
    import random

    from benchmarks.scale_agents import batch_body

    raw = json.loads(batch_body("s-1", 1, 1_765_000_000.0, random.Random(1))[1])["reports"][0]
    assert encode(decode(ReportEnvelope, raw)) == {**raw, "check": None}
