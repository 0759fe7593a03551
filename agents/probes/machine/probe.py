"""``measure_machine``: two samples of the machine's counters ``window_s`` apart, and the link.

Order matters. The link probe runs first, because its commands (route, netsh, system_profiler)
use CPU that must not be counted as other programs' load. Then the counters are sampled,
the window is slept through, and they are sampled again; CPU share, swap and traffic are the
differences. The check runs this before it sends anything itself, so the traffic measured is
other programs' traffic.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from agents.probes.machine import rates
from agents.probes.machine.link import LinkError, LinkProbe, LinkReading, plausible_rate
from agents.probes.machine.linux import LinuxLinkProbe
from agents.probes.machine.macos import MacLinkProbe
from agents.probes.machine.result import (
    BATTERY,
    CPU,
    MEMORY,
    PROGRAMS,
    ROUTE,
    SWAP,
    TRAFFIC,
    WIFI_RATE,
    LinkInfo,
    LocalHints,
    MachineResult,
    Problem,
    error_sentence,
)
from agents.probes.machine.system import CpuTimes, NetIo, ProcessCpu, ProcessKey, PsutilSystem, SwapIo, SystemFacade
from agents.probes.machine.windows import WindowsLinkProbe

T = TypeVar("T")
log = logging.getLogger("sessionready.agent")

MAX_WINDOW_S = 60.0


class UnsupportedLinkProbe:
    """For systems other than Linux, macOS and Windows: the link stays unknown."""

    def __init__(self, platform: str) -> None:
        self._platform = platform

    def default_interface(self) -> str | None:
        raise LinkError(Problem(ROUTE, f"no link probe for {self._platform}"))

    def link_info(self, interface: str) -> LinkReading:
        return LinkReading("unknown")


def link_probe_for(platform: str) -> LinkProbe:
    """The link probe for a ``sys.platform`` value."""
    if platform.startswith("linux"):
        return LinuxLinkProbe()
    if platform == "darwin":
        return MacLinkProbe()
    if platform in ("win32", "cygwin"):
        return WindowsLinkProbe()
    return UnsupportedLinkProbe(platform)


@dataclass(frozen=True)
class _Sample:
    at_s: float
    net: Mapping[str, NetIo] | None
    swap: SwapIo | None
    cpu: CpuTimes | None
    processes: Mapping[ProcessKey, ProcessCpu] | None


async def measure_machine(
    window_s: float = 1.5,
    *,
    system: SystemFacade | None = None,
    link_probe: LinkProbe | None = None,
) -> MachineResult:
    """Measure this machine over ``window_s`` seconds (0..60). Never raises for what it cannot read.

    Takes ``window_s`` plus the link probe's commands (tens of milliseconds on Linux, up to a
    few seconds on macOS over Wi-Fi when system_profiler is needed). ``ValueError`` only for a
    bad ``window_s``.
    """
    if not (math.isfinite(window_s) and 0 <= window_s <= MAX_WINDOW_S):
        raise ValueError(f"window_s must be within 0..{MAX_WINDOW_S:g} s, got {window_s}")
    system = system if system is not None else PsutilSystem()
    link_probe = link_probe if link_probe is not None else link_probe_for(sys.platform)

    interface, reading, problems = await asyncio.to_thread(_read_link, link_probe)
    local: list[Problem] = []  # about local-only data: kept out of the wire sentence
    before = _sample(system, problems, local)
    await asyncio.sleep(window_s)
    after = _sample(system, problems, local)
    elapsed_s = after.at_s - before.at_s

    cpu_pct = programs = None
    if before.cpu is not None and after.cpu is not None:
        cpu_pct = rates.cpu_busy_pct(before.cpu, after.cpu)
        if before.processes is not None and after.processes is not None:
            programs = rates.top_programs(before.processes, after.processes, before.cpu, after.cpu)
    memory = _attempt(problems, MEMORY, system.memory)
    battery = _attempt(problems, BATTERY, system.battery)

    up = down = None
    if interface is not None and before.net is not None and after.net is not None:
        if interface in before.net and interface in after.net:
            up, down = rates.traffic_mbps(before.net[interface], after.net[interface], elapsed_s)
        else:
            problems.append(Problem(TRAFFIC, "psutil has no byte counters for the default-route interface"))

    speed_mbps = _speed_mbps(system, interface, reading, local)
    if speed_mbps is not None:  # psutil filled in a Wi-Fi rate the OS tool did not give
        problems = [p for p in problems if p.what != WIFI_RATE]

    return MachineResult(
        cpu_pct=cpu_pct,
        memory_available_pct=None if memory is None else rates.memory_available_pct(memory.available_bytes, memory.total_bytes),
        swap_bytes_per_s=rates.swap_bytes_per_s(before.swap, after.swap, elapsed_s),
        battery_pct=None if battery is None else rates.battery_pct(battery),
        battery_charging=None if battery is None else battery.plugged,
        battery_time_left_s=None if battery is None else rates.battery_time_left_s(battery),
        link=LinkInfo(
            type=reading.type,
            speed_mbps=speed_mbps,
            wifi_signal_dbm=reading.wifi.signal_dbm if reading.wifi is not None else None,
        ),
        background_traffic_mbps_up=up,
        background_traffic_mbps_down=down,
        error=error_sentence(problems),
        hints=LocalHints(
            top_programs=programs or (),
            interface=interface,
            wifi_radio=reading.wifi.radio if reading.wifi is not None else None,
            notes=tuple(dict.fromkeys(f"{p.what}: {p.detail}" for p in problems + local)),
        ),
    )


def _read_link(probe: LinkProbe) -> tuple[str | None, LinkReading, list[Problem]]:
    try:
        interface = probe.default_interface()
        if interface is None:
            return None, LinkReading("unknown"), [Problem(ROUTE, "no default route: not connected to a network?")]
        reading = probe.link_info(interface)
    except LinkError as error:
        return None, LinkReading("unknown"), [error.problem]
    except Exception as error:  # OS output is endlessly varied; a parser bug must not cost CPU and battery
        log.debug("link probe failed", exc_info=True)
        return None, LinkReading("unknown"), [Problem(ROUTE, f"link probe failed ({error.__class__.__name__})")]
    return interface, reading, list(reading.problems)


def _sample(system: SystemFacade, problems: list[Problem], local: list[Problem]) -> _Sample:
    # Time first and the byte counters right after it: the rates divide by this clock.
    at_s = system.monotonic_s()
    return _Sample(
        at_s=at_s,
        net=_attempt(problems, TRAFFIC, system.net_io),
        swap=_attempt(problems, SWAP, system.swap_io),
        cpu=_attempt(problems, CPU, system.cpu_times),
        processes=_attempt(local, PROGRAMS, system.process_cpu),
    )


def _speed_mbps(system: SystemFacade, interface: str | None, reading: LinkReading, local: list[Problem]) -> float | None:
    if interface is None or reading.type not in ("wired", "wifi"):
        return None  # a tunnel's or a bridge's "speed" is a made-up number
    if reading.wifi is not None and reading.wifi.rate_mbps is not None:
        return reading.wifi.rate_mbps
    return plausible_rate(_attempt(local, "the link speed", lambda: system.link_speed_mbps(interface)))


def _attempt(problems: list[Problem], what: str, read: Callable[[], T]) -> T | None:
    try:
        return read()
    except OSError as error:
        problems.append(Problem(what, f"{error.__class__.__name__}: {error}"))
        return None
