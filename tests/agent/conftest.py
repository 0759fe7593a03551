"""Helpers for the agent's tests: an agent daemon as a real process, its config, and what it
delivered, read back from the monitor."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sessionready.typed import rfc3339
from tests.conftest import Monitor

QUIET_CHECK = "[check]\nadaptive = false\nudp_seconds = 1\nload_seconds = 1\nstreams = 1\n\n[room]\nmicrophone = false\n"


@dataclass
class AgentProcess:
    process: subprocess.Popen
    config: Path
    log: Path
    spool: Path

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def messages(self) -> list[str]:
        return [line["message"] for line in self.lines()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> tuple[int, float]:
        started = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started


def agent_config(monitor: Monitor, tmp_path: Path, agent_table: str, extra: str = QUIET_CHECK, name: str = "agent.toml", url: str | None = None) -> Path:
    """An agent's config for ``monitor`` (or for ``url``, a way to it such as a test's proxy)."""
    path = tmp_path / name
    path.write_text(f'[monitor]\nurl = "{url or monitor.url}"\n\n{extra}\n[agent]\nspool_path = "{tmp_path / "spool.sqlite3"}"\n{agent_table}')
    return path


def agent_id(monitor: Monitor, token: str) -> str:
    status, me = monitor.json("GET", "/api/v1/whoami", token)
    assert status == 200, me
    return me["agent_id"]


def checks(monitor: Monitor, token: str) -> list[dict]:
    status, body = monitor.json("GET", f"/api/v1/agents/{agent_id(monitor, token)}/checks", token)
    assert status == 200, body
    return body["checks"]


def unix(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def create_session(monitor: Monitor, admin: str, session_id: str, client: str, start: float, duration_s: int) -> None:
    body = {"session_id": session_id, "therapist_id": "t-1", "client_id": client, "start": rfc3339(start), "planned_duration_s": duration_s}
    status, answer = monitor.json("POST", "/api/v1/sessions", admin, body)
    assert status == 201, answer
