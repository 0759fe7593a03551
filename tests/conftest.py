"""Shared fixtures: real monitor processes on loopback, tokens, and the CI no-skip rule."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
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


def require_or_fail(condition: bool, reason: str) -> None:
    """Skip outside CI when the machine lacks something; in CI the same gap is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI must provide it: see 'make system-deps')")
    pytest.skip(reason)


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
