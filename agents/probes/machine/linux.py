"""Linux: the default route from /proc, the link type from /sys, the Wi-Fi signal from /proc or iw.

Sources (all readable without root):
- default route: /proc/net/route (IPv4), else /proc/net/ipv6_route; the up, non-reject default
  route with the lowest metric, loopback excluded.
- type: /sys/class/net/<if>/uevent ``DEVTYPE=wlan`` or a ``wireless`` directory -> Wi-Fi
  (older wext-only drivers have only the directory); ``DEVTYPE=wwan`` -> cellular; any other
  DEVTYPE (bridge, vlan, wireguard, bond, ...) -> other; an Ethernet-type interface (``type``
  1) backed by a device (``device`` link) -> wired; anything else (veth, tun, ppp) -> other.
- Wi-Fi signal: the "level" column of /proc/net/wireless; rate (and signal when /proc has
  none): ``iw dev <if> link``, the one subprocess, run for Wi-Fi links only.
"""

from __future__ import annotations

import os.path
import re

from agents.probes.machine.link import (
    CommandFailed,
    Exists,
    LinkError,
    LinkReading,
    Read,
    Run,
    WifiStatus,
    number,
    plausible_dbm,
    plausible_rate,
    read_text,
    run_command,
)
from agents.probes.machine.result import LINK_TYPE, ROUTE, WIFI_RATE, WIFI_SIGNAL, LinkType, Problem

RTF_UP = 0x0001
RTF_REJECT = 0x0200
ARPHRD_ETHER = 1
# The kernel's own rule (dev_valid_name): at most 15 bytes, no '/', ':' or white space.
_IFNAME = re.compile(r"[^/:\s]{1,15}")


def valid_interface_name(name: str) -> bool:
    return bool(_IFNAME.fullmatch(name)) and name not in (".", "..")


def parse_proc_route(text: str) -> str | None:
    """The interface of the IPv4 default route with the lowest metric in /proc/net/route."""
    best: tuple[int, str] | None = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        iface = fields[0]
        try:
            destination, flags, metric, mask = int(fields[1], 16), int(fields[3], 16), int(fields[6]), int(fields[7], 16)
        except ValueError:
            continue  # the header line, or garbage
        if destination or mask or not flags & RTF_UP or iface == "lo" or not valid_interface_name(iface):
            continue
        if best is None or metric < best[0]:
            best = (metric, iface)
    return best[1] if best else None


def parse_ipv6_route(text: str) -> str | None:
    """The interface of the IPv6 default route (::/0) with the lowest metric in /proc/net/ipv6_route.

    Skips the kernel's unreachable ::/0 on "lo" (flags carry RTF_REJECT, metric 0xffffffff).
    """
    best: tuple[int, str] | None = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 10:
            continue
        destination, prefix_len, iface = fields[0], fields[1], fields[9]
        try:
            metric, flags = int(fields[5], 16), int(fields[8], 16)
            is_default = int(destination, 16) == 0 and int(prefix_len, 16) == 0
        except ValueError:
            continue
        if not is_default or not flags & RTF_UP or flags & RTF_REJECT or iface == "lo" or not valid_interface_name(iface):
            continue
        if best is None or metric < best[0]:
            best = (metric, iface)
    return best[1] if best else None


def parse_uevent_devtype(text: str) -> str | None:
    """DEVTYPE from a /sys/class/net/<if>/uevent ("wlan", "wwan", "bridge", ...), else None."""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "DEVTYPE" and value.strip():
            return value.strip()
    return None


def linux_link_type(devtype: str | None, has_wireless_dir: bool, arp_type: int | None, has_device: bool) -> LinkType:
    if devtype == "wlan" or has_wireless_dir:
        return "wifi"
    if devtype == "wwan":
        return "cellular"
    if devtype:
        return "other"
    if arp_type is None:
        return "unknown"
    return "wired" if arp_type == ARPHRD_ETHER and has_device else "other"


def parse_proc_wireless(text: str, interface: str) -> float | None:
    """Signal level in dBm of ``interface`` from /proc/net/wireless, or None.

    Drivers that flag dBm print a negative number ("-56."); older ones print the same byte
    unsigned, i.e. dBm + 256 ("200." = -56 dBm). 1..127 is a relative scale, not dBm, and 0
    is what drivers print when they know nothing: both give None.
    """
    for line in text.splitlines():
        name, colon, rest = line.partition(":")
        if not colon or name.strip() != interface:
            continue
        fields = rest.split()  # status, link, level, noise, ...
        level = number(fields[2]) if len(fields) >= 3 else None
        if level is None:
            return None
        if 128 <= level <= 255:
            level -= 256
        return plausible_dbm(level) if level < 0 else None
    return None


