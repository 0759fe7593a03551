"""Shared fixtures: real monitor processes on loopback, tokens, and the CI no-skip rule."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from monitor.risk.engine import CheckSummary, EndInputs, RiskConfig, SessionInputs
from sessionready import quality, schema
from sessionready.typed import decode
from tests.quiet import can_demote, ordinary_test, quiet_machine, realtime_test
from tests.webhook_receiver import WebhookReceiver

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Debian's Chromium for the browser tests (the dashboard's and the browser check's), headless,
# with nothing of its own reaching the network. tests/rtc/chromium_page.py is a standalone
# script inside the lab's namespace and keeps its own copy.
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HEADLESS_CHROMIUM = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
SESSIONREADY = [sys.executable, "-m", "sessionready.cli"]


# --- In CI nothing may skip: a skipped test there is a failed promise. ---------------------

_skips: list[str] = []  # filled as reports arrive; read when the session finishes


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skips.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if IN_CI and _skips and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # noqa: ANN001
    if IN_CI and _skips:
        terminalreporter.section("skipped tests are failures in CI (CI=true)", red=True)
        for nodeid in _skips:
            terminalreporter.line(nodeid)


# --- Parallel runs (pytest-xdist, `make test`): what shares a worker ---------------------------
#
# `--dist loadgroup` sends each group to one worker, whole and in file order. By default a
# group is one test file, so module-scoped monitors are started once and tests that build on
# an earlier test of their file still see it. Files that own something machine-wide or that
# measure real time against ground truth share a group, so they never run beside each other:
# the network lab (namespaces, tbf queues, kernel counters), the audio lab (one PulseAudio
# server and its virtual microphone) and every file with a browser test (dash_duo hands out
# ports from 8050 in every worker, and each Chromium takes most of a core).
# The browser check's page tests (tests/browser_check/) start their own Chromium on free ports,
# never dash_duo's: they are a group of their own and may run beside the dashboard's.
# The lab's tests that only count packets (loss against nftables' counters) stay in the lab's
# group, after its quiet tests: as a group of their own (tried 2026-12-07) they ran demoted beside
# the lab's quiet tests for minutes, and on a machine with other load their reflector starved and
# the interval-coverage test missed 5 of 16 intervals.
SHARED_GROUPS = {"tests/lab/": "netlab", "tests/audio/": "audio", "tests/browser_check/": "browser_check"}
BROWSER_GROUP = "browser"
# Files that took 35 s or more in a four-worker run (2026-12-07, seconds of that run), longest
# first: they start right after the shared groups, so none of them starts near the end and runs
# on alone (test_users.py, 73 s, started last in that run and ended 38 s after the other workers).
LONG_GROUPS = (
    "tests/agent/test_e2e.py",  # 142
    "tests/agent/test_daemon.py",  # 128
    "tests/test_check.py",  # 127
    "tests/test_users.py",  # 73
    "tests/agent/test_samplers.py",  # 70
    "tests/test_calendar_corpus.py",  # 69
    "tests/test_api_fuzz.py",  # 68
    "tests/test_monitor_api.py",  # 67
    "tests/test_sessions_api.py",  # 62
    "tests/test_demo.py",  # 49
    "tests/test_enroll.py",  # 43
    "tests/agent/test_live_room.py",  # 41
    "tests/test_trends.py",  # 40
    "tests/test_check_links.py",  # 38
    "tests/test_alerts.py",  # 36
)


def worker_group(path: str, browser_files: set[str]) -> str:
    """The xdist group of a test file (a path relative to the project)."""
    if path in browser_files:
        return BROWSER_GROUP
    return next((group for prefix, group in SHARED_GROUPS.items() if path.startswith(prefix)), path)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the mark into the group
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def path(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    browser_files = {path(item) for item in items if "dash_duo" in getattr(item, "fixturenames", ())}
    groups = {item.nodeid: worker_group(path(item), browser_files) for item in items}
    if config.pluginmanager.hasplugin("xdist"):  # absent under `-p no:xdist`: one process, no groups
        for item in items:
            if item.get_closest_marker("xdist_group") is None:
                item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    # Longest first, so no long group starts last and runs alone at the end: the shared groups,
    # then the long files (LONG_GROUPS, in that order), then files with a test marked slow, then
    # the rest, each in collection order. (xdist's own reordering, by number of tests, is turned
    # off in `make test`: --no-loadscope-reorder.)
    slow = {groups[item.nodeid] for item in items if item.get_closest_marker("slow")}
    first = [*dict.fromkeys(SHARED_GROUPS.values()), BROWSER_GROUP, *LONG_GROUPS]

    def rank(item: pytest.Item) -> tuple[int, bool]:
        group = groups[item.nodeid]
        # Within a group, tests that need the machine to themselves first: at the start of a
        # run the other workers hold back once, not again and again (see machine_share).
        quiet_last = item.get_closest_marker("quiet_machine") is None
        return (first.index(group) if group in first else len(first) + (group not in slow), quiet_last)

    items.sort(key=rank)


@pytest.hookimpl(trylast=True)  # after xdist has put the group into each node id
def pytest_collection_finish(session: pytest.Session) -> None:
    """xdist schedules by node id: a test whose id another test shares would run once for both,
    and a group missing from an id would scatter its files over workers. Both happened
    silently with pytest 9.2 (pyproject.toml pins below it); fail loudly if they come back."""
    ids = [item.nodeid for item in session.items]
    if len(set(ids)) != len(ids):
        raise pytest.UsageError(f"{len(ids) - len(set(ids))} tests share a node id with another; xdist would run them once")
    if session.config.getoption("loadgroup", default=False) and not all("@" in nodeid for nodeid in ids):
        raise pytest.UsageError("xdist's loadgroup did not mark the node ids with their groups (pytest and pytest-xdist out of step)")


# --- A quiet machine for the few tests that time real queues (tests/quiet.py) ------------------


def _is_quiet(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker("quiet_machine") is not None


class _QuietRun:
    """Without root, where a quiet test waits for the others to end: the machine held alone from
    the first of consecutive quiet_machine tests to the last (released in between, it let the
    other workers start tests that the next quiet test then waited for: up to 40 s each time)."""

    held: ExitStack | None = None

    @classmethod
    def hold(cls) -> None:
        if cls.held is None:
            stack = ExitStack()
            stack.enter_context(quiet_machine())
            cls.held = stack

    @classmethod
    def release(cls) -> None:
        if cls.held is not None:
            cls.held.close()
            cls.held = None


@pytest.fixture(autouse=True)
def _machine_share(request: pytest.FixtureRequest) -> Iterator[None]:
    if _is_quiet(request.node) and can_demote():
        # One quiet test at a time, and the others keep running: no chain, so that quiet tests
        # of two workers (the lab's, the browser check's) take turns test by test.
        with quiet_machine():
            yield
        return
    if _is_quiet(request.node):
        _QuietRun.hold()  # released by pytest_runtest_teardown once the next test is not quiet
        yield
        return
    _QuietRun.release()
    if request.node.get_closest_marker("audio") is not None and can_demote():
        with realtime_test():  # sound captured as it plays: never demoted by a quiet test
            yield
        return
    with ordinary_test():
        yield


@pytest.hookimpl(trylast=True)  # after the test's fixtures are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if not _is_quiet(nextitem):
        _QuietRun.release()


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    """A webhook receiver on loopback for alert and summary deliveries."""
    with WebhookReceiver() as receiver:
        yield receiver


# --- Running the product ---------------------------------------------------------------------

def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SESSIONREADY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=input,
        check=False,
    )


@dataclass
class Monitor:
    """A real ``sessionready monitor`` process on loopback."""

    process: subprocess.Popen
    url: str
    udp_port: int
    data_dir: Path
    stderr_path: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, role: str = "client", participant: str = "p1") -> str:
        result = run_cli("monitor", "token", "create", "--role", role, "--participant", participant, "--data-dir", str(self.data_dir))
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    def kept_token(self, role: str, participant: str) -> str:
        """One token per role for the monitor's lifetime, made on first use: fuzzers ask for it
        on every example, and a CLI process per example cost most of their time."""
        if role not in self.tokens:
            self.tokens[role] = self.token(role, participant)
        return self.tokens[role]

    def login(self, username: str, role: str, participant: str | None = None, password: str = "a long enough password") -> str:
        """Create a dashboard user with the CLI and log in: the user session token."""
        extra = ["--participant", participant] if participant else []
        created = run_cli("monitor", "user", "create", "--username", username, "--role", role, *extra, "--password-stdin",
                          "--data-dir", str(self.data_dir), input=password + "\n")  # fmt: skip
        assert created.returncode == 0, created.stderr
        status, body = self.json("POST", "/api/v1/login", None, {"username": username, "password": password})
        assert status == 201, body
        return body["token"]

    def request(self, method: str, path: str, token: str | None = None, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"{self.url}{path}", data=body, method=method, headers=dict(headers or {}))
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        if body is not None and "Content-Type" not in (headers or {}):
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def metrics(self, token: str) -> dict[str, float]:
        """``/metrics`` as {sample with its labels: value}, e.g. 'sessionready_leader{job="risk"}'."""
        status, raw = self.request("GET", "/metrics", token)
        assert status == 200, raw[:200]
        values = {}
        for line in raw.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def json(self, method: str, path: str, token: str | None = None, payload: object = None) -> tuple[int, dict]:
        body = None if payload is None else json.dumps(payload).encode()
        status, raw = self.request(method, path, token, body)
        return status, json.loads(raw) if raw else {}

    def logs(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


def start_monitor(data_dir: Path, *extra: str, host: str = "127.0.0.1", scheme_host: str | None = None) -> Monitor:
    """Start a monitor on an ephemeral port and wait until it says where it listens."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = data_dir.parent / f"{data_dir.name}-monitor.log"
    with stderr_path.open("w") as stderr:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [*SESSIONREADY, "monitor", "--data-dir", str(data_dir), "--host", host, "--port", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline() if process.stdout else ""
        if line or process.poll() is not None:
            break
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"monitor did not start: {line!r} {stderr_path.read_text()}")
    url = line.split("listening on ")[1].split(" ")[0]
    udp_port = int(line.split("UDP reflector on port ")[1].split(")")[0])
    return Monitor(process, url, udp_port, data_dir, stderr_path)


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[Monitor]:
    running = start_monitor(tmp_path / "monitor")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def shared_monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    running = start_monitor(tmp_path_factory.mktemp("shared") / "monitor")
    yield running
    running.stop()


