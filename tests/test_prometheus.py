"""A real Prometheus scrapes a real monitor after a real check: names and values arrive intact.

Ground truth is the check's own JSON (what ``sessionready check --json`` printed) and the
monitor's stored copy of it; the values under test are what Prometheus itself parsed, stored
and answers through its HTTP API. ``promtool check metrics`` lints the exposition text.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Monitor, require_or_fail, run_cli

JOB = "sessionready"
START_TIMEOUT_S = 20.0

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]


def _free_port() -> int:
    # Prometheus has no "port 0, then tell me": take a free port and hand it over at once.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Prometheus:
    """A ``prometheus`` process on loopback with its HTTP API."""

    def __init__(self, process: subprocess.Popen, url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    def api(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            document = json.loads(response.read())
        assert document["status"] == "success", document
        return document["data"]

    def query(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query's samples, keyed by their labels (``__name__`` left out)."""
        data = self.api("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        return {
            tuple(sorted((k, v) for k, v in sample["metric"].items() if k != "__name__")): float(sample["value"][1])
            for sample in data["result"]
        }

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _write_config(directory: Path, target: str, metrics_token: str) -> Path:
    credentials = directory / "metrics.token"
    credentials.write_text(metrics_token + "\n")
    credentials.chmod(0o600)
    config = directory / "prometheus.yml"
    # Paths are written as JSON strings: valid YAML double-quoted scalars whatever they hold.
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    metrics_path: /metrics\n"
        "    authorization:\n"
        "      type: Bearer\n"
        f"      credentials_file: {json.dumps(str(credentials))}\n"
        "    static_configs:\n"
        f"      - targets: [{json.dumps(target)}]\n"
    )
    return config


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator:
    started: list[Prometheus] = []

    def start(target: str, metrics_token: str) -> Prometheus:
        directory = tmp_path / "prometheus"
        directory.mkdir()
        config = _write_config(directory, target, metrics_token)
        check = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        address = f"127.0.0.1:{_free_port()}"
        log_path = directory / "prometheus.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address={address}",
                ],
                cwd=directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        prometheus = Prometheus(process, f"http://{address}", log_path)
        started.append(prometheus)
        return prometheus

    yield start
    for prometheus in started:
        prometheus.stop()  # always, whatever the test did


def _wait_for_target_up(prometheus: Prometheus, target: str) -> dict:
    deadline = time.monotonic() + START_TIMEOUT_S
    last: object = "Prometheus did not answer"
    while time.monotonic() < deadline:
        if prometheus.process.poll() is not None:
            pytest.fail(f"prometheus exited with {prometheus.process.returncode}:\n{prometheus.log()}")
        try:
            targets = prometheus.api("/api/v1/targets", state="active")["activeTargets"]
        except OSError as error:  # not listening yet
            last = error
        else:
            mine = [t for t in targets if t["labels"].get("instance") == target]
            if mine and mine[0]["health"] == "up":
                return mine[0]
            last = mine
        time.sleep(0.2)
    pytest.fail(f"the monitor's target never came up in Prometheus: {last}\n{prometheus.log()}")


