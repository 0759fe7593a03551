"""``sessionready demo`` as a person runs it: one real demo (monitor, two agents, dashboard; as
root the client's agent behind the shaped, lossy link), checked through the monitor's API and
the dashboard's login page, then stopped with Ctrl-C. Plus the ways it refuses to start.

Ground truth for the shaped link's loss is the nftables rule's own counters in the demo's
namespace: what the link really dropped, counted by the kernel, not by the product.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from sessionready.typed import rfc3339
from tests.conftest import SESSIONREADY, require_or_fail, run_cli, wait_for

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 90.0  # until the demo prints its logins (Dash's import is slow on a busy machine)
MEASURE_TIMEOUT_S = 90.0  # the brief: real measurements within 90 s
STOP_TIMEOUT_S = 20.0
CONFIGURED_LOSS = 0.05  # sessionready.demo.shaping.LOSS_PERCENT
LOSS_TOLERANCE = 0.03  # absolute: measured vs the kernel's counters, and the counters vs 5 %
MIN_PROBES = 450  # background probes that reached the reflector (three bursts): about 1 point of standard error at 5 %
LOSS_CAUSES = {"high_download_loss", "high_upload_loss", "recent_loss"}
SHAPING_TOOLS = ("ip", "tc", "nft", "openssl")


# Ports for the demo's monitor and dashboard come from below the kernel's ephemeral range: the
# demo binds them some 20 s after the test chose them, and a port the kernel handed out (bind to
# port 0) is one it may hand out again meanwhile as another test's connection's source port (CI
# failed so: "cannot listen on 127.0.0.1:33741: Address already in use").
PORT_FLOOR = 20_000


def free_port() -> int:
    """A port free for TCP and UDP on every address now, chosen at random below the ephemeral range."""
    ceiling = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(PORT_FLOOR, ceiling)
        try:
            with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                tcp.bind(("0.0.0.0", port))
                udp.bind(("0.0.0.0", port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port found between {PORT_FLOOR} and {ceiling}")


def can_shape() -> bool:
    return os.geteuid() == 0 and all(shutil.which(tool) for tool in SHAPING_TOOLS)


def demo_namespaces(pid: int) -> list[str]:
    if shutil.which("ip") is None:
        return []
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in listing.splitlines() if line.startswith(f"srdemo-{pid}")]


def processes_mentioning(text: str) -> list[int]:
    """Pids of running processes whose command line contains ``text`` (a tmp data dir: only the
    demo's parts are given it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if text in command and state != "Z":
                found.append(int(entry.name))
    return found


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class DemoRun:
    process: subprocess.Popen
    data_dir: Path
    started: float  # unix s, when the demo printed its logins
    lines: list[str] = field(default_factory=list)

    def value(self, label: str) -> str:
        line = next(line for line in self.lines if line.strip().startswith(label))
        return line.strip().removeprefix(label).split()[0]

    def login(self, label: str) -> tuple[str, str]:
        match = re.search(rf"{label}\s+(\S+) / (\S+)", "\n".join(self.lines))
        assert match, self.lines
        return match.group(1), match.group(2)

    @property
    def namespace(self) -> str | None:
        match = re.search(r"namespace (srdemo-\d+)", "\n".join(self.lines))
        return match.group(1) if match else None

    def call(self, method: str, path: str, token: str | None = None, payload: object = None) -> tuple[int, dict]:
        url = self.value("Monitor") + path
        context = ssl.create_default_context(cafile=str(self.data_dir / "tls" / "cert.pem")) if url.startswith("https") else None
        request = urllib.request.Request(url, method=method, data=None if payload is None else json.dumps(payload).encode())
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=15, context=context) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def token(self, label: str) -> str:
        username, password = self.login(label)
        status, body = self.call("POST", "/api/v1/login", None, {"username": username, "password": password})
        assert status == 201, body
        return body["token"]


def read_lines(process: subprocess.Popen, into: queue.Queue) -> None:
    for line in process.stdout:  # type: ignore[union-attr]
        into.put(line.rstrip("\n"))
    into.put(None)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    stderr = (data_dir.parent / "demo-stderr.txt").open("w")
    process = subprocess.Popen(
        [*SESSIONREADY, "demo", "--data-dir", str(data_dir), "--port", str(free_port()), "--dashboard-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=stderr, text=True,
    )  # fmt: skip
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(process, lines), daemon=True).start()
    run = DemoRun(process, data_dir, 0.0)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any("Press Ctrl-C" in line for line in run.lines):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"the demo ended early: {run.lines} {(data_dir.parent / 'demo-stderr.txt').read_text()}"
            run.lines.append(line)
        run.started = time.time()
        yield run
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
        for name in demo_namespaces(process.pid):  # only if the demo failed to clean up
            subprocess.run(["ip", "netns", "del", name], check=False)
        stderr.close()


# --- Refusing to start ----------------------------------------------------------------------


