"""Browser tests of the dashboard: Dash's ``dash_duo`` in Debian's Chromium through the system
chromedriver (never a downloaded one), against a real monitor process with real users,
sessions, checks and live samples posted through its API."""

from __future__ import annotations

import copy
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.store.core import open_store
from sessionready.typed import encode, rfc3339
from tests.conftest import CHECK, CHROMIUM, HEADLESS_CHROMIUM, Monitor, make_sample, require_or_fail, run_cli, start_monitor, wait_for

PASSWORD = "correct horse battery staple"
MINUTE = 60


def pytest_setup_options():  # noqa: ANN201
    """Chrome options for dash_duo (TESTING.md "Browser"): Debian's Chromium, headless."""
    from selenium.webdriver.chrome.options import Options

    require_or_fail(shutil.which("chromium") is not None and shutil.which("chromedriver") is not None, "Debian chromium and chromium-driver are not installed")
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (*HEADLESS_CHROMIUM, "--window-size=1280,1000"):
        options.add_argument(argument)
    return options


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daytime_zone(now_s: float) -> str:
    """A zone where the next hour and the last 15 minutes fall on one day, so "today" in the
    browser holds every session the tests make, whatever time the tests run."""
    for name in ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "America/Los_Angeles", "Pacific/Auckland", "Asia/Kolkata"):
        local = datetime.fromtimestamp(now_s, ZoneInfo(name))
        if 2 <= local.hour <= 20:
            return name
    raise AssertionError("no candidate zone has daytime now")  # cannot happen: they span 20 hours


@dataclass
class Practice:
    """A monitor with a small practice in it: two therapists, their clients, staff."""

    monitor: Monitor
    staff: str  # an it token
    zone: str
    start_s: float
    seq: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def agent(self, role: str, participant: str) -> str:
        if participant not in self.tokens:
            store = open_store(self.monitor.data_dir)
            try:
                self.tokens[participant] = store.create_token(role, participant)[1]
            finally:
                store.close()
        return self.tokens[participant]

    def user(self, username: str, role: str, participant: str | None = None) -> None:
        args = ["monitor", "user", "create", "--username", username, "--role", role, "--password-stdin", "--data-dir", str(self.monitor.data_dir)]
        if participant:
            args += ["--participant", participant]
        result = run_cli(*args, input=PASSWORD + "\n")
        assert result.returncode == 0, result.stderr

    def session(self, session_id: str, therapist: str, client: str, start_s: float, minutes: int = 50) -> None:
        status, body = self.monitor.json("POST", "/api/v1/sessions", self.staff, {
            "session_id": session_id, "therapist_id": therapist, "client_id": client,
            "start": rfc3339(start_s), "planned_duration_s": minutes * 60,
        })  # fmt: skip
        assert status == 201, body

    def post(self, token: str, *envelopes: dict) -> list[dict]:
        status, body = self.monitor.json("POST", "/api/v1/reports", token, {"spool": {"pending": 0, "dropped_background": 0, "rejected": 0}, "reports": list(envelopes)})
        assert status == 200, body
        assert all(r["status"] == "stored" for r in body["results"]), body
        return body["results"]

    def envelope(self, token: str, kind: str, body: dict) -> dict:
        self.seq[token] = self.seq.get(token, 0) + 1
        report_id = body["check_id"] if kind == "check" else secrets.token_hex(16)
        return {"report_id": report_id, "seq": self.seq[token], "kind": kind, kind if kind == "check" else "sample": body}

    def check(self, token: str, *, loss_up: float = 0.0) -> str:
        """A full pre-session check and a background sample (the agent is online); the check id."""
        report = copy.deepcopy(CHECK)
        report["check_id"] = secrets.token_hex(16)
        report["started_at"] = rfc3339(time.time() - 20)
        report["network"]["rtt_ms"] = {"min": 18.0, "p50": 20.0, "p95": 24.0}
        report["network"]["jitter_ms"] = {"up": 1.0, "down": 1.0}
        report["network"]["packets"] = {"sent": 1000, "received": int(1000 * (1 - loss_up)), "reflected": int(1000 * (1 - loss_up))}
        report["network"]["loss"] = {"up": loss_up, "down": 0.0, "up_ci95": [max(0.0, loss_up - 0.01), min(1.0, loss_up + 0.01)], "down_ci95": [0.0, 0.004]}
        report["network"]["throughput_mbps"] = {"down": 50.0, "up": 20.0}
        report["network"]["loaded_latency_ms"] = {"down": 5.0, "up": 5.0}
        self.post(token, self.envelope(token, "check", report), self.envelope(token, "background", self.sample()))
        return report["check_id"]

    def sample(self, session_id: str | None = None, *, loss_up: float = 0.0, mos: float = 4.35, rtt_ms: float = 20.0, cpu_pct: float = 12.5) -> dict:
        base = make_sample(taken_at=rfc3339(time.time()), session_id=session_id, cpu_pct=cpu_pct)
        network = replace(base.network, packets_sent=20, packets_received=20, loss_up=loss_up, loss_down=0.0, mos=mos, rtt_p50_ms=rtt_ms, rtt_p95_ms=rtt_ms + 4)
        return encode(replace(base, network=network))  # type: ignore[return-value]

    def live(self, token: str, session_id: str, **numbers: float) -> None:
        self.post(token, self.envelope(token, "live", self.sample(session_id, **numbers)))

    def detail(self, session_id: str, token: str | None = None) -> tuple[int, dict]:
        return self.monitor.json("GET", f"/api/v1/sessions/{session_id}", token or self.staff)

    def wait_for(self, predicate, timeout_s: float = 40.0, what: str = "condition"):  # noqa: ANN001, ANN201
        return wait_for(predicate, timeout_s, what)


