"""Connections the dashboard opens to the monitor for one Live viewer, counted by the monitor's side.

    python -m benchmarks.dashboard_connections [--seconds 60] [--output docs/benchmarks.md | --no-write]

What it does:
- starts a real monitor serving HTTPS with a private CA's certificate (trustme), as in
  production; makes a live session: both ends' agents post a live sample every 2 s, straight
  to the monitor (their connections are not counted);
- puts a counting TCP proxy between the dashboard and the monitor: every connection the
  dashboard opens is one ``accept()`` there (ground truth outside the dashboard: TLS passes
  through untouched, and the monitor's JSON access log counts the HTTP requests);
- runs the real dashboard (``create_app`` served by waitress, as ``sessionready dashboard``
  does) with one of two monitor clients: **pooled** (``dashboard.api.MonitorApi``: keep-alive
  connections reused across calls and threads) and the **reference, one connection per call**
  (the same client sending ``Connection: close``, so the monitor closes after each answer:
  what the dashboard did before it pooled, with Python's urllib);
- logs in as an it user in Debian's headless Chromium and opens the live session's page,
  which refreshes every 2 s (three monitor calls each), then counts for ``--seconds``: TCP
  connections accepted, HTTP requests the monitor logged, and the browser's own time for each
  refresh (Resource Timing of the Dash callback request).

Writes its section of docs/benchmarks.md (replacing only that section) and prints it; ``make
bench`` runs it as ``connections``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.core import BenchmarkError, Context, Section, table
from benchmarks.processes import SESSIONREADY, Server, start_server

TITLE = "Dashboard connections per Live viewer"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
LIVE_EVERY_S = 2.0  # the agents' live interval, and the Live page's refresh
WAIT_S = 60.0


# --- ground truth: a TCP proxy that counts what it accepts -----------------------------------


class CountingProxy:
    """Forwards TCP connections to ``target`` and counts the ones it accepts; ``drop_all``
    closes every open one, as a server does with idle keep-alive connections."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.accepted = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="counting-proxy", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.accepted += 1
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def drop_all(self) -> None:
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._open.clear()

    def close(self) -> None:
        self._listener.close()
        self.drop_all()

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the monitor and a live session -----------------------------------------------------------


@dataclass
class Practice:
    monitor: Server
    data_dir: Path
    ca_file: Path
    context: ssl.SSLContext
    it_token: str
    ends: dict[str, str]  # role -> agent token
    session_id: str

    def call(self, method: str, path: str, token: str, payload: object) -> tuple[int, Any]:
        request = urllib.request.Request(self.monitor.url + path, data=json.dumps(payload).encode(), method=method)
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")


def start_practice(workdir: Path, env: dict[str, str]) -> Practice:
    try:
        import trustme
    except ImportError:
        raise BenchmarkError("trustme is not installed (pip install -e '.[test]')") from None
    from monitor.store.core import open_store

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path, ca_path = workdir / "cert.pem", workdir / "key.pem", workdir / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    ca.cert_pem.write_to_path(ca_path)
    config = workdir / "monitor.toml"
    config.write_text(f'[monitor]\ntls_cert = "{cert_path}"\ntls_key = "{key_path}"\nrisk_interval_s = 1\n')
    data_dir = workdir / "monitor"
    command = [*SESSIONREADY, "monitor", "--config", str(config), "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", "0"]
    monitor = start_server("the monitor", command, workdir / "monitor.log", env)
    store = open_store(data_dir)
    try:
        it_token = store.create_token("it", "it-bench")[1]
        ends = {"therapist": store.create_token("therapist", "t-bench")[1], "client": store.create_token("client", "c-bench")[1]}
    finally:
        store.close()
    context = ssl.create_default_context(cafile=str(ca_path))
    practice = Practice(monitor, data_dir, ca_path, context, it_token, ends, "s-bench-live")
    start = datetime.fromtimestamp(time.time() - 300, timezone.utc).isoformat(timespec="seconds")
    status, body = practice.call("POST", "/api/v1/sessions", it_token, {"session_id": practice.session_id, "therapist_id": "t-bench", "client_id": "c-bench", "start": start, "planned_duration_s": 3600})
    if status != 201:
        monitor.stop()
        raise BenchmarkError(f"the monitor refused the session: {status} {body}")
    return practice


def live_sample(session_id: str, seq: int) -> dict[str, Any]:
    from sessionready import schema
    from sessionready.typed import encode, rfc3339

    sample = schema.Sample(
        schema_version=1,
        taken_at=rfc3339(time.time()),
        interval_s=LIVE_EVERY_S,
        session_id=session_id,
        agent=schema.Agent("0.1.0", "linux"),
        network=schema.SampleNetwork(20, 20, 23.4, 31.9, 1.25, 2.5, 0.0, 0.0, 4.31),
        machine=schema.SampleMachine(12.5, 61.0, 80.0, False, "wifi", -61.0),
        traffic_mbps=schema.Throughput(3.2, 1.1),
        room=None,
    )
    return {"report_id": secrets.token_hex(16), "seq": seq, "kind": "live", "sample": encode(sample)}


