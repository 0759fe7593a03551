"""Check links against real monitor processes: who may make, list and revoke them; what a link's
holder may call (only its own routes: every other route of the app is replayed and answers
401); revoked, expired and mistyped links; the page's headers and asset allow-list; no secret
in the logs; the command line (docs/browser-check.md sections 1, 2 and 5)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from monitor.app import create_app
from monitor.auth import LINK_ROUTES, PUBLIC_PATHS
from monitor.config import MonitorConfig
from monitor.http.link_page import CSP, CheckPage
from monitor.openapi import openapi_document
from monitor.store.core import TokenInfo, hash_token
from sessionready import schema
from sessionready.typed import decode, rfc3339
from tests.conftest import CHECK, Monitor, new_token, run_cli, start_monitor
from tests.stores import StoreFactory

SECRET = re.compile(r"[A-Za-z0-9_-]{32}")


def link_request(monitor: Monitor, method: str, path: str, secret: str, body: bytes | None = None) -> tuple[int, bytes]:
    return monitor.request(method, path, None, body, headers={"Authorization": f"Link {secret}"})


def make_link(monitor: Monitor, token: str, participant: str, **extra: object) -> tuple[int, dict]:
    return monitor.json("POST", "/api/v1/check-links", token, {"participant_id": participant, **extra})


@pytest.fixture(scope="module")
def practice(shared_monitor: Monitor) -> dict[str, str]:
    """Staff, two therapists each with a client on their caseload, and a session of A's."""
    monitor = shared_monitor
    staff = new_token(monitor, "it", "it-links")
    for therapist, client in (("lk-ta", "lk-ca"), ("lk-tb", "lk-cb")):
        assert monitor.json("POST", "/api/v1/caseload", staff, {"therapist_id": therapist, "client_id": client})[0] == 201
    start = rfc3339(time.time() + 3600)
    status, body = monitor.json("POST", "/api/v1/sessions", staff, {"therapist_id": "lk-ta", "client_id": "lk-ca", "start": start, "planned_duration_s": 3000})
    assert status == 201, body
    status, other = monitor.json("POST", "/api/v1/sessions", staff, {"therapist_id": "lk-tb", "client_id": "lk-cb", "start": start, "planned_duration_s": 3000})
    assert status == 201, other
    return {
        "staff": staff,
        "ta": new_token(monitor, "therapist", "lk-ta"),
        "ta_login": monitor.login("lk-ta-user", "therapist", "lk-ta"),
        "tb": new_token(monitor, "therapist", "lk-tb"),
        "client": new_token(monitor, "client", "lk-ca"),
        "metrics": new_token(monitor, "metrics", "prom"),
        "session_a": body["session"]["session_id"],
        "session_b": other["session"]["session_id"],
    }


def test_staff_and_a_clients_therapist_make_links_and_nobody_else(shared_monitor: Monitor, practice: dict[str, str]) -> None:
    monitor = shared_monitor
    status, made = make_link(monitor, practice["staff"], "lk-ca", ttl_hours=2)
    assert status == 201, made
    assert SECRET.fullmatch(made["secret"]) and made["url"] == f"/c/{made['secret']}"
    assert re.fullmatch(r"[0-9a-f]{12}", made["link_id"]) and made["participant_id"] == "lk-ca" and made["session_id"] is None
    assert set(made) == {"link_id", "url", "secret", "participant_id", "session_id", "expires_at"}

    for role in ("client", "metrics"):
        assert make_link(monitor, practice[role], "lk-ca")[0] == 403, role
    # A therapist: only clients on their own caseload; every other id gets the same answer.
    for participant in ("lk-cb", "lk-nobody", "lk-ta"):
        status, body = make_link(monitor, practice["ta"], participant)
        assert (status, body["error"]["code"]) == (403, "not_on_caseload"), participant
    assert make_link(monitor, practice["ta"], "lk-ca")[0] == 201
    assert make_link(monitor, practice["ta_login"], "lk-ca")[0] == 201, "a therapist's dashboard login too"
    status, body = make_link(monitor, practice["ta"], "lk-ca", session_id=practice["session_a"])
    assert status == 201 and body["session_id"] == practice["session_a"]
    status, body = make_link(monitor, practice["ta"], "lk-ca", session_id=practice["session_b"])
    assert (status, body["error"]["field"]) == (400, "session_id"), "another therapist's session"
    # Staff: only registered clients, and only their own sessions.
    for participant, code in (("lk-ta", "not_a_client"), ("lk-unknown", "not_a_client")):
        status, body = make_link(monitor, practice["staff"], participant)
        assert (status, body["error"]["code"], body["error"]["field"]) == (400, code, "participant_id")
    assert make_link(monitor, practice["staff"], "lk-ca", session_id=practice["session_b"])[0] == 400
    for bad in ({"ttl_hours": 0}, {"ttl_hours": 721}, {"participant_id": "Jane Doe"}, {"colour": "red"}):
        assert monitor.json("POST", "/api/v1/check-links", practice["staff"], {"participant_id": "lk-ca", **bad})[0] == 400, bad