def start_practice(base: Path, staff_participant: str) -> Practice:
    """A monitor that assesses risk every second, with an it token; the caller stops it."""
    config = base / "monitor.toml"
    config.write_text("[monitor]\nrisk_interval_s = 1\n")
    monitor = start_monitor(base / "monitor", "--config", str(config))
    store = open_store(monitor.data_dir)
    try:
        staff = store.create_token("it", staff_participant)[1]
    finally:
        store.close()
    now = time.time()
    return Practice(monitor, staff, daytime_zone(now), now)


@pytest.fixture(scope="module")
def practice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Practice]:
    running = start_practice(tmp_path_factory.mktemp("dash"), "it-desk")
    try:
        yield running
    finally:
        running.monitor.stop()


@pytest.fixture
def dashboard_app(practice: Practice, tmp_path: Path):  # noqa: ANN201
    from dashboard.app import create_app
    from dashboard.config import DashboardConfig

    config = DashboardConfig(monitor_url=practice.monitor.url, secret_key_file=str(tmp_path / "secret.key"))
    return create_app(config)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Screenshots for reviewers: <the test's tmp dir>/screenshots/*.png."""
    path = tmp_path / "screenshots"
    path.mkdir()
    return path


# --- In the browser -------------------------------------------------------------------------


def open_dashboard(dash_duo, app, practice: Practice) -> str:  # noqa: ANN001
    dash_duo.start_server(app, navigate=False, port=free_port())
    dash_duo.driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": practice.zone})
    return dash_duo.server.url


def log_in(dash_duo, url: str, username: str, password: str = PASSWORD) -> None:  # noqa: ANN001
    dash_duo.driver.get(url + "/login")
    dash_duo.wait_for_element("#login-username").send_keys(username)
    dash_duo.find_element("#login-password").send_keys(password)
    dash_duo.find_element("#login-submit").click()


def no_console_errors(dash_duo) -> None:  # noqa: ANN001
    errors = [entry for entry in dash_duo.get_logs() if entry.get("level") == "SEVERE"]
    assert errors == [], errors


def risk_state(practice: Practice, session_id: str) -> str | None:
    status, body = practice.detail(session_id)
    assert status == 200, body
    return (body.get("risk") or {}).get("state")
