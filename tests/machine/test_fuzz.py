"""Garbage in, None or "unknown" out: no parser, probe or rate raises on what an OS might print."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.probes.machine import LINK_TYPES, measure_machine
from agents.probes.machine.link import MAX_SIGNAL_DBM, MIN_SIGNAL_DBM, LinkError, LinkReading, WifiStatus
from agents.probes.machine.linux import (
    LinuxLinkProbe,
    parse_ipv6_route,
    parse_iw_link,
    parse_proc_route,
    parse_proc_wireless,
    valid_interface_name,
)
from agents.probes.machine.macos import MacLinkProbe, parse_airport, parse_hardware_ports, parse_route_get, parse_system_profiler_wifi
from agents.probes.machine.system import Battery, CpuTimes, Memory, NetIo, ProcessCpu, SwapIo
from agents.probes.machine.windows import WindowsLinkProbe, parse_netsh_wlan, parse_route_print
from sessionready.schema import MAX_MBPS
from tests.machine.fakes import DATA, Counters, FakeLinkProbe, FakeSystem

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Tokens the real outputs are made of, so that random text often looks almost right.
TOKENS = [
    "0.0.0.0", "00000000", "0003", "0001", "ffffffff", "00200200", "lo", "eth0", "wlan0", "en0", "Wi-Fi",
    "interface:", "Hardware Port:", "Device:", "agrCtlRSSI:", "lastTxRate:", "signal:", "tx bitrate:",
    "Name", "State", "Signal", "Rssi", "Receive rate (Mbps)", ":", " : ", "%", "dBm", "MBit/s", "HE-MCS",
    "Current Network Information:", "en0:", "Signal / Noise:", "Transmit Rate:", "DEVTYPE=wlan", "-56.",
    "200.", "-1e309", "1e400", "nan", "-", "  ", "\t", "\n", "\r\n", "é", "\x00", "999999999999999999999",
]  # fmt: skip
garbage = st.one_of(
    st.text(max_size=400),
    st.lists(st.one_of(st.sampled_from(TOKENS), st.integers(-300, 10**6).map(str)), max_size=60).map(" ".join),
    st.lists(st.sampled_from(TOKENS), max_size=80).map("".join),
)
RECORDED = sorted(p for p in DATA.rglob("*") if p.is_file() and p.suffix != ".md")


@st.composite
def mangled_recording(draw: st.DrawFn) -> str:
    """A real recording with a slice cut out and some garbage put in."""
    text = draw(st.sampled_from(RECORDED)).read_text(encoding="utf-8")
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, len(text)))
    return text[:start] + draw(garbage) + text[end:]


anything = st.one_of(garbage, mangled_recording())


def valid_signal(value: float | None) -> bool:
    return value is None or MIN_SIGNAL_DBM <= value <= MAX_SIGNAL_DBM


def valid_wifi(wifi: WifiStatus) -> bool:
    rate_ok = wifi.rate_mbps is None or 0 < wifi.rate_mbps <= MAX_MBPS
    return valid_signal(wifi.signal_dbm) and rate_ok


@FUZZ
@given(anything)
def test_linux_parsers(text: str) -> None:
    for iface in (parse_proc_route(text), parse_ipv6_route(text)):
        assert iface is None or valid_interface_name(iface)
    assert valid_signal(parse_proc_wireless(text, "wlan0"))
    assert valid_wifi(parse_iw_link(text))


@FUZZ
@given(anything)
def test_macos_parsers(text: str) -> None:
    iface = parse_route_get(text)
    assert iface is None or (iface and iface == iface.strip())
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in parse_hardware_ports(text).items())
    assert valid_wifi(parse_airport(text))
    assert valid_wifi(parse_system_profiler_wifi(text, "en0"))


@FUZZ
@given(anything)
def test_windows_parsers(text: str) -> None:
    address = parse_route_print(text)
    assert address is None or address.count(".") == 3
    assert all(valid_wifi(w.wifi) for w in parse_netsh_wlan(text))


def answering(texts: list[str]) -> Callable[..., str]:
    cycle = iter(texts * 10)
    return lambda *args: next(cycle, "")


def valid_reading(reading: LinkReading) -> bool:
    return reading.type in LINK_TYPES and (reading.wifi is None or valid_wifi(reading.wifi))


@FUZZ
@given(st.lists(anything, min_size=1, max_size=6), st.sampled_from(["eth0", "wlan0", "en0", "Wi-Fi", "x/../y", ""]))
def test_link_probes_on_garbage_never_raise_anything_but_link_error(texts: list[str], interface: str) -> None:
    probes = [
        LinuxLinkProbe(run=answering(texts), read=answering(texts), exists=lambda path: "wireless" in path),
        MacLinkProbe(run=answering(texts)),
        WindowsLinkProbe(run=answering(texts), addresses=lambda: {"Wi-Fi": ("192.168.1.23",)}),
    ]
    for probe in probes:
        try:
            found = probe.default_interface()
        except LinkError:
            found = None
        assert found is None or isinstance(found, str)
        assert valid_reading(probe.link_info(interface))


def test_the_recordings_are_found() -> None:
    assert len(RECORDED) > 40 and all(isinstance(p, Path) for p in RECORDED)


numbers = st.floats(allow_nan=True, allow_infinity=True)
counts = st.integers(0, 2**64)
counters = st.builds(
    Counters,
    at_s=numbers,
    cpu=st.builds(CpuTimes, numbers, numbers),
    processes=st.dictionaries(st.tuples(st.integers(1, 5), st.just(0.0)), st.builds(ProcessCpu, st.text(max_size=20), numbers), max_size=5),
    swap=st.one_of(st.none(), st.builds(SwapIo, counts, counts)),
    net=st.dictionaries(st.sampled_from(["eth0", "wlan0"]), st.builds(NetIo, counts, counts), max_size=2),
)


def test_measure_machine_on_any_counters() -> None:
    with asyncio.Runner() as runner:  # one event loop (and one executor thread) for all examples

        @FUZZ
        @given(
            counters,
            counters,
            st.builds(Memory, st.integers(-1, 2**40), st.integers(-1, 2**40)),
            st.one_of(st.none(), st.builds(Battery, numbers, st.one_of(st.none(), st.booleans()), st.integers(-3, 10**6))),
        )
        def check(before: Counters, after: Counters, memory: Memory, battery: Battery | None) -> None:
            system = FakeSystem(before, after, memory=memory, battery=battery, speeds={"eth0": 1000.0})
            result = runner.run(measure_machine(0, system=system, link_probe=FakeLinkProbe("eth0", LinkReading("wired"))))
            shares = (p.cpu_pct for p in result.local_hints.top_programs)
            for pct in (result.cpu_pct, result.memory_available_pct, result.battery_pct, *shares):
                assert pct is None or 0 <= pct <= 100
            rates = (result.swap_bytes_per_s, result.background_traffic_mbps_up, result.background_traffic_mbps_down, result.battery_time_left_s)
            for rate in rates:
                assert rate is None or (rate >= 0 and math.isfinite(rate))
            for mbps in (result.background_traffic_mbps_up, result.background_traffic_mbps_down):
                assert mbps is None or mbps <= MAX_MBPS
            assert len(result.local_hints.top_programs) <= 3

        check()