def parse_iw_link(text: str) -> WifiStatus:
    """Signal, rate and radio from ``iw dev <if> link``; all None for "Not connected." or garbage.

    The rate is the transmit bitrate (what this machine sends at: the direction a client's
    video goes up), else the receive bitrate.
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, colon, value = line.strip().partition(":")
        if colon and key.strip() in ("signal", "tx bitrate", "rx bitrate"):
            values.setdefault(key.strip(), value.strip())
    bitrate = values.get("tx bitrate") or values.get("rx bitrate") or ""
    return WifiStatus(
        signal_dbm=plausible_dbm(number(values.get("signal", ""))),
        rate_mbps=plausible_rate(number(bitrate)),
        radio=_radio_from_bitrate(bitrate),
    )


def _radio_from_bitrate(bitrate: str) -> str | None:
    for marker, radio in (("EHT-MCS", "802.11be"), ("HE-MCS", "802.11ax"), ("VHT-MCS", "802.11ac"), (" MCS ", "802.11n")):
        if marker in f" {bitrate} ":
            return radio
    return None


class LinuxLinkProbe:
    def __init__(
        self,
        run: Run = run_command,
        read: Read = read_text,
        exists: Exists = os.path.exists,
        timeout_s: float = 2.0,
        *,
        wifi_rate: bool = True,
    ) -> None:
        self._run, self._read, self._exists, self._timeout_s = run, read, exists, timeout_s
        # False: no ``iw`` when /proc/net/wireless has the signal (the rate is then unknown),
        # so that frequent samples cost no subprocess.
        self._wifi_rate = wifi_rate

    def default_interface(self) -> str | None:
        unreadable = []
        for path, parse in (("/proc/net/route", parse_proc_route), ("/proc/net/ipv6_route", parse_ipv6_route)):
            try:
                iface = parse(self._read(path))
            except OSError as error:
                unreadable.append(f"{path} ({error.__class__.__name__})")
                continue
            if iface:
                return iface
        if len(unreadable) == 2:
            raise LinkError(Problem(ROUTE, "cannot read " + " or ".join(unreadable)))
        return None

    def link_info(self, interface: str) -> LinkReading:
        if not valid_interface_name(interface):
            return LinkReading("unknown", problems=(Problem(LINK_TYPE, "not a Linux interface name"),))
        base = f"/sys/class/net/{interface}"
        devtype = arp_type = None
        readable = False
        try:
            devtype = parse_uevent_devtype(self._read(f"{base}/uevent"))
            readable = True
        except OSError:
            pass
        try:
            arp_type = int(self._read(f"{base}/type").strip())
            readable = True
        except (OSError, ValueError):
            pass
        if not readable:
            return LinkReading("unknown", problems=(Problem(LINK_TYPE, f"cannot read {base}"),))
        link_type = linux_link_type(devtype, self._exists(f"{base}/wireless"), arp_type, self._exists(f"{base}/device"))
        if link_type != "wifi":
            return LinkReading(link_type)
        return self._wifi(interface)

    def _wifi(self, interface: str) -> LinkReading:
        try:
            signal = parse_proc_wireless(self._read("/proc/net/wireless"), interface)
        except OSError:
            signal = None  # absent on kernels without wireless extensions; iw still answers
        if not self._wifi_rate and signal is not None:
            return LinkReading("wifi", WifiStatus(signal_dbm=signal))
        try:
            iw, iw_trouble = parse_iw_link(self._run(["iw", "dev", interface, "link"], self._timeout_s)), "iw gave no"
        except CommandFailed as failure:
            iw, iw_trouble = WifiStatus(), f"iw {failure.reason}, so no"
        wifi = WifiStatus(signal if signal is not None else iw.signal_dbm, iw.rate_mbps, iw.radio)
        problems = []
        if wifi.signal_dbm is None:
            problems.append(Problem(WIFI_SIGNAL, f"no level in /proc/net/wireless and {iw_trouble} signal"))
        if wifi.rate_mbps is None:
            problems.append(Problem(WIFI_RATE, f"{iw_trouble} bitrate"))
        return LinkReading("wifi", wifi, tuple(problems))
