"""The agent daemon's footprint: CPU (% of one core) and peak RSS, in background and live mode,
side by side with Debian's ``prometheus-node-exporter`` scraped once a second as a reference.

Both run at the same time on the same machine, so a busy machine weighs on both alike; the
table gives each process's own CPU time over each window divided by the window's wall time.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil

from benchmarks.core import BenchmarkError, Context, Section, table
from benchmarks.processes import SESSIONREADY, create_token, start_monitor

NODE_EXPORTER = "prometheus-node-exporter"
WARM_UP_S = 20.0  # imports and the first samples are start-up cost, not the steady state


@dataclass(frozen=True)
class Usage:
    cpu_pct: float  # % of one core over the window
    peak_rss_mb: float  # the process's high-water mark so far (VmHWM)


class Window:
    """CPU time of a process between two moments, and its peak RSS at the end."""

    def __init__(self, process: psutil.Process) -> None:
        self._process = process
        self._cpu0 = self._cpu()
        self._t0 = time.monotonic()

    def _cpu(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system

    def close(self) -> Usage:
        cpu = self._cpu() - self._cpu0
        wall = time.monotonic() - self._t0
        return Usage(100.0 * cpu / wall, peak_rss_mb(self._process.pid))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchmarkError("the kernel does not report VmHWM")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Scraper(threading.Thread):
    """GET the reference exporter's /metrics once a second, as a Prometheus would."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self._url = url
        self._halt = threading.Event()
        self.scrapes = 0

    def run(self) -> None:
        while not self._halt.wait(1.0):
            with urllib.request.urlopen(self._url, timeout=5) as response:
                response.read()
            self.scrapes += 1

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()


def _api(url: str, token: str, method: str, path: str, payload: object | None = None) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(f"{url}{path}", data=data, method=method, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def _write_config(workdir: Path, url: str, token: str) -> Path:
    token_file = workdir / "agent.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    config = workdir / "agent.toml"
    config.write_text(
        f'[monitor]\nurl = "{url}"\ntoken_file = "{token_file}"\n\n'
        f'[agent]\nspool_path = "{workdir / "spool.sqlite3"}"\nsessions_poll_s = 30\n\n'
        "[room]\nmicrophone = false\n"
    )
    return config


def _samples(url: str, token: str, agent_id: str, kind: str) -> int:
    answer = _api(url, token, "GET", f"/api/v1/agents/{agent_id}/samples?kind={kind}&limit=500")
    return len(answer.get("samples", []))


def agent_footprint(context: Context) -> Section:
    if shutil.which(NODE_EXPORTER) is None:
        raise BenchmarkError(f"{NODE_EXPORTER} is not installed (make system-deps installs it)")
    background_s = 60.0 if context.quick else 240.0
    live_s = 30.0 if context.quick else 120.0
    data_dir = context.workdir / "monitor"
    with start_monitor(data_dir, context.env) as monitor:
        agent_token = create_token(data_dir, "client", "c-bench", context.env)
        staff_token = create_token(data_dir, "it", "it-bench", context.env)
        agent_id = agent_token.split("_")[1]
        config = _write_config(context.workdir, monitor.url, agent_token)
        exporter_port = free_port()
        exporter = subprocess.Popen(
            [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{exporter_port}"],
            stdout=subprocess.DEVNULL,
            stderr=(context.workdir / "node-exporter.log").open("w"),
        )
        agent_log = (context.workdir / "agent.log").open("w")
        agent = subprocess.Popen([*SESSIONREADY, "agent", "--config", str(config)], stdout=agent_log, stderr=subprocess.STDOUT, env=context.env)
        scraper = Scraper(f"http://127.0.0.1:{exporter_port}/metrics")
        try:
            time.sleep(2.0)
            scraper.start()
            time.sleep(WARM_UP_S)
            if agent.poll() is not None:
                raise BenchmarkError(f"the agent exited: {(context.workdir / 'agent.log').read_text()[-1500:]}")
            agent_process, exporter_process = psutil.Process(agent.pid), psutil.Process(exporter.pid)
            windows = (Window(agent_process), Window(exporter_process))
            time.sleep(background_s)
            background = tuple(w.close() for w in windows)
            background_samples = _samples(monitor.url, staff_token, agent_id, "background")

            # A session in progress: the agent learns it at its next poll and goes live.
            start = datetime.now(timezone.utc) - timedelta(seconds=5)
            _api(monitor.url, staff_token, "POST", "/api/v1/sessions", {
                "therapist_id": "t-bench", "client_id": "c-bench",
                "start": start.isoformat(timespec="seconds").replace("+00:00", "Z"),
                "planned_duration_s": int(live_s + 120),
            })
            deadline = time.monotonic() + 60
            while _samples(monitor.url, staff_token, agent_id, "live") == 0:
                if time.monotonic() > deadline:
                    raise BenchmarkError("the agent did not go live within 60 s of the session's start")
                time.sleep(1.0)
            live_before = _samples(monitor.url, staff_token, agent_id, "live")
            windows = (Window(agent_process), Window(exporter_process))
            time.sleep(live_s)
            live = tuple(w.close() for w in windows)
            live_samples = _samples(monitor.url, staff_token, agent_id, "live") - live_before
        finally:
            scraper.stop()
            for process in (agent, exporter):
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
            agent_log.close()
    if agent.returncode != 0:
        raise BenchmarkError(f"the agent did not exit cleanly on SIGTERM (exit {agent.returncode})")

    def row(mode: str, window_s: float, usage: tuple[Usage, Usage], target: float) -> list[str]:
        agent_use, reference = usage
        ratio = agent_use.cpu_pct / reference.cpu_pct if reference.cpu_pct > 0 else float("inf")
        return [
            mode, f"{window_s:.0f} s", f"{agent_use.cpu_pct:.3f}", f"< {target}", "yes" if agent_use.cpu_pct < target else "**no**",
            f"{agent_use.peak_rss_mb:.1f}", f"{reference.cpu_pct:.3f}", f"{reference.peak_rss_mb:.1f}", f"{ratio:.2f}",
        ]

    rows = [row("background", background_s, background, 0.5), row("live", live_s, live, 3.0)]
    rss_ok = max(background[0].peak_rss_mb, live[0].peak_rss_mb) < 80
    text = (
        "`sessionready agent` with its default intervals (network burst every 5 min, machine every\n"
        f"minute; live: a sample every 2 s) against a monitor on loopback, microphone off (this machine\n"
        f"has none). Reference: `{NODE_EXPORTER}` (Debian) scraped once a second during the same\n"
        f"windows ({scraper.scrapes} scrapes). {WARM_UP_S:.0f} s warm-up excluded. CPU = the process's user + system time over\n"
        "the window ÷ the window's wall time; peak RSS = the kernel's high-water mark (VmHWM).\n\n"
        + table(
            ["Mode", "Window", "Agent CPU % of a core", "Target", "Met", "Agent peak RSS MB", "node-exporter CPU %", "node-exporter peak RSS MB", "Agent ÷ node-exporter CPU"],
            rows,
        )
        + f"\n\n- RSS target (< 80 MB): {'met' if rss_ok else '**not met**'}.\n"
        f"- Reports that reached the monitor: {background_samples} background samples in the warm-up and background window,"
        f" {live_samples} live samples in the {live_s:.0f} s live window (one per 2 s expected: {live_s / 2:.0f}).\n"
    )
    return Section("Agent footprint: background and live mode vs prometheus-node-exporter", text)
