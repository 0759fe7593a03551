"""Strict decoding of JSON and TOML into frozen dataclasses, and JSON Schema from the same classes.

One mechanism serves the wire schema (what the monitor accepts) and the config files (what the
daemons start with), so both reject the same things the same way: unknown keys, wrong types and
out-of-range values fail with an error that names the field. Standard library only, because the
agent and the monitor both import it.

Constraints are declared on a field with ``field(metadata=limits(...))``.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")

# RFC 3339 date-time (what OpenAPI's "date-time" means): no week dates, no space, seconds required.
LEAP_SECOND = re.compile(r"(?<=T\d{2}:\d{2}):60")
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


class SchemaError(ValueError):
    """Input does not match the schema. ``path`` names the offending field, e.g. ``network.loss.up``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def limits(
    *,
    ge: float | None = None,
    le: float | None = None,
    max_len: int | None = None,
    pattern: str | None = None,
    timestamp: bool = False,
    one_of: frozenset[str] | None = None,
    doc: str = "",
) -> dict[str, Any]:
    """Field metadata: numeric bounds (inclusive), string length and pattern, ISO 8601
    timestamps, or a closed set of allowed strings (an enum known only at run time)."""
    return {"ge": ge, "le": le, "max_len": max_len, "pattern": pattern, "timestamp": timestamp, "one_of": one_of, "doc": doc}


def rfc3339(unix_s: float) -> str:
    """Unix seconds as the timestamps the schema takes and the API gives: UTC, whole seconds,
    ``2026-11-26T05:00:00Z`` (the year padded: ``%Y`` does not pad years before 1000)."""
    moment = datetime.fromtimestamp(int(unix_s), timezone.utc)
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"


def decode(cls: type[T], data: object, path: str = "") -> T:
    """Build ``cls`` from parsed JSON/TOML, rejecting anything the schema does not allow."""
    return _decode_dataclass(cls, data, path)


def validate(instance: object, path: str = "", skip: tuple[str, ...] = ()) -> None:
    """Check a dataclass built in code against its fields' types and ``limits``: the rules
    ``decode`` applies to input, so a config is valid the same way however it was made.
    Whole numbers in ``float`` fields become floats; nested dataclasses check themselves;
    fields in ``skip`` are the caller's to check (a type ``decode`` does not know)."""
    cls = type(instance)
    hints = _hints(cls)
    for name, spec in _fields(cls).items():
        value = getattr(instance, name)
        if name in skip or dataclasses.is_dataclass(value):
            continue
        checked = _decode_value(hints[name], value, _join(path, name), spec.metadata)
        if type(checked) is not type(value):
            object.__setattr__(instance, name, checked)


_SCALARS = frozenset({str, int, float, bool})


def encode(value: object) -> object:
    """The JSON-ready form of a dataclass instance: dicts, lists and scalars."""
    if value is None or type(value) in _SCALARS:
        return value  # most values: asked first, as asking is_dataclass of each cost more than the rest
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: encode(getattr(value, name)) for name in _fields(type(value))}
    if isinstance(value, (tuple, list)):
        return [encode(item) for item in value]
    return value