def unavailable(reason: str) -> NoReturn:
    """The machine lacks a tool or a permission a test needs: skip outside CI; in CI (which runs
    as root with `make system-deps` done) the same gap is a failure, not a reason to be green."""
    if IN_CI:
        pytest.fail(f"{reason} (CI must provide it: see 'make system-deps')", pytrace=False)
    pytest.skip(reason)


def require_or_fail(condition: bool, reason: str) -> None:
    """``unavailable(reason)`` unless ``condition`` holds."""
    if not condition:
        unavailable(reason)


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.5) -> object:
    """Poll ``predicate`` until it gives something truthy, and return that; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def fuzz_auth(case, token: str) -> dict[str, str]:  # noqa: ANN001 - a schemathesis Case
    """The bearer header for a fuzzed request, unless schemathesis is testing a request with
    broken or missing headers: adding our token back would turn its bad request into a good one."""
    from schemathesis.generation.meta import GenerationMode, ParameterLocation

    header = case.meta.components.get(ParameterLocation.HEADER) if case.meta is not None else None
    if header is not None and header.mode == GenerationMode.NEGATIVE:
        return {}
    return {"Authorization": f"Bearer {token}"}

# --- Reports, tokens and an agent's environment ------------------------------------------------


# A complete check report as an agent sends it (tests/data/report.json): ready, every part measured.
CHECK = json.loads((Path(__file__).parent / "data" / "report.json").read_text())


def make_sample(taken_at: str = "2026-11-25T10:00:00+00:00", session_id: str | None = None, cpu_pct: float = 12.5) -> schema.Sample:
    """A sample with every part filled in, as a live sample with a microphone would be."""
    return schema.Sample(
        schema_version=1,
        taken_at=taken_at,
        interval_s=2.0,
        session_id=session_id,
        agent=schema.Agent("0.1.0", "linux"),
        network=schema.SampleNetwork(100, 99, 23.4, 31.9, 1.25, 2.5, 0.0, 0.01, 4.31),
        machine=schema.SampleMachine(cpu_pct, 61.0, 80.0, False, "wifi", -61.0),
        traffic_mbps=schema.Throughput(3.2, 1.1),
        room=schema.SampleRoom(-52.5, 18.0, 0.05, False),
    )


def make_check(check_id: str) -> schema.CheckReport:
    return decode(schema.CheckReport, {**CHECK, "check_id": check_id})


def new_token(monitor: Monitor, role: str, participant: str) -> str:
    """A token made in the monitor's own store file, as ``monitor token create`` does, without
    starting a Python process per token (the CLI path is tested in tests/test_monitor_api.py)."""
    from monitor.store.core import open_store

    store = open_store(monitor.data_dir)
    try:
        return store.create_token(role, participant)[1]
    finally:
        store.close()


def agent_env(tmp_path: Path, config: Path | None) -> dict[str, str]:
    """No token in the environment, and config lookups confined to the test's directory."""
    return {"SESSIONREADY_CONFIG": str(config) if config else "", "SESSIONREADY_TOKEN": "", "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "COLUMNS": "200"}


# --- Inputs for the quality model and the risk engine -----------------------------------------

# One end that passes every check: a clean network, a healthy machine, a quiet room.
CLEAN_NETWORK = quality.NetworkFacts(20.0, 30.0, 1.0, 1.0, 0.0, 0.0, (0.0, 0.015), (0.0, 0.015), 250, 250, 50.0, 20.0, 5.0, 5.0)
HEALTHY = quality.MachineFacts(20.0, 60.0, 0.0, None, None, None, "wired", None, 0.1, 0.2)
QUIET = quality.RoomFacts(True, None, -62.0, -66.0, -60.0, -50.0, 0.0, 25.0, True, False, False, 0.0)


NOW = 1_767_258_000.0  # 2026-01-01 09:00:00 UTC
CONFIG = RiskConfig()


def report(
    *, rtt=20.0, jitter_up=2.0, jitter_down=3.0, loss_up=0.0, loss_down=0.0, up_mbps=22.0, down_mbps=95.0,
    cpu=20.0, battery=None, room=None,
) -> dict:  # fmt: skip
    """A clean home link's check (1000 packets: no "uncertain loss" info), with changes."""
    data = copy.deepcopy(CHECK)
    net = data["network"]
    net["rtt_ms"] = {"min": rtt * 0.8, "p50": rtt, "p95": rtt * 1.4}
    net["jitter_ms"] = {"up": jitter_up, "down": jitter_down}
    net["loss"] = {"up": loss_up, "down": loss_down, "up_ci95": [max(0.0, loss_up - 0.01), min(1.0, loss_up + 0.004)],
                   "down_ci95": [max(0.0, loss_down - 0.01), min(1.0, loss_down + 0.004)]}  # fmt: skip
    net["packets"] = {"sent": 1000, "received": 1000, "reflected": 1000}
    net["throughput_mbps"] = {"down": down_mbps, "up": up_mbps}
    net["loaded_latency_ms"] = {"down": 8.0, "up": 12.0}
    data["machine"]["cpu_pct"] = cpu
    if battery is not None:
        data["machine"].update(battery_pct=battery, battery_charging=False, battery_time_left_s=None)
    data["room"] = room
    return data


def check(age_s: float = 300.0, **changes) -> CheckSummary:
    return CheckSummary.from_report(report(**changes), received_at_unix=NOW - age_s)


def end(role: str, chk: CheckSummary | None = None, *, last_seen: float | None = NOW - 30, samples=None, history=None) -> EndInputs:
    return EndInputs(f"{role[0]}-1", role, last_seen, chk, samples, history)  # type: ignore[arg-type]


def session(client: EndInputs, therapist: EndInputs, *, start: float = NOW + 600, state: str = "scheduled") -> SessionInputs:
    return SessionInputs("s-1", start, 3000, state, client, therapist)  # type: ignore[arg-type]


def fine(role: str) -> EndInputs:
    return end(role, check())


# --- The store contract suite: SQLite and a real PostgreSQL (tests/stores.py, tests/pg.py) -------


@pytest.fixture(scope="session")
def postgres_server():  # noqa: ANN201 - tests.pg.PostgresServer
    """One PostgreSQL server per worker, started on first use (about 1 s) and removed at the end."""
    from tests.pg import PostgresUnavailable, start_server

    try:
        server = start_server()
    except PostgresUnavailable as error:
        unavailable(str(error))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, tmp_path: Path):  # noqa: ANN201 - tests.stores.StoreFactory
    """Opens the test's store on each back end in turn (test ids end [sqlite] / [postgresql])."""
    from tests.stores import StoreFactory

    server = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None
    factory = StoreFactory(request.param, tmp_path / "store", server)
    yield factory
    factory.close()
