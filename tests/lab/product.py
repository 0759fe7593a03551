"""The product under test, run inside the lab: the monitor daemon and ``sessionready check``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .netlab import MONITOR_ADDR, Lab, LabError, wait_for

MONITOR_PORT = 4000


def product_cli_problem() -> tuple[str, str | None]:
    """(path of the ``sessionready`` command, why it cannot be used or None)."""
    path = str(Path(sys.executable).with_name("sessionready"))
    if not os.path.exists(path):
        return path, f"{path} does not exist (pip install -e . in the project's virtualenv)"
    for args in (["check", "--help"], ["monitor", "--help"]):
        proc = subprocess.run([path, *args], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or [""]
            return path, f"`sessionready {' '.join(args)}` fails: {tail[0]}"
    return path, None


def _isolated_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The agent keeps undelivered reports and settings under the user's directories: give it
    # its own, so a lab run never touches (or is influenced by) the real user's state.
    for name, sub in (("HOME", "home"), ("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "state"),
                      ("XDG_CACHE_HOME", "cache"), ("XDG_DATA_HOME", "data")):  # fmt: skip
        path = home / sub
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    return env


@dataclass
class CheckRun:
    report: dict
    stderr: str
    started_wall_ns: int
    finished_wall_ns: int
    seconds: float


class Product:
    """A monitor in the lab's monitor namespace and a way to run checks from the client one."""

    def __init__(self, lab: Lab, cli: str, workdir: Path, *, advertise_udp: str | None = None, port: int = MONITOR_PORT):
        self.lab = lab
        self.cli = cli
        self.port = port
        self.workdir = workdir
        self.data_dir = workdir / "monitor-data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.env = _isolated_env(workdir / "user")
        self.url = f"http://{MONITOR_ADDR}:{port}"
        created = lab.monitor.run(
            [cli, "monitor", "token", "create", "--role", "client", "--participant", "p1", "--data-dir", str(self.data_dir)],
        )
        lines = [line for line in created.stdout.splitlines() if line.strip()]
        if not lines:
            raise LabError(f"token create printed nothing: {created.stderr}")
        self.token = lines[-1].strip()
        args = [cli, "monitor", "--host", MONITOR_ADDR, "--port", str(port), "--data-dir", str(self.data_dir)]
        if advertise_udp:
            # The lab's relay forwards UDP from its own address, as a UDP load balancer that does
            # not keep source addresses would: probe keys cannot be bound to the client's IP
            # there (docs/monitor.md, "UDP reflector").
            config = workdir / "monitor.toml"
            config.write_text('[monitor]\nprobe_key_binding = "off"\n')
            args += ["--advertise-udp", advertise_udp, "--config", str(config)]
        self.log_path = workdir / "monitor.log"
        self.proc = lab.start(lab.monitor, args, log_path=str(self.log_path), env=self.env)
        wait_for(self._healthy, timeout=30, interval=0.2, what=f"monitor health at {self.url}/healthz")

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise LabError(f"monitor exited ({self.proc.returncode}):\n{self.log_tail()}")
        probe = (
            "import sys, urllib.request\n"
            f"r = urllib.request.urlopen('{self.url}/healthz', timeout=1)\n"
            "sys.exit(0 if r.status == 200 else 1)\n"
        )
        return self.lab.client.run([sys.executable, "-c", probe], check=False, timeout=10).returncode == 0

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check(self, *, udp_seconds: float, load_seconds: float | None = None, timeout: float = 120) -> CheckRun:
        """Run ``sessionready check --json`` in the client namespace; no throughput if ``load_seconds`` is None."""
        args = [
            self.cli, "check", "--monitor", self.url, "--token", self.token, "--json", "--allow-insecure-http",
            "--udp-seconds", str(udp_seconds),
        ]  # fmt: skip
        if load_seconds is None:
            args.append("--no-throughput")
        else:
            args += ["--load-seconds", str(load_seconds)]
        started = time.time_ns()
        t0 = time.monotonic()
        proc = subprocess.run(self.lab.client.cmd(args), capture_output=True, text=True, timeout=timeout, env=self.env)
        seconds = time.monotonic() - t0
        finished = time.time_ns()
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise LabError(
                f"check did not print one JSON object (exit {proc.returncode}): {exc}\n"
                f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}\nmonitor log:\n{self.log_tail()}"
            ) from None
        return CheckRun(report, proc.stderr, started, finished, seconds)
