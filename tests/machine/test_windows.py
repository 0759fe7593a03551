"""Windows link detection on recorded route print and netsh output."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agents.probes.machine.link import CommandFailed, LinkError, LinkReading, WifiStatus
from agents.probes.machine.result import LINK_TYPE, ROUTE, WIFI_RATE, WIFI_SIGNAL
from agents.probes.machine.windows import (
    WindowsLinkProbe,
    WlanInterface,
    parse_netsh_wlan,
    parse_route_print,
    percent_to_dbm,
    windows_name_type,
)
from tests.machine.fakes import FakeRun, recorded

ROUTE_PRINT = ("route", "print", "-4")
NETSH = ("netsh", "wlan", "show", "interfaces")
LAPTOP_ADDRESSES = {
    "Ethernet": ("10.0.0.15",),
    "Wi-Fi": ("192.168.1.23",),
    "vEthernet (Default Switch)": ("172.22.160.1",),
    "Loopback Pseudo-Interface 1": ("127.0.0.1",),
}


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


@pytest.mark.parametrize("line_end", [str, crlf])
@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("route-print-ethernet-and-wifi.txt", "10.0.0.15"),  # metric 25 beats 35
        ("route-print-wifi.txt", "192.168.1.23"),
        ("route-print-german.txt", "192.168.178.42"),
        ("route-print-no-default.txt", None),  # the persistent 0.0.0.0 route is not active
    ],
)
def test_route_print(name: str, address: str | None, line_end: Callable[[str], str]) -> None:
    assert parse_route_print(line_end(recorded(f"windows/{name}"))) == address


@pytest.mark.parametrize(
    ("percent", "dbm"), [(100, -50.0), (78, -61.0), (40, -80.0), (0, -100.0), (130, -50.0), (-5, -100.0)]
)
def test_percent_to_dbm(percent: float, dbm: float) -> None:
    assert percent_to_dbm(percent) == dbm


@pytest.mark.parametrize("line_end", [str, crlf])
def test_netsh_windows_10_converts_percent(line_end: Callable[[str], str]) -> None:
    assert parse_netsh_wlan(line_end(recorded("windows/netsh-wlan-win10-connected.txt"))) == [
        WlanInterface("Wi-Fi", True, WifiStatus(-61.0, 866.7, "802.11ac"))
    ]


def test_netsh_windows_11_prefers_rssi_and_takes_the_receive_rate() -> None:
    assert parse_netsh_wlan(recorded("windows/netsh-wlan-win11-connected.txt")) == [
        WlanInterface("Wi-Fi", True, WifiStatus(-52.0, 1201.0, "802.11ax"))
    ]


def test_netsh_two_adapters() -> None:
    assert parse_netsh_wlan(recorded("windows/netsh-wlan-two-adapters.txt")) == [
        WlanInterface("Wi-Fi", False, WifiStatus()),
        WlanInterface("Wi-Fi 2", True, WifiStatus(-80.0, 72.2, "802.11n")),
    ]


@pytest.mark.parametrize(
    "name", ["netsh-wlan-no-interface.txt", "netsh-wlan-service-not-running.txt", "netsh-wlan-location-permission.txt"]
)
def test_netsh_without_interfaces(name: str) -> None:
    assert parse_netsh_wlan(recorded(f"windows/{name}")) == []


@pytest.mark.parametrize(
    ("name", "link_type"),
    [
        ("Ethernet", "wired"),
        ("Ethernet 2", "wired"),
        ("Wi-Fi", "wifi"),
        ("WLAN", "wifi"),  # German Windows
        ("Cellular", "cellular"),
        ("vEthernet (Default Switch)", "other"),
        ("Tailscale", "other"),
        ("Local Area Connection", "unknown"),
    ],
)
def test_names(name: str, link_type: str) -> None:
    assert windows_name_type(name) == link_type


# --- the probe ----------------------------------------------------------------------------------


def laptop(route: str, netsh: str | CommandFailed) -> FakeRun:
    return FakeRun({ROUTE_PRINT: recorded(f"windows/{route}"), NETSH: netsh if isinstance(netsh, CommandFailed) else recorded(f"windows/{netsh}")})


def test_wifi_in_two_commands() -> None:
    run = laptop("route-print-wifi.txt", "netsh-wlan-win11-connected.txt")
    windows = WindowsLinkProbe(run=run, addresses=lambda: LAPTOP_ADDRESSES)
    assert windows.default_interface() == "Wi-Fi"
    assert windows.link_info("Wi-Fi") == LinkReading("wifi", WifiStatus(-52.0, 1201.0, "802.11ax"))
    assert run.calls == [ROUTE_PRINT, NETSH]


def test_docked_laptop_uses_ethernet() -> None:
    run = laptop("route-print-ethernet-and-wifi.txt", "netsh-wlan-win10-connected.txt")
    windows = WindowsLinkProbe(run=run, addresses=lambda: LAPTOP_ADDRESSES)
    assert windows.default_interface() == "Ethernet"
    assert windows.link_info("Ethernet") == LinkReading("wired")


def test_desktop_without_wifi() -> None:
    reading = WindowsLinkProbe(run=laptop("route-print-wifi.txt", "netsh-wlan-no-interface.txt")).link_info("Ethernet")
    assert reading == LinkReading("wired")


def test_usb_adapter_is_matched_by_its_own_name() -> None:
    reading = WindowsLinkProbe(run=laptop("route-print-wifi.txt", "netsh-wlan-two-adapters.txt")).link_info("Wi-Fi 2")
    assert reading == LinkReading("wifi", WifiStatus(-80.0, 72.2, "802.11n"))


def test_without_location_permission_wifi_is_known_by_name_but_not_its_signal() -> None:
    reading = WindowsLinkProbe(run=laptop("route-print-wifi.txt", "netsh-wlan-location-permission.txt")).link_info("Wi-Fi")
    assert reading.type == "wifi" and reading.wifi == WifiStatus()
    assert [p.what for p in reading.problems] == [WIFI_SIGNAL, WIFI_RATE]
    assert "location permission" in reading.problems[0].detail


def test_missing_netsh_on_an_unfamiliar_name() -> None:
    reading = WindowsLinkProbe(run=laptop("route-print-wifi.txt", CommandFailed(NETSH, "not installed"))).link_info("Local Area Connection")
    assert reading.type == "unknown" and [p.what for p in reading.problems] == [LINK_TYPE]
    assert reading.problems[0].detail.startswith("netsh not installed")


def test_no_default_route() -> None:
    run = laptop("route-print-no-default.txt", "netsh-wlan-no-interface.txt")
    assert WindowsLinkProbe(run=run, addresses=lambda: LAPTOP_ADDRESSES).default_interface() is None


def test_route_address_held_by_no_interface_is_a_link_error() -> None:
    run = laptop("route-print-wifi.txt", "netsh-wlan-no-interface.txt")
    with pytest.raises(LinkError) as caught:
        WindowsLinkProbe(run=run, addresses=lambda: {"Ethernet": ("10.0.0.15",)}).default_interface()
    assert caught.value.problem.what == ROUTE


def test_route_timeout_is_a_link_error() -> None:
    run = FakeRun({ROUTE_PRINT: CommandFailed(ROUTE_PRINT, "no answer within 3 s")})
    with pytest.raises(LinkError) as caught:
        WindowsLinkProbe(run=run, addresses=dict).default_interface()
    assert caught.value.problem == (ROUTE, "route no answer within 3 s")
