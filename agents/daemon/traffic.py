"""Machine health and the traffic actually used on the link, between one reading and the next.

The agent samples the machine every minute in the background and every 2 s in a session,
so a reading must be cheap: a handful of counters through the psutil facade (on Linux
/proc and /sys only) and the link probe, never a process scan. CPU share and traffic are
differences of cumulative counters over the time since the previous reading, timed on the
monotonic clock; the very first reading waits ``first_window_s`` for a baseline.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from agents.probes.machine import rates
from agents.probes.machine.link import LinkError, LinkProbe, LinkReading
from agents.probes.machine.linux import LinuxLinkProbe
from agents.probes.machine.probe import link_probe_for
from agents.probes.machine.system import CpuTimes, NetIo, PsutilSystem, SystemFacade
from sessionready import schema

log = logging.getLogger("sessionready.agent")
T = TypeVar("T")

# Off Linux the link probe runs commands (route, netsh, system_profiler): at most once a minute.
SLOW_LINK_MAX_AGE_S = 60.0


def default_link_probe(platform: str = sys.platform) -> LinkProbe:
    """Linux without ``iw`` when /proc has the signal (no subprocess per sample); others as the check."""
    if platform.startswith("linux"):
        return LinuxLinkProbe(wifi_rate=False)
    return link_probe_for(platform)


@dataclass(frozen=True)
class MachineReading:
    """``machine`` now, ``traffic_mbps`` and CPU over the last ``interval_s`` seconds."""

    machine: schema.SampleMachine
    traffic_mbps: schema.Throughput | None  # None: no default route, or it changed interface
    interval_s: float


@dataclass(frozen=True)
class _Counters:
    at_s: float
    cpu: CpuTimes | None
    interface: str | None
    net: NetIo | None


class MachineMeter:
    """Reads the machine; each ``read`` covers the time since the previous one.

    ``system`` is the psutil facade (a seam: tests give scripted counters), ``link_probe``
    finds the default-route interface and its type and Wi-Fi signal. ``link_max_age_s``:
    how long a link reading is reused (default: every reading on Linux, where it costs a few
    file reads; a minute elsewhere). Not safe for concurrent ``read`` calls: one meter per
    sampler.
    """

    def __init__(
        self,
        system: SystemFacade | None = None,
        link_probe: LinkProbe | None = None,
        *,
        link_max_age_s: float | None = None,
        first_window_s: float = 0.25,
        sleep: Callable[[float], object] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._system = system if system is not None else PsutilSystem()
        self._link_probe = link_probe if link_probe is not None else default_link_probe()
        if link_max_age_s is None:
            link_max_age_s = 0.0 if sys.platform.startswith("linux") else SLOW_LINK_MAX_AGE_S
        self._link_max_age_s = link_max_age_s
        self._first_window_s = first_window_s
        self._sleep = sleep
        self._monotonic = monotonic  # only for the link reading's age; rates use the facade's clock
        self._previous: _Counters | None = None
        self._link: tuple[float, str | None, LinkReading] | None = None  # (read at, interface, reading)

    async def read(self) -> MachineReading:
        """Never raises for what the OS will not tell: those fields are None."""
        if self._previous is None:
            self._previous = await self._counters()
            await self._sleep(self._first_window_s)  # type: ignore[misc]
        before, after = self._previous, await self._counters()
        self._previous = after
        elapsed_s = after.at_s - before.at_s

        cpu_pct = rates.cpu_busy_pct(before.cpu, after.cpu) if before.cpu and after.cpu else None
        traffic = None
        if after.interface is not None and after.interface == before.interface:
            up, down = rates.traffic_mbps(before.net, after.net, elapsed_s)
            if up is not None or down is not None:
                traffic = schema.Throughput(down=_round(down, 3), up=_round(up, 3))
        memory = _attempt(self._system.memory)
        battery = _attempt(self._system.battery)
        _, _, reading = self._link or (0.0, None, LinkReading("unknown"))
        machine = schema.SampleMachine(
            cpu_pct=_round(cpu_pct, 1),
            memory_available_pct=None if memory is None else _round(rates.memory_available_pct(memory.available_bytes, memory.total_bytes), 1),
            battery_pct=None if battery is None else _round(rates.battery_pct(battery), 1),
            battery_charging=None if battery is None else battery.plugged,
            link_type=reading.type,
            wifi_signal_dbm=_round(reading.wifi.signal_dbm, 1) if reading.wifi is not None else None,
        )
        return MachineReading(machine, traffic, round(max(0.0, elapsed_s), 3))

    async def _counters(self) -> _Counters:
        interface = await self._interface()
        # Time first and the byte counters right after it: the rates divide by this clock.
        at_s = self._system.monotonic_s()
        net = _attempt(self._system.net_io)
        return _Counters(
            at_s=at_s,
            cpu=_attempt(self._system.cpu_times),
            interface=interface,
            net=None if net is None or interface is None else net.get(interface),
        )

    async def _interface(self) -> str | None:
        now = self._monotonic()
        if self._link is None or now - self._link[0] >= self._link_max_age_s:
            if self._link_max_age_s > 0:  # slow probes (commands) run off the event loop
                interface, reading = await asyncio.to_thread(_read_link, self._link_probe)
            else:
                interface, reading = _read_link(self._link_probe)
            self._link = (now, interface, reading)
        return self._link[1]


def _read_link(probe: LinkProbe) -> tuple[str | None, LinkReading]:
    try:
        interface = probe.default_interface()
        if interface is None:
            return None, LinkReading("unknown")
        return interface, probe.link_info(interface)
    except LinkError:
        return None, LinkReading("unknown")
    except Exception:  # OS output is endlessly varied; a parser bug must not stop the samples
        log.debug("link probe failed", exc_info=True)
        return None, LinkReading("unknown")


def _attempt(read: Callable[[], T]) -> T | None:
    try:
        return read()
    except OSError:
        return None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)
