"""measure_machine with a scripted psutil facade and a fake link probe: exact results, and privacy."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from agents.probes.machine import LinkInfo, LocalHints, MachineResult, ProgramUse, measure_machine
from agents.probes.machine.link import LinkError, LinkReading, WifiStatus
from agents.probes.machine.result import CPU, LINK_TYPE, ROUTE, TRAFFIC, WIFI_RATE, Problem, error_sentence
from agents.probes.machine.system import Battery, CpuTimes, Memory, NetIo, ProcessCpu, SwapIo
from sessionready import typed
from tests.machine.fakes import Counters, FakeLinkProbe, FakeSystem

IFACE = "wlp0s20f3"
WIFI = LinkReading("wifi", WifiStatus(signal_dbm=-67.0, rate_mbps=130.0, radio="802.11ac"))

BEFORE = Counters(
    at_s=10.0,
    cpu=CpuTimes(busy_s=100.0, total_s=1000.0),
    processes={
        (10, 1.0): ProcessCpu("chrome", 50.0),
        (11, 1.5): ProcessCpu("chrome", 10.0),
        (20, 2.0): ProcessCpu("OneDrive", 5.0),
        (30, 3.0): ProcessCpu("zoom", 1.0),
    },
    swap=SwapIo(in_bytes=1000, out_bytes=2000),
    net={IFACE: NetIo(bytes_sent=1_000_000, bytes_recv=5_000_000), "docker0": NetIo(0, 0)},
)
# 2 s later on a 2-core machine: 4 CPU-seconds, 3 of them busy.
AFTER = Counters(
    at_s=12.0,
    cpu=CpuTimes(busy_s=103.0, total_s=1004.0),
    processes={
        (10, 1.0): ProcessCpu("chrome", 51.0),
        (11, 1.5): ProcessCpu("chrome", 10.5),
        (20, 2.0): ProcessCpu("OneDrive", 6.0),
        (30, 3.0): ProcessCpu("zoom", 1.25),
    },
    swap=SwapIo(in_bytes=5096, out_bytes=10192),
    net={IFACE: NetIo(bytes_sent=2_000_000, bytes_recv=5_250_000), "docker0": NetIo(10**9, 10**9)},
)


def measure(system: FakeSystem, link_probe: FakeLinkProbe) -> MachineResult:
    return asyncio.run(measure_machine(0, system=system, link_probe=link_probe))


def laptop(**changes: object) -> FakeSystem:
    options = {"memory": Memory(4 << 30, 16 << 30), "battery": Battery(6.0, False, 1800)} | changes
    return FakeSystem(BEFORE, AFTER, **options)  # type: ignore[arg-type]


def test_a_laptop_on_low_battery_with_a_backup_uploading() -> None:
    result = measure(laptop(), FakeLinkProbe(IFACE, WIFI))
    assert result == MachineResult(
        cpu_pct=75.0,
        memory_available_pct=25.0,
        swap_bytes_per_s=6144.0,
        battery_pct=6.0,
        battery_charging=False,
        battery_time_left_s=1800.0,
        link=LinkInfo("wifi", speed_mbps=130.0, wifi_signal_dbm=-67.0),
        background_traffic_mbps_up=4.0,
        background_traffic_mbps_down=1.0,
        error=None,
    )
    assert result.local_hints == LocalHints(
        top_programs=(ProgramUse("chrome", 37.5), ProgramUse("OneDrive", 25.0), ProgramUse("zoom", 6.25)),
        interface=IFACE,
        wifi_radio="802.11ac",
    )


def test_nothing_local_reaches_the_wire_form() -> None:
    result = measure(laptop(), FakeLinkProbe(IFACE, WIFI))
    assert "local_hints" not in {f.name for f in dataclasses.fields(result)}
    for form in (json.dumps(typed.encode(result)), json.dumps(dataclasses.asdict(result)), repr(result)):
        for secret in (IFACE, "chrome", "OneDrive", "zoom", "802.11ac"):
            assert secret not in form
    assert set(typed.encode(result)) == {  # type: ignore[arg-type]
        "cpu_pct", "memory_available_pct", "swap_bytes_per_s", "battery_pct", "battery_charging",
        "battery_time_left_s", "link", "background_traffic_mbps_up", "background_traffic_mbps_down", "error",
    }  # fmt: skip


def test_replace_drops_the_hints_rather_than_copying_them_somewhere() -> None:
    result = measure(laptop(), FakeLinkProbe(IFACE, WIFI))
    assert dataclasses.replace(result, cpu_pct=1.0).local_hints == LocalHints()


def test_the_link_is_read_before_the_cpu_window_opens() -> None:
    system = laptop()
    seen_by_link_probe: list[dict[str, int]] = []

    class Watching(FakeLinkProbe):
        def link_info(self, interface: str) -> LinkReading:
            seen_by_link_probe.append(dict(system.calls))
            return super().link_info(interface)

    measure(system, Watching(IFACE, WIFI))
    assert seen_by_link_probe == [{}], "the link probe's commands would count as CPU load"
    assert system.calls == {"at_s": 2, "net": 2, "swap": 2, "cpu": 2, "processes": 2}


def test_the_window_is_slept_through() -> None:
    async def timed() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await measure_machine(0.2, system=laptop(), link_probe=FakeLinkProbe(IFACE, WIFI))
        return loop.time() - started

    assert asyncio.run(timed()) >= 0.2


def test_desktop_on_ethernet_without_battery_or_swap_counters() -> None:
    system = FakeSystem(
        dataclasses.replace(BEFORE, swap=None, net={"Ethernet": NetIo(0, 0)}),
        dataclasses.replace(AFTER, swap=None, net={"Ethernet": NetIo(0, 500_000)}),
        battery=None,
        speeds={"Ethernet": 1000.0},
    )
    result = measure(system, FakeLinkProbe("Ethernet", LinkReading("wired")))
    assert (result.battery_pct, result.battery_charging, result.battery_time_left_s) == (None, None, None)
    assert result.swap_bytes_per_s is None
    assert result.link == LinkInfo("wired", 1000.0, None)
    assert (result.background_traffic_mbps_up, result.background_traffic_mbps_down) == (0.0, 2.0)
    assert result.error is None, "no battery and no swap counters are answers, not failures"


def test_wifi_rate_from_psutil_when_the_os_tool_gave_none() -> None:
    reading = LinkReading("wifi", WifiStatus(-70.0, None, None), (Problem(WIFI_RATE, "iw not installed, so no bitrate"),))
    result = measure(laptop(speeds={IFACE: 144.0}), FakeLinkProbe(IFACE, reading))
    assert result.link == LinkInfo("wifi", 144.0, -70.0)
    assert result.error is None


def test_wifi_rate_missing_everywhere() -> None:
    reading = LinkReading("wifi", WifiStatus(-70.0, None, None), (Problem(WIFI_RATE, "iw not installed, so no bitrate"),))
    result = measure(laptop(), FakeLinkProbe(IFACE, reading))
    assert result.link == LinkInfo("wifi", None, -70.0)
    assert result.error == "Could not read the Wi-Fi link rate."
    assert result.local_hints.notes == ("the Wi-Fi link rate: iw not installed, so no bitrate",)


def test_a_wired_speed_beyond_what_the_report_carries_is_dropped() -> None:
    result = measure(laptop(speeds={"eth0": 400_000.0}), FakeLinkProbe("eth0", LinkReading("wired")))
    assert result.link == LinkInfo("wired", None, None)


@pytest.mark.parametrize("link_type", ["other", "cellular", "unknown"])
def test_no_speed_for_links_whose_speed_is_made_up(link_type: str) -> None:
    system = laptop(speeds={IFACE: 10_000.0})
    result = measure(system, FakeLinkProbe(IFACE, LinkReading(link_type)))  # type: ignore[arg-type]
    assert result.link == LinkInfo(link_type, None, None)  # type: ignore[arg-type]
    assert system.speed_asked == []


def test_cpu_unreadable_in_the_second_sample() -> None:
    after = dataclasses.replace(AFTER, cpu=OSError("psutil: AccessDenied"))
    result = measure(FakeSystem(BEFORE, after), FakeLinkProbe(IFACE, WIFI))
    assert result.cpu_pct is None and result.local_hints.top_programs == ()
    assert result.error == "Could not read the CPU load."
    assert result.background_traffic_mbps_up == 4.0, "the rest is still measured"


def test_programs_unreadable_is_a_local_note_only() -> None:
    after = dataclasses.replace(AFTER, processes=OSError("psutil: AccessDenied"))
    result = measure(FakeSystem(BEFORE, after), FakeLinkProbe(IFACE, WIFI))
    assert result.cpu_pct == 75.0 and result.error is None
    assert result.local_hints.notes == ("which programs use the CPU: OSError: psutil: AccessDenied",)


def test_several_failures_make_one_sentence() -> None:
    system = FakeSystem(BEFORE, dataclasses.replace(AFTER, cpu=OSError("x"), swap=OSError("y")), memory=OSError("z"), battery=OSError("w"))
    result = measure(system, FakeLinkProbe(IFACE, WIFI))
    assert result.error == "Could not read the swap activity, the CPU load, the memory use and the battery."


def test_interface_without_counters() -> None:
    result = measure(laptop(), FakeLinkProbe("wlan1", WIFI))
    assert (result.background_traffic_mbps_up, result.background_traffic_mbps_down) == (None, None)
    assert result.error == "Could not read the other traffic on this computer."
    assert "wlan1" not in result.error


def test_no_default_route() -> None:
    result = measure(laptop(), FakeLinkProbe(None))
    assert result.link == LinkInfo("unknown", None, None)
    assert result.background_traffic_mbps_up is None and result.local_hints.interface is None
    assert result.error == "Could not read which network connection is in use."
    assert result.cpu_pct == 75.0


def test_link_error() -> None:
    result = measure(laptop(), FakeLinkProbe(None, error=LinkError(Problem(ROUTE, "route not installed"))))
    assert result.link.type == "unknown" and result.error == "Could not read which network connection is in use."
    assert result.local_hints.notes == ("which network connection is in use: route not installed",)


def test_a_bug_in_a_link_probe_costs_only_the_link() -> None:
    result = measure(laptop(), FakeLinkProbe(None, error=IndexError("list index out of range")))
    assert result.link.type == "unknown" and result.cpu_pct == 75.0 and result.battery_pct == 6.0
    assert result.error == "Could not read which network connection is in use."


def test_details_with_names_stay_out_of_the_sentence() -> None:
    reading = LinkReading("unknown", problems=(Problem(LINK_TYPE, f"cannot read /sys/class/net/{IFACE}"),))
    result = measure(laptop(), FakeLinkProbe(IFACE, reading))
    assert result.error == "Could not read the type of network connection."
    assert IFACE in result.local_hints.notes[0]


def test_a_clock_that_did_not_move_gives_no_rates() -> None:
    system = FakeSystem(BEFORE, dataclasses.replace(AFTER, at_s=BEFORE.at_s))
    result = measure(system, FakeLinkProbe(IFACE, WIFI))
    assert result.swap_bytes_per_s is None and result.background_traffic_mbps_up is None
    assert result.cpu_pct == 75.0, "CPU shares come from the CPU counters, not the clock"


@pytest.mark.parametrize("window_s", [-1.0, 61.0, float("nan"), float("inf")])
def test_window_must_be_sane(window_s: float) -> None:
    with pytest.raises(ValueError, match="window_s"):
        asyncio.run(measure_machine(window_s, system=laptop(), link_probe=FakeLinkProbe(IFACE, WIFI)))


def test_error_sentence() -> None:
    assert error_sentence([]) is None
    assert error_sentence([Problem(CPU, "a"), Problem(CPU, "b")]) == "Could not read the CPU load."
    assert error_sentence([Problem(CPU, "a"), Problem(TRAFFIC, "b")]) == "Could not read the CPU load and the other traffic on this computer."
