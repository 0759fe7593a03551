"""Real processes on loopback: the monitor, the minimal reference endpoint, tokens, a check."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks.core import BenchmarkError

PYTHON = sys.executable
SESSIONREADY = [PYTHON, "-m", "sessionready.cli"]
START_TIMEOUT_S = 30.0


@dataclass
class Server:
    """A server process that announced ``... listening on http://HOST:PORT ...`` on stdout."""

    name: str
    process: subprocess.Popen
    url: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(name: str, command: list[str], log_path: Path, env: dict[str, str]) -> Server:
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    deadline = time.monotonic() + START_TIMEOUT_S
    line = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline() if process.stdout else ""
        if "listening on " in line or process.poll() is not None:
            break
    if "listening on " not in line:
        process.kill()
        process.wait()
        raise BenchmarkError(f"{name} did not start: {line.strip()!r}; log: {log_path.read_text()[-2000:]}")
    url = line.split("listening on ")[1].split()[0]
    return Server(name, process, url, log_path)


def start_monitor(data_dir: Path, env: dict[str, str]) -> Server:
    command = [*SESSIONREADY, "monitor", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", "0"]
    return start_server("the monitor", command, data_dir.parent / "monitor.log", env)


def start_minimal_endpoint(workdir: Path, env: dict[str, str]) -> Server:
    command = [PYTHON, "-m", "benchmarks.minimal_endpoint", "--host", "127.0.0.1", "--port", "0"]
    return start_server("the minimal endpoint", command, workdir / "minimal_endpoint.log", env)


def create_token(data_dir: Path, role: str, participant: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [*SESSIONREADY, "monitor", "token", "create", "--role", role, "--participant", participant, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise BenchmarkError(f"token create failed: {result.stderr.strip()}")
    return result.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Timed:
    """A finished child process: its output, wall time and CPU time (user + system), in seconds."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float


def run_timed(command: list[str], env: dict[str, str], timeout_s: float) -> Timed:
    """Run a child to the end. CPU time comes from the kernel's accounting of reaped children,
    so nothing else may be reaped meanwhile (the benchmarks run one child at a time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(result.returncode, result.stdout, result.stderr, wall, cpu)


def get_text(url: str, token: str, timeout_s: float = 30) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return response.read().decode()
