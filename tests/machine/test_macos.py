"""macOS link detection on recorded route, networksetup, airport and system_profiler output."""

from __future__ import annotations

import pytest

from agents.probes.machine.link import CommandFailed, LinkError, LinkReading, WifiStatus
from agents.probes.machine.macos import (
    AIRPORT,
    MacLinkProbe,
    mac_port_type,
    parse_airport,
    parse_hardware_ports,
    parse_route_get,
    parse_system_profiler_wifi,
)
from agents.probes.machine.result import LINK_TYPE, ROUTE, WIFI_RATE, WIFI_SIGNAL
from tests.machine.fakes import FakeRun, recorded

ROUTE_GET = ("route", "-n", "get", "default")
PORTS = ("networksetup", "-listallhardwareports")
AIRPORT_I = (AIRPORT, "-I")
PROFILER = ("system_profiler", "SPAirPortDataType")


@pytest.mark.parametrize(
    ("name", "interface"),
    [
        ("route-get-default-en0.txt", "en0"),
        ("route-get-default-en7.txt", "en7"),
        ("route-get-default-utun.txt", "utun4"),
        ("route-get-no-default.txt", None),
    ],
)
def test_route_get_default(name: str, interface: str | None) -> None:
    assert parse_route_get(recorded(f"macos/{name}")) == interface


def test_hardware_ports() -> None:
    ports = parse_hardware_ports(recorded("macos/networksetup-macbook-pro.txt"))
    assert ports == {
        "bridge0": "Thunderbolt Bridge",
        "en0": "Wi-Fi",
        "en1": "Thunderbolt 1",
        "en2": "Thunderbolt 2",
        "en7": "USB 10/100/1000 LAN",
        "en8": "iPhone USB",
        "en9": "AX88179A",
    }
    assert parse_hardware_ports(recorded("macos/networksetup-imac-2015.txt"))["en0"] == "Ethernet"


@pytest.mark.parametrize(
    ("port", "link_type"),
    [
        ("Wi-Fi", "wifi"),
        ("AirPort", "wifi"),  # before OS X 10.7
        ("Ethernet", "wired"),
        ("USB 10/100/1000 LAN", "wired"),
        ("Thunderbolt Ethernet Slot 1", "wired"),
        ("Belkin USB-C LAN", "wired"),
        ("iPhone USB", "cellular"),
        ("Thunderbolt Bridge", "other"),
        ("Bluetooth PAN", "other"),
        ("AX88179A", "unknown"),
        (None, "other"),  # utun, ipsec, ppp: not hardware ports
    ],
)
def test_port_types(port: str | None, link_type: str) -> None:
    assert mac_port_type(port) == link_type


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("airport-I-connected.txt", WifiStatus(-58.0, 585.0, None)),
        ("airport-I-disassociated.txt", WifiStatus()),
        ("airport-I-off.txt", WifiStatus()),
        ("airport-I-deprecated-sonoma.txt", WifiStatus()),
    ],
)
def test_airport(name: str, expected: WifiStatus) -> None:
    assert parse_airport(recorded(f"macos/{name}")) == expected


def test_system_profiler_reads_the_current_network_not_the_neighbours() -> None:
    text = recorded("macos/system-profiler-airport-sonoma.txt")
    assert parse_system_profiler_wifi(text, "en0") == WifiStatus(-61.0, 720.0, "802.11ax")
    assert parse_system_profiler_wifi(text, "awdl0") == WifiStatus()
    assert parse_system_profiler_wifi(text, "en1") == WifiStatus()


def test_system_profiler_with_wifi_off() -> None:
    assert parse_system_profiler_wifi(recorded("macos/system-profiler-airport-off.txt"), "en0") == WifiStatus()


# --- the probe ----------------------------------------------------------------------------------


def macbook(route: str, **more: str | CommandFailed) -> FakeRun:
    answers: dict[tuple[str, ...], str | CommandFailed] = {
        ROUTE_GET: recorded(f"macos/{route}"),
        PORTS: recorded("macos/networksetup-macbook-pro.txt"),
    }
    answers.update({{"airport": AIRPORT_I, "profiler": PROFILER}[key]: value for key, value in more.items()})
    return FakeRun(answers)


def test_wifi_with_legacy_airport_needs_three_quick_commands() -> None:
    run = macbook("route-get-default-en0.txt", airport=recorded("macos/airport-I-connected.txt"))
    mac = MacLinkProbe(run=run)
    assert mac.default_interface() == "en0"
    assert mac.link_info("en0") == LinkReading("wifi", WifiStatus(-58.0, 585.0, None))
    assert run.calls == [ROUTE_GET, PORTS, AIRPORT_I]


def test_wifi_on_sonoma_falls_back_to_system_profiler() -> None:
    run = macbook(
        "route-get-default-en0.txt",
        airport=recorded("macos/airport-I-deprecated-sonoma.txt"),
        profiler=recorded("macos/system-profiler-airport-sonoma.txt"),
    )
    assert MacLinkProbe(run=run).link_info("en0") == LinkReading("wifi", WifiStatus(-61.0, 720.0, "802.11ax"))
    assert run.calls == [PORTS, AIRPORT_I, PROFILER]


def test_wifi_when_airport_is_gone_and_system_profiler_times_out() -> None:
    run = macbook("route-get-default-en0.txt", profiler=CommandFailed(PROFILER, "no answer within 6 s"))
    reading = MacLinkProbe(run=run).link_info("en0")
    assert reading.type == "wifi" and reading.wifi == WifiStatus()
    assert [p.what for p in reading.problems] == [WIFI_SIGNAL, WIFI_RATE]
    assert "airport not installed; system_profiler no answer within 6 s" == reading.problems[0].detail


@pytest.mark.parametrize(
    ("route", "interface", "link_type"),
    [
        ("route-get-default-en7.txt", "en7", "wired"),
        ("route-get-default-utun.txt", "utun4", "other"),
    ],
)
def test_links_that_are_not_wifi_need_two_commands(route: str, interface: str, link_type: str) -> None:
    run = macbook(route)
    mac = MacLinkProbe(run=run)
    assert mac.link_info(mac.default_interface() or "") == LinkReading(link_type)
    assert run.calls == [ROUTE_GET, PORTS]


def test_iphone_tethering_is_cellular() -> None:
    assert MacLinkProbe(run=macbook("route-get-default-en0.txt")).link_info("en8") == LinkReading("cellular")


def test_unrecognised_port_is_unknown_with_a_note() -> None:
    reading = MacLinkProbe(run=macbook("route-get-default-en0.txt")).link_info("en9")
    assert reading.type == "unknown" and [p.what for p in reading.problems] == [LINK_TYPE]


def test_no_default_route() -> None:
    assert MacLinkProbe(run=macbook("route-get-no-default.txt")).default_interface() is None


def test_missing_route_tool_is_a_link_error() -> None:
    with pytest.raises(LinkError) as caught:
        MacLinkProbe(run=FakeRun({})).default_interface()
    assert caught.value.problem.what == ROUTE


def test_missing_networksetup_leaves_the_type_unknown() -> None:
    reading = MacLinkProbe(run=FakeRun({ROUTE_GET: recorded("macos/route-get-default-en0.txt")})).link_info("en0")
    assert reading.type == "unknown" and [p.what for p in reading.problems] == [LINK_TYPE]
    assert reading.problems[0].detail == "networksetup not installed"
