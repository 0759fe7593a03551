"""JSON error responses. Every error a client sees is ``{"error": {"code", "message"[, "field"]}}``."""

from __future__ import annotations

from aiohttp import web


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
