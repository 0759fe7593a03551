"""macOS: the default route from ``route``, the type from ``networksetup``, Wi-Fi from airport or system_profiler.

Commands, in order, each with a short timeout:
1. ``route -n get default`` -> "interface: en0" (IPv4 default route).
2. ``networksetup -listallhardwareports`` -> the hardware port of that device ("Wi-Fi",
   "Ethernet", "USB 10/100/1000 LAN", "iPhone USB", ...). A device that is not a hardware
   port (utun, ipsec, ppp: VPNs and tunnels) is "other".
3. Wi-Fi only: the legacy ``airport -I`` (fast; ``agrCtlRSSI``, ``lastTxRate``), and only when
   it is gone or says nothing (removed in macOS 14.4, which prints a deprecation notice
   instead) ``system_profiler SPAirPortDataType`` (slow: about 1-5 s, hence its own timeout).
"""

from __future__ import annotations

import re
from collections.abc import Callable

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

AIRPORT = "/System/Library/PrivateFrameworks/Apple80211.framework/Versions/Current/Resources/airport"


def parse_route_get(text: str) -> str | None:
    """The "interface:" line of ``route -n get default``; None when there is no default route."""
    for line in text.splitlines():
        key, colon, value = line.strip().partition(":")
        if colon and key.strip() == "interface" and value.strip():
            return value.strip()
    return None


def parse_hardware_ports(text: str) -> dict[str, str]:
    """Device -> hardware port name from ``networksetup -listallhardwareports``."""
    ports: dict[str, str] = {}
    port: str | None = None
    for line in text.splitlines():
        key, colon, value = line.strip().partition(":")
        if not colon:
            continue
        if key == "Hardware Port":
            port = value.strip()
        elif key == "Device" and port and value.strip():
            ports.setdefault(value.strip(), port)
            port = None
    return ports


def mac_port_type(port: str | None) -> LinkType:
    """The link type of a hardware port name; None (not a hardware port) is a tunnel: "other"."""
    if port is None:
        return "other"
    name = port.lower()
    if "wi-fi" in name or "airport" in name or "wlan" in name:
        return "wifi"
    if any(word in name for word in ("iphone", "ipad", "cellular", "mobile", "wwan")):
        return "cellular"  # USB tethering to a phone: the phone's mobile data
    if "bridge" in name or "bluetooth" in name or "vpn" in name:
        return "other"
    if "ethernet" in name or re.search(r"\blan\b", name):
        return "wired"
    return "unknown"  # e.g. a USB adapter named after its chip


def parse_airport(text: str) -> WifiStatus:
    """RSSI, last transmit rate from ``airport -I``; all None when off, disassociated or deprecated."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, colon, value = line.strip().partition(":")
        if colon:
            values.setdefault(key.strip(), value.strip())
    # agrCtlRSSI is 0 when not associated: not a reading.
    return WifiStatus(
        signal_dbm=plausible_dbm(number(values.get("agrCtlRSSI", ""))),
        rate_mbps=plausible_rate(number(values.get("lastTxRate", ""))),
    )


def parse_system_profiler_wifi(text: str, interface: str) -> WifiStatus:
    """Signal, transmit rate and PHY mode of ``interface``'s current network.

    ``system_profiler SPAirPortDataType`` nests by indentation: Interfaces > en0 > "Current
    Network Information" > <network name> > "Signal / Noise: -56 dBm / -93 dBm". The sibling
    block "Other Local Wi-Fi Networks" lists neighbours with signals of their own: those are
    not ours, so only the block under "Current Network Information" of this interface counts.
    """
    lines = text.splitlines()
    block = _indented_block(lines, lambda line: line.strip() == f"{interface}:")
    current = _indented_block(block, lambda line: line.strip() == "Current Network Information:")
    values: dict[str, str] = {}
    for line in current:
        key, colon, value = line.strip().partition(":")
        if colon and key in ("Signal / Noise", "Transmit Rate", "PHY Mode"):
            values.setdefault(key, value.strip())
    return WifiStatus(
        signal_dbm=plausible_dbm(number(values.get("Signal / Noise", ""))),
        rate_mbps=plausible_rate(number(values.get("Transmit Rate", ""))),
        radio=values.get("PHY Mode") or None,
    )


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _indented_block(lines: list[str], is_header: Callable[[str], bool]) -> list[str]:
    """The lines indented deeper than the first line ``is_header`` accepts, up to the next shallower one."""
    for index, line in enumerate(lines):
        if is_header(line):
            depth = _indent(line)
            block = []
            for inner in lines[index + 1 :]:
                if inner.strip() and _indent(inner) <= depth:
                    break
                block.append(inner)
            return block
    return []


class MacLinkProbe:
    def __init__(self, run: Run = run_command, timeout_s: float = 2.0, profiler_timeout_s: float = 6.0) -> None:
        self._run, self._timeout_s, self._profiler_timeout_s = run, timeout_s, profiler_timeout_s

    def default_interface(self) -> str | None:
        try:
            text = self._run(["route", "-n", "get", "default"], self._timeout_s)
        except CommandFailed as failure:
            raise LinkError(Problem(ROUTE, f"route {failure.reason}")) from None
        return parse_route_get(text)

    def link_info(self, interface: str) -> LinkReading:
        try:
            ports = parse_hardware_ports(self._run(["networksetup", "-listallhardwareports"], self._timeout_s))
        except CommandFailed as failure:
            return LinkReading("unknown", problems=(Problem(LINK_TYPE, f"networksetup {failure.reason}"),))
        if not ports:
            return LinkReading("unknown", problems=(Problem(LINK_TYPE, "networksetup listed no hardware ports"),))
        port = ports.get(interface)
        link_type = mac_port_type(port)
        if link_type == "unknown":
            return LinkReading("unknown", problems=(Problem(LINK_TYPE, f"hardware port {port!r} not recognised"),))
        if link_type != "wifi":
            return LinkReading(link_type)
        return self._wifi(interface)

    def _wifi(self, interface: str) -> LinkReading:
        tried = []
        wifi = WifiStatus()
        try:
            wifi = parse_airport(self._run([AIRPORT, "-I"], self._timeout_s))
            tried.append("airport gave no RSSI" if wifi.signal_dbm is None else "airport")
        except CommandFailed as failure:
            tried.append(f"airport {failure.reason}")
        if wifi.signal_dbm is None:
            try:
                wifi = parse_system_profiler_wifi(self._run(["system_profiler", "SPAirPortDataType"], self._profiler_timeout_s), interface)
                tried.append("system_profiler")
            except CommandFailed as failure:
                tried.append(f"system_profiler {failure.reason}")
        problems = []
        if wifi.signal_dbm is None:
            problems.append(Problem(WIFI_SIGNAL, "; ".join(tried)))
        if wifi.rate_mbps is None:
            problems.append(Problem(WIFI_RATE, "; ".join(tried)))
        return LinkReading("wifi", wifi, tuple(problems))
