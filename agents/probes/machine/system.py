"""The psutil facade: the few psutil calls the machine probe makes, as one small seam.

Tests hand ``measure_machine`` a fake ``SystemFacade`` with scripted counters; only
``PsutilSystem`` touches psutil. Each method returns cumulative counters or a snapshot; the
rates are computed elsewhere (``rates.py``), from two samples. Methods raise ``OSError`` when
the OS refused an answer and return None when the OS has no such thing (no battery, no swap
counters); psutil's own exceptions never get past this module.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import psutil

ProcessKey = tuple[int, float]  # (pid, create time): a pid alone may be reused within the window


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative CPU seconds of the whole machine, all cores summed."""

    busy_s: float
    total_s: float


@dataclass(frozen=True)
class ProcessCpu:
    name: str
    cpu_s: float  # user + system seconds since the process started


@dataclass(frozen=True)
class Memory:
    available_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class SwapIo:
    """Cumulative bytes swapped in and out since boot."""

    in_bytes: int
    out_bytes: int


@dataclass(frozen=True)
class Battery:
    percent: float
    plugged: bool | None
    seconds_left: int  # psutil's secsleft, sentinels included (see rates.battery_time_left_s)


@dataclass(frozen=True)
class NetIo:
    """Cumulative bytes of one interface since it came up."""

    bytes_sent: int
    bytes_recv: int


class SystemFacade(Protocol):
    def monotonic_s(self) -> float: ...
    def cpu_times(self) -> CpuTimes: ...
    def process_cpu(self) -> Mapping[ProcessKey, ProcessCpu]:
        """Every process this user may read except this one and the idle pseudo-process."""
        ...
    def memory(self) -> Memory: ...
    def swap_io(self) -> SwapIo | None: ...
    def battery(self) -> Battery | None: ...
    def net_io(self) -> Mapping[str, NetIo]: ...
    def link_speed_mbps(self, interface: str) -> float | None: ...


def cpu_times_from_fields(fields: Mapping[str, float]) -> CpuTimes:
    """Busy and total seconds from psutil's cpu_times fields, the way psutil.cpu_percent counts.

    Linux already counts guest time inside user and nice, so it is left out of the total;
    iowait is time a core waited with nothing to run, so it is not busy (htop agrees).
    """
    total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
    busy = total - fields.get("idle", 0.0) - fields.get("iowait", 0.0)
    return CpuTimes(busy_s=busy, total_s=total)


@contextlib.contextmanager
def _as_os_error() -> Iterator[None]:
    try:
        yield
    except psutil.Error as error:
        raise OSError(f"psutil: {error.__class__.__name__}") from error


class PsutilSystem:
    """The real machine, through psutil. Holds no state between calls."""

    def monotonic_s(self) -> float:
        return time.monotonic()

    def cpu_times(self) -> CpuTimes:
        with _as_os_error():
            return cpu_times_from_fields(psutil.cpu_times()._asdict())

    def process_cpu(self) -> Mapping[ProcessKey, ProcessCpu]:
        own = os.getpid()
        found: dict[ProcessKey, ProcessCpu] = {}
        with _as_os_error():
            # process_iter skips processes that end meanwhile; fields this user may not read
            # (other users' processes on macOS, services on Windows) come back as None.
            for proc in psutil.process_iter(["name", "cpu_times", "create_time"]):
                info = proc.info
                times, created = info.get("cpu_times"), info.get("create_time")
                # pid 0 is the idle pseudo-process on Windows: its "CPU time" is idle time.
                if proc.pid in (0, own) or times is None or created is None:
                    continue
                found[(proc.pid, float(created))] = ProcessCpu(info.get("name") or "?", times.user + times.system)
        return found

    def memory(self) -> Memory:
        with _as_os_error():
            memory = psutil.virtual_memory()
        return Memory(available_bytes=memory.available, total_bytes=memory.total)

    def swap_io(self) -> SwapIo | None:
        if psutil.WINDOWS:  # psutil documents sin/sout as always 0 there
            return None
        with _as_os_error():
            swap = psutil.swap_memory()
        return SwapIo(in_bytes=swap.sin, out_bytes=swap.sout)

    def battery(self) -> Battery | None:
        sensors_battery = getattr(psutil, "sensors_battery", None)  # absent on some platforms
        if sensors_battery is None:
            return None
        with _as_os_error():
            battery = sensors_battery()
        if battery is None:
            return None
        return Battery(percent=float(battery.percent), plugged=battery.power_plugged, seconds_left=int(battery.secsleft))

    def net_io(self) -> Mapping[str, NetIo]:
        with _as_os_error():
            counters = psutil.net_io_counters(pernic=True)
        return {name: NetIo(c.bytes_sent, c.bytes_recv) for name, c in counters.items()}

    def link_speed_mbps(self, interface: str) -> float | None:
        with _as_os_error():
            stats = psutil.net_if_stats().get(interface)
        return float(stats.speed) if stats is not None and stats.speed > 0 else None  # 0 = unknown


def psutil_ipv4_addresses() -> Mapping[str, tuple[str, ...]]:
    """Interface name -> its IPv4 addresses; the Windows link probe maps a route to a name with it."""
    try:
        addresses = psutil.net_if_addrs()
    except (psutil.Error, OSError):
        return {}
    return {name: tuple(a.address for a in entries if a.family == socket.AF_INET) for name, entries in addresses.items()}
