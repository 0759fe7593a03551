"""The browser check's page: ``GET /c/{secret}`` and its assets ``GET /c/static/{name}``.

The page's files live in ``monitor/static/check/`` (docs/browser-check.md section 5). Only
names on an allow-list are served: one plain file name with a known extension, directly in
that folder (no sub-folders, no dot-files, no link leading out of it), with a content type
set here. Every answer carries a Content-Security-Policy that allows nothing but this origin,
so a page that someone managed to alter could still send nothing elsewhere.

A secret that opens no active link gets one short page, the same words whether it was
mistyped, expired or revoked (404 for a secret unknown here, 410 for one that was valid), and
counts against its address like a wrong login (monitor/http/check_links.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from monitor.http.check_links import Refusal, lookup

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "check"
PAGE = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".wav": "audio/wav",
}
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}(" + "|".join(re.escape(ext) for ext in CONTENT_TYPES) + ")")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; worker-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",  # the page's address holds the secret
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
INVALID_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Check link not valid</title></head>
<body><main><h1>This check link does not work</h1>
<p>It may be mistyped, it may have expired, or it may have been withdrawn.
Please ask your practice for a new link.</p></main></body></html>
"""
UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Check not available</title></head>
<body><main><h1>The check page is not installed on this server</h1>
<p>Please tell your practice.</p></main></body></html>
"""


class CheckPage:
    """Serves the page's files from ``directory`` by the allow-list (tests give a folder of their own)."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self._directory = directory.resolve()

    def file(self, name: str) -> Path | None:
        """The file ``name`` names, or None when it is not allowed or not there."""
        if not NAME_PATTERN.fullmatch(name):
            return None
        path = self._directory / name
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if resolved.parent != self._directory or not resolved.is_file():
            return None
        return resolved

    def response(self, name: str, status: int = 200) -> web.Response | None:
        path = self.file(name)
        if path is None:
            return None
        return web.Response(body=path.read_bytes(), status=status, headers={**HEADERS, "Content-Type": CONTENT_TYPES[path.suffix]})


def _html(text: str, status: int) -> web.Response:
    return web.Response(text=text, status=status, headers={**HEADERS, "Content-Type": "text/html; charset=utf-8"})


PAGE_KEY = web.AppKey("check_page", CheckPage)


def add_routes(app: web.Application, page: CheckPage | None = None) -> None:
    app[PAGE_KEY] = page or CheckPage()
    app.router.add_get("/c/static/{name}", asset)
    app.router.add_get("/c/{secret}", link_page)


async def link_page(request: web.Request) -> web.Response:
    found = await lookup(request, request.match_info["secret"])
    if isinstance(found, Refusal):
        if found.response.status == 429:
            response = _html(INVALID_PAGE.replace("Please ask", "Too many links that do not work came from here: wait a while, then try again, or ask"), 429)
            response.headers["Retry-After"] = found.response.headers["Retry-After"]
            return response
        # Only the status says whether the secret ever opened a link; the words are the same.
        return _html(INVALID_PAGE, 410 if found.was_link else 404)
    page = request.app[PAGE_KEY].response(PAGE)
    return page if page is not None else _html(UNAVAILABLE_PAGE, 503)


async def asset(request: web.Request) -> web.Response:
    response = request.app[PAGE_KEY].response(request.match_info["name"])
    if response is None:
        return _html("<!doctype html><title>Not found</title><p>Not found.</p>\n", 404)
    return response