class LiveAgents:
    """Both ends post a live sample every 2 s, as agents in a session do, straight to the monitor."""

    def __init__(self, practice: Practice) -> None:
        self.practice = practice
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-agents", daemon=True)
        self.failures: list[str] = []

    def __enter__(self) -> LiveAgents:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            seq += 1
            for token in self.practice.ends.values():
                body = {"spool": {"pending": 0, "dropped_background": 0, "rejected": 0}, "reports": [live_sample(self.practice.session_id, seq)]}
                status, answer = self.practice.call("POST", "/api/v1/reports", token, body)
                if status != 200:
                    self.failures.append(f"{status} {answer}")
            self._stop.wait(LIVE_EVERY_S)


def it_user(practice: Practice, env: dict[str, str]) -> tuple[str, str]:
    username, password = f"bench.conn.{secrets.token_hex(3)}", secrets.token_urlsafe(18)
    result = subprocess.run(
        [*SESSIONREADY, "monitor", "user", "create", "--username", username, "--role", "it", "--password-stdin", "--data-dir", str(practice.data_dir)],
        input=password + "\n", capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise BenchmarkError(f"sessionready monitor user create failed: {result.stderr.strip()}")
    return username, password


def requests_logged(log: Path, offset: int) -> int:
    """HTTP requests in the monitor's access log after ``offset``, the agents' posts left out."""
    with log.open("rb") as file:
        file.seek(offset)
        lines = file.read().decode(errors="replace").splitlines()
    count = 0
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        fields = entry.get("fields") or entry
        if entry.get("message") == "request" and fields.get("path") != "/api/v1/reports":
            count += 1
    return count


# --- the dashboard with one client or the other -----------------------------------------------


def one_connection_per_call(base_url: str, ca_file: str):  # noqa: ANN201
    """The reference: the dashboard's client asking the monitor to close after every answer."""
    from dashboard.api import MonitorApi

    class OneConnectionPerCall(MonitorApi):
        def _exchange(self, method: str, path: str, token: str | None, payload: object = None, *, login: bool = False, headers: dict[str, str] | None = None) -> tuple[int, Any]:
            return super()._exchange(method, path, token, payload, login=login, headers={**(headers or {}), "Connection": "close"})

    return OneConnectionPerCall(base_url, ca_file=ca_file)


@dataclass(frozen=True)
class Count:
    client: str
    seconds: float
    connections: int  # in the counted window
    visit_connections: int  # from the login to leaving the page (the login and the first page load included)
    requests: int
    refreshes_ms: list[float]

    def per_minute(self, value: float) -> float:
        return value * 60.0 / self.seconds


def count_one(practice: Practice, proxy: CountingProxy, client: str, login: tuple[str, str], seconds: float, workdir: Path) -> Count:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from dashboard.api import MonitorApi
    from dashboard.app import create_app
    from dashboard.config import DashboardConfig
    from dashboard.server import build_server

    base = f"https://127.0.0.1:{proxy.port}"
    config = DashboardConfig(monitor_url=base, ca_file=str(practice.ca_file), port=0, secret_key_file=str(workdir / f"secret-{client}.key"))
    api = MonitorApi(base, ca_file=str(practice.ca_file)) if client == "pooled" else one_connection_per_call(base, str(practice.ca_file))
    server = build_server(create_app(config, api=api).server, config)
    serving = threading.Thread(target=server.run, name=f"dashboard-{client}", daemon=True)
    serving.start()
    url = f"http://127.0.0.1:{server.effective_port}"
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    visit_from = proxy.accepted
    try:
        driver.get(url + "/login")
        driver.find_element(By.CSS_SELECTOR, "#login-username").send_keys(login[0])
        driver.find_element(By.CSS_SELECTOR, "#login-password").send_keys(login[1])
        driver.find_element(By.CSS_SELECTOR, "#login-submit").click()
        WebDriverWait(driver, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#today-list"))
        driver.get(url + f"/session/{practice.session_id}")
        WebDriverWait(driver, WAIT_S).until(lambda d: d.find_element(By.CSS_SELECTOR, "#session-graphs").is_displayed())  # live samples drawn
        time.sleep(2 * LIVE_EVERY_S)  # past the first refreshes, and the pool's first connections
        accepted, log_offset = proxy.accepted, practice.monitor.log_path.stat().st_size
        since_ms = driver.execute_script("return performance.now()")
        time.sleep(seconds)
        connections, until_ms = proxy.accepted - accepted, driver.execute_script("return performance.now()")
        visit = proxy.accepted - visit_from
        time.sleep(0.2)  # the monitor writes its access log line just after answering
        requests = requests_logged(practice.monitor.log_path, log_offset)
        entries = driver.execute_script("return performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/_dash-update-component')).map((e) => [e.startTime, e.duration])")
    finally:
        driver.quit()
        time.sleep(1.0)  # a refresh in flight finishes before the server's threads stop
        server.close()
        serving.join(5)
    refreshes = [duration for start, duration in entries if since_ms <= start <= until_ms]
    return Count(client, seconds, connections, visit, requests, refreshes)


def run_benchmark(workdir: Path, env: dict[str, str], seconds: float) -> list[Count]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        raise BenchmarkError("Debian's chromium and chromium-driver are not installed (make system-deps)")
    practice = start_practice(workdir, env)
    try:
        host, port = practice.monitor.url.removeprefix("https://").rsplit(":", 1)
        with CountingProxy((host, int(port))) as proxy, LiveAgents(practice) as agents:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                status, detail = _get(practice, f"/api/v1/sessions/{practice.session_id}")
                if status == 200 and detail["session"]["state"] == "live":
                    break
                time.sleep(0.5)
            else:
                raise BenchmarkError(f"the session never went live ({agents.failures[-1:] or 'no failed posts'})")
            login = it_user(practice, env)
            counts = [count_one(practice, proxy, client, login, seconds, workdir) for client in ("pooled", "per_call")]
            if agents.failures:
                raise BenchmarkError(f"the agents' live posts failed {len(agents.failures)} times: {agents.failures[-1]}")
    finally:
        practice.monitor.stop()
    return counts


def _get(practice: Practice, path: str) -> tuple[int, Any]:
    request = urllib.request.Request(practice.monitor.url + path, headers={"Authorization": f"Bearer {practice.it_token}"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=practice.context) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, None


LABELS = {"pooled": "pooled (keep-alive, `dashboard/api.py`)", "per_call": "one connection per call (reference: `Connection: close`)"}


def report(counts: list[Count], quick: bool) -> str:
    rows = []
    for c in counts:
        median_ms = f"{statistics.median(c.refreshes_ms):.0f}" if c.refreshes_ms else "—"
        rows.append([LABELS[c.client], f"{c.seconds:.0f}", c.connections, f"{c.per_minute(c.connections):.1f}", c.requests, f"{c.per_minute(c.requests):.1f}", len(c.refreshes_ms), median_ms, c.visit_connections])
    text = [
        "One therapist-or-IT viewer on the Live page of a live session (both ends posting a live sample every 2 s) for the time shown,"
        " the dashboard reaching the monitor over HTTPS (a private CA) through a TCP proxy that counts the connections it accepts;"
        " requests from the monitor's access log (the agents' own posts left out); refresh time from the browser's Resource Timing"
        " of each Dash callback request (median: three monitor calls in a row). The window starts 4 s after the page first drew"
        " its live graphs; a refresh in flight at either edge may fall on one side or the other (±3 requests)."
        " \"Whole visit\" counts from opening the login page to closing the browser: the login, Today, the page's first load and the window."
        " Same monitor, session and browser build for both clients, one after the other.",
        "",
        table(["monitor client", "seconds", "TCP connections", "per minute", "HTTP requests", "per minute", "page refreshes", "refresh median (ms)", "connections, whole visit"], rows),
        "",
    ]
    pooled = next(c for c in counts if c.client == "pooled")
    reference = next(c for c in counts if c.client == "per_call")
    if pooled.connections:
        text.append(f"The pooled client opened {reference.per_minute(reference.connections) / pooled.per_minute(pooled.connections):.0f}× fewer connections (and TLS handshakes) per minute than one per call.")
    else:
        text.append("The pooled client opened no new connection in the window: every call reused one opened before it.")
    if quick:
        text.append("**Quick run: a short window; not the numbers to compare.**")
    return "\n".join(text) + "\n"


def dashboard_connections(context: Context) -> Section:
    """``make bench``: a minute per client (10 s with ``--quick``)."""
    counts = run_benchmark(context.workdir, context.env, 10.0 if context.quick else 60.0)
    return Section(TITLE, report(counts, context.quick))


def main(argv: list[str] | None = None) -> int:
    from benchmarks.dashboard_pages import replace_section
    from benchmarks.run import DEFAULT_OUTPUT, machine, product_env

    parser = argparse.ArgumentParser(prog="python -m benchmarks.dashboard_connections", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each client is counted (default 60)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the document whose section to replace (default docs/benchmarks.md)")
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    args = parser.parse_args(argv)
    if not 5 <= args.seconds <= 600:
        parser.error("--seconds 5-600")
    started_at, started, at_start = datetime.now(timezone.utc), time.monotonic(), machine()
    with tempfile.TemporaryDirectory(prefix="sessionready-bench-connections-") as workdir:
        try:
            counts = run_benchmark(Path(workdir), product_env(Path(workdir)), args.seconds)
        except BenchmarkError as error:
            print(f"dashboard_connections: {error}", file=sys.stderr)
            return 1
    body = report(counts, quick=False)
    body += f"\nRun on its own (`python -m benchmarks.dashboard_connections`) on {started_at:%Y-%m-%d %H:%M UTC}, took {time.monotonic() - started:.0f} s, on:\n\n{at_start}\n"
    print(body)
    if not args.no_write:
        existing = args.output.read_text() if args.output.exists() else ""
        args.output.write_text(replace_section(existing, TITLE, body))
        print(f"dashboard_connections: wrote its section of {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
