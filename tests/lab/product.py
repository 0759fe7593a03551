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


ROOT = Path(__file__).resolve().parents[2]
RTC_PORTS = range(21500, 21510)
# UDP length (header included) of a 172-byte probe or echo, with room for an SCTP SACK chunk a
# browser bundles with its data; nothing else in the flow falls in this band (found in the lab:
# 172-byte messages travel in 245-byte UDP datagrams between two aiortc stacks; SCTP
# acknowledgements, ICE checks and the DTLS handshake are far shorter or longer).
PROBE_UDP_LENGTH = (230, 320)


def report(scenario: str, **values) -> None:
    """Print the numbers; also append them to $SESSIONREADY_LAB_REPORT if set ."""
    line = json.dumps({"scenario": scenario, **values}, default=str)
    print(line)
    path = os.environ.get("SESSIONREADY_LAB_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


class RtcLabMonitor:
    """The monitor app in the lab's monitor namespace, and a client token to start streams."""

    def __init__(self, lab: Lab, product_cli: str, workdir: Path, rtc_ports: range = RTC_PORTS) -> None:
        self.lab = lab
        data = workdir / "monitor-data"
        data.mkdir(parents=True, exist_ok=True)
        config = workdir / "monitor.toml"
        config.write_text(f'[monitor]\ndata_dir = "{data}"\nrtc_port_min = {rtc_ports.start}\nrtc_port_max = {rtc_ports.stop - 1}\n')
        self.token = self._token(product_cli, data, "client", "p1")
        self.staff = self._token(product_cli, data, "it", "it-lab")
        self._pages: list[str] = []  # the links run_page made
        self.url = f"http://{MONITOR_ADDR}:{MONITOR_PORT}"
        self.log = workdir / "rtc-monitor.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = lab.start(lab.monitor, [sys.executable, str(ROOT / "tests/lab/rtc_monitor.py"), str(config), MONITOR_ADDR, str(MONITOR_PORT)],
                              log_path=str(self.log), env=env)  # fmt: skip
        wait_for(lambda: "ready" in self.log.read_text(errors="replace") or self._exited(), timeout=30, what="the rtc monitor")

    def _token(self, product_cli: str, data: Path, role: str, participant: str) -> str:
        created = self.lab.monitor.run([product_cli, "monitor", "token", "create", "--role", role, "--participant", participant, "--data-dir", str(data)])
        return created.stdout.strip().splitlines()[-1]

    def api(self, method: str, path: str, payload: dict, token: str | None = None) -> dict:
        """A JSON request from the client namespace (the lab's addresses exist only in there)."""
        script = (
            "import sys, urllib.request\n"
            f"r = urllib.request.Request('{self.url}{path}', data=sys.stdin.buffer.read(), method='{method}',\n"
            f"    headers={{'Authorization': 'Bearer {token or self.staff}', 'Content-Type': 'application/json'}})\n"
            "sys.stdout.write(urllib.request.urlopen(r, timeout=30).read().decode())\n"
        )
        done = subprocess.run(self.lab.client.cmd([sys.executable, "-c", script]), input=json.dumps(payload), capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise LabError(f"{method} {path} failed: {done.stderr[-2000:]}")
        return json.loads(done.stdout)

    def check_link(self, participant: str) -> dict:
        """A check link for a newly registered client: what a browser check runs with."""
        self.api("POST", "/api/v1/participants", {"participant_id": participant, "role": "client"})
        return self.api("POST", "/api/v1/check-links", {"participant_id": participant})

    def _exited(self) -> bool:
        if self.proc.poll() is not None:
            raise LabError(f"rtc monitor exited:\n{self.log.read_text(errors='replace')[-3000:]}")
        return False

    def run_page(self, seconds: float) -> dict:
        """The Python page in the client namespace, through a new check link (only a link's holder
        starts a stream); the whole stream is its idle phase. The page's record, with the link's
        id as ``link_id`` (the stream's owner)."""
        link = self.check_link(f"c-py{len(self._pages)}")
        self._pages.append(link["link_id"])
        args = [sys.executable, str(ROOT / "tests/rtc/page_client.py"), self.url, f"Link {link['secret']}",
                "--seconds", str(seconds), "--phases", f"idle=0:{seconds + 1}"]  # fmt: skip
        proc = self.lab.client.run(args, check=False, timeout=seconds + 60)
        if proc.returncode != 0:
            raise LabError(f"page client failed: {proc.stderr[-3000:]}\nmonitor log:\n{self.log.read_text(errors='replace')[-2000:]}")
        return {**json.loads(proc.stdout), "link_id": link["link_id"]}

    def run_chromium(self, secret: str, seconds: float) -> dict:
        """Headless Chromium in the client namespace, running rtc.js from the monitor."""
        args = [sys.executable, str(ROOT / "tests/rtc/chromium_page.py"), f"{self.url}/c/test/rtc.html", secret, str(seconds)]
        proc = self.lab.client.run(args, check=False, timeout=seconds + 120)
        if proc.returncode != 0:
            raise LabError(f"chromium page failed: {proc.stderr[-3000:]}\nmonitor log:\n{self.log.read_text(errors='replace')[-2000:]}")
        return json.loads(proc.stdout)

    def run_network(self, secret: str, *, expected_s: float = 20) -> dict:
        """Headless Chromium in the client namespace running the browser check's network part
        (the page's network.js: rtc.js, then throughput.js down and up, with the link's settings,
        each phase ended by the monitor's rule when adaptive) and submitting it:
        ``{"check": the monitor's 201 answer, "phases_wall_ms", "monitor_port", "throughput", ...}``
        (rtc_monitor.py, NETWORK_SCRIPT)."""
        args = [sys.executable, str(ROOT / "tests/rtc/chromium_page.py"), f"{self.url}/c/test/network.html", secret, str(expected_s)]
        proc = self.lab.client.run(args, check=False, timeout=expected_s + 120)
        if proc.returncode != 0:
            raise LabError(f"chromium page failed: {proc.stderr[-3000:]}\nmonitor log:\n{self.log.read_text(errors='replace')[-2000:]}")
        return json.loads(proc.stdout)

    def network_for(self, page: dict, owner: str | None = None) -> dict:
        """What the monitor computes from its records and the page's (posted from the client side)."""
        owner = owner or page.get("link_id")
        return self.api("POST", "/test/network-for", {"owner": owner, **{key: page[key] for key in ("rtc_id", "sent", "echoes", "phases")}}, self.token)
