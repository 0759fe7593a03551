"""``GET /api/v1/sessions/{id}/samples``: a session's live samples from both ends, for the
dashboard's Live page. Visible to the session's therapist (agent token or dashboard login)
and to staff; the same 404 for absent and not yours, like the session itself."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from monitor import keys
from monitor.auth import require_role
from monitor.errors import ApiError, only_params
from monitor.http.sessions import STAFF, visible_session
from monitor.store.protocols import RiskStore
from sessionready import schema
from sessionready.typed import decode, encode

DEFAULT_WINDOW_S = 600.0  # the Live page shows the last 10 minutes
MAX_WINDOW_S = 86_400.0


@dataclass(frozen=True)
class EndSample:
    """One live sample and the end it came from; ``received_at`` is the monitor's clock (unix s)."""

    end: Literal["client", "therapist"]
    received_at: float
    sample: schema.Sample


@dataclass(frozen=True)
class SessionSamples:
    session_id: str
    samples: tuple[EndSample, ...]  # oldest first


async def session_samples(request: web.Request) -> web.Response:
    require_role(request[keys.AGENT], "therapist", *STAFF, users=True)
    only_params(request, "since")
    info = await visible_session(request)
    now = request.app[keys.CLOCK]()
    raw = request.query.get("since")
    since = now - DEFAULT_WINDOW_S
    if raw is not None:
        if not re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,6})?", raw):
            raise ApiError(400, "bad_parameter", "'since' is unix seconds, e.g. 1764100000.5", "since")
        since = max(float(raw), now - MAX_WINDOW_S)
    store: RiskStore = request.app[keys.STORE]
    rows = await asyncio.to_thread(store.live_samples, info.session_id, since)
    ends = {info.client_id: "client", info.therapist_id: "therapist"}
    samples = tuple(
        EndSample(ends[participant], received_at, decode(schema.Sample, sample))  # type: ignore[arg-type]
        for participant, received_at, sample in rows
        if participant in ends
    )
    return web.json_response(encode(SessionSamples(info.session_id, samples)))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/sessions/{session_id:(?!import$)[^/]+}/samples", session_samples)
