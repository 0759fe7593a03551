"""Windows: the default route from ``route print -4``, Wi-Fi from ``netsh wlan show interfaces``.

Two commands, each with a short timeout (PowerShell's Get-NetRoute/Get-NetAdapter would say
more but take a second or more to start, and their CPU would show up in the CPU window):
1. ``route print -4``: the 0.0.0.0/0 route with the lowest metric gives the *address* of the
   interface; psutil's address list maps it to the connection name ("Wi-Fi", "Ethernet 2").
2. ``netsh wlan show interfaces``: if that name is a Wi-Fi interface, its signal ("Rssi" in
   dBm on recent Windows 11, else "Signal" in percent, converted with dBm = percent / 2 - 100),
   "Receive rate (Mbps)" and "Radio type". Windows 11 24H2 and later answer only with location
   permission; without it the link is still recognised as Wi-Fi by name, signal unknown.
Interfaces netsh does not list are classified by their connection name ("Ethernet*" wired,
"Cellular" cellular, "vEthernet"/VPN names other), since psutil cannot tell.
netsh's labels are translated on non-English Windows; there the Wi-Fi details are unknown.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from agents.probes.machine.link import (
    CommandFailed,
    LinkError,
    LinkReading,
    Run,
    WifiStatus,
    number,
    plausible_dbm,
    plausible_rate,
    run_command,
)
from agents.probes.machine.result import LINK_TYPE, ROUTE, WIFI_RATE, WIFI_SIGNAL, LinkType, Problem
from agents.probes.machine.system import psutil_ipv4_addresses

Addresses = Callable[[], Mapping[str, Sequence[str]]]
_KEY_VALUE = re.compile(r"^\s*([^:]+?)\s*:\s*(.*?)\s*$")


def percent_to_dbm(percent: float) -> float:
    """Windows' signal quality (0..100 %) as dBm: the inverse of its linear map from -100..-50 dBm.

    Windows reports 0 % at -100 dBm or below and 100 % at -50 dBm or above, linearly between, so
    the conversion is only as good as that map: 100 % means "-50 dBm or better".
    """
    return min(100.0, max(0.0, percent)) / 2 - 100


def parse_route_print(text: str) -> str | None:
    """The interface address of the IPv4 default route with the lowest metric, from ``route print -4``.

    Active routes have five columns (destination, mask, gateway, interface, metric);
    persistent routes have four, so they never match. Headings are not relied on: they are
    translated on non-English Windows.
    """
    best: tuple[int, str] | None = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 5 or fields[0] != "0.0.0.0" or fields[1] != "0.0.0.0":
            continue
        try:
            address = str(ipaddress.IPv4Address(fields[3]))
            metric = int(fields[4])
        except ValueError:
            continue
        if best is None or metric < best[0]:
            best = (metric, address)
    return best[1] if best else None


@dataclass(frozen=True)
class WlanInterface:
    name: str
    connected: bool
    wifi: WifiStatus


def parse_netsh_wlan(text: str) -> list[WlanInterface]:
    """The Wi-Fi interfaces in ``netsh wlan show interfaces``; [] for none, an error, or garbage."""
    blocks: list[dict[str, str]] = []
    for line in text.splitlines():
        match = _KEY_VALUE.match(line)
        if not match:
            continue
        key, value = match.group(1), match.group(2)
        if key == "Name":
            blocks.append({})
        if blocks:
            blocks[-1].setdefault(key, value)
    interfaces = []
    for block in blocks:
        if not block.get("Name"):
            continue
        rssi = plausible_dbm(number(block.get("Rssi", "")))
        percent = number(block.get("Signal", "")) if block.get("Signal", "").endswith("%") else None
        signal = rssi if rssi is not None else (plausible_dbm(percent_to_dbm(percent)) if percent is not None else None)
        rate = plausible_rate(number(block.get("Receive rate (Mbps)", ""))) or plausible_rate(number(block.get("Transmit rate (Mbps)", "")))
        wifi = WifiStatus(signal_dbm=signal, rate_mbps=rate, radio=block.get("Radio type") or None)
        interfaces.append(WlanInterface(block["Name"], block.get("State", "").lower() == "connected", wifi))
    return interfaces


def windows_name_type(name: str) -> LinkType:
    """A connection's type guessed from its name, for interfaces netsh does not describe."""
    lowered = name.lower()
    if lowered.startswith(("wi-fi", "wifi", "wlan", "wireless")):
        return "wifi"
    if lowered.startswith(("cellular", "mobile")):
        return "cellular"
    if lowered.startswith("ethernet"):
        return "wired"
    if any(word in lowered for word in ("vethernet", "vpn", "tap", "bluetooth", "loopback", "tailscale", "wireguard", "zerotier")):
        return "other"
    return "unknown"


class WindowsLinkProbe:
    def __init__(self, run: Run = run_command, addresses: Addresses = psutil_ipv4_addresses, timeout_s: float = 3.0) -> None:
        self._run, self._addresses, self._timeout_s = run, addresses, timeout_s

    def default_interface(self) -> str | None:
        try:
            text = self._run(["route", "print", "-4"], self._timeout_s)
        except CommandFailed as failure:
            raise LinkError(Problem(ROUTE, f"route {failure.reason}")) from None
        address = parse_route_print(text)
        if address is None:
            return None
        for name, addresses in self._addresses().items():
            if address in addresses:
                return name
        raise LinkError(Problem(ROUTE, "no interface holds the default route's address"))

    def link_info(self, interface: str) -> LinkReading:
        try:
            text = self._run(["netsh", "wlan", "show", "interfaces"], self._timeout_s)
            trouble = "netsh did not describe it"
        except CommandFailed as failure:
            text, trouble = "", f"netsh {failure.reason}"
        if "location permission" in text.lower():
            trouble = "netsh needs location permission (Settings > Privacy & security > Location)"
        wlan = next((w for w in parse_netsh_wlan(text) if w.name.casefold() == interface.casefold()), None)
        if wlan is not None:
            problems = []
            if wlan.wifi.signal_dbm is None:
                problems.append(Problem(WIFI_SIGNAL, "netsh gave no signal"))
            if wlan.wifi.rate_mbps is None:
                problems.append(Problem(WIFI_RATE, "netsh gave no receive rate"))
            return LinkReading("wifi", wlan.wifi, tuple(problems))
        link_type = windows_name_type(interface)
        if link_type == "wifi":
            return LinkReading("wifi", WifiStatus(), (Problem(WIFI_SIGNAL, trouble), Problem(WIFI_RATE, trouble)))
        if link_type == "unknown":
            return LinkReading("unknown", problems=(Problem(LINK_TYPE, f"{trouble}; the connection's name does not say"),))
        return LinkReading(link_type)
