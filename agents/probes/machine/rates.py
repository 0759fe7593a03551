"""Pure arithmetic from two samples of cumulative counters: CPU shares, per-second rates, battery.

Every function returns None instead of a number it cannot stand behind: no time elapsed, a
counter that went backwards (reset, wrap, interface re-created), a sentinel from the OS.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping

from agents.probes.machine.result import ProgramUse
from agents.probes.machine.system import Battery, CpuTimes, NetIo, ProcessCpu, ProcessKey, SwapIo
from sessionready.schema import MAX_MBPS

TOP_PROGRAMS = 3
MAX_PROGRAM_NAME = 64
# psutil divides the charge left by the power drawn; a driver reporting almost no drain gives
# estimates of months. A week is beyond any laptop battery.
MAX_BATTERY_TIME_LEFT_S = 7 * 86_400


def _clamp_pct(value: float) -> float:
    return min(100.0, max(0.0, value))


def cpu_busy_pct(before: CpuTimes, after: CpuTimes) -> float | None:
    """Busy share of all cores between two samples, 0..100."""
    total = after.total_s - before.total_s
    busy = after.busy_s - before.busy_s
    if not total > 0 or not math.isfinite(total) or not math.isfinite(busy):
        return None
    return _clamp_pct(busy / total * 100)


def top_programs(
    before: Mapping[ProcessKey, ProcessCpu],
    after: Mapping[ProcessKey, ProcessCpu],
    cpu_before: CpuTimes,
    cpu_after: CpuTimes,
    count: int = TOP_PROGRAMS,
) -> tuple[ProgramUse, ...]:
    """The ``count`` busiest programs over the window as shares of the whole machine, 0..100.

    Processes with the same name are one program (a browser runs dozens). Only processes seen
    in both samples count: one missing from the first sample has no baseline. The share is the
    process's CPU seconds over all cores' seconds in the same window, so the shares of all
    programs add up to the machine's busy share and use the same scale as ``cpu_busy_pct``.
    """
    total = cpu_after.total_s - cpu_before.total_s
    if not total > 0 or not math.isfinite(total):
        return ()
    by_name: dict[str, float] = {}
    for key, late in after.items():
        early = before.get(key)
        if early is None:
            continue
        used = late.cpu_s - early.cpu_s
        if used > 0 and math.isfinite(used):
            name = clean_program_name(late.name)
            by_name[name] = by_name.get(name, 0.0) + used
    ranked = sorted(by_name.items(), key=lambda item: (-item[1], item[0]))[:count]
    return tuple(ProgramUse(name, _clamp_pct(used / total * 100)) for name, used in ranked)


def clean_program_name(name: str) -> str:
    """Printable and short: a process may name itself anything, escape sequences included."""
    printable = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    printable = printable.strip()[:MAX_PROGRAM_NAME]
    return printable or "?"


def per_second(before: float, after: float, elapsed_s: float) -> float | None:
    """(after - before) / elapsed; None for no elapsed time or a counter that went backwards."""
    if not elapsed_s > 0 or after < before:
        return None
    rate = (after - before) / elapsed_s
    return rate if math.isfinite(rate) else None


def swap_bytes_per_s(before: SwapIo | None, after: SwapIo | None, elapsed_s: float) -> float | None:
    if before is None or after is None:
        return None
    return per_second(before.in_bytes + before.out_bytes, after.in_bytes + after.out_bytes, elapsed_s)


def traffic_mbps(before: NetIo | None, after: NetIo | None, elapsed_s: float) -> tuple[float | None, float | None]:
    """(up, down) in Mbit/s (10^6 bit/s) from one interface's byte counters.

    More than the report can carry (MAX_MBPS) is a counter that jumped, not traffic: None.
    """
    if before is None or after is None:
        return None, None
    return _mbps(before.bytes_sent, after.bytes_sent, elapsed_s), _mbps(before.bytes_recv, after.bytes_recv, elapsed_s)


def _mbps(before: int, after: int, elapsed_s: float) -> float | None:
    bytes_per_s = per_second(before, after, elapsed_s)
    if bytes_per_s is None or bytes_per_s * 8 / 1e6 > MAX_MBPS:
        return None
    return bytes_per_s * 8 / 1e6


def memory_available_pct(available_bytes: int, total_bytes: int) -> float | None:
    if total_bytes <= 0 or available_bytes < 0:
        return None
    return _clamp_pct(available_bytes / total_bytes * 100)


def battery_time_left_s(battery: Battery) -> float | None:
    """Seconds left on battery; None on mains power, while the OS is still estimating, or unknown.

    psutil gives POWER_TIME_UNLIMITED when plugged in and POWER_TIME_UNKNOWN while the estimate
    is not ready (macOS right after unplugging, many Linux drivers while charging); both are
    negative (a live test checks that psutil keeps it so).
    """
    if battery.plugged or not 0 <= battery.seconds_left <= MAX_BATTERY_TIME_LEFT_S:
        return None
    return float(battery.seconds_left)


def battery_pct(battery: Battery) -> float | None:
    # Some Linux drivers report a charge over 100 % (energy_now > a worn energy_full).
    return _clamp_pct(battery.percent) if math.isfinite(battery.percent) else None
