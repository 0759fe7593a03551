"""The machine probe on this real Linux machine, checked against what the kernel and iproute2 say.

Ground truth comes from sources the probe does not use: ``ip route`` / ``ip -d link`` (netlink),
/proc/meminfo, /sys/class/power_supply, and a `yes` process whose CPU time is read straight
from /proc/<pid>/stat. The lab test runs the probe inside a network namespace of its own while
a sender of known rate uploads, and compares the measured background traffic with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agents.probes.machine import LinuxLinkProbe, MachineResult, measure_machine
from agents.probes.machine.link import CommandFailed, run_command
from tests.conftest import unavailable

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the live checks read Linux's /proc and /sys")

ROOT = Path(__file__).resolve().parents[2]




def ip_json(*args: str) -> list[dict]:
    if shutil.which("ip") is None:
        unavailable("iproute2's ip is not installed")
    return json.loads(subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout or "[]")


def cpu_ticks() -> int:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields[:8])  # user..steal; guest and guest_nice are inside user and nice


def process_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


@pytest.fixture
def busy_program() -> Iterator[subprocess.Popen]:
    """`yes` spinning on one core; niced up (as root) so that a busy shared machine does not starve it."""
    spinner = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
    try:
        try:
            os.setpriority(os.PRIO_PROCESS, spinner.pid, -10)
        except PermissionError:
            pass
        time.sleep(0.1)
        yield spinner
    finally:
        spinner.kill()
        spinner.wait()


def test_this_machine(busy_program: subprocess.Popen) -> None:
    routes = ip_json("route", "show", "default")
    ticks_before, yes_before = cpu_ticks(), process_ticks(busy_program.pid)
    started = time.monotonic()
    result = asyncio.run(measure_machine(1.0))
    took_s = time.monotonic() - started
    ticks_after, yes_after = cpu_ticks(), process_ticks(busy_program.pid)

    assert isinstance(result, MachineResult) and result.error is None, result.local_hints.notes
    assert took_s < 5

    # The route: what `ip route show default` names (None when this machine has none).
    assert result.local_hints.interface == (routes[0]["dev"] if routes else None)

    # The type, from iproute2's own view of the device: an Ethernet device on a bus is wired,
    # a virtual one (veth, bridge, tun) other.
    if routes:
        link = ip_json("-d", "link", "show", "dev", routes[0]["dev"])[0]
        if link.get("link_type") == "ether" and "parentbus" in link and "linkinfo" not in link:
            assert result.link.type == "wired"
        elif "linkinfo" in link:
            assert result.link.type in ("other", "cellular")
        speed = Path(f"/sys/class/net/{routes[0]['dev']}/speed")
        try:
            sysfs_speed = int(speed.read_text())
        except (OSError, ValueError):
            sysfs_speed = -1
        expected_speed = float(sysfs_speed) if sysfs_speed > 0 and result.link.type == "wired" else None
        assert result.link.speed_mbps == expected_speed
    if not Path("/proc/net/wireless").exists():
        assert result.link.wifi_signal_dbm is None

    # Memory: /proc/meminfo's MemAvailable, give or take what changed meanwhile.
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    truth_pct = int(meminfo["MemAvailable"].split()[0]) / int(meminfo["MemTotal"].split()[0]) * 100
    assert result.memory_available_pct == pytest.approx(truth_pct, abs=5)

    # Battery: none unless the kernel lists one.
    supplies = Path("/sys/class/power_supply")
    has_battery = supplies.exists() and any((p / "type").read_text().strip() == "Battery" for p in supplies.iterdir() if (p / "type").exists())
    if not has_battery:
        assert (result.battery_pct, result.battery_charging, result.battery_time_left_s) == (None, None, None)

    # Swap: no swap configured means no swap traffic.
    if len(Path("/proc/swaps").read_text().splitlines()) <= 1:
        assert result.swap_bytes_per_s == 0.0

    # CPU: `yes` is among the busiest programs, with the share the kernel accounted to it
    # (over a bracket slightly wider than the probe's window, hence the tolerance).
    truth_yes_pct = (yes_after - yes_before) / (ticks_after - ticks_before) * 100
    shares = {p.name: p.cpu_pct for p in result.local_hints.top_programs}
    assert "yes" in shares, shares
    assert shares["yes"] == pytest.approx(truth_yes_pct, abs=12)
    assert shares["yes"] <= 100 / psutil.cpu_count() + 5, "one thread cannot use more than one core"
    assert result.cpu_pct is not None and result.cpu_pct >= shares["yes"] - 5

    for rate in (result.background_traffic_mbps_up, result.background_traffic_mbps_down):
        assert rate is not None and rate >= 0


def test_the_linux_probe_alone_agrees_with_ip_route() -> None:
    routes = ip_json("route", "show", "default")
    assert LinuxLinkProbe().default_interface() == (routes[0]["dev"] if routes else None)


def test_psutil_battery_sentinels_are_negative() -> None:
    """rates.battery_time_left_s treats any negative secsleft as "no estimate"."""
    assert psutil.POWER_TIME_UNKNOWN < 0 and psutil.POWER_TIME_UNLIMITED < 0


def test_run_command_returns_stdout_whatever_the_exit_status() -> None:
    assert run_command(["sh", "-c", "echo answer; echo noise >&2; exit 3"], 5) == "answer\n"


def test_run_command_missing_tool() -> None:
    with pytest.raises(CommandFailed) as caught:
        run_command(["sessionready-no-such-tool"], 5)
    assert caught.value.reason == "not installed"


def test_run_command_timeout() -> None:
    with pytest.raises(CommandFailed) as caught:
        run_command(["sleep", "5"], 0.2)
    assert caught.value.reason == "no answer within 0.2 s"


# --- lab: known upload traffic in a namespace of our own -----------------------------------

SENDER_AND_PROBE = textwrap.dedent(
    """
    import asyncio, json, socket, threading, time
    from agents.probes.machine import measure_machine

    PAYLOAD, RATE = 1000, 250  # datagrams per second
    sent, stop = [], threading.Event()

    def send():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        start, n = time.monotonic(), 0
        while not stop.is_set():
            due = start + n / RATE
            time.sleep(max(0.0, due - time.monotonic()))
            sock.sendto(b"x" * PAYLOAD, ("10.78.0.2", 9))
            n += 1
            sent.append(time.monotonic())

    threading.Thread(target=send, daemon=True).start()
    time.sleep(0.5)
    result = asyncio.run(measure_machine(1.0))
    stop.set()
    span = sent[-1] - sent[0]
    print(json.dumps({
        "interface": result.local_hints.interface,
        "type": result.link.type,
        "speed": result.link.speed_mbps,
        "up": result.background_traffic_mbps_up,
        "down": result.background_traffic_mbps_down,
        "error": result.error,
        "rate_pps": (len(sent) - 1) / span,
    }))
    """
)


@pytest.mark.lab
def test_background_upload_of_known_rate_in_a_namespace() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        unavailable("needs root and iproute2 to make network namespaces")
    tag = f"srmach{os.getpid()}"
    measured, sink = f"{tag}a", f"{tag}b"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    try:
        ip("netns", "add", measured)
        ip("netns", "add", sink)
        ip("link", "add", f"{tag}x", "netns", measured, "type", "veth", "peer", "name", f"{tag}y", "netns", sink)
        ip("-n", measured, "addr", "add", "10.78.0.1/30", "dev", f"{tag}x")
        ip("-n", measured, "link", "set", f"{tag}x", "up")
        ip("-n", sink, "link", "set", f"{tag}y", "up")
        # A gateway MAC the sink does not have: frames leave (and are counted) but nothing answers.
        ip("-n", measured, "neigh", "add", "10.78.0.2", "lladdr", "02:00:00:00:00:99", "dev", f"{tag}x", "nud", "permanent")
        ip("-n", measured, "route", "add", "default", "via", "10.78.0.2")
        completed = subprocess.run(
            ["ip", "netns", "exec", measured, sys.executable, "-c", SENDER_AND_PROBE],
            capture_output=True, text=True, timeout=30, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    finally:
        for name in (measured, sink):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["interface"] == f"{tag}x" and report["type"] == "other" and report["speed"] is None
    assert report["error"] is None
    # Each datagram is 1000 bytes of payload + 8 UDP + 20 IPv4 + 14 Ethernet on the wire.
    truth_mbps = report["rate_pps"] * (1000 + 8 + 20 + 14) * 8 / 1e6
    assert report["up"] == pytest.approx(truth_mbps, rel=0.15)
    assert report["down"] < 0.05, "nothing answers; at most a little IPv6 neighbour discovery"