def test_listing_and_revoking_follow_the_caseload(shared_monitor: Monitor, practice: dict[str, str]) -> None:
    monitor = shared_monitor
    _, link_a = make_link(monitor, practice["staff"], "lk-ca")
    _, link_b = make_link(monitor, practice["staff"], "lk-cb")
    status, listing = monitor.json("GET", "/api/v1/check-links", practice["staff"])
    assert status == 200 and {link_a["link_id"], link_b["link_id"]} <= {item["link_id"] for item in listing["links"]}
    assert link_a["secret"] not in json.dumps(listing), "a listing never holds a secret"
    status, mine = monitor.json("GET", "/api/v1/check-links", practice["ta"])
    assert status == 200 and {item["participant_id"] for item in mine["links"]} == {"lk-ca"}
    assert monitor.json("GET", "/api/v1/check-links?participant_id=lk-cb", practice["ta"])[0] == 403
    assert monitor.json("GET", "/api/v1/check-links?participant=lk-ca", practice["staff"])[0] == 400, "a misspelt filter"
    status, theirs = monitor.json("GET", "/api/v1/check-links?participant_id=lk-cb", practice["staff"])
    assert [item["link_id"] for item in theirs["links"]] == [link_b["link_id"]]
    assert monitor.json("GET", "/api/v1/check-links", practice["client"])[0] == 403

    assert monitor.request("DELETE", f"/api/v1/check-links/{link_b['link_id']}", practice["ta"])[0] == 404, "not A's client"
    assert monitor.request("DELETE", "/api/v1/check-links/0123456789ab", practice["staff"])[0] == 404
    assert monitor.request("DELETE", "/api/v1/check-links/not-an-id", practice["staff"])[0] == 400
    assert link_request(monitor, "GET", "/api/v1/link", link_a["secret"])[0] == 200
    assert monitor.request("DELETE", f"/api/v1/check-links/{link_a['link_id']}", practice["ta"])[0] == 204
    assert monitor.request("DELETE", f"/api/v1/check-links/{link_a['link_id']}", practice["ta"])[0] == 204, "again: the same"
    status, listing = monitor.json("GET", "/api/v1/check-links?participant_id=lk-ca", practice["staff"])
    revoked = next(item for item in listing["links"] if item["link_id"] == link_a["link_id"])
    assert revoked["state"] == "revoked" and revoked["revoked_at"] and revoked["last_used_at"] and revoked["checks"] == 0
    assert link_request(monitor, "GET", "/api/v1/link", link_a["secret"])[0] == 401, "revoked at once"


def _path_for(resource: str) -> str:
    """A concrete path for a route pattern: each parameter a value its handler would accept."""
    values = {"check_id": "0" * 32, "link_id": "0123456789ab", "code_id": "0123456789ab", "name": "check.js", "secret": "x" * 32}
    return re.sub(r"\{([a-z_]+)(:[^}]*)?\}", lambda m: values.get(m.group(1), "lk-ca"), resource)


