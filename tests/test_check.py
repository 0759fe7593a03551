"""``sessionready check`` end to end against a real monitor process on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import trustme

from agents.client import TOKEN_ARGUMENT_WARNING
from sessionready import quality
from tests.conftest import SESSIONREADY, Monitor, run_cli, start_monitor

QUICK = ("--udp-seconds", "2", "--load-seconds", "2")


def check(monitor_url: str, token: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    # A wide "terminal", so that assertions on the summary do not depend on line wrapping.
    return run_cli("check", "--monitor", monitor_url, *args, env={"SESSIONREADY_TOKEN": token, "COLUMNS": "200"}, timeout=timeout)


@pytest.mark.slow
def test_json_output_has_the_public_fields_and_is_stored(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("client", "c-json")
    result = check(shared_monitor.url, token, "--json", "--session", "s-42", *QUICK)
    assert result.returncode in (0, 1, 2), result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, "exactly one JSON object on stdout"
    report = json.loads(lines[0])
    assert result.returncode == {"ready": 0, "at_risk": 1, "not_ready": 2}[report["verdict"]]
    network = report["network"]
    assert set(network["rtt_ms"]) == {"min", "p50", "p95"}
    assert 0 < network["rtt_ms"]["min"] <= network["rtt_ms"]["p50"] <= network["rtt_ms"]["p95"] < 50
    assert set(network["jitter_ms"]) == {"up", "down"}
    assert network["loss"]["up"] == 0 and network["loss"]["down"] == 0, "loopback loses nothing"
    assert network["loss"]["up_ci95"][0] == 0 and 0 < network["loss"]["up_ci95"][1] < 0.05
    assert network["packets"]["sent"] == network["packets"]["received"] == network["packets"]["reflected"]
    # 50 packets/s for 2 s: never more (the sender does not burst to catch up), and on a loaded
    # machine a late tick is skipped rather than sent late (89 of 100 seen in a busy run).
    assert 50 <= network["packets"]["sent"] <= 110, "50 packets/s for 2 s"
    assert network["throughput_mbps"]["down"] > 50 and network["throughput_mbps"]["up"] > 50
    assert set(network["loaded_latency_ms"]) == {"down", "up"}
    assert set(report["quality"]) == {"r_factor", "mos", "video_tier"} and 1 <= report["quality"]["mos"] <= 4.5
    assert report["session_id"] == "s-42" and len(report["check_id"]) == 32 and report["duration_s"] < 20
    # --udp-seconds and --load-seconds make those phases fixed.
    assert report["settings"]["adaptive"] is False
    assert [(p["name"], p["stopped"]) for p in report["phases"]] == [("idle", "fixed_length"), ("download", "fixed_length"), ("upload", "fixed_length")]
    for reason in report["reasons"]:
        assert set(reason) == {"code", "severity", "message", "fix"} and reason["code"] in quality.REASON_CODES
    assert report["submitted"] is True and report["submit_error"] is None
    status, stored = shared_monitor.json("GET", f"/api/v1/checks/{report['check_id']}", token)
    assert status == 200 and stored["report"]["session_id"] == "s-42"
    assert stored["report"]["network"] == network


@pytest.mark.slow
def test_default_check_stops_each_phase_once_settled(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("client", "c-default")
    started = time.monotonic()
    result = check(shared_monitor.url, token, "--json")
    elapsed = time.monotonic() - started
    report = json.loads(result.stdout)
    # Adaptive by default: the load phases may run up to 6 s, the idle phase 2..10 s.
    assert report["settings"] == {
        "udp_seconds": 5.0, "load_seconds": 6.0, "ramp_seconds": 1.0, "packet_interval_ms": 20.0, "packet_bytes": 172,
        "streams": 4, "adaptive": True,
    }  # fmt: skip
    phases = {p["name"]: p for p in report["phases"]}
    assert list(phases) == ["idle", "download", "upload"]
    # A clean loopback settles every phase before its maximum. Ruling out 1 % loss needs
    # 0 lost of at least 381 packets (3.8415 / (381 + 3.8415) = 0.998 %): 7.6 s at 50/s,
    # unless the machine's own reasons already make the verdict "at risk" (then 3 % matters
    # only: 125 packets, 2.5 s).
    for phase in phases.values():
        assert phase["stopped"] == "settled" and phase["unsettled"] == [], phase
        assert phase["min_s"] <= phase["seconds"] < phase["max_s"], phase
    if report["verdict"] == "ready":
        assert report["network"]["packets"]["sent"] >= 381
    assert report["duration_s"] <= 16 and elapsed < 30
    status, stored = shared_monitor.json("GET", f"/api/v1/checks/{report['check_id']}", token)
    assert status == 200 and stored["report"]["phases"] == report["phases"]


def test_summary_puts_the_verdict_first(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("client", "c-human")
    result = check(shared_monitor.url, token, "--udp-seconds", "1", "--no-throughput", "--target", shared_monitor.url.split("//")[1])
    text = result.stdout
    first = next(line for line in text.splitlines() if line.strip())
    assert any(word in first for word in ("READY", "AT RISK", "NOT READY"))
    assert "Round trip" in text and "Connect to 127.0.0.1" in text and "saved to the monitor" in text
    assert "Traceback" not in result.stderr


def test_no_udp_answer_is_not_ready_with_a_plain_fix(tmp_path: Path) -> None:
    # The monitor tells clients to send UDP where nothing answers: what a firewall does.
    silent = start_monitor(tmp_path / "m", "--advertise-udp", "127.0.0.1:9")
    try:
        result = check(silent.url, silent.token(), "--json", "--udp-seconds", "1", "--no-throughput")
    finally:
        silent.stop()
    report = json.loads(result.stdout)
    assert result.returncode == 2 and report["verdict"] == "not_ready"
    assert report["network"]["udp_error"] and report["network"]["packets"]["received"] == 0
    assert report["reasons"][0]["severity"] == "critical"
    assert "firewall" in report["reasons"][0]["fix"].lower() or "vpn" in report["reasons"][0]["fix"].lower()


@pytest.mark.parametrize(
    "args,message",
    [
        (("--monitor", "http://127.0.0.1:1"), "cannot reach the monitor"),
        (("--monitor", "http://192.0.2.10:8470"), "clear text"),
        (("--monitor", "ftp://x"), "not an http"),
        (("--monitor", "http://127.0.0.1:1", "--session", "Jane Doe"), "pseudonymous"),
        (("--monitor", "http://127.0.0.1:1", "--target", "nohostport"), "HOST:PORT"),
        (("--monitor", "http://127.0.0.1:1", "--udp-seconds", "0"), "--udp-seconds"),
        (("--monitor", "https://127.0.0.1:1", "--ca-file", "/nonexistent/ca.pem"), "CA file"),
        (("--monitor", "http://user:secret@127.0.0.1:1"), "user name or password"),
        (("--monitor", "http://127.0.0.1:1", "--config", "/"), "is a directory"),
        (("--monitor", "http://127.0.0.1:1", *[a for i in range(17) for a in ("--target", f"h{i}:443")]), "at most 16 targets"),
    ],
)
def test_could_not_run_is_exit_3_with_one_sentence(args: tuple[str, ...], message: str) -> None:
    result = run_cli("check", *args, env={"SESSIONREADY_TOKEN": "sr1_000000000000_notarealtoken"}, timeout=30)
    assert result.returncode == 3
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_missing_and_wrong_token(shared_monitor: Monitor) -> None:
    result = run_cli("check", "--monitor", shared_monitor.url, env={"SESSIONREADY_TOKEN": ""})
    assert result.returncode == 3 and "no token" in result.stderr
    result = check(shared_monitor.url, "sr1_0_wrong")
    assert result.returncode == 3 and "rejected the token" in result.stderr


def test_result_is_printed_even_when_the_upload_fails(shared_monitor: Monitor) -> None:
    created = run_cli("monitor", "token", "create", "--role", "client", "--participant", "c-upfail", "--data-dir", str(shared_monitor.data_dir))
    token = created.stdout.strip().splitlines()[-1]
    token_id = created.stdout.split(" token ")[1].split(" ")[0]
    metrics = shared_monitor.token("metrics", "prom-upfail")
    answered_before = _answered(shared_monitor, metrics)
    process = subprocess.Popen(
        [*SESSIONREADY, "check", "--monitor", shared_monitor.url, "--token", token, "--json", "--udp-seconds", "4", "--no-throughput"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Revoke the token once the probe stream runs: the check has started, its upload will fail.
    deadline = time.monotonic() + 20
    while _answered(shared_monitor, metrics) <= answered_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run_cli("monitor", "token", "revoke", token_id, "--data-dir", str(shared_monitor.data_dir)).returncode == 0
    stdout, stderr = process.communicate(timeout=60)
    report = json.loads(stdout)
    assert report["submitted"] is False and "rejected the token" in report["submit_error"]
    assert report["network"]["packets"]["sent"] > 0 and process.returncode in (0, 1, 2), stderr


def _answered(monitor: Monitor, metrics_token: str) -> float:
    _, text = monitor.request("GET", "/metrics", metrics_token)
    for line in text.decode().splitlines():
        if line.startswith('sessionready_reflector_packets_total{result="answered"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_https_monitor_with_a_private_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    ca.cert_pem.write_to_path(ca_path)
    config = tmp_path / "monitor.toml"
    config.write_text(f'[monitor]\ntls_cert = "{cert_path}"\ntls_key = "{key_path}"\n')
    secure = start_monitor(tmp_path / "data", "--config", str(config))
    try:
        assert secure.url.startswith("https://")
        token = secure.token()
        good = check(secure.url, token, "--json", "--ca-file", str(ca_path), "--udp-seconds", "1", "--load-seconds", "1")
        assert good.returncode in (0, 1, 2), good.stderr
        report = json.loads(good.stdout)
        assert report["submitted"] is True and report["network"]["throughput_mbps"]["down"] > 0
        untrusted = check(secure.url, token, "--udp-seconds", "1", "--no-throughput")
        assert untrusted.returncode == 3 and "certificate" in untrusted.stderr and "Traceback" not in untrusted.stderr
    finally:
        secure.stop()


def test_config_file_sets_targets_and_thresholds(shared_monitor: Monitor, tmp_path: Path) -> None:
    token = shared_monitor.token("client", "c-config")
    config = tmp_path / "agent.toml"
    host_port = shared_monitor.url.split("//")[1]
    config.write_text(f'[monitor]\nurl = "{shared_monitor.url}"\n\n[check]\nadaptive = false\nudp_seconds = 1\ntargets = ["{host_port}"]\n')
    result = run_cli("check", "--config", str(config), "--json", "--no-throughput", env={"SESSIONREADY_TOKEN": token})
    report = json.loads(result.stdout)
    assert report["settings"]["udp_seconds"] == 1.0
    assert [t["target"] for t in report["targets"]] == [host_port] and report["targets"][0]["connect_ms"]["p50"] > 0
    config.write_text("[check]\nudp_secnds = 1\n")
    result = run_cli("check", "--config", str(config), "--monitor", shared_monitor.url, env={"SESSIONREADY_TOKEN": token})
    assert result.returncode == 3 and "check.udp_secnds" in result.stderr


def test_sample_agent_config_loads() -> None:
    from agents.config import load_agent_config

    config = load_agent_config(Path(__file__).parent.parent / "agents" / "agent.sample.toml")
    assert config.check.udp_seconds == 5.0 and config.thresholds == quality.Thresholds()


def test_sample_monitor_config_loads() -> None:
    from monitor.config import MonitorConfig, load_config

    assert load_config(Path(__file__).parent.parent / "monitor" / "monitor.sample.toml") == MonitorConfig()


def test_client_install_stays_light() -> None:
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    for heavy in ("dash", "flask", "pandas", "plotly", "prometheus", "aiortc"):
        assert heavy not in base
    code = (
        "import sys, agents.cli, agents.check\n"
        "loaded = [m for m in ('dash', 'flask', 'pandas', 'prometheus_client', 'monitor', 'aiortc', 'av') if m in sys.modules]\n"
        "sys.exit(f'loaded: {loaded}' if loaded else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_speedtest_backend_in_the_check(shared_monitor: Monitor, tmp_path: Path) -> None:
    from tests.speedtest_server import LegacySpeedtestServer

    token = shared_monitor.token("client", "c-speedtest")
    config = tmp_path / "agent.toml"
    with LegacySpeedtestServer() as server:
        config.write_text(f'[check]\nspeedtest_servers = ["{server.server_entry}"]\n')
        result = run_cli(
            "check", "--monitor", shared_monitor.url, "--config", str(config), "--speedtest", "--json", "--no-audio",
            "--udp-seconds", "1", "--no-throughput", env={"SESSIONREADY_TOKEN": token}, timeout=90,
        )  # fmt: skip
    report = json.loads(result.stdout)
    speed = report["speedtest"]
    assert speed["available"] is True and speed["error"] is None, speed
    assert speed["download_mbps"] > 0 and speed["upload_mbps"] > 0 and "127.0.0.1" in (speed["server"] or "")
    assert report["submitted"] is True


def test_a_malformed_token_is_one_sentence() -> None:
    result = run_cli("check", "--monitor", "http://127.0.0.1:1", env={"SESSIONREADY_TOKEN": "sr1_abc_def\n# a comment"})
    assert result.returncode == 3 and "malformed" in result.stderr and "Traceback" not in result.stderr


def test_targets_are_normalised_before_they_are_sent(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("client", "c-targets")
    host_port = shared_monitor.url.split("//")[1]
    result = check(shared_monitor.url, token, "--json", "--no-audio", "--no-throughput", "--udp-seconds", "1", "--target", f" {host_port} ")
    report = json.loads(result.stdout)
    assert report["targets"][0]["target"] == host_port and report["submitted"] is True


def test_probe_keys_shorter_than_a_phase_are_refused_up_front(tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text("[monitor]\nprobe_key_ttl_s = 10\n")
    short = start_monitor(tmp_path / "m", "--config", str(config))
    try:
        result = check(short.url, short.token(), "--udp-seconds", "5", "--no-audio")
    finally:
        short.stop()
    assert result.returncode == 3 and "probe keys last 10 s" in result.stderr


def test_an_unresolvable_udp_address_is_one_sentence(tmp_path: Path) -> None:
    broken = start_monitor(tmp_path / "m", "--advertise-udp", "no-such-host.invalid:9")
    try:
        result = check(broken.url, broken.token(), "--udp-seconds", "1", "--no-audio")
    finally:
        broken.stop()
    assert result.returncode == 3 and "cannot be resolved" in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_is_exit_130_without_stray_tracebacks(shared_monitor: Monitor) -> None:
    token = shared_monitor.token("client", "c-ctrl-c")
    process = subprocess.Popen(
        [*SESSIONREADY, "check", "--monitor", shared_monitor.url, "--token", token, "--no-audio", "--udp-seconds", "1", "--load-seconds", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(4.5)  # inside the download phase
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130 and "interrupted" in stderr
    assert "Traceback" not in stderr and "Task exception" not in stderr


def test_a_check_can_be_rerun_at_once_with_the_same_token(shared_monitor: Monitor) -> None:
    """Issue 12, Medium 5: a full check on a fast link is 100+ probe requests, and a limit on
    requests refused the re-run a person makes after fixing their Wi-Fi. The limits now count
    probe sessions and bytes: two full default checks back to back both measure everything."""
    token = shared_monitor.token("client", "c-rerun")
    for attempt in ("first", "second"):
        result = check(shared_monitor.url, token, "--json", timeout=120)
        assert result.returncode in (0, 1, 2), f"{attempt} check: {result.stderr}"
        report = json.loads(result.stdout)
        assert report["submitted"] is True, f"{attempt} check: {report['submit_error']}"
        network = report["network"]
        assert network["throughput_error"] is None, f"{attempt} check: {network['throughput_error']}"
        assert network["throughput_mbps"]["down"] > 0 and network["throughput_mbps"]["up"] > 0, attempt
        assert network["packets"]["reflected"] > 0, attempt
    assert "rate_limited" not in result.stderr


def test_a_token_on_the_command_line_is_warned_about_and_never_echoed(shared_monitor: Monitor) -> None:
    """Issue 12 (Low): --token is visible to every local user in ps. The check still runs, says
    so once on stderr, and prints the token nowhere; with SESSIONREADY_TOKEN it says nothing."""
    token = shared_monitor.token("client", "c-argv")
    args = ("check", "--monitor", shared_monitor.url, "--json", "--udp-seconds", "1", "--no-throughput", "--no-audio", "--no-machine")
    result = run_cli(*args, "--token", token, env={"SESSIONREADY_TOKEN": "", "COLUMNS": "200"}, timeout=60)
    assert result.returncode in (0, 1, 2), result.stderr
    assert result.stderr.count(TOKEN_ARGUMENT_WARNING) == 1
    assert token not in result.stdout + result.stderr
    assert json.loads(result.stdout)["submitted"] is True
    quiet = check(shared_monitor.url, token, "--json", "--udp-seconds", "1", "--no-throughput", "--no-audio", "--no-machine")
    assert quiet.returncode in (0, 1, 2) and TOKEN_ARGUMENT_WARNING not in quiet.stderr
    helped = run_cli("check", "--help")
    assert "prefer $SESSIONREADY_TOKEN" in helped.stdout
