"""Dashboard logins that outlive a dashboard restart and hold behind several dashboards (issue 16,
part 4): the login travels sealed in the browser's cookie (dashboard/websession.py), so any
dashboard with the same secret key file serves it and one with another secret does not.

Real ``sessionready dashboard`` processes against a real monitor on loopback for the restart,
the shared secret, logout and tampering; the idle limit and the monitor's expiry with an
injected clock (the dashboard in this process, the monitor still real)."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.websession import SessionSealer
from tests.conftest import Monitor, start_monitor
from tests.dashboard.conftest import PASSWORD, free_port
from tests.dashboard.test_hostile import Browser, add_user, start_dashboard

T0 = 1_774_000_000.0  # 2026-03-20T09:46:40Z
SECRET = b"0123456789abcdef" * 4
DASH_PAGE = 'id="react-entry-point"'  # Dash's own page: the login was taken
BOUNCE = 'http-equiv="refresh"'  # the tiny page that moves to /login


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


# --- the sealed login itself ---------------------------------------------------------------------


def test_a_sealed_login_ends_when_idle_and_at_the_monitors_expiry() -> None:
    clock = Clock()
    sealer = SessionSealer(SECRET, idle_limit_s=600, clock=clock)
    made = sealer.create(token="sru1_x", username="t.a", role="therapist", participant_id="t-a", expires_at="2026-03-20T10:46:40Z")  # T0 + 1 h
    cookie = sealer.seal(made)
    assert "sru1_x" not in cookie and "t.a" not in cookie, "the token and the name are not readable in the cookie"
    clock.now += 599
    opened = sealer.open(cookie)
    assert opened == made and sealer.due_for_refresh(opened)  # 599 s on: alive, and due for a new seal
    cookie = sealer.seal(sealer.touched(opened))  # used: the idle limit counts from now
    clock.now += 599
    assert sealer.open(cookie) is not None
    clock.now += 1  # exactly the idle limit since its last use: over
    assert sealer.open(cookie) is None
    again = sealer.seal(sealer.create(token="sru1_y", username="t.a", role="therapist", participant_id="t-a", expires_at="2026-03-20T10:46:40Z"))
    fresh = sealer.open(again)
    assert fresh is not None and fresh.last_used_s == clock.now
    clock.now = T0 + 3600  # the monitor's expiry, however recently it was used
    assert sealer.open(sealer.seal(sealer.touched(fresh))) is None
    unreadable = sealer.seal(sealer.create(token="t", username="u", role="it", participant_id="", expires_at="not a time"))
    assert sealer.open(unreadable) is None, "an expiry that cannot be read ends the login at once"


def test_refresh_is_due_after_a_tenth_of_the_idle_limit_capped_at_a_minute() -> None:
    clock = Clock()
    short = SessionSealer(SECRET, idle_limit_s=300, clock=clock)
    made = short.create(token="t", username="u", role="it", participant_id="", expires_at="2026-03-20T12:00:00Z")
    clock.now += 29.9
    assert not short.due_for_refresh(made)
    clock.now = T0 + 30  # 300 / 10
    assert short.due_for_refresh(made)
    long = SessionSealer(SECRET, idle_limit_s=3600, clock=clock)
    made = long.create(token="t", username="u", role="it", participant_id="", expires_at="2026-03-20T12:00:00Z")
    clock.now += 59.9
    assert not long.due_for_refresh(made)
    clock.now += 0.1  # 60 s: the cap, not 360 s
    assert long.due_for_refresh(made)


def test_a_changed_truncated_or_foreign_cookie_is_refused() -> None:
    clock = Clock()
    sealer = SessionSealer(SECRET, idle_limit_s=600, clock=clock)
    cookie = sealer.seal(sealer.create(token="sru1_x", username="t.a", role="therapist", participant_id="t-a", expires_at="2026-03-20T10:46:40Z"))
    assert sealer.open(cookie) is not None
    raw = base64.urlsafe_b64decode(cookie[3:] + "=" * (-len(cookie[3:]) % 4))
    for position in range(len(raw)):  # every single byte changed: nonce, ciphertext, tag
        changed = bytearray(raw)
        changed[position] ^= 0x01
        forged = "v1." + base64.urlsafe_b64encode(bytes(changed)).decode().rstrip("=")
        assert sealer.open(forged) is None, position
    other = SessionSealer(b"another secret of 32 characters!", idle_limit_s=600, clock=clock)
    assert other.open(cookie) is None, "another dashboard secret"
    for bad in (None, "", "v1.", "v1.!!!!", cookie[:-4], cookie[:20], "v2" + cookie[2:], "x" * 5000, "v1." + "A" * 16):
        assert sealer.open(bad) is None, bad


def test_an_authentic_seal_of_a_wrong_shape_is_refused() -> None:
    """A cookie only our key could make but with fields of another version: refused, no crash."""
    clock = Clock()
    sealer = SessionSealer(SECRET, idle_limit_s=600, clock=clock)
    for plain in (b"[]", b"{}", b'{"token": 1}', json.dumps({"token": "t", "csrf_token": "c", "username": "u", "role": "it", "participant_id": "", "expires_at_s": "soon", "last_used_s": T0}).encode(), b"\xff"):
        nonce = b"\x00" * 12
        sealed = sealer._aead.encrypt(nonce, plain, b"sessionready dashboard login v1")
        assert sealer.open("v1." + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")) is None, plain


# --- real dashboards -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def practice_monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    running = start_monitor(tmp_path_factory.mktemp("logins") / "monitor")
    add_user(running, "it.shared", "it")
    add_user(running, "it.idle", "it")
    yield running
    running.stop()


def page(browser: Browser, path: str = "/") -> tuple[int, str]:
    status, _, body = browser.request("GET", path)
    return status, body


def test_a_login_survives_a_restart_and_works_on_every_dashboard_with_the_same_secret(practice_monitor: Monitor, tmp_path: Path) -> None:
    shared = tmp_path / "shared.key"
    shared.write_text("fedcba9876543210" * 4 + "\n")
    shared.chmod(0o600)
    port = free_port()
    first = start_dashboard(tmp_path / "a", practice_monitor.url, port=port, secret_key_file=str(shared))
    second = start_dashboard(tmp_path / "b", practice_monitor.url, secret_key_file=str(shared))
    stranger = start_dashboard(tmp_path / "c", practice_monitor.url)  # its own secret, made at start
    running = [first, second, stranger]
    try:
        browser = Browser(first.url)
        status, headers, _ = browser.log_in("it.shared")
        assert status == 303 and "sr_session" in browser.cookies and "_csrf_token" in browser.cookies, headers
        login = dict(browser.cookies)
        assert page(browser)[1].count(DASH_PAGE) == 1

        first.stop()
        running.remove(first)
        first = start_dashboard(tmp_path / "a", practice_monitor.url, port=port, secret_key_file=str(shared))
        running.append(first)
        assert DASH_PAGE in page(browser)[1], "still logged in after the dashboard restarted"

        behind = Browser(second.url, cookies=dict(login))
        assert DASH_PAGE in page(behind)[1], "the other dashboard takes the same cookie"
        status, layout = page(behind, "/_dash-layout")
        assert status == 200 and "it.shared" in layout, "and knows who is logged in"
        # The CSRF rules hold there exactly as on the first: the token travels in the sealed login.
        update = json.dumps({"output": "shell-page.children", "outputs": {"id": "shell-page", "property": "children"}, "inputs": [{"id": "shell-url", "property": "pathname", "value": "/"}], "changedPropIds": ["shell-url.pathname"], "state": []}).encode()
        json_headers = {"Content-Type": "application/json"}
        assert behind.request("POST", "/_dash-update-component", update, json_headers)[0] == 403, "no X-CSRFToken"
        assert behind.request("POST", "/_dash-update-component", update, {**json_headers, "X-CSRFToken": "guess"})[0] == 403
        cross_site = {**json_headers, "X-CSRFToken": login["_csrf_token"], "Origin": "https://evil.example"}
        assert behind.request("POST", "/_dash-update-component", update, cross_site)[0] == 403, "another site's page"
        status, _, answer = behind.request("POST", "/_dash-update-component", update, {**json_headers, "X-CSRFToken": login["_csrf_token"]})
        assert status == 200 and "today-" in answer, answer[:300]

        foreign = Browser(stranger.url, cookies=dict(login))
        assert BOUNCE in page(foreign)[1], "a dashboard with another secret does not take it"
        status, _, answer = foreign.request("POST", "/_dash-update-component", update, {**json_headers, "X-CSRFToken": login["_csrf_token"]})
        assert "today-" not in answer and json.loads(answer)["sideUpdate"]["shell-redirect"]["href"] == "/login", "its callbacks find no login and send the browser to /login"

        value = login["sr_session"]
        middle = len(value) // 2
        tampered = value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1 :]
        forged = Browser(first.url, cookies={**login, "sr_session": tampered})
        assert BOUNCE in page(forged)[1], "a changed cookie is refused"

        # Logout on the second dashboard; a copy of the cookie is then refused by the first.
        assert behind.request("POST", "/logout", urllib.parse.urlencode({"csrf": "wrong"}).encode(), {"Content-Type": "application/x-www-form-urlencoded"})[0] == 403
        status, headers, _ = behind.request("POST", "/logout", urllib.parse.urlencode({"csrf": login["_csrf_token"]}).encode(), {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 303 and headers["Location"].endswith("/login") and "sr_session" not in behind.cookies
        copy = Browser(first.url, cookies=dict(login))
        status, body = page(copy)
        assert status == 200 and BOUNCE in body, "logged out everywhere: the monitor revoked the token"
        assert "sr_session" not in copy.cookies, "and the copy's cookies are cleared"
        sealed = SessionSealer(shared.read_text().strip().encode(), idle_limit_s=3600, clock=time.time).open(value)
        assert sealed is not None and sealed.username == "it.shared", "the test opens the cookie with the dashboards' key"
        assert practice_monitor.json("GET", "/api/v1/whoami", sealed.token)[0] == 401, "the monitor revoked the token itself"
    finally:
        for dashboard in running:
            dashboard.stop()


def test_the_idle_limit_and_the_monitors_expiry_end_a_login_on_a_fresh_dashboard(practice_monitor: Monitor, tmp_path: Path) -> None:
    """The dashboard's clock is injected (the monitor's is real): a login idle for the configured
    minutes is refused, and so is one past the monitor's expiry, by a dashboard that never saw
    it made (as after a restart)."""
    from dashboard.app import create_app
    from dashboard.config import DashboardConfig

    clock = Clock()
    clock.now = time.time()
    config = DashboardConfig(monitor_url=practice_monitor.url, secret_key_file=str(tmp_path / "secret.key"), session_minutes=5)
    maker = create_app(config, clock=clock).server.test_client()
    login_page = maker.get("/login").get_data(as_text=True)
    nonce = re.search(r'name="csrf" value="([^"]+)"', login_page)
    assert nonce, login_page
    answer = maker.post("/login", data={"csrf": nonce.group(1), "next": "/", "username": "it.idle", "password": PASSWORD}, headers={"Origin": "http://localhost"})
    assert answer.status_code == 303, answer.get_data(as_text=True)[-400:]
    cookie = maker.get_cookie("sr_session").value

    def fresh_get(path: str = "/") -> str:
        """A dashboard process that never saw the login (same secret): the browser's view."""
        browser = create_app(config, clock=clock).server.test_client()
        browser.set_cookie("sr_session", cookie, domain="localhost")
        return browser.get(path).get_data(as_text=True)

    clock.now += 299
    assert DASH_PAGE in fresh_get(), "4 min 59 s idle: still logged in"
    # That request was due for a refresh (over 30 s since the seal): the answer carried a
    # newer seal. Without it, the old cookie is 5 min idle now and is refused.
    clock.now += 1
    assert BOUNCE in fresh_get(), "5 minutes idle: logged out"

    # A browser that keeps using its login carries the refreshed seal and stays in.
    browser = create_app(config, clock=clock).server.test_client()
    clock.now -= 300  # back to the login's moment
    browser.set_cookie("sr_session", cookie, domain="localhost")
    for _ in range(4):
        clock.now += 240
        assert DASH_PAGE in browser.get("/").get_data(as_text=True), "used every 4 minutes: kept"
    # The monitor's expiry ends it however it is used (its login lifetime is hours).
    clock.now += 7 * 24 * 3600
    assert BOUNCE in browser.get("/").get_data(as_text=True), "past the monitor's expires_at"