def test_a_link_holder_calling_any_other_route_gets_401(shared_monitor: Monitor, practice: dict[str, str]) -> None:
    monitor = shared_monitor
    _, link = make_link(monitor, practice["staff"], "lk-ca", session_id=practice["session_a"])
    secret = link["secret"]
    routes = sorted(
        {(route.method, route.resource.canonical) for route in create_app(MonitorConfig()).router.routes() if route.method not in ("HEAD", "*")}
    )
    replayed = 0
    for method, resource in routes:
        if (method, resource) in LINK_ROUTES or resource in PUBLIC_PATHS or resource.startswith("/c/"):
            continue
        status, raw = link_request(monitor, method, _path_for(resource), secret, b"{}" if method in ("POST", "PUT", "PATCH") else None)
        assert status == 401, (method, resource, raw[:200])
        replayed += 1
    assert replayed >= 25, f"only {replayed} routes replayed: the app's routes were not found"
    # Its own routes work (the probe endpoints under the link's own limits).
    status, raw = link_request(monitor, "GET", "/api/v1/link", secret)
    facts = json.loads(raw)
    assert status == 200 and facts["link_id"] == link["link_id"] and facts["session_start"] is not None
    assert facts["settings"] == {
        "udp_seconds": 5.0, "load_seconds": 4.0, "ramp_seconds": 1.0, "streams": 4, "packet_interval_ms": 20.0, "packet_bytes": 172,
        "adaptive": True, "udp_min_seconds": 2.0, "udp_max_seconds": 10.0, "load_min_seconds": 2.0, "load_max_seconds": 6.0,
    }  # fmt: skip
    # Available exactly when the monitor runs the probe stream: its offer route then answers
    # (here 400 for an empty offer), rather than being absent (404) or off (503).
    offer_status = link_request(monitor, "POST", "/api/v1/link/rtc", secret, b"{}")[0]
    assert facts["rtc"] == {"available": offer_status not in (404, 503)}, offer_status
    status, raw = link_request(monitor, "GET", "/api/v1/probe/download?bytes=100000", secret)
    assert status == 200 and len(raw) == 100000
    status, raw = link_request(monitor, "POST", "/api/v1/probe/upload", secret, b"x" * 50000)
    assert status == 200 and json.loads(raw)["received_bytes"] == 50000
    assert link_request(monitor, "POST", "/api/v1/probe/session", secret)[0] == 401, "no UDP key: the browser has no UDP"
    # A bearer token on the link's own routes is not a link.
    assert monitor.json("GET", "/api/v1/link", practice["client"])[0] == 403
    assert monitor.json("GET", "/api/v1/link/checks", practice["staff"])[0] == 403


def test_the_probe_stream_is_a_links_alone(shared_monitor: Monitor, practice: dict[str, str]) -> None:
    """POST /api/v1/link/rtc: a real offer, answered for the link's holder, replayed with bearer
    tokens (the link's own client's agent, staff): 403, no stream started. A link's holder and
    an agent are different principals (docs/browser-check.md section 2): the stream serves only
    the check its link submits."""
    aiortc = pytest.importorskip("aiortc", reason="the monitor extra (aiortc) is not installed")
    import asyncio

    async def offer() -> str:
        page = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
        page.createDataChannel("probe", ordered=False, maxRetransmits=0)
        await page.setLocalDescription(await page.createOffer())
        sdp = page.localDescription.sdp
        await page.close()
        return sdp

    monitor = shared_monitor
    _, link = make_link(monitor, practice["staff"], "lk-ca")
    body = json.dumps({"type": "offer", "sdp": asyncio.run(offer())}).encode()
    status, raw = link_request(monitor, "POST", "/api/v1/link/rtc", link["secret"], body)
    if status == 503:
        pytest.skip(f"this monitor runs no probe streams: {raw[:200]!r}")
    assert status == 201 and json.loads(raw)["type"] == "answer", raw[:300]
    for holder in ("client", "staff"):
        status, raw = monitor.request("POST", "/api/v1/link/rtc", practice[holder], body)
        assert status == 403 and json.loads(raw)["error"]["code"] == "forbidden", (holder, raw[:300])


def test_the_browsers_favicon_request_is_not_an_auth_error(shared_monitor: Monitor) -> None:
    """A browser on the check page asks for /favicon.ico by itself, with no credential: 404,
    never 401 (the page's own markup names no icon)."""
    for headers in ({}, {"Authorization": "Bearer nonsense"}):
        status, _ = shared_monitor.request("GET", "/favicon.ico", None, headers=headers)
        assert status == 404, headers