def json_schema(cls: type, definitions: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema reference for ``cls``; component schemas are collected into ``definitions``."""
    name = cls.__name__
    if name not in definitions:
        definitions[name] = {}  # placeholder guards against recursion
        hints = _hints(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for f in dataclasses.fields(cls):
            properties[f.name] = _type_schema(hints[f.name], f.metadata, definitions)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(f.name)
        schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            schema["required"] = required
        if cls.__doc__:
            schema["description"] = " ".join(cls.__doc__.split())
        definitions[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    # Resolving string annotations compiles each one: done once per class, not per decode
    # (it was 70 % of the monitor's ingest time).
    return typing.get_type_hints(cls)


@functools.cache
def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


@functools.cache
def _plan(cls: type) -> tuple[frozenset[str], tuple[tuple[str, Any, Mapping[str, Any], bool], ...]]:
    """A dataclass's field names, and per field its name, type hint, metadata and whether it is
    required, in declaration order: read once per class, not at every decode."""
    hints = _hints(cls)
    fields = _fields(cls)
    plan = tuple(
        (name, hints[name], f.metadata, f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING) for name, f in fields.items()
    )
    return frozenset(fields), plan


def _decode_dataclass(cls: type[T], data: object, path: str) -> T:
    if not isinstance(data, Mapping):
        raise SchemaError(path, f"expected an object, got {_kind(data)}")
    names, plan = _plan(cls)
    for key in data:
        if key not in names:
            raise SchemaError(_join(path, str(key)), "unknown field")
    values: dict[str, Any] = {}
    prefix = f"{path}." if path else ""
    for name, hint, meta, required in plan:
        if name not in data:
            if required:
                raise SchemaError(prefix + name, "missing required field")
            continue
        values[name] = _decode_value(hint, data[name], prefix + name, meta)
    return cls(**values)


@functools.cache
def _shape(tp: Any) -> tuple[str, Any]:
    """What ``_decode_value`` does with values of type ``tp``, worked out once per type: asking
    ``typing`` for a hint's origin and arguments at every value was a third of a decode."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = tuple(arg for arg in get_args(tp) if arg is not type(None))
        return "union", (options, len(options) < len(get_args(tp)))
    if origin is Literal:
        return "literal", get_args(tp)
    if origin is tuple:
        args = get_args(tp)
        return ("array", args[0]) if len(args) == 2 and args[1] is Ellipsis else ("tuple", args)
    if dataclasses.is_dataclass(tp):
        return "dataclass", tp
    for scalar in (bool, int, float, str):
        if tp is scalar:
            return scalar.__name__, None
    return "unsupported", None


def _decode_value(tp: Any, value: object, path: str, meta: Mapping[str, Any]) -> Any:
    kind, detail = _shape(tp)
    if kind == "union":
        options, nullable = detail
        if value is None:
            if not nullable:
                raise SchemaError(path, "must not be null")
            return None
        if len(options) == 1:
            return _decode_value(options[0], value, path, meta)
        raise TypeError(f"unsupported union {tp}")
    if value is None:
        raise SchemaError(path, "must not be null")
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(path, f"expected a number, got {_kind(value)}")
        if value != value or value in (float("inf"), float("-inf")):
            raise SchemaError(path, "must be a finite number")
        return _check_range(float(value), path, meta)
    if kind == "str":
        if not isinstance(value, str):
            raise SchemaError(path, f"expected a string, got {_kind(value)}")
        return _check_string(value, path, meta)
    if kind == "dataclass":
        return _decode_dataclass(detail, value, path)
    if kind == "int":
        # As in JSON Schema, 26.0 is an integer; 26.5 is not.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(path, f"expected an integer, got {_kind(value)}")
        return _check_range(value, path, meta)
    if kind == "bool":
        if not isinstance(value, bool):
            raise SchemaError(path, f"expected true or false, got {_kind(value)}")
        return value
    if kind == "literal":
        # Exact types: 1.0 and True are not the literal 1.
        if not any(type(value) is type(option) and value == option for option in detail):
            raise SchemaError(path, f"must be one of {', '.join(repr(a) for a in detail)}")
        return value
    if kind == "array":
        if not isinstance(value, (list, tuple)):
            raise SchemaError(path, f"expected an array, got {_kind(value)}")
        max_len = meta.get("max_len")
        if max_len is not None and len(value) > max_len:
            raise SchemaError(path, f"at most {max_len} items allowed, got {len(value)}")
        return tuple(_decode_value(detail, item, f"{path}[{i}]", {}) for i, item in enumerate(value))
    if kind == "tuple":
        if not isinstance(value, (list, tuple)):
            raise SchemaError(path, f"expected an array, got {_kind(value)}")
        if len(value) != len(detail):
            raise SchemaError(path, f"expected exactly {len(detail)} items, got {len(value)}")
        return tuple(_decode_value(a, item, f"{path}[{i}]", meta) for i, (a, item) in enumerate(zip(detail, value)))
    raise TypeError(f"unsupported type {tp!r} at {path}")


def _check_range(value: float, path: str, meta: Mapping[str, Any]) -> Any:
    ge, le = meta.get("ge"), meta.get("le")
    if ge is not None and value < ge:
        raise SchemaError(path, f"must be >= {ge}, got {value}")
    if le is not None and value > le:
        raise SchemaError(path, f"must be <= {le}, got {value}")
    return value


def _check_string(value: str, path: str, meta: Mapping[str, Any]) -> str:
    max_len = meta.get("max_len")
    if max_len is not None and len(value) > max_len:
        raise SchemaError(path, f"at most {max_len} characters allowed, got {len(value)}")
    one_of = meta.get("one_of")
    if one_of is not None and value not in one_of:
        raise SchemaError(path, f"unknown value '{value[:64]}'")
    pattern = meta.get("pattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise SchemaError(path, f"does not match the pattern {pattern}")
    if meta.get("timestamp"):
        if not RFC3339.fullmatch(value):
            raise SchemaError(path, "expected an RFC 3339 timestamp with a time zone, e.g. 2026-01-31T09:00:00+00:00")
        try:
            # Python has no leap seconds: read :60 as :59 only for the seconds field.
            datetime.fromisoformat(LEAP_SECOND.sub(":59", value.upper().replace("Z", "+00:00")))
        except ValueError:
            raise SchemaError(path, "expected an RFC 3339 timestamp with a real date and time") from None
    return value


def _type_schema(tp: Any, meta: Mapping[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(tp)
    schema: dict[str, Any]
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in get_args(tp) if arg is not type(None)]
        inner = _type_schema(options[0], meta, definitions)
        return {"anyOf": [inner, {"type": "null"}]}
    if origin is Literal:
        schema = {"enum": list(get_args(tp))}
    elif origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            schema = {"type": "array", "items": _type_schema(args[0], {}, definitions)}
            if meta.get("max_len") is not None:
                schema["maxItems"] = meta["max_len"]
            return schema
        items = [_type_schema(a, meta, definitions) for a in args]
        schema = {"type": "array", "prefixItems": items, "minItems": len(args), "maxItems": len(args)}
        return schema
    elif dataclasses.is_dataclass(tp):
        return json_schema(tp, definitions)
    elif tp is bool:
        schema = {"type": "boolean"}
    elif tp is int:
        schema = {"type": "integer"}
    elif tp is float:
        schema = {"type": "number"}
    elif tp is str:
        schema = {"type": "string"}
        if meta.get("max_len") is not None:
            schema["maxLength"] = meta["max_len"]
        if meta.get("pattern"):
            # Grouped: JSON Schema searches, and "^a|b$" would anchor only the ends of an alternation.
            schema["pattern"] = f"^(?:{meta['pattern']})$"
        if meta.get("timestamp"):
            schema["format"] = "date-time"
        if meta.get("one_of") is not None:
            schema = {"enum": sorted(meta["one_of"])}
    else:
        raise TypeError(f"unsupported type {tp!r}")
    if meta.get("ge") is not None:
        schema["minimum"] = meta["ge"]
    if meta.get("le") is not None:
        schema["maximum"] = meta["le"]
    if meta.get("doc"):
        schema["description"] = meta["doc"]
    return schema


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
