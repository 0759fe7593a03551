"""The demo's steps in order, one progress line each, then the addresses and logins, then a
wait for Ctrl-C. Whatever happens (a step that fails, Ctrl-C half-way, a part that stops on
its own), everything started is stopped and the namespace removed before the demo exits."""

from __future__ import annotations

import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sessionready.demo import DemoError, files, practice, shaping
from sessionready.demo.files import Layout
from sessionready.demo.practice import Login, MonitorApi
from sessionready.demo.processes import Child, Children, Stopper, product_command
from sessionready.terms import EXIT_CANNOT_RUN, EXIT_OK

EXIT_STOPPED = EXIT_OK
EXIT_PART_STOPPED = 1  # the demo ran, but one of its parts stopped on its own
LOOPBACK = "127.0.0.1"
MONITOR_START_S = 30.0
AGENT_START_S = 30.0
DASHBOARD_START_S = 60.0  # Dash and pandas take a while to import on a small machine
CONNECTED = "connected to the monitor"  # the agent's log line once its token works
NOT_USABLE = "monitor not usable now"


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during start-up."""


@dataclass
class Demo:
    layout: Layout
    port: int
    dashboard_port: int
    stopper: Stopper = field(default_factory=Stopper)
    children: Children = field(default_factory=Children)
    link: shaping.ShapedLink | None = None

    @property
    def monitor_host(self) -> str:
        return self.link.host_address if self.link else LOOPBACK

    @property
    def monitor_url(self) -> str:
        return f"{'https' if self.link else 'http'}://{self.monitor_host}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{LOOPBACK}:{self.dashboard_port}"

    @property
    def ca_file(self) -> Path | None:
        return self.layout.tls_cert if self.link else None

    def cleanup(self) -> None:
        """Stop every child (agents and dashboard first, the monitor last), then remove the link."""
        self.children.stop_all()
        if self.link is not None:
            self.link.close()
            self.link = None


def run(data_dir: Path, port: int, dashboard_port: int, *, shaping_requested: bool) -> int:
    if port == dashboard_port:
        return _cannot_run(f"--port and --dashboard-port must differ (both are {port})")
    demo = Demo(Layout(data_dir.resolve()), port, dashboard_port)
    demo.stopper.install()
    try:
        _start(demo, shaping_requested)
        return _supervise(demo)
    except DemoError as error:
        return _cannot_run(str(error))
    except OSError as error:  # a file the demo cannot write, a program it cannot run
        where = f" ({error.filename})" if error.filename else ""
        return _cannot_run(f"could not start: {error.strerror or error}{where}")
    except Interrupted:
        return EXIT_STOPPED
    finally:
        if demo.children.running or demo.link is not None:
            if demo.stopper.signal == signal.SIGINT:
                print()  # past the terminal's "^C"
            with _step(demo, "Stopping everything", interruptible=False):
                demo.cleanup()


def _cannot_run(sentence: str) -> int:
    print(f"sessionready demo: {sentence}", file=sys.stderr, flush=True)
    return EXIT_CANNOT_RUN


@contextmanager
def _step(demo: Demo, label: str, *, interruptible: bool = True) -> Iterator[None]:
    """One progress line: "label ... ok" (or "failed", or "stopped" after Ctrl-C)."""
    if interruptible and demo.stopper.requested:
        raise Interrupted
    print(f"{label} ... ", end="", flush=True)
    try:
        yield
    except Interrupted:
        print("stopped", flush=True)
        raise
    except BaseException:
        print("failed", flush=True)
        raise
    print("ok", flush=True)


def _start(demo: Demo, shaping_requested: bool) -> None:
    layout = demo.layout
    try:
        layout.create()
    except OSError as error:
        raise DemoError(f"cannot use {layout.root} for the demo's files ({error.strerror or error})") from None
    _shape(demo, shaping_requested)
    _ensure_free(demo.monitor_host, demo.port, "--port", udp=True)
    _ensure_free(LOOPBACK, demo.dashboard_port, "--dashboard-port", udp=False)
    api = MonitorApi(demo.monitor_url, demo.ca_file)
    with _step(demo, f"Starting the monitor on {demo.monitor_url}"):
        _start_monitor(demo, api)
    with _step(demo, f"Creating the logins {practice.IT_USER} and {practice.THERAPIST}"):
        logins = [
            practice.ensure_login(layout, practice.IT_USER, "it", None),
            practice.ensure_login(layout, practice.THERAPIST, "therapist", practice.THERAPIST),
        ]
    with _step(demo, "Making the agents' tokens"):
        practice.ensure_agent_token(layout, api, "therapist", practice.THERAPIST)
        practice.ensure_agent_token(layout, api, "client", practice.CLIENT)
    minutes = ", ".join(str(offset) for offset, _ in practice.SESSIONS[:-1]) + f" and {practice.SESSIONS[-1][0]}"
    with _step(demo, f"Scheduling {len(practice.SESSIONS)} sessions, in about {minutes} minutes"):
        starts = practice.schedule_sessions(api, logins[0], time.time())
    with _step(demo, "Making a check link for the client's browser"):
        check_path = practice.check_link(api, logins[0])
    with _step(demo, "Starting the therapist's agent"):
        _start_agent(demo, "therapist", "the therapist's agent")
    with _step(demo, "Starting the client's agent" + (f" in namespace {demo.link.namespace}" if demo.link else "")):
        _start_agent(demo, "client", "the client's agent")
    with _step(demo, f"Starting the dashboard on {demo.dashboard_url}"):
        _start_dashboard(demo)
    _print_summary(demo, logins, starts, check_path)


def _shape(demo: Demo, requested: bool) -> None:
    label = "Shaping the client agent's link"
    shaping.remove_stale()  # also with --no-shaping: a namespace of a killed demo goes either way
    reason = shaping.unavailable(requested)
    if reason is not None:
        print(f"{label} ... skipped: {reason}", flush=True)
        return
    with _step(demo, label):
        log = demo.layout.log("shaping")
        try:
            demo.link = shaping.ShapedLink.create(demo.port, log)
        except shaping.ShapingError as error:
            raise DemoError(f"could not set up the shaped link: {error}; see {log}, or run with --no-shaping") from None
        files.self_signed_certificate(demo.layout, demo.link.host_address)


def _ensure_free(host: str, port: int, option: str, *, udp: bool) -> None:
    """DemoError when ``port`` cannot be bound on ``host`` (TCP, and UDP for the reflector)."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,):
        with socket.socket(socket.AF_INET, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            try:
                probe.bind((host, port))
            except OSError as error:
                raise DemoError(
                    f"port {port} on {host} cannot be used ({error.strerror}); another program or another demo "
                    f"may hold it: choose another with {option}"
                ) from None


def _wait(demo: Demo, child: Child, ready: Callable[[], bool], timeout_s: float) -> None:
    """Until ``ready()``; DemoError naming the child's log if it exits or takes too long."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if demo.stopper.requested:
            raise Interrupted
        status = child.process.poll()
        if status is not None:
            raise DemoError(f"{child.name} stopped while starting ({_why(child, status)}); see its log: {child.log_path}")
        if time.monotonic() > deadline:
            raise DemoError(f"{child.name} did not start within {timeout_s:g} s; see its log: {child.log_path}")
        demo.stopper.sleep(0.2)


def _why(child: Child, status: int) -> str:
    """The product's own one-sentence reason (exit status 3 means "could not start", with the
    reason as the last line), else the exit status."""
    lines = child.log_text().strip().splitlines()
    if status == EXIT_CANNOT_RUN and lines:
        return lines[-1].split(": ", 1)[-1]
    return f"exit status {status}"


def _start_monitor(demo: Demo, api: MonitorApi) -> None:
    layout = demo.layout
    config = files.monitor_config(layout, tls=demo.link is not None)
    command = product_command("monitor", "--config", str(config), "--data-dir", str(layout.store), "--host", demo.monitor_host, "--port", str(demo.port))
    child = demo.children.start("the monitor", command, layout.log("monitor"), stops_last=True)
    _wait(demo, child, api.healthy, MONITOR_START_S)


def _start_agent(demo: Demo, role: str, name: str) -> None:
    layout = demo.layout
    config = files.agent_config(layout, role, demo.monitor_url, demo.ca_file)
    command = product_command("agent", "--config", str(config), "--log-format", "json")
    if role == "client" and demo.link is not None:
        command = demo.link.command(command)
    child = demo.children.start(name, command, layout.log(f"{role}-agent"))

    def connected() -> bool:
        text = child.log_text()
        if NOT_USABLE in text:
            raise DemoError(f"{name} cannot use the monitor; see its log: {child.log_path}")
        return CONNECTED in text

    _wait(demo, child, connected, AGENT_START_S)


def _start_dashboard(demo: Demo) -> None:
    layout = demo.layout
    config = files.dashboard_config(layout, demo.monitor_url, demo.dashboard_port, demo.ca_file)
    child = demo.children.start("the dashboard", product_command("dashboard", "--config", str(config)), layout.log("dashboard"))
    _wait(demo, child, lambda: _answers(f"{demo.dashboard_url}/login"), DASHBOARD_START_S)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _print_summary(demo: Demo, logins: list[Login], starts: list[float], check_path: str) -> None:
    it, therapist = logins
    times = ", ".join(practice.local_clock_time(s) for s in starts[:-1]) + f" and {practice.local_clock_time(starts[-1])}"
    link = f"shaped: {demo.link.summary()}" if demo.link else "this machine's own (not shaped)"
    print(
        f"""