def test_every_api_route_is_in_the_openapi_document() -> None:
    documented = set(openapi_document()["paths"])
    routes = {route.resource.canonical for route in create_app(MonitorConfig()).router.routes()}
    api = {r for r in routes if r.startswith("/api/v1/") or r in ("/healthz", "/metrics")} - {"/api/v1/openapi.json"}
    # The probe stream's offer belongs to the WebRTC part (monitor/rtc/), documented there.
    assert api - {"/api/v1/link/rtc"} <= documented, api - documented
    assert {"/api/v1/check-links", "/api/v1/check-links/{link_id}", "/api/v1/link", "/api/v1/link/checks"} <= documented


def _expire(monitor: Monitor, link_id: str) -> None:
    with sqlite3.connect(monitor.data_dir / "sessionready.sqlite3") as db:
        db.execute("UPDATE check_links SET expires_at = ? WHERE link_id = ?", (time.time() - 1, link_id))


def test_revoked_and_expired_links_get_the_page_saying_so_and_401(monitor: Monitor) -> None:
    staff = new_token(monitor, "it", "it-1")
    assert monitor.json("POST", "/api/v1/participants", staff, {"participant_id": "c-1", "role": "client"})[0] == 201
    _, revoked = make_link(monitor, staff, "c-1")
    _, expired = make_link(monitor, staff, "c-1", ttl_hours=1)
    for link in (revoked, expired):
        assert link_request(monitor, "GET", "/api/v1/link", link["secret"])[0] == 200
    assert monitor.request("DELETE", f"/api/v1/check-links/{revoked['link_id']}", staff)[0] == 204
    _expire(monitor, expired["link_id"])
    pages = []
    for link in (revoked, expired):
        status, raw = link_request(monitor, "GET", "/api/v1/link", link["secret"])
        assert (status, json.loads(raw)["error"]["code"]) == (401, "invalid_link")
        status, page = monitor.request("GET", f"/c/{link['secret']}")
        assert status == 410 and b"does not work" in page
        pages.append(page)
    status, unknown = monitor.request("GET", "/c/" + "A" * 32)
    assert status == 404 and pages[0] == pages[1] == unknown, "one page for every reason: no detail about which"
    status, listing = monitor.json("GET", "/api/v1/check-links?participant_id=c-1", staff)
    assert sorted(item["state"] for item in listing["links"]) == ["expired", "revoked"]
    # An old tab on a revoked link, polling: a real secret is no guess, so the address is not
    # slowed for the practice's other links (a clinic's patients share its Wi-Fi's address).
    for _ in range(8):
        assert link_request(monitor, "GET", "/api/v1/link", revoked["secret"])[0] == 401
    _, fresh = make_link(monitor, staff, "c-1", ttl_hours=1)
    assert link_request(monitor, "GET", "/api/v1/link", fresh["secret"])[0] == 200


def test_mistyped_secrets_are_slowed_per_address(monitor: Monitor) -> None:
    staff = new_token(monitor, "it", "it-1")
    monitor.json("POST", "/api/v1/participants", staff, {"participant_id": "c-1", "role": "client"})
    _, link = make_link(monitor, staff, "c-1")
    mistyped = link["secret"][:-1] + ("A" if link["secret"][-1] != "A" else "B")
    # Five free (as for logins), the page and the API alike; then the address waits.
    answers = [monitor.request("GET", f"/c/{mistyped}")[0] for _ in range(2)]
    answers += [link_request(monitor, "GET", "/api/v1/link", mistyped)[0] for _ in range(3)]
    assert answers == [404, 404, 401, 401, 401]
    request = urllib.request.Request(f"{monitor.url}/api/v1/link", headers={"Authorization": f"Link {mistyped}"})
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("a sixth mistyped link was served")
    except urllib.error.HTTPError as error:
        assert error.code == 429 and 1 <= int(error.headers["Retry-After"]) <= 2
    # While the address waits, no secret is even looked up: not the right one either.
    assert link_request(monitor, "GET", "/api/v1/link", link["secret"])[0] == 429
    assert monitor.request("GET", f"/c/{link['secret']}")[0] == 429
    time.sleep(2.1)
    assert link_request(monitor, "GET", "/api/v1/link", link["secret"])[0] == 200, "after the wait, the link works"
    assert link_request(monitor, "GET", "/api/v1/link", mistyped)[0] == 401
    assert link_request(monitor, "GET", "/api/v1/link", link["secret"])[0] == 429, "the seventh failure doubles the wait"