def test_port_zero_is_refused_in_one_sentence(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = subprocess.run([*SESSIONREADY, "demo", "--data-dir", str(data_dir), "--port", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "--port: must be a port number from 1 to 65535, got '0'" in result.stderr
    assert "Traceback" not in result.stderr and not data_dir.exists(), "nothing was started or made"


def test_a_busy_port_is_named_and_nothing_is_left_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [*SESSIONREADY, "demo", "--data-dir", str(data_dir), "--port", str(free_port()), "--dashboard-port", str(port), "--no-shaping"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 3
    sentences = result.stderr.strip().splitlines()
    assert len(sentences) == 1 and f"port {port} on 127.0.0.1 cannot be used" in sentences[0] and "--dashboard-port" in sentences[0]
    assert processes_mentioning(str(data_dir)) == []


# --- The running demo ----------------------------------------------------------------------


def test_prints_the_dashboard_and_two_logins_that_work(demo: DemoRun) -> None:
    dashboard = demo.value("Dashboard")
    with urllib.request.urlopen(f"{dashboard}/login", timeout=15) as response:
        assert response.status == 200 and b"password" in response.read().lower()
    status, me = demo.call("GET", "/api/v1/whoami", demo.token("IT login"))
    assert status == 200 and me["role"] == "it" and me["username"] == "demo-it"
    status, me = demo.call("GET", "/api/v1/whoami", demo.token("Therapist login"))
    assert status == 200 and me["role"] == "therapist" and me["participant_id"] == "demo-therapist"


def test_prints_a_check_link_that_opens_the_browser_check(demo: DemoRun) -> None:
    url = demo.value("Browser check")
    assert url.startswith(demo.value("Monitor") + "/c/"), url
    context = ssl.create_default_context(cafile=str(demo.data_dir / "tls" / "cert.pem")) if url.startswith("https") else None
    with urllib.request.urlopen(url, timeout=15, context=context) as response:
        assert response.status == 200 and "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert b"<html" in response.read().lower()
    request = urllib.request.Request(demo.value("Monitor") + "/api/v1/link", headers={"Authorization": f"Link {url.rsplit('/', 1)[1]}"})
    with urllib.request.urlopen(request, timeout=15, context=context) as response:
        assert response.status == 200 and json.loads(response.read())["settings"]["packet_interval_ms"] == 20


def test_sessions_are_scheduled_in_the_next_minutes(demo: DemoRun) -> None:
    token = demo.token("Therapist login")  # a therapist sees their own sessions
    window = {"from": rfc3339(demo.started - 300), "to": rfc3339(demo.started + 20 * 60)}
    status, body = demo.call("GET", "/api/v1/sessions?" + urllib.parse.urlencode(window), token)
    assert status == 200
    sessions = [s for s in body["sessions"] if s["state"] != "cancelled"]
    minutes = [(datetime.fromisoformat(s["start"].replace("Z", "+00:00")).timestamp() - demo.started) / 60 for s in sessions]
    assert len(sessions) == 3 and {s["client_id"] for s in sessions} == {"demo-client"}, sessions
    assert 1 <= minutes[0] <= 3.5 and 5 <= minutes[1] <= 7.5 and 14 <= minutes[2] <= 16.5, minutes


def test_both_agents_send_real_measurements_within_90_seconds(demo: DemoRun) -> None:
    token = demo.token("IT login")

    def measured() -> dict[str, dict] | None:
        status, body = demo.call("GET", "/api/v1/agents", token)
        assert status == 200
        agents = {a["participant_id"]: a for a in body["agents"] if a["last_seen"] and time.time() - a["last_seen"] < 60}
        if set(agents) != {"demo-therapist", "demo-client"}:
            return None
        for agent in agents.values():
            status, samples = demo.call("GET", f"/api/v1/agents/{agent['agent_id']}/samples?kind=background", token)
            networks = [s["sample"]["network"] for s in samples["samples"] if s["sample"]["network"]]
            if not any(n["packets_received"] > 0 and n["rtt_p50_ms"] is not None for n in networks):
                return None
        return agents

    agents = wait_for(measured, demo.started + MEASURE_TIMEOUT_S - time.time(), "network samples from both agents", poll_s=1.0)
    assert all(a["online"] for a in agents.values())  # type: ignore[union-attr]


@pytest.mark.lab
def test_the_shaped_client_loses_what_the_link_drops_and_is_flagged(demo: DemoRun) -> None:
    require_or_fail(can_shape(), "the shaped demo needs root, ip, tc, nft and openssl")
    assert demo.namespace is not None, demo.lines
    token = demo.token("IT login")
    status, body = demo.call("GET", "/api/v1/agents", token)
    agent = {a["participant_id"]: a["agent_id"] for a in body["agents"]}

    def probes(participant: str) -> tuple[int, int]:
        """(probes that reached the reflector, echoes that came back) over the background samples."""
        status, samples = demo.call("GET", f"/api/v1/agents/{agent[participant]}/samples?kind=background", token)
        networks = [s["sample"]["network"] for s in samples["samples"] if s["sample"]["network"] and s["sample"]["network"]["problem"] is None]
        reached = sum(round(n["packets_sent"] * (1 - n["loss_up"])) for n in networks)
        return reached, sum(n["packets_received"] for n in networks)

    wait_for(lambda: probes("demo-client")[0] >= MIN_PROBES, demo.started + MEASURE_TIMEOUT_S + 30 - time.time(), f"{MIN_PROBES} client probes", poll_s=1.0)
    reached, echoed = probes("demo-client")
    seen, dropped = nft_counters(demo.namespace)
    measured, truth = 1 - echoed / reached, dropped / seen
    print(f"demo link: measured downstream loss {measured:.2%} over {reached} probes; nftables dropped {dropped} of {seen} ({truth:.2%})")
    assert abs(truth - CONFIGURED_LOSS) <= LOSS_TOLERANCE, "the link itself drops about 5 %"
    assert abs(measured - truth) <= LOSS_TOLERANCE
    reached, echoed = probes("demo-therapist")
    assert reached > 0 and 1 - echoed / reached <= 0.01, "the therapist's link is this machine's own"

    status, body = demo.call("GET", "/api/v1/sessions?" + urllib.parse.urlencode({"from": rfc3339(demo.started - 300)}), token)
    first = next(s for s in body["sessions"] if s["state"] != "cancelled")

    def client_flagged() -> dict | None:
        status, detail = demo.call("GET", f"/api/v1/sessions/{first['session_id']}", token)
        risk = detail["risk"]
        causes = {r["cause"] for r in risk["reasons"] if r["end"] == "client"}
        return risk if risk["client"]["state"] in ("at_risk", "not_ready") and causes & LOSS_CAUSES else None

    risk = wait_for(client_flagged, 30, "the client's end flagged for its loss", poll_s=1.0)
    assert not {r["cause"] for r in risk["reasons"] if r["end"] == "therapist"} & LOSS_CAUSES  # type: ignore[index]


def nft_counters(namespace: str) -> tuple[int, int]:
    listing = subprocess.run(["ip", "netns", "exec", namespace, "nft", "-j", "list", "counters", "table", "inet", "srdemo"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    counters = {item["counter"]["name"]: item["counter"]["packets"] for item in json.loads(listing)["nftables"] if "counter" in item}
    return counters["seen"], counters["dropped"]


def test_ctrl_c_stops_every_part_and_removes_the_namespace(demo: DemoRun) -> None:
    parts = children_of(demo.process.pid)
    assert len(parts) == 4, "monitor, two agents, dashboard"
    started = time.monotonic()
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=STOP_TIMEOUT_S) == 0
    print(f"demo stopped in {time.monotonic() - started:.1f} s")
    assert not [pid for pid in parts if alive(pid)]
    assert processes_mentioning(str(demo.data_dir)) == []
    assert demo_namespaces(demo.process.pid) == []


def test_a_second_run_reuses_the_data_and_a_part_that_cannot_start_stops_everything(demo: DemoRun) -> None:
    """Again over the stopped demo's data directory: the logins get new passwords, the agents keep
    their tokens, the first run's sessions are cancelled. With a cookie secret that is too short
    the dashboard (started last) refuses to start: the monitor and both agents are running by
    then and must be stopped again, and the namespace removed."""
    if demo.process.poll() is None:  # when run on its own (-k)
        demo.process.send_signal(signal.SIGINT)
        demo.process.wait(timeout=STOP_TIMEOUT_S)
    data_dir = demo.data_dir
    tokens = {role: (data_dir / f"{role}-agent.token").read_text() for role in ("therapist", "client")}
    earlier = scheduled_sessions(data_dir)
    (data_dir / "dashboard-secret.key").write_text("short\n")
    process = subprocess.Popen(
        [*SESSIONREADY, "demo", "--data-dir", str(data_dir), "--port", str(free_port()), "--dashboard-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 3, stdout + stderr
    assert "Starting the client's agent" in stdout and "Starting the dashboard" in stdout
    sentence = stderr.strip().splitlines()
    assert len(sentence) == 1 and "the dashboard stopped while starting" in sentence[0]
    assert "fewer than 32 characters" in sentence[0] and str(data_dir / "logs" / "dashboard.log") in sentence[0]
    assert stdout.rstrip().endswith("Stopping everything ... ok")
    assert processes_mentioning(str(data_dir)) == []
    assert demo_namespaces(process.pid) == []
    assert tokens == {role: (data_dir / f"{role}-agent.token").read_text() for role in tokens}, "the agents keep their tokens"
    now_scheduled = scheduled_sessions(data_dir)
    assert len(earlier) == 3 and len(now_scheduled) == 3 and not earlier & now_scheduled


def scheduled_sessions(data_dir: Path) -> set[str]:
    listing = run_cli("monitor", "sessions", "list", "--state", "scheduled", "--data-dir", str(data_dir / "monitor"))
    assert listing.returncode == 0, listing.stderr
    return set(re.findall(r"\bs-[0-9a-f]{16}\b", listing.stdout))
