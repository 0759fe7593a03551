"""Adaptive check length: the options the config and the command line give, and a real check
against a real monitor on loopback that ends a phase unsettled at its maximum."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from agents.check import CheckOptions
from agents.config import AgentConfig, CheckSection, load_agent_config
from monitor.config import MonitorConfig
from sessionready.config import ConfigError
from sessionready.settle import PhaseLimits
from tests.conftest import Monitor, run_cli

STREAMS_PER_TOKEN = MonitorConfig().probe_streams_per_token  # how many the monitor lets one token run at once


def with_check(check: CheckSection) -> AgentConfig:
    return replace(AgentConfig(), check=check)


def test_the_default_check_is_adaptive_within_the_configs_limits() -> None:
    options = CheckOptions.from_config(AgentConfig())
    assert options.idle_limits == PhaseLimits(2.0, 10.0) and options.load_limits == PhaseLimits(2.0, 6.0)
    # A throughput phase may last up to its maximum; the ramp keeps half of the shortest.
    assert (options.throughput.seconds, options.throughput.ramp_seconds) == (6.0, 1.0)
    # The room listens through the shortest network phases, less a second: 2 + 2 x 2 - 1 = 5 s,
    # so that it never holds up a check that settled early.
    assert options.room is not None and options.room.seconds == 5.0


def test_fixed_length_and_given_lengths_make_phases_fixed() -> None:
    fixed = CheckOptions.from_config(AgentConfig(), fixed_length=True)
    assert (fixed.idle_limits, fixed.load_limits, fixed.udp_seconds, fixed.throughput.seconds) == (None, None, 5.0, 4.0)
    off = CheckOptions.from_config(with_check(CheckSection(adaptive=False)))
    assert (off.idle_limits, off.load_limits) == (None, None)
    # --udp-seconds fixes the idle phase only; the load phases stay adaptive.
    idle_fixed = CheckOptions.from_config(AgentConfig(), udp_seconds=3)
    assert (idle_fixed.idle_limits, idle_fixed.udp_seconds, idle_fixed.load_limits) == (None, 3, PhaseLimits(2.0, 6.0))
    # No throughput phases: no load limits to report.
    assert CheckOptions.from_config(AgentConfig(), measure_throughput=False).load_limits is None


def test_limits_in_the_config_are_validated(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[check]\nudp_min_seconds = 4\nudp_max_seconds = 3\n")
    with pytest.raises(ConfigError, match=r"udp_min_seconds \(4\) must not exceed udp_max_seconds \(3\)"):
        load_agent_config(config, environ={})
    config.write_text("[check]\nload_max_seconds = 0\n")
    with pytest.raises(ConfigError, match="load_max_seconds"):
        load_agent_config(config, environ={})
    config.write_text("[check]\nudp_min_seconds = 1\nudp_max_seconds = 30\nload_min_seconds = 3\nload_max_seconds = 3\n")
    check = load_agent_config(config, environ={}).check
    assert (check.udp_min_seconds, check.udp_max_seconds, check.load_min_seconds, check.load_max_seconds) == (1, 30, 3, 3)


def test_a_phase_unsettled_at_its_maximum_is_borderline_not_a_coin_toss(shared_monitor: Monitor, tmp_path: Path) -> None:
    # One second of a clean loopback: about 50 packets, 0 lost, Wilson upper bound
    # 3.8415 / (50 + 3.8415) = 7.1 %: neither 1 % nor 3 % is ruled out. The point estimate
    # (0 %) would say "ready"; the check says "borderline" instead, and the verdict is at risk.
    token = shared_monitor.token("client", "c-borderline")
    config = tmp_path / "agent.toml"
    config.write_text("[check]\nudp_min_seconds = 0.5\nudp_max_seconds = 1\n")
    result = run_cli(
        "check", "--config", str(config), "--monitor", shared_monitor.url, "--json", "--no-throughput", "--no-audio", "--no-machine",
        env={"SESSIONREADY_TOKEN": token}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    (idle,) = report["phases"]
    assert (idle["name"], idle["stopped"], idle["min_s"], idle["max_s"]) == ("idle", "max_length", 0.5, 1.0)
    assert 1.0 <= idle["seconds"] < 2.0
    figures = {u["figure"]: u for u in idle["unsettled"]}
    assert {"loss_up", "loss_down"} <= set(figures)
    assert figures["loss_up"]["low"] == 0 and 0.05 < figures["loss_up"]["high"] < 0.1
    assert report["verdict"] == "at_risk" and report["settings"]["adaptive"] is True
    borderline = [r for r in report["reasons"] if r["code"] == "borderline"]
    assert len(borderline) == 1 and borderline[0]["severity"] == "warning"
    assert "loss on your upload 0.0–" in borderline[0]["message"]
    # The monitor accepted and kept the new fields.
    status, stored = shared_monitor.json("GET", f"/api/v1/checks/{report['check_id']}", token)
    assert status == 200 and stored["report"]["phases"] == report["phases"]
    assert [r["code"] for r in stored["report"]["reasons"]] == [r["code"] for r in report["reasons"]]
    # ...and words its borderline reason from the stored intervals, as the agent did.
    (kept,) = [r for r in stored["report"]["reasons"] if r["code"] == "borderline"]
    assert kept["message"] == borderline[0]["message"]


def test_the_summary_says_how_long_each_phase_ran(shared_monitor: Monitor, tmp_path: Path) -> None:
    token = shared_monitor.token("client", "c-phases")
    config = tmp_path / "agent.toml"
    config.write_text("[check]\nudp_min_seconds = 0.5\nudp_max_seconds = 1\n")
    result = run_cli(
        "check", "--config", str(config), "--monitor", shared_monitor.url, "--no-throughput", "--no-audio", "--no-machine",
        env={"SESSIONREADY_TOKEN": token, "COLUMNS": "200"}, timeout=60,
    )  # fmt: skip
    text = " ".join(result.stdout.split())  # rich wraps long lines
    assert "Phases: idle 1.0 s (stopped at its longest, 1 s; still unsettled: " in text, text
    assert "loss up, loss down" in text and "Borderline: loss on your upload" in text


def test_a_report_without_the_new_fields_is_still_accepted(shared_monitor: Monitor) -> None:
    # An agent from before adaptive length (and the browser check) sends neither
    # settings.adaptive nor phases: stored as it came, read back with both null.
    report = json.loads((Path(__file__).parent / "data" / "report.json").read_text())
    del report["phases"], report["settings"]["adaptive"]
    report["check_id"] = "0" * 31 + "a"
    token = shared_monitor.token("client", "c-older")
    status, body = shared_monitor.json("POST", "/api/v1/checks", token, report)
    assert status == 201 and body["stored"] is True, body
    status, stored = shared_monitor.json("GET", f"/api/v1/checks/{report['check_id']}", token)
    assert status == 200 and stored["report"]["phases"] is None and stored["report"]["settings"]["adaptive"] is None


def test_a_refused_throughput_ends_its_phase_at_once_as_failed(shared_monitor: Monitor, tmp_path: Path) -> None:
    # A real monitor that refuses this token's throughput: the token already has as many
    # downloads in flight as the monitor allows at once (another check of the same person),
    # so it answers 429 to every stream of this check. The phases may run 20 s each; refused,
    # they end at once.
    token = shared_monitor.token("client", "c-refused")
    url = urlsplit(shared_monitor.url)
    held = []
    try:
        for _ in range(STREAMS_PER_TOKEN):
            sock = socket.create_connection((url.hostname, url.port), timeout=30)
            held.append(sock)
            sock.sendall(f"GET /api/v1/probe/download?bytes={1 << 30} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
            assert sock.recv(12) == b"HTTP/1.1 200"  # in flight: counted against the token
        agent = tmp_path / "agent.toml"
        agent.write_text("[check]\nudp_min_seconds = 0.5\nudp_max_seconds = 1\nload_min_seconds = 2\nload_max_seconds = 20\n")
        result = run_cli(
            "check", "--config", str(agent), "--monitor", shared_monitor.url, "--json", "--no-audio", "--no-machine",
            env={"SESSIONREADY_TOKEN": token}, timeout=120,
        )  # fmt: skip
    finally:
        for sock in held:
            sock.close()
    report = json.loads(result.stdout)
    phases = {phase["name"]: phase for phase in report["phases"]}
    for name in ("download", "upload"):
        phase = phases[name]
        assert (phase["stopped"], phase["max_s"], phase["unsettled"]) == ("failed", 20.0, []), phase
        assert phase["seconds"] < 2.0, phase  # a tenth of its maximum, with room for a busy machine
    # The whole check: the idle phase (at most 1 s) and start-up, far from one phase's 20 s.
    assert report["duration_s"] < 10.0, report["duration_s"]
    network = report["network"]
    assert network["throughput_mbps"] == {"down": None, "up": None}
    assert "rate-limited the throughput test (HTTP 429)" in network["throughput_error"]
    codes = {reason["code"]: reason["severity"] for reason in report["reasons"]}
    assert codes.get("throughput_test_failed") == "warning", codes
    # Before, the download said "max_length" and the upload waited its 20 s for nothing.