def test_the_page_has_its_headers_and_the_log_never_a_secret(shared_monitor: Monitor, practice: dict[str, str]) -> None:
    monitor = shared_monitor
    _, link = make_link(monitor, practice["staff"], "lk-ca")
    try:
        with urllib.request.urlopen(f"{monitor.url}/c/{link['secret']}", timeout=10) as response:
            status, headers = response.status, response.headers
    except urllib.error.HTTPError as error:
        status, headers = error.code, error.headers
    # 200 with the page once monitor/static/check/index.html is there; 503 saying so before.
    assert status in (200, 503)
    assert headers["Content-Security-Policy"] == CSP
    assert "default-src 'self'" in CSP and "frame-ancestors 'none'" in CSP and "connect-src 'self'" in CSP
    assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
    assert headers["Content-Type"].startswith("text/html")
    for bad in ("../app.py", "..%2Fapp.py", ".hidden.js", "index.py", "x" * 80 + ".js"):
        status, _ = monitor.request("GET", f"/c/static/{bad}")
        assert status == 404, bad
    link_request(monitor, "GET", "/api/v1/link", link["secret"])
    logs = monitor.logs()
    assert link["secret"] not in logs
    assert '"path":"/c/\\u2026"' in logs or '"path":"/c/…"' in logs


def test_the_page_serves_only_allowed_files_from_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "check"
    (folder / "sub").mkdir(parents=True)
    for name in ("index.html", "check.js", "check.css", "room-worklet.js", "notes.py", ".secret.js", "Upper.js"):
        (folder / name).write_text("x")
    (folder / "sub" / "deep.js").write_text("x")
    (tmp_path / "outside.js").write_text("x")
    (folder / "escape.js").symlink_to(tmp_path / "outside.js")
    page = CheckPage(folder)
    assert {name for name in ("index.html", "check.js", "check.css", "room-worklet.js") if page.file(name)} == {"index.html", "check.js", "check.css", "room-worklet.js"}
    for name in ("notes.py", ".secret.js", "Upper.js", "sub/deep.js", "escape.js", "../outside.js", "missing.js", ""):
        assert page.file(name) is None, name
    response = page.response("check.js")
    assert response is not None and response.headers["Content-Type"].startswith("text/javascript") and response.headers["Content-Security-Policy"] == CSP


def test_the_link_command(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "store")]
    assert run_cli("monitor", "sessions", "add-participant", "cli-c1", "--role", "client", *data).returncode == 0
    made = run_cli("monitor", "link", "create", "--participant", "cli-c1", "--ttl-hours", "5", "--base-url", "https://monitor.example.org/", *data)
    assert made.returncode == 0, made.stderr
    url = made.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"https://monitor\.example\.org/c/[A-Za-z0-9_-]{32}", url)
    link_id = re.search(r"check link ([0-9a-f]{12})", made.stdout).group(1)  # type: ignore[union-attr]
    path_only = run_cli("monitor", "link", "create", "--participant", "cli-c1", *data)
    assert re.fullmatch(r"/c/[A-Za-z0-9_-]{32}", path_only.stdout.strip().splitlines()[-1])
    for args, message in (
        (["create", "--participant", "cli-nobody"], "registered client"),
        (["create", "--participant", "Jane Doe"], "pseudonymous"),
        (["create", "--participant", "cli-c1", "--base-url", "ftp://x"], "--base-url"),
        (["create", "--participant", "cli-c1", "--ttl-hours", "0"], "whole number of hours"),
        (["revoke", "0123456789ab"], "no check link"),
    ):
        done = run_cli("monitor", "link", *args, *data)
        assert done.returncode != 0 and message in done.stderr, (args, done.stderr)
    listing = run_cli("monitor", "link", "list", "--participant", "cli-c1", *data)
    assert listing.returncode == 0 and link_id in listing.stdout and url.rsplit("/", 1)[1] not in listing.stdout
    assert run_cli("monitor", "link", "revoke", link_id, *data).returncode == 0
    again = run_cli("monitor", "link", "revoke", link_id, *data)
    assert again.returncode == 0 and "already revoked" in again.stdout
    listing = run_cli("monitor", "link", "list", *data).stdout
    assert re.search(rf"{link_id} .* revoked", listing)
    # A link is not a token: the token commands neither list nor revoke it.
    other = re.search(r"check link ([0-9a-f]{12})", path_only.stdout).group(1)  # type: ignore[union-attr]
    tokens = run_cli("monitor", "token", "list", *data)
    assert tokens.returncode == 0 and link_id not in tokens.stdout and other not in tokens.stdout
    refused = run_cli("monitor", "token", "revoke", other, *data)
    assert refused.returncode == 3 and "no active token" in refused.stderr
    # The link made on the command line works against a monitor on that store.
    running = start_monitor(tmp_path / "store")
    try:
        secret = path_only.stdout.strip().splitlines()[-1].rsplit("/", 1)[1]
        assert link_request(running, "GET", "/api/v1/link", secret)[0] == 200
        assert link_request(running, "GET", "/api/v1/link", url.rsplit("/", 1)[1])[0] == 401, "revoked on the command line"
    finally:
        running.stop()


