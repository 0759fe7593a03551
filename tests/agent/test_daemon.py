"""``sessionready agent`` as a real process against a real monitor on loopback: start-up
errors, background samples, SIGTERM, SIGHUP, the pre-session check in real time, live mode."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agents.client import TOKEN_ARGUMENT_WARNING
from agents.daemon.spool import Spool
from tests.agent.conftest import QUIET_CHECK, AgentProcess, agent_config, agent_id, checks, create_session, unix
from tests.conftest import SESSIONREADY, Monitor, run_cli, wait_for


@pytest.fixture(scope="module")
def monitor(shared_monitor: Monitor) -> Monitor:
    """One monitor for the file (a start costs 1.5-4 s in a busy run): every test has a
    participant, an agent, sessions and spool of its own, and reads back only its own."""
    return shared_monitor


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def start(config: Path, token: str) -> AgentProcess:
        log = tmp_path / f"agent-{len(started)}.log"
        process = subprocess.Popen(
            [*SESSIONREADY, "agent", "--config", str(config), "--log-format", "json"],
            env={**os.environ, "SESSIONREADY_TOKEN": token},
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        agent = AgentProcess(process, config, log, tmp_path / "spool.sqlite3")
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait()


def samples(monitor: Monitor, token: str, since: float = 0, kind: str | None = None) -> list[dict]:
    query = f"?since={since:.3f}" + (f"&kind={kind}" if kind else "")
    status, body = monitor.json("GET", f"/api/v1/agents/{agent_id(monitor, token)}/samples{query}", token)
    assert status == 200, body
    return body["samples"]


# --- start-up -----------------------------------------------------------------------------


def test_help_explains_modes_signals_and_exit_codes() -> None:
    result = run_cli("agent", "--help")
    assert result.returncode == 0
    for words in ("--config", "--monitor", "--token", "SIGHUP", "SIGTERM", "pre_session_lead_minutes", "SESSIONREADY_TOKEN", "exit codes"):
        assert words in result.stdout, words


def test_a_token_on_the_command_line_is_warned_about_and_never_echoed(monitor: Monitor, tmp_path: Path) -> None:
    """Issue 12 (Low): --token is visible to every local user in ps; say so, prefer the safe ways."""
    token = monitor.token("client", "c-argv")
    good = agent_config(monitor, tmp_path, "")
    # Stops at once (a plain-HTTP monitor elsewhere is refused), after the warning is out.
    result = run_cli("agent", "--config", str(good), "--token", token, "--monitor", "http://192.0.2.1:8470", env={"SESSIONREADY_TOKEN": ""}, timeout=30)
    assert result.returncode == 3
    assert result.stderr.splitlines()[0] == TOKEN_ARGUMENT_WARNING
    assert token not in result.stdout + result.stderr
    quiet = run_cli("agent", "--config", str(good), "--monitor", "http://192.0.2.1:8470", env={"SESSIONREADY_TOKEN": token}, timeout=30)
    assert quiet.returncode == 3 and TOKEN_ARGUMENT_WARNING not in quiet.stderr, "no warning for the environment"
    helped = run_cli("agent", "--help")
    assert "prefer $SESSIONREADY_TOKEN" in helped.stdout and "systemd credential" in helped.stdout


def test_start_up_problems_are_one_sentence_and_exit_3(monitor: Monitor, tmp_path: Path) -> None:
    token = monitor.token("client", "c-start")
    good = agent_config(monitor, tmp_path, "")
    cases = [
        (["--config", str(agent_config(monitor, tmp_path, "machine_intervall_s = 5\n", name="a.toml"))], {"SESSIONREADY_TOKEN": token}, "agent.machine_intervall_s"),
        (["--config", str(agent_config(monitor, tmp_path, "live_interval_s = 0.1\n", name="b.toml"))], {"SESSIONREADY_TOKEN": token}, "agent.live_interval_s"),
        (["--config", str(good)], {"SESSIONREADY_TOKEN": ""}, "no token"),
        (["--config", str(good), "--token", "bad token!"], {}, "token is malformed"),
        (["--config", str(good), "--monitor", "http://192.0.2.1:8470"], {"SESSIONREADY_TOKEN": token}, "refusing to send the token in clear text"),
        (["--config", str(tmp_path / "absent.toml")], {"SESSIONREADY_TOKEN": token}, "does not exist"),
    ]
    for args, env, expected in cases:
        result = run_cli("agent", *args, env=env, timeout=30)
        assert result.returncode == 3, (args, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
        lines = [line for line in result.stderr.strip().splitlines() if line != TOKEN_ARGUMENT_WARNING]
        assert len(lines) == 1 and token not in result.stderr
    # The environment alone names the monitor; an unusable spool is one sentence too.
    (tmp_path / "blocker").write_text("a file where the spool's directory should be")
    no_file = {"SESSIONREADY_TOKEN": token, "SESSIONREADY_MONITOR_URL": monitor.url, "SESSIONREADY_CONFIG": str(tmp_path / "none.toml"), "XDG_STATE_HOME": str(tmp_path / "blocker")}
    result = run_cli("agent", env=no_file, timeout=30)
    assert result.returncode == 3 and "spool" in result.stderr and "Traceback" not in result.stderr, result.stderr


# --- background mode, SIGTERM, SIGHUP -------------------------------------------------------


def test_background_samples_reach_the_monitor_and_sigterm_flushes(monitor: Monitor, tmp_path: Path, start_agent) -> None:  # noqa: ANN001
    token = monitor.token("client", "c-bg")
    config = agent_config(monitor, tmp_path, "background_interval_s = 1\nmachine_interval_s = 0.5\nburst_seconds = 0.3\nsessions_poll_s = 1\n")
    agent = start_agent(config, token)
    arrived = wait_for(lambda: len(samples(monitor, token)) >= 6 and samples(monitor, token), 30, "six background samples", poll_s=0.25)
    assert all(s["kind"] == "background" and s["sample"]["session_id"] is None for s in arrived)
    network = [s for s in arrived if s["sample"]["network"] is not None]
    assert network and network[0]["sample"]["network"]["packets_received"] > 0 and network[0]["sample"]["network"]["rtt_p50_ms"] > 0
    assert all(s["sample"]["machine"] is not None for s in arrived)
    code, took = agent.stop()
    assert code == 0 and took < 6
    # Everything spooled reached the monitor, in sequence, once.
    spooled = [line["seq"] for line in agent.lines() if line["message"].endswith("sample spooled")]
    stored = [s["seq"] for s in samples(monitor, token)]
    assert stored == sorted(stored) and stored == spooled
    spool = Spool(agent.spool, 1_000_000)
    try:
        assert spool.stats().pending == 0
    finally:
        spool.close()
    assert "agent stopped" in agent.messages()
    assert token not in agent.log.read_text()


@pytest.mark.slow
def test_sighup_reloads_the_config_and_keeps_it_when_the_new_one_is_bad(monitor: Monitor, tmp_path: Path, start_agent) -> None:  # noqa: ANN001
    token = monitor.token("client", "c-hup")
    slow = "background_interval_s = 3600\nmachine_interval_s = 3600\nburst_seconds = 0.3\nsessions_poll_s = 1\n"
    config = agent_config(monitor, tmp_path, slow)
    agent = start_agent(config, token)
    wait_for(lambda: len(samples(monitor, token)) >= 1, 20, "the first sample", poll_s=0.25)
    time.sleep(3)
    assert len(samples(monitor, token)) == 1  # nothing more for an hour

    agent_config(monitor, tmp_path, slow.replace("background_interval_s = 3600", "background_interval_s = 1"))
    reloaded = time.time()
    agent.process.send_signal(signal.SIGHUP)
    wait_for(lambda: len(samples(monitor, token, since=reloaded)) >= 3, 15, "samples every second after the reload", poll_s=0.25)
    assert "config reloaded" in agent.messages()
    reload_line = next(line for line in agent.lines() if line["message"] == "config reloaded")
    assert reload_line["changed"] == ["background_interval_s"] and reload_line["background_interval_s"] == 1.0

    config.write_text(config.read_text() + "\nnot_a_key = 1\n")
    broken = time.time()
    agent.process.send_signal(signal.SIGHUP)
    wait_for(lambda: any(m.startswith("config reload failed") for m in agent.messages()), 10, "the reload failure in the log", poll_s=0.25)
    failure = next(m for m in agent.messages() if m.startswith("config reload failed"))
    assert "not_a_key" in failure
    # Still running, still on the one-second cadence.
    wait_for(lambda: len(samples(monitor, token, since=broken)) >= 3, 15, "samples continuing after the bad reload", poll_s=0.25)
    assert agent.process.poll() is None
    code, _ = agent.stop()
    assert code == 0


# --- pre-session check and live mode, in real time -------------------------------------------


@pytest.mark.slow
def test_the_pre_session_check_fires_at_the_lead_time_tagged_with_the_session(monitor: Monitor, tmp_path: Path, start_agent) -> None:  # noqa: ANN001
    admin = monitor.token("admin", "ops")
    token = monitor.token("client", "c-pre")
    config = agent_config(monitor, tmp_path, "background_interval_s = 3600\nmachine_interval_s = 3600\nburst_seconds = 0.3\nsessions_poll_s = 1\npre_session_lead_minutes = 1\n")
    agent = start_agent(config, token)
    wait_for(lambda: "connected to the monitor" in agent.messages(), 20, "the agent to connect", poll_s=0.25)
    start = float(int(time.time()) + 72)
    create_session(monitor, admin, "s-pre", "c-pre", start, 3000)
    create_session(monitor, admin, "s-off", "c-pre", start, 3000)
    status, body = monitor.json("POST", "/api/v1/sessions/s-off/state", admin, {"state": "cancelled"})
    assert status == 200, body

    found = wait_for(lambda: checks(monitor, token), 40, "the pre-session check", poll_s=0.25)
    check = found[0]["report"]  # type: ignore[index]
    assert check["session_id"] == "s-pre"
    assert abs(unix(check["started_at"]) - (start - 60)) <= 5, (check["started_at"], start - 60)
    # Once, and none for the cancelled session.
    time.sleep(4)
    assert [c["report"]["session_id"] for c in checks(monitor, token)] == ["s-pre"]
    log = agent.lines()
    done = next(line for line in log if line["message"] == "pre-session check spooled")
    assert done["session_id"] == "s-pre" and done["verdict"] == check["verdict"]
    # Not ready -> the person is told (here: logged, as there is no desktop); ready -> silence.
    told = any(line["message"].startswith("sessionready: ") for line in log)
    assert told == (check["verdict"] != "ready")
    assert agent.stop()[0] == 0


@pytest.mark.slow
def test_live_mode_sends_a_report_every_2_seconds_for_the_session(monitor: Monitor, tmp_path: Path, start_agent) -> None:  # noqa: ANN001
    admin = monitor.token("admin", "ops")
    token = monitor.token("client", "c-live")
    config = agent_config(monitor, tmp_path, "background_interval_s = 3600\nmachine_interval_s = 3600\nburst_seconds = 0.3\nsessions_poll_s = 1\npre_session_lead_minutes = 0\n")
    agent = start_agent(config, token)
    wait_for(lambda: "connected to the monitor" in agent.messages(), 20, "the agent to connect", poll_s=0.25)
    start = float(int(time.time()) + 3)
    create_session(monitor, admin, "s-live", "c-live", start, 60)
    time.sleep(start + 22 - time.time())
    status, body = monitor.json("POST", "/api/v1/sessions/s-live/state", admin, {"state": "ended"})
    assert status == 200, body
    ended = time.time()
    time.sleep(6)
    live = samples(monitor, token, kind="live")
    assert all(s["sample"]["session_id"] == "s-live" for s in live)
    taken = [unix(s["sample"]["taken_at"]) for s in live]
    received = [s["received_at"] for s in live]
    # From the session's start (plus the stream's one-second grace) until it was ended.
    assert len(live) >= 9 and taken[0] - start <= 4.5 and taken[-1] <= ended + 4
    for gaps in ([b - a for a, b in zip(taken, taken[1:])], [b - a for a, b in zip(received, received[1:])]):
        assert all(1.5 <= gap <= 2.5 for gap in gaps), gaps
    # Delivered as they were taken, not in batches later.
    assert all(r - t < 1.5 for r, t in zip(received, taken)), [round(r - t, 2) for r, t in zip(received, taken)]
    assert live[0]["sample"]["network"] is not None and live[0]["sample"]["machine"] is not None
    messages = agent.messages()
    assert "mode: live" in messages and "mode: background" in messages[messages.index("mode: live") :]
    assert agent.stop()[0] == 0


def test_sighup_with_a_new_token_reconnects_as_the_new_agent(monitor: Monitor, tmp_path: Path, start_agent) -> None:  # noqa: ANN001
    first, second = monitor.token("client", "c-swap"), monitor.token("client", "c-swap")
    token_file = tmp_path / "agent.token"
    token_file.write_text(first + "\n")
    extra = QUIET_CHECK.replace("[check]", f'token_file = "{token_file}"\n\n[check]')
    config = agent_config(monitor, tmp_path, "background_interval_s = 1\nmachine_interval_s = 3600\nburst_seconds = 0.3\nsessions_poll_s = 1\n", extra=extra)
    agent = start_agent(config, "")  # no SESSIONREADY_TOKEN: the token file is used
    wait_for(lambda: len(samples(monitor, first)) >= 2, 20, "samples as the first agent", poll_s=0.25)
    token_file.write_text(second + "\n")
    agent.process.send_signal(signal.SIGHUP)
    wait_for(lambda: len(samples(monitor, second)) >= 2, 20, "samples as the second agent", poll_s=0.25)
    reload_line = next(line for line in agent.lines() if line["message"] == "config reloaded")
    assert reload_line["changed"] == ["monitor connection"]
    connected = [line["agent_id"] for line in agent.lines() if line["message"] == "connected to the monitor"]
    assert connected == [agent_id(monitor, first), agent_id(monitor, second)]
    log = agent.log.read_text()
    assert first not in log and second not in log
    assert agent.stop()[0] == 0
