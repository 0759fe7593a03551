"""Linux link detection on recorded /proc and /sys trees and recorded iw output."""

from __future__ import annotations

import pytest

from agents.probes.machine.link import CommandFailed, LinkError, LinkReading, WifiStatus
from agents.probes.machine.linux import (
    LinuxLinkProbe,
    linux_link_type,
    parse_ipv6_route,
    parse_iw_link,
    parse_proc_route,
    parse_proc_wireless,
    parse_uevent_devtype,
    valid_interface_name,
)
from agents.probes.machine.result import LINK_TYPE, ROUTE, WIFI_RATE, WIFI_SIGNAL
from tests.machine.fakes import DATA, FakeRun, RecordedTree, recorded

LINUX = DATA / "linux"


def probe(scenario: str, run: FakeRun | None = None) -> LinuxLinkProbe:
    tree = RecordedTree(LINUX / scenario)
    return LinuxLinkProbe(run=run or FakeRun({}), read=tree.read, exists=tree.exists)


# --- parsers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "interface"),
    [
        ("wifi-laptop", "wlp0s20f3"),
        ("wired-desktop", "enp3s0"),  # metric 100 beats Wi-Fi's 600
        ("old-driver", "wlan0"),
        ("vpn", "tun0"),
        ("wwan", "wwan0"),
        ("container", "eth0"),
        ("captured-vm", "eth0"),
        ("ipv6-only", None),
        ("offline", None),
    ],
)
def test_ipv4_default_route(scenario: str, interface: str | None) -> None:
    assert parse_proc_route(recorded(f"linux/{scenario}/proc/net/route")) == interface


@pytest.mark.parametrize(
    ("scenario", "interface"),
    [("ipv6-only", "eth0"), ("captured-vm", "eth0"), ("offline", None), ("wired-desktop", None), ("wifi-laptop", None)],
)
def test_ipv6_default_route_skips_the_reject_route_on_lo(scenario: str, interface: str | None) -> None:
    assert parse_ipv6_route(recorded(f"linux/{scenario}/proc/net/ipv6_route")) == interface


def test_a_default_route_that_is_not_up_does_not_count() -> None:
    text = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\neth0\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n"
    assert parse_proc_route(text) is None


def test_captured_route_agrees_with_ip_route() -> None:
    """The one real capture: the parser finds the device `ip route show default` named then."""
    ip_route = recorded("linux/captured-vm/ip-route-show-default.txt").split()
    assert parse_proc_route(recorded("linux/captured-vm/proc/net/route")) == ip_route[ip_route.index("dev") + 1]


@pytest.mark.parametrize(
    ("text", "devtype"),
    [("DEVTYPE=wlan\nINTERFACE=wlp0s20f3\nIFINDEX=3\n", "wlan"), ("INTERFACE=eth0\nIFINDEX=2\n", None), ("DEVTYPE=\n", None), ("", None)],
)
def test_uevent_devtype(text: str, devtype: str | None) -> None:
    assert parse_uevent_devtype(text) == devtype


@pytest.mark.parametrize(
    ("devtype", "wireless_dir", "arp_type", "device", "expected"),
    [
        ("wlan", False, 1, True, "wifi"),
        (None, True, 1, True, "wifi"),  # wext-only driver
        ("wwan", False, 65534, True, "cellular"),
        ("bridge", False, 1, False, "other"),
        ("wireguard", False, 65534, False, "other"),
        (None, False, 1, True, "wired"),
        (None, False, 1, False, "other"),  # veth
        (None, False, 65534, False, "other"),  # tun
        (None, False, 512, True, "other"),  # ppp
        (None, False, None, False, "unknown"),
    ],
)
def test_link_type_rules(devtype: str | None, wireless_dir: bool, arp_type: int | None, device: bool, expected: str) -> None:
    assert linux_link_type(devtype, wireless_dir, arp_type, device) == expected


@pytest.mark.parametrize(
    ("scenario", "interface", "dbm"),
    [
        ("wifi-laptop", "wlp0s20f3", -56.0),
        ("old-driver", "wlan0", -56.0),  # "200." is dBm + 256
        ("wired-desktop", "wlp2s0", -49.0),
        ("wired-desktop", "enp3s0", None),  # not listed
    ],
)
def test_proc_wireless_level(scenario: str, interface: str, dbm: float | None) -> None:
    assert parse_proc_wireless(recorded(f"linux/{scenario}/proc/net/wireless"), interface) == dbm


@pytest.mark.parametrize("level", ["0.", "54.", "-256.", "x"])
def test_proc_wireless_level_that_is_no_dbm_reading(level: str) -> None:
    text = f"Inter-| sta-|\n face | tus |\n wlan0: 0000   54.  {level}  -256  0 0 0 0 0 0\n"
    assert parse_proc_wireless(text, "wlan0") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("iw-link-wifi6.txt", WifiStatus(-56.0, 864.8, "802.11ax")),
        ("iw-link-80211n.txt", WifiStatus(-71.0, 72.2, "802.11n")),
        ("iw-link-vht-rx-only.txt", WifiStatus(-63.0, 433.3, "802.11ac")),
        ("iw-link-not-connected.txt", WifiStatus()),
        ("iw-link-no-such-device.txt", WifiStatus()),
    ],
)
def test_iw_link(name: str, expected: WifiStatus) -> None:
    assert parse_iw_link(recorded(f"linux/{name}")) == expected


