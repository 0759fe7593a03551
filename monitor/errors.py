"""JSON error responses. Every error a client sees is ``{"error": {"code", "message"[, "field"]}}``."""

from __future__ import annotations

import asyncio
import json
import re
from typing import TypeVar

from aiohttp import web

from sessionready.terms import ID_PATTERN
from sessionready.typed import SchemaError, decode

T = TypeVar("T")
MaybeId = TypeVar("MaybeId", str, None)


def json_error(status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, object] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return web.json_response({"error": body}, status=status, headers=headers)


class ApiError(Exception):
    """Raised by handlers for a 4xx answer; the error middleware turns it into JSON."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def response(self) -> web.Response:
        return json_error(self.status, self.code, self.message, self.field)


BODY_TIMEOUT_S = 30.0  # a client that trickles its body is cut off, not waited for


async def read_body(request: web.Request, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The whole body (within the app's size limit), or 408 when it does not arrive in time."""
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        raise ApiError(408, "timeout", f"the request body did not arrive within {timeout_s:g} s") from None


def decode_body(cls: type[T], body: bytes) -> T:
    """UTF-8 JSON decoded strictly into ``cls``; ApiError 400 names the first offending field."""
    data = parse_json(body)
    try:
        return decode(cls, data)
    except SchemaError as error:
        raise ApiError(400, "invalid_field", error.message, error.path or None) from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body is nested too deeply") from None


def parse_json(body: bytes) -> object:
    """UTF-8 JSON parsed (not yet validated); ApiError 400 when it is not JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "the body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from None
    except (ValueError, RecursionError):
        # Integers beyond Python's digit limit, or nesting deeper than the parser goes.
        raise ApiError(400, "invalid_json", "the body is not JSON this API accepts (too deeply nested or a number too long)") from None


def only_params(request: web.Request, *allowed: str) -> None:
    """A misspelt filter (``?therapistt=``) must not silently widen a listing."""
    for name in request.query:
        if name not in allowed:
            expected = f"use {', '.join(allowed)}" if allowed else "this endpoint takes none"
            raise ApiError(400, "bad_parameter", f"unknown query parameter '{name[:40]}': {expected}", name[:40])


def id_param(value: MaybeId, name: str) -> MaybeId:
    """A query or path parameter ``name`` that must be an id (``sessionready.terms.ID_PATTERN``):
    ``value`` itself (an absent one, None, stays None), else ApiError 400 ``bad_parameter``."""
    if value is not None and not re.fullmatch(ID_PATTERN, value):
        raise ApiError(400, "bad_parameter", f"'{name}' must be 1-64 letters, digits, '.', '_' or '-'", name)
    return value