def _wait_for_series(prometheus: Prometheus, expr: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if prometheus.query(expr):
            return
        time.sleep(0.2)
    pytest.fail(f"no samples for {expr} in Prometheus:\n{prometheus.log()}")


def _expected_check_series(report: dict) -> dict[str, dict[tuple[tuple[str, str], ...], float | None]]:
    """What the monitor's documented names should hold for this report, by metric name and
    extra labels; None means the series must be absent (the check had no value)."""
    network, quality = report["network"], report["quality"]

    def scaled(value: float | None, factor: float) -> float | None:
        return None if value is None else value * factor

    def ms(value: float | None) -> float | None:
        return None if value is None else value / 1000

    rtt = network["rtt_ms"] or {}
    jitter = network["jitter_ms"] or {}
    jitter_mean = network.get("jitter_mean_ms") or {}
    loss = network["loss"] or {}
    return {
        "sessionready_check_duration_seconds": {(): report["duration_s"]},
        "sessionready_check_verdict": {
            (("verdict", v),): 1.0 if v == report["verdict"] else 0.0 for v in ("ready", "at_risk", "not_ready")
        },
        "sessionready_check_rtt_seconds": {(("stat", s),): ms(rtt.get(s)) for s in ("min", "p50", "p95")},
        "sessionready_check_jitter_seconds": {(("direction", d),): ms(jitter.get(d)) for d in ("up", "down")},
        "sessionready_check_jitter_mean_seconds": {(("direction", d),): ms(jitter_mean.get(d)) for d in ("up", "down")},
        "sessionready_check_loss_ratio": {(("direction", d),): loss.get(d) for d in ("up", "down")},
        "sessionready_check_throughput_bytes_per_second": {
            (("direction", d),): scaled(network["throughput_mbps"][d], 1e6 / 8) for d in ("up", "down")
        },
        "sessionready_check_loaded_latency_increase_seconds": {
            (("direction", d),): ms(network["loaded_latency_ms"][d]) for d in ("up", "down")
        },
        "sessionready_check_mos": {(): quality["mos"]},
        "sessionready_check_r_factor": {(): quality["r_factor"]},
        **_expected_machine_series(report.get("machine")),
        **_expected_room_series(report.get("room")),
    }


def _expected_machine_series(machine: dict | None) -> dict[str, dict[tuple[tuple[str, str], ...], float | None]]:
    if machine is None:
        return {}

    def scaled(value: float | None, factor: float) -> float | None:
        return None if value is None else value * factor

    charging = machine["battery_charging"]
    return {
        "sessionready_check_cpu_busy_ratio": {(): scaled(machine["cpu_pct"], 0.01)},
        "sessionready_check_memory_available_ratio": {(): scaled(machine["memory_available_pct"], 0.01)},
        "sessionready_check_swap_bytes_per_second": {(): machine["swap_bytes_per_s"]},
        "sessionready_check_battery_ratio": {(): scaled(machine["battery_pct"], 0.01)},
        "sessionready_check_battery_charging": {(): None if charging is None else float(charging)},
        "sessionready_check_link_info": {(("type", machine["link"]["type"]),): 1.0},
        "sessionready_check_wifi_signal_dbm": {(): machine["link"]["wifi_signal_dbm"]},
        "sessionready_check_background_traffic_bytes_per_second": {
            (("direction", d),): scaled(machine["background_traffic_mbps"][d], 1e6 / 8) for d in ("up", "down")
        },
    }


def _expected_room_series(room: dict | None) -> dict[str, dict[tuple[tuple[str, str], ...], float | None]]:
    if room is None:
        return {}
    calibrated = "true" if room["calibrated"] else "false"
    return {
        "sessionready_check_room_available": {(): 1.0 if room["available"] else 0.0},
        "sessionready_check_room_level_dbfs": {
            (("calibrated", calibrated), ("stat", stat)): room[f"{stat}_dbfs"] for stat in ("laeq", "l90", "l10", "lmax")
        },
        "sessionready_check_room_voice_ratio": {(): room["voice_ratio"]},
        "sessionready_check_room_speech_to_noise_db": {(): room["snr_db"]},
    }


def test_prometheus_scrapes_the_checks_values(monitor: Monitor, start_prometheus) -> None:  # noqa: ANN001
    require_or_fail(shutil.which("prometheus") is not None, "the 'prometheus' binary is not installed (Debian package prometheus)")
    require_or_fail(shutil.which("promtool") is not None, "'promtool' is not installed (Debian package prometheus)")
    metrics_token = monitor.token("metrics", "prometheus")
    client_token = monitor.token("client", "p1")
    status, me = monitor.json("GET", "/api/v1/whoami", client_token)
    assert status == 200, me

    result = run_cli(
        "check", "--monitor", monitor.url, "--token", client_token, "--json", "--udp-seconds", "2", "--load-seconds", "2", timeout=60
    )
    assert result.returncode in (0, 1, 2), result.stderr
    report = json.loads(result.stdout)
    assert report["submitted"] is True, report["submit_error"]
    assert report["network"]["throughput_mbps"]["down"] is not None, report["network"]  # loopback: must measure
    status, stored = monitor.json("GET", f"/api/v1/checks/{report['check_id']}", client_token)
    assert status == 200, stored

    # The exposition text itself: a real client library's output, linted by Prometheus's own tool.
    status, exposition = monitor.request("GET", "/metrics", metrics_token)
    assert status == 200, exposition
    lint = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, timeout=30)
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, b""), lint.stdout.decode() + lint.stderr.decode()

    target = urllib.parse.urlsplit(monitor.url).netloc
    prometheus = start_prometheus(target, metrics_token)
    state = _wait_for_target_up(prometheus, target)
    assert state["lastError"] == "", state
    _wait_for_series(prometheus, "sessionready_check_verdict")

    assert prometheus.query(f'up{{job="{JOB}"}}') == {(("instance", target), ("job", JOB)): 1.0}
    base = (("agent_id", me["agent_id"]), ("instance", target), ("job", JOB), ("participant_id", "p1"))
    for name, series in _expected_check_series(report).items():
        got = prometheus.query(name)
        want = {tuple(sorted(base + extra)): value for extra, value in series.items() if value is not None}
        assert got.keys() == want.keys(), (name, got)
        for labels, value in want.items():
            # Both sides are float64 written in shortest round-trip form: equal, not just close.
            assert got[labels] == pytest.approx(value, rel=1e-12, abs=0), (name, labels, got[labels], value)

    received = prometheus.query("sessionready_check_timestamp_seconds")
    assert received == {base: pytest.approx(stored["received_at"], rel=1e-12, abs=0)}

    instance = (("instance", target), ("job", JOB))
    ingest = prometheus.query("sessionready_ingest_checks_total")
    assert ingest[tuple(sorted(instance + (("result", "accepted"),)))] == 1.0, ingest  # exactly this check
    assert ingest[tuple(sorted(instance + (("result", "rejected"),)))] == 0.0, ingest
    ingest_count = prometheus.query("sessionready_ingest_duration_seconds_count")
    assert ingest_count == {instance: 1.0}
    reflector = prometheus.query("sessionready_reflector_packets_total")
    answered = reflector[tuple(sorted(instance + (("result", "answered"),)))]
    # The idle phase's reflected packets are in the report; the load phases' flows add more.
    assert answered >= report["network"]["packets"]["reflected"] > 0, (reflector, report["network"]["packets"])
    assert reflector[tuple(sorted(instance + (("result", "dropped_bad_key"),)))] == 0.0, reflector
