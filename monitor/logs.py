"""Structured logs: one JSON object per line on stderr. Never a token, a body or a query secret."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

from sessionready.terms import LINK_PAGE_PREFIX


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"))


class ProtocolErrorFilter(logging.Filter):
    """aiohttp logs a malformed request with the offending bytes, which may be a header that
    carries a token: keep the fact, drop the bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("aiohttp.server") and record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            record.msg, record.args = "malformed HTTP request rejected (%s)", (type(record.exc_info[1]).__name__,)
            record.exc_info = None
            record.exc_text = None
        return True


class RepeatFilter(logging.Filter):
    """Lets the same message through once per ``window_s``: when the process runs out of file
    descriptors, asyncio logs every failed accept(), hundreds of thousands of lines a minute."""

    def __init__(self, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._window_s = window_s
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._window_s:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ProtocolErrorFilter())
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


LINK_ASSETS_PREFIX = f"{LINK_PAGE_PREFIX}static/"


def loggable_path(path: str) -> str:
    """``path`` as it may be logged: a check link's page address holds its secret, so it is
    ``/c/…`` (its assets, under ``/c/static/``, hold none)."""
    if path.startswith(LINK_PAGE_PREFIX) and not path.startswith(LINK_ASSETS_PREFIX):
        return LINK_PAGE_PREFIX + "\u2026"
    return path


class JsonAccessLogger(AbstractAccessLogger):
    """Method, path (no query string, no link secret), status, time. Headers are never logged:
    they hold tokens."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "request",
            extra={
                "fields": {
                    "method": request.method,
                    "path": loggable_path(request.path),
                    "status": response.status,
                    "duration_s": round(time, 6),
                    "remote": request.remote,
                }
            },
        )


def log_failed_pass(logger: logging.Logger, message: str, error: BaseException, fields: dict[str, object] | None = None) -> None:
    """A background pass (risk, summaries, alerts, retention) that failed and is tried again at
    the next one. A store that cannot be used now (the database restarting, the disk full) is
    routine during an outage: one warning line with its reason, no traceback. Anything else is a
    bug: logged with its traceback."""
    from monitor.store.core import StoreUnavailable  # the store imports much; logs are imported first

    if isinstance(error, StoreUnavailable):
        logger.warning(f"{message}: the store is unavailable", extra={"fields": {**(fields or {}), "error": str(error)}})
    else:
        logger.error(message, exc_info=error, extra={"fields": fields or {}})
