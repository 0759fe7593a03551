"""The speedtest.net backend against real local servers speaking the legacy protocol.

Ground truth is what the local server counted on its side of the socket, never the probe's
own arithmetic. Nothing here leaves 127.0.0.1: speedtest.net is stood in for by the local
server acting as an HTTP proxy, and "no internet" is a fresh network namespace.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.probes.speedtest import (
    NOT_INSTALLED,
    SpeedtestConfig,
    SpeedtestResult,
    measure_speedtest,
)
from tests.speedtest_server import (
    CLIENT_IP,
    CLIENT_ISP,
    SERVER_SPONSOR,
    Behaviour,
    Direction,
    LegacySpeedtestServer,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Short phases keep each full run near two seconds.
PHASE_S = 1.0
# Scheduling slack on top of a timeout on a shared, noisy machine.
MARGIN_S = 3.0

# Runs the probe as the check would and prints the result as one JSON object.
PROBE_PROGRAM = """
import asyncio, dataclasses, json, sys
from agents.probes.speedtest import SpeedtestConfig, measure_speedtest
result = asyncio.run(measure_speedtest(SpeedtestConfig(**json.loads(sys.argv[1]))))
print(json.dumps(dataclasses.asdict(result)))
"""

PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def measure(config: SpeedtestConfig) -> SpeedtestResult:
    return asyncio.run(measure_speedtest(config))


def local_config(server: LegacySpeedtestServer, **overrides: object) -> SpeedtestConfig:
    settings: dict[str, object] = {
        "servers": (server.server_entry,),
        "timeout_s": 10.0,
        "phase_s": PHASE_S,
    }
    settings.update(overrides)
    return SpeedtestConfig(**settings)  # type: ignore[arg-type]


def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def use_proxy(monkeypatch: pytest.MonkeyPatch, proxy: str, bypass: str = "") -> None:
    """Route the library's urllib requests (but not its latency connections) via `proxy`."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.setenv("https_proxy", proxy)
    if bypass:
        monkeypatch.setenv("no_proxy", bypass)


