"""Report ingest remembers an agent token's lookup for ``TOKEN_CACHE_S`` (monitor/auth.py): the
bound on revocation there. The real middleware and a real SQLite store; the cache's clock is the
test's, so the bound is checked to the second without waiting for it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.auth import TOKEN_CACHE_S, TokenCache, auth_middleware
from monitor.store.core import TokenInfo, hash_token, open_store

WHO = web.AppKey("who", object)
AGENT: web.RequestKey[object] = web.RequestKey("agent")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _who(request: web.Request) -> web.Response:
    return web.json_response({"agent_id": request[AGENT].token_id})  # type: ignore[attr-defined]


def _statuses(store, cache: TokenCache, calls: list[tuple[str, str, str]]) -> list[int]:
    """Each (method, path, token) through the real middleware, in order: the HTTP statuses."""

    async def run() -> list[int]:
        app = web.Application(middlewares=[auth_middleware(lambda request: store, AGENT, tokens=cache)])
        app.router.add_post("/api/v1/reports", _who)
        app.router.add_get("/api/v1/whoami", _who)
        async with TestClient(TestServer(app)) as client:
            statuses = []
            for method, path, token in calls:
                async with client.request(method, path, headers={"Authorization": f"Bearer {token}"}) as response:
                    statuses.append(response.status)
            return statuses

    return asyncio.run(run())


def test_a_revoked_token_posts_reports_until_the_cache_bound_and_nothing_else(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    clock = Clock()
    cache = TokenCache(clock=clock)
    try:
        info, token = store.create_token("client", "c-1")
        assert _statuses(store, cache, [("POST", "/api/v1/reports", token)]) == [200]  # looked up, remembered
        assert store.revoke_token(info.token_id)
        clock.now += TOKEN_CACHE_S - 0.001
        # Ingest still takes it (the stated bound), every other route refuses it at once.
        assert _statuses(store, cache, [("POST", "/api/v1/reports", token), ("GET", "/api/v1/whoami", token)]) == [200, 401]
        clock.now += 0.001  # exactly the bound after the lookup: asked again, refused
        assert _statuses(store, cache, [("POST", "/api/v1/reports", token)]) == [401]
        clock.now -= 5.0  # a refusal is never remembered as a success, whatever the clock does
        assert _statuses(store, cache, [("POST", "/api/v1/reports", token)]) == [401]
        assert _statuses(store, cache, [("POST", "/api/v1/reports", "no-such-token")]) == [401]
    finally:
        store.close()


def test_the_cache_keeps_token_hashes_and_stays_bounded() -> None:
    clock = Clock()
    cache = TokenCache(ttl_s=10.0, max_entries=2, clock=clock)
    infos = [TokenInfo(f"a{i}", "client", f"c-{i}", 0.0, None) for i in range(3)]
    cache.put(hash_token("t0"), infos[0])
    clock.now += 10.0
    cache.put(hash_token("t1"), infos[1])
    cache.put(hash_token("t2"), infos[2])  # full: the expired t0 goes first
    assert [cache.get(hash_token(t)) for t in ("t0", "t1", "t2")] == [None, infos[1], infos[2]]
    cache.put(hash_token("t0"), infos[0])  # full of live entries: it starts afresh rather than grow
    assert [cache.get(hash_token(t)) for t in ("t0", "t1", "t2")] == [infos[0], None, None]
    assert all(len(key) == 64 and not key.startswith("t") for key in cache._found)  # what it holds: hashes, never a token