The demo is running.
  Dashboard        {demo.dashboard_url}
  IT login         {it.username} / {it.password}   (sees every session)
  Therapist login  {therapist.username} / {therapist.password}   (sees {practice.THERAPIST}'s sessions)
  Monitor          {demo.monitor_url}   (API description: {demo.monitor_url}/api/v1/openapi.json)
  Sessions         {times} (this machine's time), {practice.THERAPIST} with {practice.CLIENT}
  Client's link    {link}
  Browser check    {demo.monitor_url}{check_path}
                   (the client's check without installing anything: open it in Chrome, Edge, Firefox
                   or Safari on this machine{"; the demo's own certificate makes the browser warn first" if demo.ca_file else ""})
  Logs             {demo.layout.logs}
The agents' first measurements and checks reach the dashboard within a minute.
The first session ends a minute after the second one starts ({practice.local_clock_time(starts[1] + 60)}); its page then says how it went.
Press Ctrl-C to stop everything.""",
        flush=True,
    )


def _supervise(demo: Demo) -> int:
    """Wait for Ctrl-C or SIGTERM; a part that stops on its own ends the demo too."""
    while not demo.stopper.requested:
        child = demo.children.exited()
        if child is not None:
            print(
                f"sessionready demo: {child.name} stopped on its own (exit status {child.process.returncode}); see its log: {child.log_path}",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_PART_STOPPED
        demo.stopper.sleep(0.5)
    return EXIT_STOPPED