@pytest.mark.parametrize("name", ["eth0", "wlp0s20f3", "enx00e04c680102", "br-1a2b3c4d5e6f"])
def test_valid_interface_names(name: str) -> None:
    assert valid_interface_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "../../etc", "eth0:1", "a b", "x" * 16])
def test_invalid_interface_names(name: str) -> None:
    assert not valid_interface_name(name)


# --- the probe over recorded trees ----------------------------------------------------------


def test_wifi_laptop() -> None:
    run = FakeRun({("iw", "dev", "wlp0s20f3", "link"): recorded("linux/iw-link-wifi6.txt")})
    linux = probe("wifi-laptop", run)
    assert linux.default_interface() == "wlp0s20f3"
    # The signal comes from /proc (no subprocess needed for it); iw adds the rate.
    assert linux.link_info("wlp0s20f3") == LinkReading("wifi", WifiStatus(-56.0, 864.8, "802.11ax"))
    assert run.calls == [("iw", "dev", "wlp0s20f3", "link")]


def test_wifi_without_iw_keeps_the_signal_and_says_what_is_missing() -> None:
    reading = probe("wifi-laptop", FakeRun({})).link_info("wlp0s20f3")
    assert reading.type == "wifi" and reading.wifi == WifiStatus(-56.0, None, None)
    assert [p.what for p in reading.problems] == [WIFI_RATE]
    assert "iw not installed" in reading.problems[0].detail


def test_old_driver_signal_from_the_256_offset_level() -> None:
    run = FakeRun({("iw", "dev", "wlan0", "link"): recorded("linux/iw-link-80211n.txt")})
    reading = probe("old-driver", run).link_info("wlan0")
    assert reading == LinkReading("wifi", WifiStatus(-56.0, 72.2, "802.11n"))


def test_wifi_with_no_reading_anywhere() -> None:
    run = FakeRun({("iw", "dev", "wlp0s20f3", "link"): recorded("linux/iw-link-not-connected.txt")})
    tree = RecordedTree(LINUX / "wifi-laptop")

    def read(path: str) -> str:
        if path == "/proc/net/wireless":
            raise FileNotFoundError(path)
        return tree.read(path)

    reading = LinuxLinkProbe(run=run, read=read, exists=tree.exists).link_info("wlp0s20f3")
    assert reading.type == "wifi" and reading.wifi == WifiStatus()
    assert [p.what for p in reading.problems] == [WIFI_SIGNAL, WIFI_RATE]


@pytest.mark.parametrize(
    ("scenario", "interface", "link_type"),
    [
        ("wired-desktop", "enp3s0", "wired"),
        ("ipv6-only", "eth0", "wired"),
        ("vpn", "tun0", "other"),
        ("wwan", "wwan0", "cellular"),
        ("container", "eth0", "other"),
        ("captured-vm", "eth0", "wired"),
    ],
)
def test_links_that_are_not_wifi_run_no_command(scenario: str, interface: str, link_type: str) -> None:
    run = FakeRun({})
    linux = probe(scenario, run)
    assert linux.default_interface() == interface
    assert linux.link_info(interface) == LinkReading(link_type)
    assert run.calls == []


def test_offline_has_no_default_interface() -> None:
    assert probe("offline").default_interface() is None


def test_unreadable_proc_is_a_link_error() -> None:
    def read(path: str) -> str:
        raise PermissionError(path)

    with pytest.raises(LinkError) as caught:
        LinuxLinkProbe(run=FakeRun({}), read=read, exists=lambda path: False).default_interface()
    assert caught.value.problem.what == ROUTE


def test_a_bridge_is_other() -> None:
    assert probe("wifi-laptop").link_info("docker0") == LinkReading("other")


def test_vanished_interface_is_unknown() -> None:
    reading = probe("wired-desktop").link_info("eth9")
    assert reading.type == "unknown" and [p.what for p in reading.problems] == [LINK_TYPE]


def test_a_hostile_interface_name_is_not_used_in_a_path_or_command() -> None:
    run = FakeRun({})
    reading = probe("wifi-laptop", run).link_info("../../../etc")
    assert reading.type == "unknown" and run.calls == []


def test_iw_timeout_is_a_problem_not_an_exception() -> None:
    run = FakeRun({("iw", "dev", "wlp0s20f3", "link"): CommandFailed(["iw"], "no answer within 2 s")})
    reading = probe("wifi-laptop", run).link_info("wlp0s20f3")
    assert reading.wifi == WifiStatus(-56.0, None, None)
    assert "no answer within 2 s" in reading.problems[0].detail