def run_probe_process(
    config: dict[str, object], prefix: tuple[str, ...] = (), timeout_s: float = 30.0
) -> tuple[dict[str, object], float]:
    """Run the probe in a fresh interpreter; return its only stdout JSON object and wall time."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    started = time.monotonic()
    completed = subprocess.run(
        [*prefix, sys.executable, "-c", PROBE_PROGRAM, json.dumps(config)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    # Exactly one JSON object and nothing else, as `sessionready check --json` needs.
    decoder = json.JSONDecoder()
    result, end = decoder.raw_decode(completed.stdout)
    assert completed.stdout[end:] == "\n"
    return result, elapsed


def assert_measured(result: SpeedtestResult) -> None:
    assert result.error is None
    assert result.available is True
    assert result.download_mbps is not None and result.download_mbps > 0
    assert result.upload_mbps is not None and result.upload_mbps > 0
    assert result.ping_ms is not None and 0 < result.ping_ms < 1000


def assert_agrees(reported_mbps: float | None, server_mbps: float) -> None:
    # The library and the server count the same bytes over nearly the same span; the bounds
    # still catch unit mistakes (bytes for bits, kilo for mega) on a noisy machine.
    assert reported_mbps is not None and server_mbps > 0
    assert 0.5 <= reported_mbps / server_mbps <= 2.0, (reported_mbps, server_mbps)


def test_local_server_measured_against_its_own_byte_counts(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with LegacySpeedtestServer() as server, LegacySpeedtestServer() as stand_in:
        # Anything addressed to speedtest.net would reach `stand_in`; only the given server
        # may be contacted, and directly.
        use_proxy(monkeypatch, stand_in.base_url, bypass="127.0.0.1")
        result = measure(local_config(server))

        assert_measured(result)
        assert result.server == server.host
        assert_agrees(result.download_mbps, server.throughput_mbps(Direction.DOWNLOAD))
        assert_agrees(result.upload_mbps, server.throughput_mbps(Direction.UPLOAD))
        assert stand_in.requests() == []
        asked = server.requests()
        assert {r.host for r in asked} == {server.host}
        assert {
            "/speedtest/latency.txt",
            "/speedtest/random350x350.jpg",
            "/speedtest/upload.php",
        } <= {r.path for r in asked}
        assert server.errors() == []
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_default_backend_runs_the_speedtest_net_protocol(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with LegacySpeedtestServer() as speedtest_net:
        use_proxy(monkeypatch, speedtest_net.base_url)
        result = measure(SpeedtestConfig(timeout_s=10.0, phase_s=PHASE_S))

        assert_measured(result)
        assert result.server == f"{SERVER_SPONSOR} (Loopback, Localhost)"
        asked = speedtest_net.requests()
        assert asked[0].host == "www.speedtest.net" and asked[0].path == "/speedtest-config.php"
        assert asked[1].host == "www.speedtest.net" and "speedtest-servers" in asked[1].path
        assert_agrees(result.download_mbps, speedtest_net.throughput_mbps(Direction.DOWNLOAD))
    # What speedtest.net says about the client stays out of the result.
    assert CLIENT_IP not in repr(result) and CLIENT_ISP not in repr(result)
    assert capfd.readouterr().out == ""


def test_server_refusing_with_403_is_a_result(capfd: pytest.CaptureFixture[str]) -> None:
    with LegacySpeedtestServer(Behaviour.FORBID) as server:
        result = measure(local_config(server))

    assert result.available is False
    assert result.error == f"the speedtest server {server.host} refused the request (HTTP 403)"
    assert result.download_mbps is None and result.upload_mbps is None and result.ping_ms is None
    assert capfd.readouterr().out == ""


def test_speedtest_net_refusing_with_403_is_a_result(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with LegacySpeedtestServer(Behaviour.FORBID) as speedtest_net:
        use_proxy(monkeypatch, speedtest_net.base_url)
        result = measure(SpeedtestConfig(timeout_s=10.0, phase_s=PHASE_S))

    assert result.available is False
    assert result.error == "speedtest.net refused the request (HTTP 403)"
    assert capfd.readouterr().out == ""


def test_hanging_server_gives_a_timeout_result_in_time(capfd: pytest.CaptureFixture[str]) -> None:
    timeout_s = 2.0
    with LegacySpeedtestServer(Behaviour.HANG) as server:
        started = time.monotonic()
        result = measure(local_config(server, timeout_s=timeout_s, phase_s=0.5))
        elapsed = time.monotonic() - started

    assert elapsed < timeout_s + MARGIN_S
    assert result.available is False
    assert result.error is not None and "timeout" in result.error
    assert 0.9 * timeout_s <= result.duration_s < timeout_s + MARGIN_S
    assert capfd.readouterr().out == ""


def test_timeout_does_not_keep_the_process_alive() -> None:
    # The library's latency requests wait 10 s each on a silent server; a process held open by
    # its threads would take far longer than the timeout to exit.
    timeout_s = 2.0
    with LegacySpeedtestServer(Behaviour.HANG) as server:
        config = {"servers": [server.server_entry], "timeout_s": timeout_s, "phase_s": 0.5}
        result, elapsed = run_probe_process(config)

    assert elapsed < timeout_s + MARGIN_S
    assert result["available"] is False
    assert "timeout" in str(result["error"])


def test_nothing_listening_is_a_clear_error(capfd: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    result = measure(
        SpeedtestConfig(
            servers=(f"http://127.0.0.1:{port}/speedtest/upload.php",),
            timeout_s=5.0,
            phase_s=PHASE_S,
        )
    )

    assert result.available is False
    assert result.error == (
        f"could not connect to the speedtest server 127.0.0.1:{port} (connection refused)"
    )
    assert capfd.readouterr().out == ""


def test_default_backend_without_internet_fails_cleanly_in_time() -> None:
    # A new network namespace has only a loopback interface, which is down: exactly a machine
    # with no network, and nothing the library tries can leave it.
    unshare = shutil.which("unshare")
    assert unshare, "util-linux unshare is needed to cut the probe off the network"
    timeout_s = 5.0
    result, elapsed = run_probe_process(
        {"timeout_s": timeout_s, "phase_s": PHASE_S},
        prefix=(unshare, "--map-root-user", "--net"),
    )

    assert elapsed < timeout_s + MARGIN_S
    assert result["available"] is False
    # Which of the two depends on the resolver: none reachable (this machine, containers), or
    # one outside the namespace (systemd-resolved over its socket) that still answers.
    assert result["error"] in (
        "could not look up the address of speedtest.net (no internet connection or DNS failure)",
        "could not reach speedtest.net (no route: no internet connection?)",
    )
    assert result["download_mbps"] is None and result["server"] is None


def test_missing_library_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the `speedtest` extra were not installed: `import speedtest` raises ImportError.
    monkeypatch.setitem(sys.modules, "speedtest", None)
    result = measure(SpeedtestConfig(timeout_s=5.0, phase_s=PHASE_S))

    assert result.available is False
    assert result.error == "speedtest-cli is not installed (pip install 'sessionready[speedtest]')"
    assert result.error == NOT_INSTALLED
    assert (result.download_mbps, result.upload_mbps, result.ping_ms) == (None, None, None)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"timeout_s": 0.0}, "timeout_s"),
        ({"phase_s": -1.0}, "phase_s"),
        ({"timeout_s": 10.0, "phase_s": 5.0}, "phase_s"),
        ({"threads": 0}, "threads"),
        ({"servers": ("ftp://127.0.0.1/speedtest/upload.php",)}, "servers"),
    ],
)
def test_invalid_config_is_rejected_with_the_field_name(
    settings: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        SpeedtestConfig(**settings)  # type: ignore[arg-type]
