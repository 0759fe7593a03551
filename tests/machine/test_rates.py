"""The arithmetic from two counter samples, with exact expected values."""

from __future__ import annotations

import pytest

from agents.probes.machine import rates
from agents.probes.machine.result import ProgramUse
from agents.probes.machine.system import Battery, CpuTimes, NetIo, ProcessCpu, SwapIo, cpu_times_from_fields


def test_linux_cpu_times_leave_out_guest_and_count_iowait_as_idle() -> None:
    fields = {
        "user": 100.0, "nice": 5.0, "system": 20.0, "idle": 800.0, "iowait": 30.0,
        "irq": 1.0, "softirq": 2.0, "steal": 3.0, "guest": 10.0, "guest_nice": 0.0,
    }  # fmt: skip
    # total = 971 - guest 10 = 961; busy = 961 - idle 800 - iowait 30 = 131
    assert cpu_times_from_fields(fields) == CpuTimes(busy_s=131.0, total_s=961.0)


def test_windows_cpu_times() -> None:
    fields = {"user": 50.0, "system": 30.0, "idle": 400.0, "interrupt": 2.0, "dpc": 1.0}
    assert cpu_times_from_fields(fields) == CpuTimes(busy_s=83.0, total_s=483.0)


def test_cpu_busy_pct() -> None:
    assert rates.cpu_busy_pct(CpuTimes(100.0, 1000.0), CpuTimes(160.0, 1200.0)) == 30.0


@pytest.mark.parametrize(
    ("before", "after"),
    [(CpuTimes(100, 1000), CpuTimes(100, 1000)), (CpuTimes(100, 1000), CpuTimes(10, 500))],  # no time; counters reset
)
def test_cpu_busy_pct_without_a_window(before: CpuTimes, after: CpuTimes) -> None:
    assert rates.cpu_busy_pct(before, after) is None


def test_top_programs_add_up_processes_of_one_program_and_skip_new_ones() -> None:
    before = {
        (10, 1.0): ProcessCpu("chrome", 50.0),
        (11, 1.5): ProcessCpu("chrome", 10.0),
        (20, 2.0): ProcessCpu("OneDrive", 5.0),
        (30, 3.0): ProcessCpu("zoom", 1.0),
        (40, 4.0): ProcessCpu("sshd", 2.0),
        (50, 5.0): ProcessCpu("old", 7.0),  # ends during the window
        (60, 6.0): ProcessCpu("reused", 1.0),
    }
    after = {
        (10, 1.0): ProcessCpu("chrome", 51.0),  # +1.0
        (11, 1.5): ProcessCpu("chrome", 10.5),  # +0.5
        (20, 2.0): ProcessCpu("OneDrive", 6.0),  # +1.0
        (30, 3.0): ProcessCpu("zoom", 1.25),  # +0.25
        (40, 4.0): ProcessCpu("sshd", 2.0),  # idle
        (70, 7.0): ProcessCpu("cc1", 3.0),  # started in the window: no baseline
        (60, 9.0): ProcessCpu("reused", 5.0),  # same pid, another process
    }
    # 4 CPU-seconds in the window (2 cores for 2 s)
    assert rates.top_programs(before, after, CpuTimes(0, 100), CpuTimes(3, 104)) == (
        ProgramUse("chrome", 37.5),
        ProgramUse("OneDrive", 25.0),
        ProgramUse("zoom", 6.25),
    )


def test_top_programs_ties_by_name_and_the_count() -> None:
    before = {(i, 0.0): ProcessCpu(name, 0.0) for i, name in enumerate("dcba")}
    after = {(i, 0.0): ProcessCpu(name, 1.0) for i, name in enumerate("dcba")}
    assert [p.name for p in rates.top_programs(before, after, CpuTimes(0, 0), CpuTimes(4, 4), count=2)] == ["a", "b"]


def test_top_programs_cannot_exceed_the_machine() -> None:
    before = {(1, 0.0): ProcessCpu("spin", 0.0)}
    after = {(1, 0.0): ProcessCpu("spin", 9.0)}  # accounting granularity can overshoot
    assert rates.top_programs(before, after, CpuTimes(0, 0), CpuTimes(4, 4)) == (ProgramUse("spin", 100.0),)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("chrome", "chrome"), ("\x1b[31mevil\x1b[0m", "[31mevil[0m"), ("tab\tbed", "tabbed"), ("", "?"), ("  ", "?"), ("x" * 100, "x" * 64)],
)
def test_program_names_are_made_printable(raw: str, clean: str) -> None:
    assert rates.clean_program_name(raw) == clean


def test_traffic_in_megabits_per_second() -> None:
    before, after = NetIo(bytes_sent=1_000_000, bytes_recv=5_000_000), NetIo(bytes_sent=2_000_000, bytes_recv=5_250_000)
    assert rates.traffic_mbps(before, after, 2.0) == (4.0, 1.0)


def test_traffic_with_a_counter_that_went_back() -> None:
    assert rates.traffic_mbps(NetIo(100, 100), NetIo(50, 200), 1.0) == (None, 0.0008)


def test_traffic_beyond_what_any_link_carries_is_a_counter_jump() -> None:
    assert rates.traffic_mbps(NetIo(0, 0), NetIo(2**63, 1000), 1.0) == (None, 0.008)


def test_swap_bytes_per_second_counts_both_directions() -> None:
    assert rates.swap_bytes_per_s(SwapIo(1000, 2000), SwapIo(5096, 10192), 2.0) == 6144.0
    assert rates.swap_bytes_per_s(None, None, 2.0) is None


@pytest.mark.parametrize("elapsed", [0.0, -1.0, float("nan")])
def test_no_rate_without_elapsed_time(elapsed: float) -> None:
    assert rates.per_second(0, 10, elapsed) is None


@pytest.mark.parametrize(
    ("battery", "left_s"),
    [
        (Battery(40.0, False, 5400), 5400.0),
        (Battery(40.0, True, -2), None),  # POWER_TIME_UNLIMITED
        (Battery(40.0, False, -1), None),  # POWER_TIME_UNKNOWN: still estimating
        (Battery(40.0, None, -1), None),
        (Battery(40.0, True, 3600), None),  # plugged in: no drain, whatever the driver says
        (Battery(40.0, False, 30 * 86_400), None),  # a driver reporting almost no drain
    ],
)
def test_battery_time_left(battery: Battery, left_s: float | None) -> None:
    assert rates.battery_time_left_s(battery) == left_s


@pytest.mark.parametrize(("percent", "expected"), [(6.0, 6.0), (104.3, 100.0), (float("nan"), None)])
def test_battery_pct(percent: float, expected: float | None) -> None:
    assert rates.battery_pct(Battery(percent, False, -1)) == expected


def test_memory_available_pct() -> None:
    assert rates.memory_available_pct(4 << 30, 16 << 30) == 25.0
    assert rates.memory_available_pct(1, 0) is None