def test_a_links_probe_limits_are_its_own(tmp_path: Path) -> None:
    """Throughput bytes are counted per link id: one link that used up its hour's bytes is
    refused, another link of the same client and the client's own machine are not."""
    config = tmp_path / "monitor.toml"
    config.write_text("[monitor]\nprobe_bytes_per_hour = 1048576\n")  # 1 MiB, the least allowed
    running = start_monitor(tmp_path / "monitor", "--config", str(config))
    try:
        staff = new_token(running, "it", "it-1")
        running.json("POST", "/api/v1/participants", staff, {"participant_id": "c-1", "role": "client"})
        first, second = (make_link(running, staff, "c-1")[1]["secret"] for _ in range(2))
        # Twice the hour's bytes: a transfer that starts in budget finishes, and the link is then
        # an hour in debt (exactly the budget would refill a byte within milliseconds).
        status, raw = link_request(running, "GET", "/api/v1/probe/download?bytes=2097152", first)
        assert status == 200 and len(raw) == 2097152
        assert link_request(running, "GET", "/api/v1/probe/download?bytes=1000", first)[0] == 429
        assert link_request(running, "GET", "/api/v1/probe/download?bytes=1000", second)[0] == 200
        machine = new_token(running, "client", "c-1")
        assert running.request("GET", "/api/v1/probe/download?bytes=1000", machine)[0] == 200
    finally:
        running.stop()


def test_a_secrets_lookup_counts_nothing_and_the_hourly_limit_reads_only_times(stores: StoreFactory) -> None:
    # The lookup runs on every request of a running page (each throughput request too): it
    # does not count the link's checks; listing a link does. The hourly limit reads only the
    # receive times, newest first, never a report.
    store = stores.open()
    try:
        store.add_participant("lk-store", "client")
        link = store.create_check_link(hash_token("s" * 32), "lk-store", None, 3600.0)
        agent = TokenInfo(link.link_id, "client", "lk-store", 0.0, None)
        for i, received_at in enumerate((1000.0, 3000.0, 2000.0)):
            report = decode(schema.CheckReport, {**CHECK, "check_id": f"{i:032x}"})
            assert store.add_check(agent, report, json.dumps(CHECK), received_at)
        found = store.check_link_by_secret(hash_token("s" * 32))
        assert found is not None and found.link_id == link.link_id and found.checks is None
        assert store.get_check_link(link.link_id).checks == 3  # type: ignore[union-attr]
        assert [info.checks for info in store.list_check_links({"lk-store"})] == [3]
        assert store.link_check_times(link.link_id, 2) == [3000.0, 2000.0]
        assert store.link_check_times("0" * 12, 12) == []
        assert [c.received_at for c in store.checks_for_agent(link.link_id, 12)] == [3000.0, 2000.0, 1000.0]
    finally:
        store.close()
